"""The guard that stops a recording before the data disk is full."""

from __future__ import annotations

import os
from pathlib import Path


class DiskGuard:
    """Keeps ``min_free_bytes`` free on the disk of ``data_dir``."""

    def __init__(self, data_dir: Path, min_free_bytes: int) -> None:
        self.data_dir = data_dir
        self.min_free_bytes = min_free_bytes

    def low(self, recent_bytes: int) -> str | None:
        """Why the data disk is too full to go on, or None.

        The guard keeps MIN_FREE_MB free, plus room for a few more sync intervals at the rate
        just seen, so the HDF5 library never meets a full disk (it cannot recover from one).
        """
        try:
            st = os.statvfs(self.data_dir)
        except OSError:
            return None
        free = st.f_bavail * st.f_frsize
        need = self.min_free_bytes + 4 * recent_bytes
        if free < need:
            return (f"disk nearly full: {free / 2**20:.1f} MiB free on {self.data_dir}, "
                    f"{need / 2**20:.1f} MiB kept free (RUSTY_TELEMETRY_MIN_FREE_MB)")
        return None
