from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Buffer, Self, TypeAlias, disjoint_base

# numpy's stubs give ndarray the buffer protocol only from Python 3.12: name it beside Buffer.
_Bytes: TypeAlias = Buffer | NDArray[np.uint8]

@disjoint_base
class DecodePlan:
    # cdef readonly attributes: Final reads as read-only here
    packet_size: Final[int]
    row_bytes: Final[int]
    nsegments: Final[int]
    nfields: Final[int]
    # built in __cinit__: the constructor's arguments go to __new__
    def __new__(cls, packet_size: int, src_offsets: Sequence[int], element_bytes: Sequence[int],
                records: Sequence[int], src_strides: Sequence[int]) -> Self: ...
    def output_bytes(self, n: int, rows: bool) -> int: ...
    def column_starts(self, n: int) -> list[int]: ...
    def decode_into(self, buf: _Bytes, offsets: NDArray[np.int64], out: NDArray[np.uint8], rows: bool = ...) -> None: ...

def slot_offsets(first: int, count: int, slot_size: int) -> NDArray[np.int64]: ...
def classify(buf: _Bytes, offsets: NDArray[np.int64], lengths: NDArray[np.int64], rules: NDArray[np.int64],
             out: NDArray[np.int16]) -> int: ...
