"""Getting data out: a recording's feed, a run or chosen laps as CSV, Parquet or MoTeC (see
:mod:`rt.export.table`)."""
