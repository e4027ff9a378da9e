from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

def merge_timelines(times: Sequence[ArrayLike], tolerance_ns: int) -> tuple[NDArray[np.int64], NDArray[np.int8], NDArray[np.int64]]: ...
