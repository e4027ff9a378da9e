"""Telemetry Tool AC app feed (UDP 10101): one 357-byte driver struct per update.

The real layout is not public, so the table lives in a data file
(``rt/protocols/data/telemetry_tool_v1.json``), the one replaceable place: a user with the
plugin can correct it, or point ``RUSTY_TELEMETRY_TT_LAYOUT`` at a corrected copy, without
touching code. Raw datagrams are always recorded, so ``rusty-telemetry redecode`` can rebuild a
recording's HDF5 file with the corrected table.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ..errors import ConfigError
from .layout import PacketLayout, SequenceCounter, fields_from_rows

GAME = "assetto_corsa"
DEFAULT_LAYOUT_FILE = "telemetry_tool_v1.json"


def load_layout(path: str | Path | None = None) -> PacketLayout:
    """Load the Telemetry Tool layout from ``path``, or the shipped provisional table.

    Raises :class:`~rt.errors.ConfigError` with the file name when the table is unreadable or
    inconsistent (a field outside the packet, a duplicate name, an unknown type).
    """
    try:
        if path is None:
            text = resources.files(__package__).joinpath("data", DEFAULT_LAYOUT_FILE).read_text("utf-8")
        else:
            text = Path(path).read_text("utf-8")
        spec = json.loads(text)
        rows = [tuple(r) for r in spec["fields"]]
        names = {r[2] for r in rows}
        layout = PacketLayout(
            name="tt_driver",
            size=int(spec["size"]),
            fields=tuple(fields_from_rows(rows)),
            doc=spec.get("doc", ""),
            game=GAME,
            provisional=bool(spec.get("provisional", False)),
            # The table's packet_id increments per datagram (a replaced table may have none).
            sequence=SequenceCounter("packet_id", "tt", modulo=1 << 32, reset=100_000) if "packet_id" in names else None,
        )
        for f in layout.fields:
            f.dtype  # noqa: B018 - raises KeyError for an unknown wire type
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"Telemetry Tool layout {path or DEFAULT_LAYOUT_FILE}: {exc}") from exc
    return layout
