"""Encoding packets from values: the inverse of decoding, driven by the same layout tables.

Used by the simulator and the test rigs to send real-protocol datagrams. Vectorised over a batch:
one numpy assignment per field, not per packet.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .layout import PacketLayout


def encode_batch(layout: PacketLayout, values: Mapping[str, object], n: int, fill: bytes | None = None) -> np.ndarray:
    """``n`` packets of ``layout`` as a ``(n, layout.size)`` uint8 array.

    ``values`` maps field names to arrays of shape ``(n, *field.shape)`` or anything that
    broadcasts to it (a scalar for all packets). Unnamed fields and padding are zero, or repeat
    ``fill`` (e.g. to mimic AC's garbage padding). Unknown names raise ``KeyError``.
    """
    out = np.zeros((n, layout.size), dtype=np.uint8)
    if fill:
        out[:] = np.resize(np.frombuffer(fill, dtype=np.uint8), layout.size)
    for name, value in values.items():
        f = layout[name]
        vals = np.broadcast_to(np.asarray(value, dtype=f.dtype), (n, *f.shape))
        if f.stride:
            # Struct array: records f.stride bytes apart, each element_bytes long.
            region = out[:, f.offset : f.offset + f.records * f.stride]
            if region.shape[1] < f.records * f.stride:  # last record may end before its stride
                region = np.zeros((n, f.records * f.stride), dtype=np.uint8)
                region[:, : out.shape[1] - f.offset] = out[:, f.offset :]
                pad = True
            else:
                pad = False
            recs = region.reshape(n, f.records, f.stride)
            recs[:, :, : f.element_bytes] = np.ascontiguousarray(vals).view(np.uint8).reshape(n, f.records, f.element_bytes)
            if pad:
                out[:, f.offset :] = region[:, : out.shape[1] - f.offset]
        else:
            out[:, f.offset : f.offset + f.nbytes] = np.ascontiguousarray(vals).view(np.uint8).reshape(n, f.nbytes)
    return out


def encode(layout: PacketLayout, values: Mapping[str, object]) -> bytes:
    """One packet of ``layout`` from scalar/array values."""
    return encode_batch(layout, values, 1).tobytes()
