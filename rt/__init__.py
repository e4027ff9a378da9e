"""rusty-telemetry: record and analyze sim-racing UDP telemetry."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rusty-telemetry")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
