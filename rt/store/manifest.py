"""Small JSON files replaced atomically: write a temp file, fsync it, rename it over, fsync the folder.

A crash at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from ..clock import iso  # noqa: F401  (manifests' times: re-exported for the store)
from ..errors import StoreError


def write_atomic(path: str | Path, obj) -> None:
    """Replace ``path`` by the JSON of ``obj`` so that a crash leaves the old or the new file.

    The paths are plain strings here: Python 3.11's pathlib interns every part of a path it
    builds, so each write's fresh names (``.<id>.json.tmp``) went into the interpreter's table of
    interned strings and out again, leaving holes; after 34 minutes of runs started and stopped
    every 0.75 s the table was rebuilt at twice its size (+0.9 MB, for good: the one step of
    the 1-hour soak)."""
    target = os.fspath(path)
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, f".{name}.tmp")
    data = orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(folder or ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StoreError(f"{name}: {exc.strerror or exc}") from exc


def read(path: str | Path):
    """The parsed JSON of ``path``; :class:`~rt.errors.StoreError` if it is missing or broken."""
    try:
        return orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise StoreError(f"{Path(path).name}: {exc}") from exc
