"""The HDF5 file of a recording: decoded datagrams, one compound dataset per packet kind.

Schema of ``data.h5`` (documented in the README)::

    /                               attrs: format, recording_id, created_at
    /<feed>/<packet kind>/t_ns      int64 (n,)         receive time, ns since the Unix epoch
    /<feed>/<packet kind>/rows      compound (n,)      every decoded field, one member per field
                                                       (attrs units, docs, offsets: JSON by field)
    /<feed>/canonical/<channel>     (n,)               the canonical channels (rt.protocols.canonical)
    /<feed>/canonical/kind          uint8 (n,)         which packet kind a frame came from
                                                       (attr kinds: the names, by index)

Rows of one packet kind are in arrival order; a feed's canonical frames are its driving packets of
every kind in receive-time order, and a run's frame markers index them. Plain h5py or pandas
reads it: ``pd.DataFrame({k: v[:] for k, v in f["ksudp/canonical"].items()})``, and
``f["ksudp/ac_car_info/rows"]["speed_Kmh"]`` reads one field of the game's own packets.

The code is split by concern: :mod:`.h5writer` writes the file while a recording runs,
:mod:`.h5read` reads frames, facts and the field from it, :mod:`.h5check` checks it against the raw files
and rebuilds it from them. This module names the whole for its users.
"""

from .h5check import (ClassifiedRaw, agrees_with_raw, classified_raw, disagreement, raw_kind_counts,
                      rebuild)
from .h5read import kind_counts, read_canonical, read_closed, read_facts, read_field
from .h5writer import (APPEND_BYTES, CANONICAL_APPEND_BYTES, CANONICAL_FILTERS, CHUNK_BYTES, FORMAT,
                       FREE_SPACE_MIN_BYTES, METADATA_CACHE_BYTES, PACKET_FILTERS, H5Writer)

__all__ = [
    "APPEND_BYTES", "CANONICAL_APPEND_BYTES", "CANONICAL_FILTERS", "CHUNK_BYTES", "FORMAT", "FREE_SPACE_MIN_BYTES",
    "METADATA_CACHE_BYTES", "PACKET_FILTERS", "ClassifiedRaw", "H5Writer", "agrees_with_raw", "classified_raw",
    "disagreement", "kind_counts", "raw_kind_counts", "read_canonical", "read_closed", "read_facts",
    "read_field", "rebuild",
]
