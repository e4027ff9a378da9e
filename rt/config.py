"""Configuration: the ``RUSTY_TELEMETRY_*`` environment, read and validated in one place.

:func:`load` turns an environment mapping into one immutable :class:`Config`, or raises
:class:`~rt.errors.ConfigError` with one line naming the variable, before anything is bound.

Ports may be 0 for "any free port" where we bind (API, Telemetry Tool, PCARS): tests and a
second instance beside a running one use that. The KSUDP port is the game's, so it must be real.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .errors import ConfigError

PREFIX = "RUSTY_TELEMETRY_"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")

#: Variable (without prefix) → (default, meaning). The README's configuration table is this table.
VARIABLES: dict[str, tuple[str | None, str]] = {
    "API_PORT": ("8080", "REST API server port"),
    "API_HOST": ("127.0.0.1", "REST API server bind address"),
    "GAME_HOST": ("127.0.0.1", "IP or name of the sim machine (KSUDP handshake target)"),
    "LISTEN": ("0.0.0.0", "local bind address for incoming feeds (Telemetry Tool, PCARS)"),
    "BIND": (None, "legacy fallback for both GAME_HOST and LISTEN"),
    "DATA_DIR": ("recordings", "one directory per recording; sessions under sessions/ inside it"),
    "KSUDP_PORT": ("9996", "AC remote telemetry port on GAME_HOST"),
    "TT_PORT": ("10101", "Telemetry Tool port on LISTEN (0 = any free port)"),
    "PCARS_PORT": ("5606", "Project CARS port on LISTEN (0 = any free port)"),
    "ACC_PORT": ("9000", "ACC broadcasting port on GAME_HOST (updListenerPort in ACC's broadcasting.json)"),
    "ACC_PASSWORD": ("asd", "connectionPassword from ACC's broadcasting.json (ACC ships with asd)"),
    "ACC_COMMAND_PASSWORD": (None, "commandPassword from ACC's broadcasting.json (optional: the recorder only reads)"),
    "ACC_INTERVAL_MS": ("100", "how often ACC sends the field's positions, ms (10..5000)"),
    "CORS_ORIGINS": ("http://localhost:5173,http://127.0.0.1:5173", "origins allowed to call the API from a browser (* allowed)"),
    "API_TOKEN": (None, "if set, every request that changes state needs Authorization: Bearer <token>"),
    "ALLOW_FROM": (None, "comma-separated source IPs the listening feeds accept (default: any); others are counted as refused"),
    "TT_LAYOUT": (None, "path of a corrected Telemetry Tool layout table (JSON)"),
    "RECV_PERIOD_MS": ("10", "how often the receiver drains the sockets, ms (kernel timestamps keep true arrival times)"),
    "RCVBUF_BYTES": ("8388608", "socket receive buffer per feed, bytes"),
    "MERGE_TOLERANCE_MS": ("1.0", "frames of merged feeds closer than this to a kept frame are duplicates, ms"),
    "MIN_FREE_MB": ("100", "a recording stops cleanly when the data disk has less free space than this, MiB"),
    "SYNC_S": ("5", "while recording, the raw files are fsynced and the manifest rewritten this often, s: what a power loss can lose (a killed process loses under a second whatever this is)"),
    "FORWARD": (None, "re-send every datagram of a feed unchanged to other programs: feed=host:port, comma-separated (a feed may appear several times; IPv6 as [::1]:5607)"),
    "MEMORY_LOG_S": ("0", "log one line of memory figures by cause (C heap, HDF5 free lists, Python blocks, sessions, syncs) this often, s; 0 = never (soaks set it)"),
    "COMPACT_AFTER_S": ("60", "a stopped recording is compacted (data.h5 and raw files compressed) this long after it stopped, s"),
}


@dataclass(frozen=True)
class Config:
    """Validated settings of one server process."""

    api_host: str = "127.0.0.1"
    api_port: int = 8080
    game_host: str = "127.0.0.1"
    listen: str = "0.0.0.0"
    data_dir: Path = Path("recordings")
    ksudp_port: int = 9996
    tt_port: int = 10101
    pcars_port: int = 5606
    acc_port: int = 9000
    acc_password: str = field(default="asd", repr=False)
    acc_command_password: str = field(default="", repr=False)
    acc_interval_ms: int = 100
    cors_origins: tuple[str, ...] = ("http://localhost:5173", "http://127.0.0.1:5173")
    api_token: str | None = field(default=None, repr=False)  # never printed
    tt_layout: Path | None = None
    allow_from: tuple[str, ...] = ()
    recv_period_ms: float = 10.0
    rcvbuf_bytes: int = 8 * 1024 * 1024
    min_free_mb: float = 100.0
    compact_after_s: float = 60.0
    sync_s: float = 5.0
    memory_log_s: float = 0.0
    merge_tolerance_ms: float = 1.0
    #: (feed, IP address, port) per forwarding target, in the order given (see :func:`_forward`)
    forward: tuple[tuple[str, str, int], ...] = ()

    def replace(self, **changes) -> "Config":
        """A copy with some settings changed (validated again)."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        values.update(changes)
        cfg = Config(**values)
        _check(cfg)
        return cfg


def _port(name: str, raw: str, allow_zero: bool) -> int:
    try:
        value = int(raw, 10)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={raw!r}: not a port number") from None
    low = 0 if allow_zero else 1
    if not low <= value <= 65535:
        raise ConfigError(f"{PREFIX}{name}={raw!r}: port must be {low}..65535")
    return value


def _host(name: str, raw: str) -> str:
    value = raw.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if _HOSTNAME.match(value) and not value.replace(".", "").isdigit():
        return value
    raise ConfigError(f"{PREFIX}{name}={raw!r}: not an IP address or host name")


def _ip(name: str, raw: str) -> str:
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}: {raw!r} is not an IP address") from None


def _number(name: str, raw: str, low: float, high: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={raw!r}: not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{PREFIX}{name}={raw!r}: must be {low:g}..{high:g}")
    return value


#: The realtime update intervals ACC is asked for, ms: faster floods the field's updates, slower
#: says little about a lap.
ACC_INTERVAL_MS = (10, 5000)


def _acc_text(name: str, raw: str) -> str:
    # ACC reads a u16 byte count: anything that long is a mistake, not a password.
    if len(raw.encode("utf-8")) > 255:
        raise ConfigError(f"{PREFIX}{name}: longer than 255 bytes")
    return raw


#: The feeds a datagram may be forwarded from (``rt.protocols.FEEDS``: config imports nothing of
#: rt but errors; tests/test_forward.py checks the two agree).
FEED_NAMES = ("ksudp", "telemetry_tool", "pcars", "acc")


def _forward(raw: str) -> tuple[tuple[str, str, int], ...]:
    """``feed=ip:port[,feed=[ipv6]:port…]`` → (feed, ip, port) per target. IP addresses only: the
    receive thread sends to them without a name lookup."""
    name = "FORWARD"
    out = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        feed, eq, target = item.partition("=")
        feed, target = feed.strip(), target.strip()
        if not eq or not feed or not target:
            raise ConfigError(f"{PREFIX}{name}: {item!r} is not feed=host:port")
        if feed not in FEED_NAMES:
            raise ConfigError(f"{PREFIX}{name}: unknown feed {feed!r} (one of {', '.join(FEED_NAMES)})")
        m = re.fullmatch(r"\[([^\]]+)\]:(\w+)|([^:\[\]]+):(\w+)", target)
        if m is None:
            raise ConfigError(f"{PREFIX}{name}: {target!r} is not host:port ([v6 address]:port for IPv6)")
        host, port = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"{PREFIX}{name}: {host!r} is not an IP address") from None
        if (m.group(1) is not None) != (ip.version == 6):
            raise ConfigError(f"{PREFIX}{name}: {target!r}: an IPv6 address goes in brackets, IPv4 without")
        out.append((feed, str(ip), _port(name, port, False)))
    return tuple(out)


def forward_label(ip: str, port: int) -> str:
    """How a target is named in /api/live: ``127.0.0.1:5607``, ``[::1]:5607``."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def _check(cfg: Config) -> None:
    for name in ("api_host", "game_host", "listen"):
        _host(name.upper(), getattr(cfg, name))
    _port("API_PORT", str(cfg.api_port), True)
    _port("KSUDP_PORT", str(cfg.ksudp_port), False)
    _port("TT_PORT", str(cfg.tt_port), True)
    _port("PCARS_PORT", str(cfg.pcars_port), True)
    _port("ACC_PORT", str(cfg.acc_port), False)
    _number("ACC_INTERVAL_MS", str(cfg.acc_interval_ms), ACC_INTERVAL_MS[0], ACC_INTERVAL_MS[1])
    for name in ("acc_password", "acc_command_password"):
        _acc_text(name.upper(), getattr(cfg, name))
    _forward(",".join(f"{feed}={forward_label(ip, port)}" for feed, ip, port in cfg.forward))


def load(env: Mapping[str, str]) -> Config:
    """Read and validate the configuration from ``env`` (normally ``os.environ``)."""

    def get(name: str) -> str | None:
        value = env.get(PREFIX + name)
        if value is None or value.strip() == "":
            return VARIABLES[name][0]
        return value.strip()

    legacy = get("BIND")
    game_host = env.get(PREFIX + "GAME_HOST") or legacy or VARIABLES["GAME_HOST"][0]
    listen = env.get(PREFIX + "LISTEN") or legacy or VARIABLES["LISTEN"][0]

    origins = tuple(o.strip() for o in (get("CORS_ORIGINS") or "").split(",") if o.strip())
    for origin in origins:
        if origin != "*" and not re.match(r"^https?://[^/\s]+$", origin):
            raise ConfigError(f"{PREFIX}CORS_ORIGINS: {origin!r} is not an origin like http://host:port or *")

    allow = tuple(_ip("ALLOW_FROM", a.strip()) for a in (get("ALLOW_FROM") or "").split(",") if a.strip())

    tt_layout = get("TT_LAYOUT")
    if tt_layout is not None and not Path(tt_layout).is_file():
        raise ConfigError(f"{PREFIX}TT_LAYOUT={tt_layout!r}: no such file")

    token = env.get(PREFIX + "API_TOKEN") or None
    if token is not None and len(token) < 8:
        raise ConfigError(f"{PREFIX}API_TOKEN: too short (at least 8 characters)")

    return Config(
        api_host=_host("API_HOST", get("API_HOST")),
        api_port=_port("API_PORT", get("API_PORT"), True),
        game_host=_host("GAME_HOST" if env.get(PREFIX + "GAME_HOST") else "BIND", game_host),
        listen=_host("LISTEN" if env.get(PREFIX + "LISTEN") else "BIND", listen),
        data_dir=Path(get("DATA_DIR")),
        ksudp_port=_port("KSUDP_PORT", get("KSUDP_PORT"), False),
        tt_port=_port("TT_PORT", get("TT_PORT"), True),
        pcars_port=_port("PCARS_PORT", get("PCARS_PORT"), True),
        acc_port=_port("ACC_PORT", get("ACC_PORT"), False),
        # not stripped or defaulted like the rest: a password is what the user wrote
        acc_password=_acc_text("ACC_PASSWORD", env.get(PREFIX + "ACC_PASSWORD", VARIABLES["ACC_PASSWORD"][0] or "")),
        acc_command_password=_acc_text("ACC_COMMAND_PASSWORD", env.get(PREFIX + "ACC_COMMAND_PASSWORD", "")),
        acc_interval_ms=int(_number("ACC_INTERVAL_MS", get("ACC_INTERVAL_MS"), *ACC_INTERVAL_MS)),
        cors_origins=origins,
        api_token=token,
        tt_layout=Path(tt_layout) if tt_layout else None,
        allow_from=allow,
        recv_period_ms=_number("RECV_PERIOD_MS", get("RECV_PERIOD_MS"), 0.5, 100),
        rcvbuf_bytes=int(_number("RCVBUF_BYTES", get("RCVBUF_BYTES"), 65536, 1 << 30)),
        min_free_mb=_number("MIN_FREE_MB", get("MIN_FREE_MB"), 0, 1 << 20),
        compact_after_s=_number("COMPACT_AFTER_S", get("COMPACT_AFTER_S"), 0, 7 * 86400),
        sync_s=_number("SYNC_S", get("SYNC_S"), 0.1, 600),
        memory_log_s=_number("MEMORY_LOG_S", get("MEMORY_LOG_S"), 0, 86400),
        merge_tolerance_ms=_number("MERGE_TOLERANCE_MS", get("MERGE_TOLERANCE_MS"), 0, 1000),
        forward=_forward(get("FORWARD") or ""),
    )
