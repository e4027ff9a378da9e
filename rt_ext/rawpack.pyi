from typing import Final

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Buffer, TypeAlias

# numpy's stubs give ndarray the buffer protocol only from Python 3.12: name it beside Buffer.
_Bytes: TypeAlias = Buffer | NDArray[np.uint8]

RECORD_HEADER: Final[int]

def packed_size(lengths: NDArray[np.uint32], slot_size: int) -> int: ...
def pack(t_ns: NDArray[np.int64], lengths: NDArray[np.uint32], data: NDArray[np.uint8],
         out: NDArray[np.uint8]) -> int: ...
def scan(buf: _Bytes, start: int = ...) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], int]: ...
