from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Buffer, TypeAlias

_Bytes: TypeAlias = Buffer | NDArray[np.uint8]

def parse_batch(buf: _Bytes, offsets: NDArray[np.int64], lengths: NDArray[np.int64],
                programs: Sequence[NDArray[np.int64]], template: NDArray[np.uint8], out: NDArray[np.uint8],
                ok: NDArray[np.uint8]) -> int: ...
