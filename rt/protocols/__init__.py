"""Packet layouts of every feed, the classifier, and the mapping to canonical channels.

:class:`Protocols` gathers the declared layouts (one :class:`~rt.protocols.layout.PacketLayout`
per packet kind), numbers them, and builds each feed's classification rules from the same
declarations. Nothing here knows about sockets or files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import ac, acc, pcars1, pcars2, telemetry_tool, wire
from .layout import Field, PacketLayout, decode_text

FEEDS = ("ksudp", "telemetry_tool", "pcars", "acc")

#: Rule row: (datagram length or -1 for any, byte to check or -1, mask, expected value, kind id).
RULE_COLUMNS = ("length", "check_offset", "mask", "value", "kind")


#: Largest datagram of a variable-length kind, bytes: what a ring slot keeps whole (a longer one is
#: malformed, so a parse never reads past its slot). ACC's largest, track data, is under 1 KB.
VARIABLE_MAX = 2048


@dataclass(frozen=True)
class FeedRules:
    """Classification rules of one feed: datagram length plus one checked byte → kind id."""

    feed: str
    rules: np.ndarray  # int64, shape (n, 5), columns RULE_COLUMNS; applied by rt.decode


class Protocols:
    """All packet kinds, numbered, and each feed's classifier rules.

    ``tt_layout`` replaces the provisional Telemetry Tool table (see :mod:`.telemetry_tool`).
    """

    def __init__(self, tt_layout: PacketLayout | None = None) -> None:
        self.tt = tt_layout or telemetry_tool.load_layout()
        kinds: list[PacketLayout] = [ac.HANDSHAKE_RESPONSE, ac.CAR_INFO, ac.LAP, self.tt]
        kinds += [layout for layout, _ in pcars1.KINDS]
        kinds += list(dict.fromkeys(pcars2.KINDS.values()))
        kinds += [m.layout for m in acc.INBOUND]
        #: Kinds of variable length, by name: their grammar parses each datagram into the layout's row.
        self.messages: dict[str, wire.Message] = {m.layout.name: m for m in acc.INBOUND}
        self.kinds: tuple[PacketLayout, ...] = tuple(kinds)
        self.kind_id: dict[str, int] = {k.name: i for i, k in enumerate(self.kinds)}
        if len(self.kind_id) != len(self.kinds):
            raise ValueError("two packet kinds share a name")
        self.feed_rules: dict[str, FeedRules] = {
            "ksudp": self._rules(
                "ksudp",
                [
                    (ac.HANDSHAKE_RESPONSE, -1, 0, 0),
                    (ac.CAR_INFO, 0, 0xFF, ord("a")),
                    (ac.LAP, -1, 0, 0),
                ],
            ),
            "telemetry_tool": self._rules("telemetry_tool", [(self.tt, -1, 0, 0)]),
            "pcars": self._rules(
                "pcars",
                [(layout, 2, 0x03, ptype) for layout, ptype in pcars1.KINDS]
                + [(layout, 10, 0xFF, ptype) for (ptype, _size), layout in pcars2.KINDS.items()],
            ),
            "acc": self._rules("acc", acc.RULES),
        }
        self.feed_kinds: dict[str, tuple[PacketLayout, ...]] = {
            feed: tuple(self.kinds[k] for k in dict.fromkeys(r.rules[:, 4].tolist()))
            for feed, r in self.feed_rules.items()
        }

    def _rules(self, feed: str, rows: list[tuple[PacketLayout, int, int, int]]) -> FeedRules:
        table = np.array(
            [(-1 if layout.wire else layout.size, off, mask, value, self.kind_id[layout.name])
             for layout, off, mask, value in rows],
            dtype=np.int64,
        ).reshape(-1, 5)
        return FeedRules(feed, table)

    def __getitem__(self, name: str) -> PacketLayout:
        return self.kinds[self.kind_id[name]]

    def max_datagram(self, feed: str) -> int:
        """Largest well-formed datagram of a feed, in bytes (for messages of variable length: what
        fits one Ethernet frame, as ACC's do)."""
        lengths = self.feed_rules[feed].rules[:, 0]
        return max(int(lengths.max()), VARIABLE_MAX if (lengths < 0).any() else 0)


_default: Protocols | None = None


def default_protocols() -> Protocols:
    """The protocols with the shipped layouts (built once)."""
    global _default
    if _default is None:
        _default = Protocols()
    return _default


def protocols_for(tt_layout_path: str | Path | None) -> Protocols:
    """Protocols with a replacement Telemetry Tool table, or the default ones."""
    if tt_layout_path is None:
        return default_protocols()
    return Protocols(telemetry_tool.load_layout(tt_layout_path))


__all__ = [
    "FEEDS",
    "Field",
    "FeedRules",
    "PacketLayout",
    "Protocols",
    "decode_text",
    "default_protocols",
    "protocols_for",
]
