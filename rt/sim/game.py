"""The game side of every feed, driven by the simulator: real-protocol datagrams on real sockets.

* :class:`AcServer` plays Assetto Corsa's remote-telemetry server: it binds the KSUDP port,
  answers a handshake with the 408-byte response *to the handshake's source address* (as AC does),
  streams RTCarInfo to a subscriber at the physics rate, and stops on DISMISS.
* :class:`PushSender` plays the Telemetry Tool app and Project CARS 1/2: it pushes datagrams to a
  host and port at the game's rate, with no handshake.

Packets are built with :func:`rt.protocols.encode.encode_batch` from the layout tables, from the
sample blocks of :class:`rt.sim.driver.Simulation`, so the senders speak exactly what the decoder
reads. Tests compare what arrives with :attr:`Sender.sent_state` and the simulation's truth.

Sign conventions are the real games' (checked on real captures): AC's RTCarInfo carries the
lateral g (+ left) in the field its struct calls ``accG_vertical`` (offset 28) and a small
vertical-ish signal in ``accG_horizontal``; Project CARS sends ``sSteering`` + to the right.
:class:`GameStream` adds the optional real-game quirks of :class:`rt.sim.quirks.Quirks`
(all off by default).
"""

from __future__ import annotations

import logging
import math
import select
import socket
import threading
import time
from typing import Callable

import numpy as np

from ..protocols import default_protocols
from ..protocols.ac import DISMISS, HANDSHAKE, HANDSHAKER, SUBSCRIBE_SPOT, SUBSCRIBE_UPDATE
from ..protocols.canonical import AC_STEER_LOCK_DEG, STANDARD_GRAVITY
from ..protocols.encode import encode, encode_batch
from .quirks import GearBlips, Quirks

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


def ac_bumps(s: State) -> np.ndarray:
    """What real AC sends in ``accG_horizontal`` (offset 32): a small signal around 0, unrelated to
    the lateral and longitudinal g (really the vertical: road bumps, more of them at speed), g."""
    d = s["lap_distance_m"]
    ride = 0.03 * np.sin(2.0 * np.pi * d / 17.3) * np.sin(2.0 * np.pi * d / 5.9 + 1.0)
    return ride * np.minimum(s["speed_ms"] / 40.0, 1.0)


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
            # Real AC: offset 28 ("accG_vertical" in the struct) is the lateral g, + left.
            "accG_vertical": s["g_lat"],
            "accG_horizontal": ac_bumps(s),
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
    # "gear_reported" (gear blips, rt.sim.quirks) is what the game shows; "gear" the true gear.
    gear = s.get("gear_reported", s["gear"]).astype(np.int16)
    low = np.where(gear < 0, 15, gear).astype(np.uint8)
    return (low | (s["num_gears"].astype(np.uint8) << 4)).astype(np.uint8)


def _local_acc(s: State) -> np.ndarray:
    # PCARS local frame: +z points backwards, so forward acceleration is -z.
    n = len(s["t_ns"])
    return np.stack([s["g_lat"] * STANDARD_GRAVITY, np.zeros(n), -s["g_long"] * STANDARD_GRAVITY], axis=1)


def _pcars_driving(s: State) -> dict:
    """The driving fields PCARS 1 and 2 telemetry share (same names, same encodings).

    Steering is + to the right in Project CARS (the real Spa capture: right-handers positive)."""
    return {
        "sUnfilteredThrottle": _u8(s["throttle"]),
        "sUnfilteredBrake": _u8(s["brake"]),
        "sUnfilteredSteering": _s8(-s["steer"]),
        "sUnfilteredClutch": _u8(1.0 - s["clutch"]),
        "sBrake": _u8(s["brake"]),
        "sThrottle": _u8(s["throttle"]),
        "sClutch": _u8(1.0 - s["clutch"]),
        "sSteering": _s8(-s["steer"]),
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


def pcars1_menu_telemetry(n: int, first_seq: int) -> np.ndarray:
    """``n`` PCARS 1 telemetry packets as the game sends them from the menus: game state front end,
    ``sNumParticipants`` −1, everything else zero."""
    return encode_batch(
        default_protocols()["pcars1_telemetry"],
        {
            "sBuildVersionNumber": 1122,
            "sPacketType": (((first_seq + np.arange(n)) & 63) << 2).astype(np.uint8),
            "sGameSessionState": 1,
            "sViewedParticipantIndex": 0,
            "sNumParticipants": -1,
        },
        n,
    )


def pcars1_strings(car: str, track: str, seq: int) -> bytes:
    """A participant-strings packet; empty ``car`` and ``track`` make it a menu one (all names empty
    but the driver's, as the game sends them from the menus)."""
    menu = not car and not track
    names = np.array([DRIVER_NAME.encode()] + [b""] * 15, dtype="S64")
    return encode(
        default_protocols()["pcars1_participant_strings"],
        {
            "sBuildVersionNumber": 1122,
            "sPacketType": ((seq & 63) << 2) | 1,
            "sCarName": car.encode(),
            "sCarClassName": b"" if menu else b"GT",
            "sTrackLocation": track.encode(),
            "sTrackVariation": b"" if menu else b"Full",
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


def pcars2_lap_packets(s: State, packet_number: int, track_length_m: float) -> list[bytes]:
    """What PCARS 2 sends beside telemetry about the lap, from the newest sample of ``s``: a timings
    packet (current lap time, lap number from 1, lap distance), a time-stats packet (last and
    fastest lap) and a race packet (the lap length), for participant 0, the viewed car.

    They carry ``packet_number``, the telemetry packet's before them: the real game numbers every
    packet once, which a stream numbering its telemetry ticks cannot do; a repeated number is no
    gap either way. :class:`SimSource` sends them every :data:`PC2_LAP_EVERY` ticks.
    """
    p = default_protocols()
    head = {"mPacketNumber": packet_number & 0xFFFFFFFF, "mPartialPacketIndex": 1, "mPartialPacketNumber": 1}
    one = lambda v, fill: np.where(np.arange(32) == 0, v, fill)  # noqa: E731 - participant 0 only

    def last(name: str) -> float:
        return float(s[name][-1])

    return [
        encode(p["pcars2_timings_1063"], {
            **head, "mPacketType": 3, "mCategoryPacketNumber": packet_number, "sNumParticipants": 1,
            "sParticipants.sCurrentTime": one(last("lap_time_s"), -1.0),
            "sParticipants.sCurrentLap": one(int(s["lap_count"][-1]) + 1, 0),
            "sParticipants.sCurrentLapDistance": one(min(max(last("lap_distance_m"), 0.0), 65535.0), 0),
            "sParticipants.sRacePosition": one(0x81, 0),
        }),
        encode(p["pcars2_time_stats_1040"], {
            **head, "mPacketType": 7, "mCategoryPacketNumber": packet_number,
            "sStats.sLastLapTime": one(last("last_lap_s"), -1.0),
            "sStats.sFastestLapTime": one(last("best_lap_s"), -1.0),
        }),
        encode(p["pcars2_race_308"], {**head, "mPacketType": 1, "mCategoryPacketNumber": packet_number,
                                      "sTrackLength": track_length_m, "sTrackLocation": b"RT Test Ring"}),
    ]


# ---- streams: simulation samples → one game's datagrams, tick by tick, with the quirks ---------

GAMES = ("ac", "tt", "pcars1", "pcars2")
#: PCARS 2's timings, time-stats and race packets go out after every this many telemetry ticks.
PC2_LAP_EVERY = 3
#: What a tick of :class:`GameStream` sent (``state["kind"]``).
DRIVING, REPEAT, MENU = 0, 1, 2


def game_builder(game: str, sim) -> Callable[[State, int], np.ndarray]:
    """The packet builder of ``game``: (state block, number of the block's first packet) → rows."""
    if game == "ac":
        return lambda st, first: ac_car_info(st)
    if game == "tt":
        return tt_driver
    if game == "pcars1":
        return lambda st, first: pcars1_telemetry(st, first, sim.truth.track_length_m)
    if game == "pcars2":
        return pcars2_telemetry
    raise ValueError(f"unknown game {game!r}")


class GameStream:
    """One game's datagrams from a simulation, one per tick of ``rate_hz``, with ``quirks``.

    :meth:`next` hands out the next ``n`` ticks: a datagram per tick and the state it was built
    from. Without quirks every tick is the next simulation sample. With them a tick may be a menu
    packet (PCARS 1, before the car starts) or a repeat of the last datagram (a pause); the
    simulation only steps on driving ticks, so its truth excludes menus and pauses.

    The state handed out is "what was sent": the simulation's channels per tick (a pause repeats
    the last sample, a menu tick is all zeros) with ``t_ns`` the tick's real time (the sample's
    time plus the ticks spent in menus and pauses so far), ``kind`` (:data:`DRIVING`,
    :data:`REPEAT`, :data:`MENU`) and, with gear blips, ``gear_reported`` (what the game shows;
    ``gear`` stays the true gear).
    """

    def __init__(self, game: str, sim, rate_hz: float, quirks: Quirks | bool | None = None,
                 build: Callable[[State, int], np.ndarray] | None = None) -> None:
        if game not in GAMES:
            raise ValueError(f"unknown game {game!r}")
        self.game = game
        self.sim = sim
        self.rate_hz = float(rate_hz)
        self.quirks = Quirks.of(quirks)
        self.build = build or game_builder(game, sim)
        self.period_ns = 1e9 / self.rate_hz
        self.ticks = 0  # ticks handed out (or skipped)
        self.built = 0  # telemetry packets built: the game's packet counter (menu + driving)
        self.stepped = 0  # simulation samples taken
        self.menu_ticks = int(round(self.quirks.menu_s * self.rate_hz)) if game == "pcars1" else 0
        # (simulation sample at which a pause starts, its length in ticks)
        self._pauses = [(int(round(at * self.rate_hz)), int(round(dur * self.rate_hz)))
                        for at, dur in self.quirks.pauses]
        self._pause_left = 0
        self._offset = 0  # ticks spent in menus and pauses so far
        blips = self.quirks.gear_blips and game.startswith("pcars")
        self._blips = GearBlips(getattr(sim, "seed", 0)) if blips else None
        self._last_row: np.ndarray | None = None
        self._last_state: State | None = None  # one row: the last driving tick as sent
        self._last_t = 0  # real time of the last tick, ns
        self._zero: State | None = None

    @property
    def in_menu(self) -> bool:
        """The game is (still) in the menus: no driving tick has been sent yet."""
        return self.menu_ticks > 0 and self.ticks <= self.menu_ticks

    @property
    def last_packet(self) -> int:
        """Number of the last telemetry packet built (its 6-bit PCARS 1 sequence is ``& 63``), −1 none."""
        return self.built - 1

    def _segments(self, n: int):
        """(kind, count) runs covering the next ``n`` ticks. Iterate lazily: each run is decided
        after the one before it was taken (``self.stepped``), and ``self.ticks`` advances past a
        run once the caller has handled it."""
        left = n
        while left > 0:
            if self.ticks < self.menu_ticks:
                m, kind = min(left, self.menu_ticks - self.ticks), MENU
            elif self._pause_left > 0:
                m, kind = min(left, self._pause_left), REPEAT
                self._pause_left -= m
            else:
                while self._pauses and self._pauses[0][0] < self.stepped:
                    self._pauses.pop(0)  # began while nothing was stepped (cannot happen with at_s > 0)
                if self._pauses and self._pauses[0][0] == self.stepped:
                    self._pause_left = self._pauses.pop(0)[1]
                    continue
                room = self._pauses[0][0] - self.stepped if self._pauses else left
                m, kind = min(left, room), DRIVING
            if m > 0:
                yield kind, m  # self.ticks is still the run's first tick here
            self.ticks += m
            left -= m

    def _zeros(self, m: int) -> State:
        if self._zero is None:
            self._zero = self.sim.step_block(0)
        return {k: np.zeros((m, *v.shape[1:]), v.dtype) for k, v in self._zero.items()}

    def next(self, n: int, emit: bool = True) -> tuple[np.ndarray | None, State | None]:
        """The next ``n`` ticks: (rows k × size, state as sent), k ≤ n (a pause with nothing sent
        before it sends nothing); ``emit=False`` only lets time run (AC with no subscriber)."""
        rows_out: list[np.ndarray] = []
        states: list[State] = []
        for kind, m in self._segments(int(n)):
            if kind == DRIVING:
                st = dict(self.sim.step_block(m))
                self.stepped += m
                if self._offset:
                    st["t_ns"] = st["t_ns"] + int(round(self._offset * self.period_ns))
                if self._blips is not None:
                    st["gear_reported"] = self._blips.apply(st["gear"], st["num_gears"])
                st["kind"] = np.full(m, DRIVING, np.int8)
                if emit:
                    rows = self.build(st, self.built)
                    self._last_row = rows[-1]
                    rows_out.append(rows)
                    states.append(st)
                else:
                    self._last_row = None  # nothing of this sample was sent (yet)
                self.built += m
                self._last_state = {k: v[-1:] for k, v in st.items()}
                self._last_t = int(st["t_ns"][-1])
            elif kind == REPEAT:
                self._offset += m
                if emit and self._last_row is None and self._last_state is not None:
                    # A client that came in during a pause gets the frozen frame too (AC).
                    self._last_row = self.build(self._last_state, self.built - 1)[-1]
                if emit and self._last_row is not None:
                    rows_out.append(np.repeat(self._last_row[None, :], m, axis=0))
                    st = {k: np.repeat(v, m, axis=0) for k, v in self._last_state.items()}
                    st["t_ns"] = self._last_t + np.rint(np.arange(1, m + 1) * self.period_ns).astype(np.int64)
                    st["kind"] = np.full(m, REPEAT, np.int8)
                    states.append(st)
                self._last_t += int(round(m * self.period_ns))
            else:  # MENU
                first_tick = self.ticks
                if emit:
                    rows_out.append(pcars1_menu_telemetry(m, self.built))
                    st = self._zeros(m)
                    t0 = int(getattr(self.sim, "start_time_ns", 0))
                    st["t_ns"] = t0 + np.rint((first_tick + np.arange(m)) * self.period_ns).astype(np.int64)
                    st["kind"] = np.full(m, MENU, np.int8)
                    if self._blips is not None:
                        st["gear_reported"] = st["gear"].copy()
                    states.append(st)
                self.built += m
                self._offset += m
        if not rows_out:
            return None, None
        if len(rows_out) == 1:
            return rows_out[0], states[0]
        keys = states[0].keys()
        return np.concatenate(rows_out), {k: np.concatenate([s[k] for s in states]) for k in keys}


# ---- sources: what is due to be sent after some elapsed time ----------------------------------


class SimSource:
    """A :class:`GameStream` of a simulation at ``rate_hz`` (× ``speed``) against elapsed time."""

    def __init__(self, sim, rate_hz: float, build: Callable[[State, int], np.ndarray] | None = None, speed: float = 1.0,
                 *, game: str = "ac", quirks: Quirks | bool | None = None) -> None:
        self.sim = sim
        self.rate_hz = float(rate_hz)
        self.speed = float(speed)
        self.stream = GameStream(game, sim, self.rate_hz, quirks, build)
        self.build = self.stream.build
        self.quirks = self.stream.quirks
        self.sent_state: State | None = None  # what the last block handed out was built from
        self.game = game

    @property
    def taken(self) -> int:
        """Ticks handed out or skipped so far."""
        return self.stream.ticks

    @property
    def in_menu(self) -> bool:
        return self.stream.in_menu

    @property
    def last_packet(self) -> int:
        return self.stream.last_packet

    def take(self, elapsed_s: float) -> list[bytes]:
        due = int(elapsed_s * self.rate_hz * self.speed) - self.taken
        if due <= 0:
            return []
        first_tick = self.taken
        rows, state = self.stream.next(due)
        if rows is None:
            return []
        self.sent_state = state
        out = [row.tobytes() for row in rows]
        track = getattr(self.sim, "track", None)  # a scripted car in the tests has no track
        if self.game != "pcars2" or track is None:
            return out
        # PCARS 2 sends lap data in packets of their own, beside telemetry and as often (within
        # PC2_LAP_EVERY ticks of game time, however fast the simulation runs).
        length = track.length_m
        mixed: list[bytes] = []
        for i, datagram in enumerate(out):
            mixed.append(datagram)
            if (first_tick + i) % PC2_LAP_EVERY == 0:
                number = int.from_bytes(datagram[:4], "little")
                mixed += pcars2_lap_packets({k: v[i : i + 1] for k, v in state.items()}, number, length)
        return mixed

    def skip(self, elapsed_s: float) -> None:
        """Let the car drive on without sending (AC with no subscriber): the game's clock runs."""
        due = int(elapsed_s * self.rate_hz * self.speed) - self.taken
        if due > 0:
            self.stream.next(due, emit=False)


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


def sim_source(game: str, sim, rate_hz: float | None = None, speed: float = 1.0,
               quirks: Quirks | bool | None = None) -> SimSource:
    """The simulator speaking one game's protocol. ``quirks`` default to the ``quirks`` that
    :func:`make_sim` left on ``sim`` (none otherwise)."""
    rate = rate_hz or DEFAULT_RATES[game]
    if quirks is None:
        quirks = getattr(sim, "quirks", None)
    return SimSource(sim, rate, None, speed, game=game, quirks=quirks)


def pcars1_extra(source, car: str = "RT Sim GT", track: str = "RT Test Ring") -> Callable[[int], bytes]:
    """The ``extra`` of a PCARS 1 :class:`PushSender`: participant strings, with empty names while
    ``source`` is in the menus (quirk ``menu_s``)."""

    def extra(seq: int) -> bytes:
        if getattr(source, "in_menu", False):
            return pcars1_strings("", "", seq)
        return pcars1_strings(car, track, seq)

    return extra


# ---- senders ----------------------------------------------------------------------------------


class Sender:
    """Base of the game-side senders: a thread that sends what its source says is due."""

    def __init__(self, source, family: int) -> None:
        self.source = source
        self.sent = 0  # datagrams sent
        #: ``gate(sent) -> bool``, or None: while it says False the game's clock stands still (as
        #: in a game that hitches), so a receiver that falls behind slows the game down instead
        #: of being sent a burst it has no room for. Tests that assert zero loss set it.
        self.gate: Callable[[int], bool] | None = None
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._game_s = 0.0
        self._ticked_at: float | None = None

    def game_time(self) -> float:
        """Seconds on the game's clock since the first call: wall time, except while ``gate`` is shut."""
        now = time.monotonic()
        if self._ticked_at is not None and (self.gate is None or self.gate(self.sent)):
            self._game_s += now - self._ticked_at
        self._ticked_at = now
        return self._game_s

    @property
    def sim(self):
        return getattr(self.source, "sim", None)

    @property
    def sent_state(self) -> State | None:
        return getattr(self.source, "sent_state", None)

    def _listen(self, host: str, port: int) -> None:
        """Bind the socket where the game listens (a game that answers clients: AC, ACC); the port
        chosen lands in ``self.port``."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]

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

    ``extra(seq)`` (optional) yields an occasional extra datagram (or a list of them) every
    ``extra_every_s`` (PCARS 1 sends its participant strings like that). ``seq`` is the number of datagrams sent so far or,
    with the source's quirk ``shared_seq``, the number of the last telemetry packet (so a PCARS 1
    strings packet repeats its sequence, as the real game does). Stops by itself when a replay
    source is done.
    """

    def __init__(self, source, host: str, port: int, extra: Callable[[int], bytes | None] | None = None,
                 extra_every_s: float = 2.0) -> None:
        super().__init__(source, socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.addr = (host, port)
        self.extra = extra
        self.extra_every_s = extra_every_s

    def _extra_seq(self) -> int:
        quirks = getattr(self.source, "quirks", None)
        if quirks is not None and quirks.shared_seq:
            return self.source.last_packet
        return self.sent

    def run(self) -> None:
        last_extra = -math.inf
        while not self._stop.is_set():
            now = time.monotonic()
            self._send_all(self.source.take(self.game_time()), self.addr)
            if self.extra is not None and now - last_extra >= self.extra_every_s:
                payload = self.extra(self._extra_seq())
                if payload is not None:
                    self._send_all(payload if isinstance(payload, list) else [payload], self.addr)
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
        self._listen(host, port)
        self.response = ac_handshake_response(car, track)
        self.subscriber: tuple | None = None
        self.handshakes = 0
        self.dismissed = 0
        self.subscribed = threading.Event()

    def _handle(self, data: bytes, addr) -> None:
        if len(data) != HANDSHAKER.size:
            return
        op = int(np.frombuffer(data, dtype=HANDSHAKER.dtype)["operationId"][0])
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
        streaming_since: float | None = None
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], PACE_S)
            if ready:
                data, addr = self.sock.recvfrom(2048)
                self._handle(data, addr)
            game_s = self.game_time()
            if self.subscriber is None:
                self.source.skip(game_s)
                streaming_since = None
                continue
            if isinstance(self.source, ReplaySource):
                # a replay starts from its first datagram when the client subscribes
                streaming_since = game_s if streaming_since is None else streaming_since
                self._send_all(self.source.take(game_s - streaming_since), self.subscriber)
            else:
                self._send_all(self.source.take(game_s), self.subscriber)


def make_sim(seed: int = 1, car: str | None = None, track: str | None = None, rate_hz: float = 333.0,
             quirks: Quirks | bool | None = None, **kw):
    """A :class:`~rt.sim.driver.Simulation` with the default car and track.

    ``quirks`` (:class:`~rt.sim.quirks.Quirks`, ``True`` for :meth:`Quirks.real`, default none)
    sets the simulation's ``out_lap_m`` (unless given) and is kept as ``sim.quirks``, which
    :func:`sim_source` and :func:`rt.sim.frames.frames_from_sim` use by default."""
    from .car import CARS
    from .driver import Simulation
    from .track import TRACKS

    q = Quirks.of(quirks)
    kw.setdefault("out_lap_m", q.out_lap_m)
    sim = Simulation(CARS[car or "gt_coupe"], TRACKS[track or "test_ring"], rate_hz=rate_hz, seed=seed, **kw)
    sim.quirks = q
    return sim


class DemoGames:
    """The simulator on every feed of a running server (``rusty-telemetry demo``)."""

    def __init__(self, config, seed: int = 1, quirks: Quirks | bool | None = None) -> None:
        self.config = config
        self.seed = seed
        self.quirks = quirks
        self.senders: list[Sender] = []

    def start_for(self, runtime) -> None:
        from .acc import AccServer

        feeds = runtime.feeds.feeds
        try:
            source = sim_source("ac", make_sim(self.seed, rate_hz=DEFAULT_RATES["ac"], quirks=self.quirks))
            self.senders.append(AcServer(source, "127.0.0.1", self.config.ksudp_port).start())
        except OSError as exc:
            log.warning("demo: cannot play AC on port %d: %s", self.config.ksudp_port, exc)
        try:
            self.senders.append(AccServer("127.0.0.1", self.config.acc_port, self.config.acc_password,
                                          self.config.acc_command_password, seed=self.seed).start())
        except OSError as exc:
            log.warning("demo: cannot play ACC on port %d: %s", self.config.acc_port, exc)
        for feed_name, game in (("telemetry_tool", "tt"), ("pcars", "pcars1")):
            feed = feeds.get(feed_name)
            if feed is None or not feed.available:
                continue
            source = sim_source(game, make_sim(self.seed, rate_hz=DEFAULT_RATES[game], quirks=self.quirks))
            self.senders.append(push_sender(game, source, "127.0.0.1", feed.port).start())

    def stop(self) -> None:
        for sender in self.senders:
            sender.stop()
        self.senders.clear()


def push_sender(game: str, source, host: str, port: int) -> PushSender:
    """The sender of a game that pushes (tt, pcars1, pcars2), with what that game sends besides
    its telemetry now and then: PCARS 1 its participant strings (PCARS 2's lap data come from the
    :class:`SimSource` itself, tick by tick)."""
    if game == "pcars1":
        return PushSender(source, host, port, pcars1_extra(source))
    return PushSender(source, host, port)


def run_simulator(config, args) -> int:
    """``rusty-telemetry simulate``: one game's side until Ctrl-C or ``--seconds``."""
    if args.game == "acc":
        from .acc import MIN_INTERVAL_MS, AccServer

        host = args.host or config.game_host
        # The client chooses the update interval; --rate caps how often it may ask for.
        least_ms = max(MIN_INTERVAL_MS, math.ceil(1000.0 / args.rate)) if args.rate else MIN_INTERVAL_MS
        server = AccServer(host, args.port or config.acc_port, config.acc_password, config.acc_command_password,
                           seed=args.seed, min_interval_ms=least_ms)
        print(f"simulated Assetto Corsa Competizione on {host}:{server.port}: {len(server.source.cars)} cars, "
              f"streaming every interval (>= {least_ms} ms) after a registration", flush=True)
        return _run_sender(server, args.seconds)
    rate = args.rate or DEFAULT_RATES[args.game]
    sim = make_sim(args.seed, args.car, args.track, rate_hz=rate, quirks=getattr(args, "quirks", None))
    source = sim_source(args.game, sim, rate)
    if args.game == "ac":
        host = args.host or config.game_host
        sender: Sender = AcServer(source, host, args.port or config.ksudp_port)
        print(f"simulated Assetto Corsa on {host}:{sender.port}, {rate:g} Hz after a handshake", flush=True)
    else:
        host = args.host or "127.0.0.1"
        port = args.port or (config.tt_port if args.game == "tt" else config.pcars_port)
        sender = push_sender(args.game, source, host, port)
        print(f"simulated {args.game} sending to {host}:{port} at {rate:g} Hz", flush=True)
    return _run_sender(sender, args.seconds)


def _run_sender(sender: Sender, seconds: float | None) -> int:
    sender.start()
    stop = threading.Event()
    try:
        stop.wait(seconds)
    except KeyboardInterrupt:
        pass
    sender.stop()
    print(f"sent {sender.sent} datagrams", flush=True)
    return 0

