from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from typing_extensions import TypeAlias, disjoint_base

from .ring import PacketRing

# ``ipaddress.ip_address`` parses the host; port 0 accepts any port.
_Source: TypeAlias = tuple[str | int | bytes | IPv4Address | IPv6Address, int]
# (fileno, ring, allowed sources or None for any[, classification rules[, forwarding sockets' filenos]])
_Socket: TypeAlias = (tuple[int, PacketRing, Sequence[_Source] | None]
                      | tuple[int, PacketRing, Sequence[_Source] | None, ArrayLike | None]
                      | tuple[int, PacketRing, Sequence[_Source] | None, ArrayLike | None, Sequence[int] | None])

HAVE_RECVMMSG: Final[bool]
SO_TIMESTAMPNS: Final[int]
SO_RXQ_OVFL: Final[int]
COUNTER_NAMES: Final[tuple[str, str, str, str, str, str, str]]
FORWARD_COUNTER_NAMES: Final[tuple[str, str, str]]
FORWARD_PAUSE_S: Final[float]

@disjoint_base
class ReceiverLoop:
    def __init__(self, sockets: Sequence[_Socket], period_ms: float = ..., notify_fd: int = ...,
                 notify_every_ms: float = ..., epoch_offset_ns: int | None = ...,
                 max_period_ms: float | None = ...) -> None: ...
    def close(self) -> None: ...
    @property
    def counters(self) -> NDArray[np.int64]: ...
    @property
    def forward_counters(self) -> NDArray[np.int64]: ...
    @property
    def notify_every_ms(self) -> float: ...
    @notify_every_ms.setter
    def notify_every_ms(self, value: float) -> None: ...
    @property
    def period_ms(self) -> float: ...
    def wake(self) -> None: ...
    def stop(self) -> None: ...
    def run(self) -> int: ...
    def drain_once(self) -> int: ...
