"""The game side of every feed, driven by the simulator: real-protocol datagrams on real sockets.

* :class:`AcServer` plays Assetto Corsa's remote-telemetry server: it binds the KSUDP port,
  answers a handshake with the 408-byte response *to the handshake's source address* (as AC does),
  streams RTCarInfo to a subscriber at the physics rate, and stops on DISMISS.
* :class:`PushSender` plays the Telemetry Tool app and Project CARS 1/2: it pushes datagrams to a
  host and port at the game's rate, with no handshake.

Packets are built with :func:`rt.protocols.encode.encode_batch` from the layout tables, from the
sample blocks of :class:`rt.sim.driver.Simulation`, so the senders speak exactly what the decoder
reads. Tests compare what arrives with :attr:`Sender.sent_state` and the simulation's truth.
"""

from __future__ import annotations

import logging
import math
import select
import socket
import struct
import threading
import time
from typing import Callable

import numpy as np

from ..protocols import default_protocols
from ..protocols.ac import DISMISS, HANDSHAKE, SUBSCRIBE_SPOT, SUBSCRIBE_UPDATE
from ..protocols.canonical import AC_STEER_LOCK_DEG, STANDARD_GRAVITY
from ..protocols.encode import encode, encode_batch

log = logging.getLogger(__name__)

#: Rates at which the games send, Hz.
DEFAULT_RATES = {"ac": 333.0, "tt": 60.0, "pcars1": 60.0, "pcars2": 60.0}
#: Seconds between two sends of a pacing loop: several datagrams go out per wake-up at high rates.
PACE_S = 0.005

DRIVER_NAME = "Sim Driver"
AC_CAR, AC_TRACK, AC_CONFIG = "rt_sim_gt", "rt_test_ring", "full"

State = dict[str, np.ndarray]


def _ac_text(text: str, junk: bytes = b"\x8c\x7f") -> bytes:
    """A 100-byte AC string: UTF-16LE, ended by '%', then garbage as the real game leaves it."""
    raw = (text + "%").encode("utf-16-le")
    return (raw + junk * 100)[:100]


# ---- packet builders: simulation samples → datagrams (n × size bytes) -------------------------


def ac_handshake_response(car: str = AC_CAR, track: str = AC_TRACK, config: str = AC_CONFIG) -> bytes:
    layout = default_protocols()["ac_handshake_response"]
    return encode(
        layout,
        {
            "carName": _ac_text(car),
            "driverName": _ac_text(DRIVER_NAME),
            "identifier": 4242,
            "version": 1,
            "trackName": _ac_text(track),
            "trackConfig": _ac_text(config),
        },
    )


def _ms(seconds: np.ndarray, none: int) -> np.ndarray:
    return np.where(seconds >= 0, np.rint(seconds * 1000.0), none).astype(np.int32)


def ac_car_info(s: State) -> np.ndarray:
    n = len(s["t_ns"])
    speed = s["speed_ms"]
    out = encode_batch(
        default_protocols()["ac_car_info"],
        {
            "identifier": b"a",
            "size": 328,
            "speed_Kmh": speed * 3.6,
            "speed_Mph": speed * 2.2369363,
            "speed_Ms": speed,
            "isAbsEnabled": 1,
            "isTcEnabled": 1,
            "isEngineLimiterOn": (s["rpm"] >= s["max_rpm"] - 1).astype(np.uint8),
            "accG_horizontal": s["g_lat"],
            "accG_frontal": s["g_long"],
            "lapTime": _ms(s["lap_time_s"], 0),
            "lastLap": _ms(s["last_lap_s"], 0),
            "bestLap": _ms(s["best_lap_s"], 0),
            "lapCount": s["lap_count"],
            "gas": s["throttle"],
            "brake": s["brake"],
            "clutch": s["clutch"],
            "engineRPM": s["rpm"],
            "steer": -s["steer"] * AC_STEER_LOCK_DEG,  # AC: degrees, positive to the right
            "gear": s["gear"].astype(np.int32) + 1,  # AC: 0 = R, 1 = N, 2 = 1st
            "carPositionNormalized": s["norm_pos"],
            "carCoordinates": np.stack([s["x"], s["y"], -s["z"]], axis=1),  # AC's world is left-handed
        },
        n,
    )
    # Real AC leaves garbage in the alignment padding; the decoder must ignore it.
    out[:, 1:4] = (0x13, 0x37, 0x42)
    out[:, 26:28] = (0xEE, 0xFF)
    return out


def tt_driver(s: State, first_id: int) -> np.ndarray:
    layout = default_protocols().tt
    n = len(s["t_ns"])
    values = {
        "version": 1,
        "packet_id": (first_id + np.arange(n)).astype(np.int64) & 0x7FFFFFFF,
        "speed_kmh": s["speed_ms"] * 3.6,
        "rpm": s["rpm"],
        "gear": s["gear"].astype(np.int32) + 1,
        "gas": s["throttle"],
        "brake": s["brake"],
        "clutch": s["clutch"],
        "steer": -s["steer"] * AC_STEER_LOCK_DEG,
        "lap_count": s["lap_count"],
        "lap_time_ms": _ms(s["lap_time_s"], 0),
        "last_lap_ms": _ms(s["last_lap_s"], 0),
        "best_lap_ms": _ms(s["best_lap_s"], 0),
        "spline_position": s["norm_pos"],
        "world_position": np.stack([s["x"], s["y"], -s["z"]], axis=1),
        "velocity": np.stack([s["vx"], s["vy"], s["vz"]], axis=1),
        "acc_g": np.stack([s["g_lat"], np.zeros(n), s["g_long"]], axis=1),
    }
    # A corrected (user) table may not have every field: send what it has.
    return encode_batch(layout, {k: v for k, v in values.items() if k in layout}, n)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _s8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 127.0), -127, 127).astype(np.int8)


def _gear_byte(s: State) -> np.ndarray:
    gear = s["gear"].astype(np.int16)
    low = np.where(gear < 0, 15, gear).astype(np.uint8)
    return (low | (s["num_gears"].astype(np.uint8) << 4)).astype(np.uint8)


def _local_acc(s: State) -> np.ndarray:
    # PCARS local frame: +z points backwards, so forward acceleration is -z.
    n = len(s["t_ns"])
    return np.stack([s["g_lat"] * STANDARD_GRAVITY, np.zeros(n), -s["g_long"] * STANDARD_GRAVITY], axis=1)


def _pcars_driving(s: State) -> dict:
    """The driving fields PCARS 1 and 2 telemetry share (same names, same encodings)."""
    return {
        "sUnfilteredThrottle": _u8(s["throttle"]),
        "sUnfilteredBrake": _u8(s["brake"]),
        "sUnfilteredSteering": _s8(s["steer"]),
        "sUnfilteredClutch": _u8(1.0 - s["clutch"]),
        "sBrake": _u8(s["brake"]),
        "sThrottle": _u8(s["throttle"]),
        "sClutch": _u8(1.0 - s["clutch"]),
        "sSteering": _s8(s["steer"]),
        "sSpeed": s["speed_ms"],
        "sRpm": np.clip(s["rpm"], 0, 65535).astype(np.uint16),
        "sMaxRpm": np.clip(s["max_rpm"], 0, 65535).astype(np.uint16),
        "sGearNumGears": _gear_byte(s),
        "sOdometerKM": s["odometer_m"] / 1000.0,
        "sWorldVelocity": np.stack([s["vx"], s["vy"], s["vz"]], axis=1),
        "sLocalAcceleration": _local_acc(s),
    }


def pcars1_telemetry(s: State, first_seq: int, track_length_m: float) -> np.ndarray:
    n = len(s["t_ns"])
    x, z = s["x"], s["z"]
    xi, zi = np.floor(x), np.floor(z)
    # Quarter-metre bits of x (bits 6-7) and z (bits 4-5) ride in the sector byte.
    xq = np.floor((x - xi) * 4).astype(np.uint8) & 3
    zq = np.floor((z - zi) * 4).astype(np.uint8) & 3
    sector_code = (s["sector"].astype(np.uint8) + 1) & 7
    participant = lambda v: np.asarray(v)[:, None]  # noqa: E731 - only participant 0 is on track
    pos = np.zeros((n, 56, 3), dtype=np.int16)
    pos[:, 0, 0], pos[:, 0, 1], pos[:, 0, 2] = xi, np.rint(s["y"]), zi
    last = s["last_sector_times_s"]
    cur_sector = s["sector"]
    return encode_batch(
        default_protocols()["pcars1_telemetry"],
        {
            "sBuildVersionNumber": 1122,
            "sPacketType": (((first_seq + np.arange(n)) & 63) << 2).astype(np.uint8),
            "sGameSessionState": 2 | (5 << 4),
            "sViewedParticipantIndex": 0,
            "sNumParticipants": 1,
            **_pcars_driving(s),
            "sBestLapTime": s["best_lap_s"],
            "sLastLapTime": s["last_lap_s"],
            "sCurrentTime": s["lap_time_s"],
            "sCurrentSector1Time": np.where(cur_sector == 1, s["sector_time_s"], last[:, 0]),
            "sCurrentSector2Time": np.where(cur_sector == 2, s["sector_time_s"], last[:, 1]),
            "sCurrentSector3Time": np.where(cur_sector == 3, s["sector_time_s"], last[:, 2]),
            "sParticipantInfo.sWorldPosition": pos,
            "sParticipantInfo.sCurrentLapDistance": participant(np.clip(s["lap_distance_m"], 0, 65535).astype(np.uint16)),
            "sParticipantInfo.sRacePosition": participant(np.full(n, 0x81, np.uint8)),
            "sParticipantInfo.sLapsCompleted": participant((s["lap_count"] & 0x7F).astype(np.uint8)),
            "sParticipantInfo.sCurrentLap": participant(((s["lap_count"] + 1) & 0xFF).astype(np.uint8)),
            "sParticipantInfo.sSector": participant(sector_code | (zq << 4) | (xq << 6)),
            "sTrackLength": track_length_m,
        },
        n,
    )


def pcars1_strings(car: str, track: str, seq: int) -> bytes:
    names = np.array([DRIVER_NAME.encode()] + [b""] * 15, dtype="S64")
    return encode(
        default_protocols()["pcars1_participant_strings"],
        {
            "sBuildVersionNumber": 1122,
            "sPacketType": ((seq & 63) << 2) | 1,
            "sCarName": car.encode(),
            "sCarClassName": b"GT",
            "sTrackLocation": track.encode(),
            "sTrackVariation": b"Full",
            "sName": names,
            "sFastestLapTime": np.full(16, -1.0, np.float32),
        },
    )


def pcars2_telemetry(s: State, first_packet: int) -> np.ndarray:
    n = len(s["t_ns"])
    numbers = (first_packet + np.arange(n)).astype(np.int64) & 0xFFFFFFFF
    return encode_batch(
        default_protocols()["pcars2_telemetry_559"],
        {
            "mPacketNumber": numbers,
            "mCategoryPacketNumber": numbers,
            "mPartialPacketIndex": 1,
            "mPartialPacketNumber": 1,
            "mPacketType": 0,
            "mPacketVersion": 2,
            **_pcars_driving(s),
            "sFullPosition": np.stack([s["x"], s["y"], s["z"]], axis=1),
            "sTickCount": (s["t_ns"] // 1_000_000).astype(np.int64) & 0xFFFFFFFF,
        },
        n,
    )


# ---- sources: what is due to be sent after some elapsed time ----------------------------------


class SimSource:
    """Samples of a simulation at ``rate_hz`` (× ``speed``), built into datagrams by ``build``."""

    def __init__(self, sim, rate_hz: float, build: Callable[[State, int], np.ndarray], speed: float = 1.0) -> None:
        self.sim = sim
        self.rate_hz = float(rate_hz)
        self.speed = float(speed)
        self.build = build
        self.taken = 0
        self.sent_state: State | None = None  # the last block of samples handed out

    def take(self, elapsed_s: float) -> list[bytes]:
        due = int(elapsed_s * self.rate_hz * self.speed) - self.taken
        if due <= 0:
            return []
        state = self.sim.step_block(due)
        rows = self.build(state, self.taken)
        self.taken += due
        self.sent_state = state
        return [row.tobytes() for row in rows]

    def skip(self, elapsed_s: float) -> None:
        """Let the car drive on without sending (AC with no subscriber): the game's clock runs."""
        due = int(elapsed_s * self.rate_hz * self.speed) - self.taken
        if due > 0:
            self.sim.step_block(due)
            self.taken += due


class ReplaySource:
    """Recorded datagrams with their receive times, due at the original pace ÷ ``speed`` (0 = at once)."""

    def __init__(self, times_ns: np.ndarray, payloads: list[bytes], speed: float = 1.0) -> None:
        self.rel_s = (np.asarray(times_ns, dtype=np.int64) - int(times_ns[0])) / 1e9 if len(payloads) else np.zeros(0)
        self.payloads = payloads
        self.speed = speed
        self.taken = 0

    @property
    def done(self) -> bool:
        return self.taken >= len(self.payloads)

    def take(self, elapsed_s: float) -> list[bytes]:
        if self.speed <= 0:
            end = len(self.payloads)
        else:
            end = int(np.searchsorted(self.rel_s, elapsed_s * self.speed, side="right"))
        out = self.payloads[self.taken : end]
        self.taken = max(self.taken, end)
        return out

    def skip(self, elapsed_s: float) -> None:
        pass  # a replay waits for its subscriber


def sim_source(game: str, sim, rate_hz: float | None = None, speed: float = 1.0) -> SimSource:
    """The simulator speaking one game's protocol."""
    rate = rate_hz or DEFAULT_RATES[game]
    if game == "ac":
        build = lambda st, first: ac_car_info(st)  # noqa: E731
    elif game == "tt":
        build = tt_driver
    elif game == "pcars1":
        build = lambda st, first: pcars1_telemetry(st, first, sim.truth.track_length_m)  # noqa: E731
    elif game == "pcars2":
        build = pcars2_telemetry
    else:
        raise ValueError(f"unknown game {game!r}")
    return SimSource(sim, rate, build, speed)


# ---- senders ----------------------------------------------------------------------------------


class Sender:
    """Base of the game-side senders: a thread that sends what its source says is due."""

    def __init__(self, source, family: int) -> None:
        self.source = source
        self.sent = 0  # datagrams sent
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def sim(self):
        return getattr(self.source, "sim", None)

    @property
    def sent_state(self) -> State | None:
        return getattr(self.source, "sent_state", None)

    def start(self) -> "Sender":
        self._thread = threading.Thread(target=self._run_safely, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run_safely(self) -> None:
        try:
            self.run()
        except OSError as exc:
            if not self._stop.is_set():
                log.warning("%s stopped: %s", type(self).__name__, exc)

    def _send_all(self, payloads: list[bytes], addr) -> None:
        for payload in payloads:
            self.sock.sendto(payload, addr)
        self.sent += len(payloads)

    def run(self) -> None:
        raise NotImplementedError


class PushSender(Sender):
    """Pushes datagrams to ``(host, port)`` with no handshake, as the Telemetry Tool app and PCARS do.

    ``extra()`` (optional) yields an occasional extra datagram every ``extra_every_s`` (PCARS 1
    sends its participant strings like that). Stops by itself when a replay source is done.
    """

    def __init__(self, source, host: str, port: int, extra: Callable[[int], bytes | None] | None = None,
                 extra_every_s: float = 2.0) -> None:
        super().__init__(source, socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.addr = (host, port)
        self.extra = extra
        self.extra_every_s = extra_every_s

    def run(self) -> None:
        t0 = time.monotonic()
        last_extra = -math.inf
        while not self._stop.is_set():
            now = time.monotonic()
            self._send_all(self.source.take(now - t0), self.addr)
            if self.extra is not None and now - last_extra >= self.extra_every_s:
                payload = self.extra(self.sent)
                if payload is not None:
                    self._send_all([payload], self.addr)
                last_extra = now
            if getattr(self.source, "done", False):
                return
            self._stop.wait(PACE_S)


class AcServer(Sender):
    """Assetto Corsa's side of the KSUDP protocol on ``(host, port)``.

    Answers HANDSHAKE with the 408-byte response to the sender's address (as AC does), streams
    RTCarInfo to the last client that sent SUBSCRIBE_UPDATE, stops on DISMISS. Binds at
    construction, so a test starts it "late" by creating it later and "restarts" it by stopping
    it and creating a new one on the same port.
    """

    def __init__(self, source, host: str = "127.0.0.1", port: int = 9996, car: str = AC_CAR, track: str = AC_TRACK) -> None:
        super().__init__(source, socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]
        self.response = ac_handshake_response(car, track)
        self.subscriber: tuple | None = None
        self.handshakes = 0
        self.dismissed = 0
        self.subscribed = threading.Event()

    def _handle(self, data: bytes, addr) -> None:
        if len(data) != 12:
            return
        _, _, op = struct.unpack("<iii", data)
        if op == HANDSHAKE:
            self.handshakes += 1
            self.sock.sendto(self.response, addr)
        elif op == SUBSCRIBE_UPDATE:
            self.subscriber = addr
            self.subscribed.set()
        elif op == DISMISS:
            self.dismissed += 1
            if self.subscriber == addr:
                self.subscriber = None
        elif op == SUBSCRIBE_SPOT:
            pass  # lap events are not simulated

    def run(self) -> None:
        t0 = time.monotonic()
        streaming_since: float | None = None
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], PACE_S)
            if ready:
                data, addr = self.sock.recvfrom(2048)
                self._handle(data, addr)
            now = time.monotonic()
            if self.subscriber is None:
                self.source.skip(now - t0)
                streaming_since = None
                continue
            if isinstance(self.source, ReplaySource):
                # a replay starts from its first datagram when the client subscribes
                streaming_since = now if streaming_since is None else streaming_since
                self._send_all(self.source.take(now - streaming_since), self.subscriber)
            else:
                self._send_all(self.source.take(now - t0), self.subscriber)


def make_sim(seed: int = 1, car: str | None = None, track: str | None = None, rate_hz: float = 333.0, **kw):
    """A :class:`~rt.sim.driver.Simulation` with the default car and track."""
    from .car import CARS
    from .driver import Simulation
    from .track import TRACKS

    return Simulation(CARS[car or "gt_coupe"], TRACKS[track or "test_ring"], rate_hz=rate_hz, seed=seed, **kw)


class DemoGames:
    """The simulator on every feed of a running server (``rusty-telemetry demo``)."""

    def __init__(self, config, seed: int = 1) -> None:
        self.config = config
        self.seed = seed
        self.senders: list[Sender] = []

    def start_for(self, runtime) -> None:
        feeds = runtime.feeds.feeds
        try:
            source = sim_source("ac", make_sim(self.seed, rate_hz=DEFAULT_RATES["ac"]))
            self.senders.append(AcServer(source, "127.0.0.1", self.config.ksudp_port).start())
        except OSError as exc:
            log.warning("demo: cannot play AC on port %d: %s", self.config.ksudp_port, exc)
        for feed_name, game in (("telemetry_tool", "tt"), ("pcars", "pcars1")):
            feed = feeds.get(feed_name)
            if feed is None or not feed.available:
                continue
            sim = make_sim(self.seed, rate_hz=DEFAULT_RATES[game])
            extra = (lambda seq: pcars1_strings("RT Sim GT", "RT Test Ring", seq)) if game == "pcars1" else None
            self.senders.append(PushSender(sim_source(game, sim), "127.0.0.1", feed.port, extra).start())

    def stop(self) -> None:
        for sender in self.senders:
            sender.stop()
        self.senders.clear()


def run_simulator(config, args) -> int:
    """``rusty-telemetry simulate``: one game's side until Ctrl-C or ``--seconds``."""
    rate = args.rate or DEFAULT_RATES[args.game]
    sim = make_sim(args.seed, args.car, args.track, rate_hz=rate)
    source = sim_source(args.game, sim, rate)
    if args.game == "ac":
        host = args.host or config.game_host
        sender: Sender = AcServer(source, host, args.port or config.ksudp_port)
        print(f"simulated Assetto Corsa on {host}:{sender.port}, {rate:g} Hz after a handshake", flush=True)
    else:
        host = args.host or "127.0.0.1"
        port = args.port or (config.tt_port if args.game == "tt" else config.pcars_port)
        extra = (lambda seq: pcars1_strings("RT Sim GT", "RT Test Ring", seq)) if args.game == "pcars1" else None
        sender = PushSender(source, host, port, extra)
        print(f"simulated {args.game} sending to {host}:{port} at {rate:g} Hz", flush=True)
    sender.start()
    stop = threading.Event()
    try:
        stop.wait(args.seconds)
    except KeyboardInterrupt:
        pass
    sender.stop()
    print(f"sent {sender.sent} datagrams", flush=True)
    return 0

