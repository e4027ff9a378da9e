"""Getting data out: a recording's feed, a run or chosen laps as CSV, Parquet (:mod:`rt.export.table`)
or MoTeC i2 (:mod:`rt.export.motec`)."""
