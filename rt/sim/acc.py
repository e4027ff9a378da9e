"""Assetto Corsa Competizione's side of its broadcasting protocol (PROTOCOLS.md §5), simulated.

:class:`AccServer` binds ACC's ``updListenerPort`` and does what ACC does for a broadcasting client:
it answers a registration (the connection password checked), then streams to the client's address
every ``msRealtimeUpdateInterval`` ms a realtime update and one car update per car, answers
entry-list and track-data requests, and sends a broadcasting event when a lap completes or is a
best lap. Every message is built with the project's declared grammar (:mod:`rt.protocols.acc`),
so what the simulator sends is what the acc feed parses; the tests decode it with an independent
reference decoder.

The field (:class:`AccField`): the player's car is a full :class:`~rt.sim.driver.Simulation`
sampled every ms of game time; the other cars replay the simulation's flying lap, each slower by
its own factor (a little different every lap), on the same track. Lap and split times are whole ms
(the simulation's own, rounded), so a completed lap's three splits sum exactly to its time and
:attr:`AccServer.completed_laps` is the ground truth of every lap record sent.

With a :class:`~rt.sim.game.ReplaySource` (``rusty-telemetry replay`` of an acc raw file, see
:func:`replay_server`) the server answers registrations freshly and streams the recorded datagrams
with their original timing instead.
"""

from __future__ import annotations

import math
import random
import select
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..protocols import acc
from ..protocols.acc import CAR_UPDATE, ENTRY_CAR, ENTRY_LIST_MSG, EVENT, NO_TIME, REALTIME, REGISTRATION, TRACK
from .game import PACE_S, ReplaySource, Sender, make_sim

#: Sample rate of the reference lap the other cars drive, Hz.
REF_HZ = 100.0
#: With no client registered the field still moves (the game runs), this often, s of game clock.
IDLE_STEP_S = 0.1
#: Milliseconds between two updates at the least (a client asking for less gets this).
MIN_INTERVAL_MS = 10
#: The player's car index; the other cars are numbered from 1.
PLAYER_CAR = 1001
#: A practice session this long, ms (``sessionEndTime`` counts down to its end).
SESSION_MS = 2 * 3600 * 1000
#: Time of day at the session's start, ms since midnight.
START_OF_DAY_MS = 14 * 3600 * 1000
TRACK_ID = 99
WRONG_PASSWORD = "Wrong password"
CAMERA_SETS = {
    "Drivable": ("Chase", "FarChase", "Bonnet", "DashPro", "Cockpit", "Dash", "Helmet"),
    "Onboard": ("Onboard0", "Onboard1", "Onboard2", "Onboard3"),
    "Helicam": ("Helicam",),
    "set1": ("CameraTV1", "CameraTV2", "CameraTV3"),
}
HUD_PAGES = ("Blank", "Basic HUD", "Help", "TimeTable", "Broadcasting", "TrackMap")
#: (team, race number, ACC car model id, drivers as (first, last, short)) by slot; slot 0 is the player.
ENTRIES = (
    ("Rusty Telemetry", 7, 30, (("Sim", "Driver", "SIM"),)),
    ("Kunos Test Team", 12, 25, (("Marco", "Rossi", "ROS"),)),
    ("Ring Motorsport", 23, 34, (("Anna", "Berg", "BER"), ("Jonas", "Keller", "KEL"))),
    ("Apex Racing", 44, 32, (("Luca", "Moretti", "MOR"),)),
    ("Late Brakers", 58, 22, (("Sophie", "Martin", "MAR"),)),
    ("Pit Lane Heroes", 91, 31, (("Tom", "Hughes", "HUG"),)),
    ("Flat Out GT", 3, 35, (("Ines", "Costa", "COS"),)),
    ("Curbstone Crew", 77, 36, (("Erik", "Lund", "LUN"),)),
)
#: The cars other than the player's leave the pits this long one after the other, ms of game time.
PIT_EXIT_GAP_MS = 3000
#: Share of a lap near the line driven in the pit lane on an out-lap (from the line) or in-lap (to it).
PIT_SHARE = 0.04
#: Event types sent.
LAP_COMPLETED, BEST_SESSION_LAP, BEST_PERSONAL_LAP = 5, 6, 7
LOC_TRACK, LOC_PITLANE = 1, 2


class AccLap(NamedTuple):
    """One completed lap, as the lastLap record of its car said it: lap from 1, times ms."""

    car_index: int
    lap: int
    lap_ms: int
    splits_ms: tuple[int, int, int]
    is_invalid: bool
    is_outlap: bool
    is_inlap: bool

    @property
    def valid_for_best(self) -> bool:
        return not (self.is_invalid or self.is_outlap or self.is_inlap)


def _ms(seconds: float) -> int:
    return int(math.floor(seconds * 1000.0 + 0.5))


def _lap_values(prefix: str, car_index: int, lap_ms: int, splits: list[int], flags: tuple[bool, bool, bool],
                pad: bool) -> dict:
    """The values of one LapInfo record; ``splits`` those done, padded to 3 with "no time" if ``pad``."""
    invalid, out, inlap = flags
    return {f"{prefix}.laptimeMs": lap_ms, f"{prefix}.carIndex": car_index, f"{prefix}.driverIndex": 0,
            f"{prefix}.splits": splits + [NO_TIME] * (3 - len(splits)) if pad else splits,
            f"{prefix}.isInvalid": int(invalid), f"{prefix}.isValidForBest": int(not (invalid or out or inlap)),
            f"{prefix}.isOutlap": int(out), f"{prefix}.isInlap": int(inlap)}


def _record_values(prefix: str, car_index: int, lap: AccLap | None, pad: bool) -> dict:
    if lap is None:
        return _lap_values(prefix, car_index, NO_TIME, [], (False, False, False), pad)
    return _lap_values(prefix, lap.car_index, lap.lap_ms, list(lap.splits_ms),
                       (lap.is_invalid, lap.is_outlap, lap.is_inlap), pad)


@dataclass
class _Car:
    """One car of the field: its lap book and where it is now."""

    index: int
    slot: int
    pace: float = 1.0  # lap time ÷ the reference lap's (the other cars)
    laps: int = 0  # completed
    lap_start_ms: int = 0
    plan: tuple = ()  # other cars: (factor, b1, b2, lap_ms) of the current lap, ms from its start
    bounds: list[int] = field(default_factory=list)  # sector ends passed in the current lap, ms from its start
    running_ms: int = 0
    flags: tuple[bool, bool, bool] = (False, True, False)  # planned (invalid, out-lap, in-lap) of the current lap
    last: AccLap | None = None
    best: AccLap | None = None
    s_m: float = 0.0
    speed_ms: float = 0.0
    gear: int = 0
    x: float = 0.0
    z: float = 0.0
    heading: float = 0.0

    def complete(self, lap_ms: int, b1: int, b2: int) -> AccLap:
        lap = AccLap(self.index, self.laps + 1, lap_ms, (b1, b2 - b1, lap_ms - b2), *self.flags)
        self.laps += 1
        self.last = lap
        self.bounds = []
        return lap


class AccField:
    """The simulated field: ``cars`` cars (the player's first, car index :data:`PLAYER_CAR`) lapping
    the simulation's track. ``speed``: session ms per ms of the server's game clock (the server
    applies it: tests fast-forward the session).

    The player's car is ``make_sim(seed, rate_hz=1000)`` (a sample per ms of game time); its first
    lap is an out-lap, every 4th lap is invalid (from its second sector on, as a cut would make
    it). The other cars leave the pits :data:`PIT_EXIT_GAP_MS` apart and drive the simulation's
    flying lap slower by a factor of their own; the second of them comes in every 3rd lap (an in-lap,
    then an out-lap), the third has every 5th lap invalid.
    """

    def __init__(self, cars: int = 6, seed: int = 1, speed: float = 1.0, lap_variation: float = 0.005,
                 session_type: int = 0) -> None:
        if not 1 <= cars <= len(ENTRIES):
            raise ValueError(f"cars must be 1..{len(ENTRIES)}")
        self.speed = float(speed)
        self.seed = seed
        self.session_type = session_type
        self.sim = make_sim(seed, rate_hz=1000.0, lap_variation=lap_variation)
        self.track = self.sim.track
        self._ref = self._reference_lap(seed)
        self.cars = [_Car(PLAYER_CAR, 0)] + [_Car(slot, slot, 1.004 + 0.007 * slot) for slot in range(1, cars)]
        for car in self.cars[1:]:
            car.lap_start_ms = car.slot * PIT_EXIT_GAP_MS
            car.plan = self._plan(car)
            self._place_parked(car)
        self._place(self.cars[1:])
        self.now_ms = -1
        self.session_best: AccLap | None = None
        #: Every completed lap, in completion order (the ground truth of the lap records sent).
        self.completed: list[AccLap] = []

    @property
    def player(self) -> _Car:
        return self.cars[0]

    def _reference_lap(self, seed: int) -> dict[str, np.ndarray]:
        """The simulation's flying lap at :data:`REF_HZ`: lap time ``t`` (s) → lap distance ``s``
        (m), speed ``v`` (m/s) and ``gear``; ``ends``: the ends of sectors 1, 2 and 3, s."""
        ref = make_sim(seed, rate_hz=REF_HZ)
        blocks = []
        while not ref.truth.lap_times_s:
            blocks.append(ref.step_block(int(10 * REF_HZ)))
        lap = np.concatenate([b["lap_count"] for b in blocks]) == 0
        col = {k: np.concatenate([b[k] for b in blocks])[lap] for k in ("lap_time_s", "lap_distance_m", "speed_ms", "gear")}
        truth = ref.truth
        s1, s2, _ = truth.sector_times_s[0]
        lap_s = truth.lap_times_s[0]
        # A flying lap ends as it starts: close the tables at the line.
        return {"t": np.append(col["lap_time_s"], lap_s), "s": np.append(col["lap_distance_m"], self.track.length_m),
                "v": np.append(col["speed_ms"], col["speed_ms"][0]), "gear": np.append(col["gear"], col["gear"][0]),
                "ends": np.array([s1, s1 + s2, lap_s])}

    def _plan(self, car: _Car) -> tuple:
        """The current lap of another car: its flags and (factor, sector ends, lap time) in ms."""
        lap = car.laps + 1
        out = lap == 1 or (car.slot == 2 and lap % 3 == 1)
        inlap = car.slot == 2 and lap % 3 == 0
        invalid = car.slot == 3 and lap % 5 == 0
        car.flags = (invalid, out, inlap)
        u = random.Random(self.seed * 7919 + car.slot * 104729 + lap).uniform(-1.0, 1.0)
        f = car.pace * (1.0 + 0.004 * u) * (1.06 if out or inlap else 1.0)
        e1, e2, lap_s = self._ref["ends"]
        return f, _ms(e1 * f), _ms(e2 * f), _ms(lap_s * f)

    # ---- time ----------------------------------------------------------------------------------

    def advance(self, now_ms: int) -> list[tuple[int, str, int, int]]:
        """Move every car to ``now_ms`` (ms of session time, from 0). Returns the broadcasting
        events of the laps completed meanwhile, in completion order: (type, message, time ms,
        car index). The laps are appended to :attr:`completed`."""
        if now_ms <= self.now_ms:
            return []
        self.now_ms = now_ms
        done: list[tuple[int, int, AccLap]] = []  # (end ms, slot, lap)
        self._advance_player(now_ms, done)
        for car in self.cars[1:]:
            self._advance_other(car, now_ms, done)
        self._place(self.cars[1:])
        events = []
        for _, slot, lap in sorted(done, key=lambda d: d[:2]):
            self.completed.append(lap)
            car = self.cars[slot]
            events.append((LAP_COMPLETED, "lap completed", lap.lap_ms, lap.car_index))
            if not lap.valid_for_best or (car.best is not None and car.best.lap_ms <= lap.lap_ms):
                continue
            car.best = lap
            if self.session_best is None or lap.lap_ms < self.session_best.lap_ms:
                self.session_best = lap
                events.append((BEST_SESSION_LAP, "best session lap", lap.lap_ms, lap.car_index))
            else:
                events.append((BEST_PERSONAL_LAP, "personal best lap", lap.lap_ms, lap.car_index))
        return events

    def _advance_player(self, now_ms: int, done: list) -> None:
        car, sim = self.player, self.sim
        n = now_ms + 1 - sim.samples_emitted  # sample k is at k ms
        if n <= 0:
            return
        st = sim.step_block(n)
        laps = int(st["lap_count"][-1])
        if laps > car.laps:
            truth = sim.truth
            for k in range(car.laps, laps):  # ACC's lap k + 1 is the simulation's lap k
                t1, t2, _ = truth.sector_times_s[k]
                lap = car.complete(_ms(truth.lap_times_s[k]), _ms(t1), _ms(t1 + t2))
                done.append((_ms(truth.lap_start_times_s[k + 1]), 0, lap))
                car.flags = ((car.laps + 1) % 4 == 0, False, False)
        # Sector ends of the current lap, from the first sample past each (every ms is sampled).
        current = st["lap_count"] == laps
        for sector in (2, 3):
            if len(car.bounds) == sector - 2:
                hit = np.flatnonzero(current & (st["sector"] == sector))
                if len(hit):
                    car.bounds.append(_ms(st["lap_time_s"][hit[0]] - st["sector_time_s"][hit[0]]))
        car.running_ms = _ms(st["lap_time_s"][-1])
        car.s_m, car.speed_ms, car.gear = float(st["lap_distance_m"][-1]), float(st["speed_ms"][-1]), int(st["gear"][-1])
        car.x, car.z, car.heading = float(st["x"][-1]), float(st["z"][-1]), float(st["heading_rad"][-1])

    def _advance_other(self, car: _Car, now_ms: int, done: list) -> None:
        f, b1, b2, lap_ms = car.plan
        while now_ms >= car.lap_start_ms + lap_ms:
            end = car.lap_start_ms + lap_ms
            done.append((end, car.slot, car.complete(lap_ms, b1, b2)))
            car.lap_start_ms = end
            car.plan = self._plan(car)
            f, b1, b2, lap_ms = car.plan
        tau = now_ms - car.lap_start_ms
        if tau < 0:
            self._place_parked(car)
            return
        ref = self._ref
        t_ref = tau / 1000.0 / f
        car.running_ms = tau
        car.bounds = [b for b in (b1, b2) if tau >= b]
        car.s_m = float(np.interp(t_ref, ref["t"], ref["s"])) % self.track.length_m
        car.speed_ms = float(np.interp(t_ref, ref["t"], ref["v"])) / f
        car.gear = int(ref["gear"][min(int(np.searchsorted(ref["t"], t_ref, "right")) - 1, len(ref["t"]) - 1)])

    def _place_parked(self, car: _Car) -> None:
        """Before it leaves the pits: at the line, standing, in neutral."""
        car.running_ms, car.bounds, car.s_m, car.speed_ms, car.gear = 0, [], 0.0, 0.0, 0

    def _place(self, cars: list[_Car]) -> None:
        """World position and heading of ``cars`` from their lap distance."""
        if not cars:
            return
        s = np.array([car.s_m for car in cars])
        # The other cars keep a line of their own across the track, up to 1.5 m either side.
        offset = 1.5 * (np.array([car.slot for car in cars]) % 3 - 1)
        th = np.asarray(self.track.heading(s), dtype=np.float64)
        x, z = self.track.xz(s)
        x, z = np.asarray(x) - offset * np.sin(th), np.asarray(z) + offset * np.cos(th)
        for k, car in enumerate(cars):
            car.x, car.z, car.heading = float(x[k]), float(z[k]), float(th[k])

    def _location(self, car: _Car) -> int:
        frac = car.s_m / self.track.length_m
        _, out, inlap = car.flags
        return LOC_PITLANE if (out and frac < PIT_SHARE) or (inlap and frac > 1.0 - PIT_SHARE) else LOC_TRACK

    # ---- messages --------------------------------------------------------------------------------

    def updates(self, pad_splits: bool = True) -> list[bytes]:
        """One interval's stream: the realtime update, then one car update per car of the field."""
        now, length = max(self.now_ms, 0), self.track.length_m
        dist = [car.laps + car.s_m / length for car in self.cars]
        on_track = sorted(range(len(self.cars)), key=lambda i: (-dist[i], i))
        if self.session_type == 10:  # a race is ordered by distance, other sessions by best lap
            official = on_track
        else:
            official = sorted(range(len(self.cars)), key=lambda i: (self.cars[i].best.lap_ms if self.cars[i].best else NO_TIME, i))
        best = self.session_best
        out = [acc.encode(REALTIME, {
            "sessionType": self.session_type, "sessionPhase": 5, "sessionTime": now,
            "sessionEndTime": max(SESSION_MS - now, 0), "focusedCarIndex": PLAYER_CAR,
            "activeCameraSet": "Drivable", "activeCamera": "Chase", "currentHudPage": "Basic HUD",
            "timeOfDay": (START_OF_DAY_MS + now) % 86_400_000, "ambientTemp": 22, "trackTemp": 31, "clouds": 2,
            **_record_values("bestSessionLap", best.car_index if best else 0, best, pad_splits)})]
        for i, car in enumerate(self.cars):
            b = car.bounds
            splits = [end - start for start, end in zip([0] + b, b)]
            invalid, outlap, inlap = car.flags
            spline = car.s_m / length
            # ACC runs on Unreal Engine (left-handed, z up): seen from above with its X to the right,
            # its Y points down the page, so the feed maps canonical pos_x = worldPosX and
            # pos_z = -worldPosY. Hence worldPosY = -z, and the yaw is the heading measured in ACC's
            # X-Y plane: the direction (cos θ, sin θ) in (x, z) is (cos θ, -sin θ) in (X, Y), angle -θ.
            out.append(acc.encode(CAR_UPDATE, {
                "carIndex": car.index, "driverIndex": 0, "driverCount": len(ENTRIES[car.slot][3]),
                "gear": car.gear + 2,  # ACC: raw = gear + 2 (R 1, N 2, 1st 3), the SDK subtracts 2
                "worldPosX": car.x, "worldPosY": -car.z, "yaw": -math.remainder(car.heading, 2 * math.pi),
                "carLocation": self._location(car), "kmh": min(int(round(car.speed_ms * 3.6)), 65535),
                "position": official.index(i) + 1, "cupPosition": official.index(i) + 1,
                "trackPosition": on_track.index(i) + 1, "splinePosition": spline, "laps": car.laps,
                "delta": car.running_ms - _ms(car.best.lap_ms * spline / 1000.0) if car.best else 0,
                **_record_values("bestSessionLap", car.index, car.best, pad_splits),
                **_record_values("lastLap", car.index, car.last, pad_splits),
                # An invalid lap shows as such once its first sector is done (a cut in the second).
                **_lap_values("currentLap", car.index, car.running_ms, splits,
                              (invalid and len(b) > 0, outlap, inlap), pad_splits)}))
        return out

    def entry_list(self, connection_id: int, version: int) -> list[bytes]:
        """The entry list, then one entry-list car per car, in protocol ``version``'s form."""
        out = [acc.encode(ENTRY_LIST_MSG, {"connectionId": connection_id, "carIndex": [c.index for c in self.cars]})]
        for car in self.cars:
            team, number, model, drivers = ENTRIES[car.slot]
            nationality = 1 + car.slot  # ACC's nationality enum, from 1 on
            out.append(acc.encode(ENTRY_CAR, {
                "carIndex": car.index, "carModelType": model, "teamName": team, "raceNumber": number,
                "cupCategory": 0, "currentDriverIndex": 0, "carNationality": nationality,
                "drivers": [{"firstName": first, "lastName": last, "shortName": short, "category": 2,
                             "nationality": nationality} for first, last, short in drivers]}, version))
        return out

    def track_data(self, connection_id: int) -> bytes:
        """TRACK_DATA: the simulation's track, its length in whole m, camera sets and HUD pages."""
        return acc.encode(TRACK, {
            "connectionId": connection_id, "trackName": self.track.name, "trackId": TRACK_ID,
            "trackMeters": int(round(self.track.length_m)),
            "cameraSets": [{"name": name, "cameras": list(cams)} for name, cams in CAMERA_SETS.items()],
            "hudPages": list(HUD_PAGES)})


# ---- the server ---------------------------------------------------------------------------------


class _Request:
    """A bounds-checked reader of one client request (a short one raises ``struct.error``)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def num(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def text(self) -> str:
        n = self.num("<H")
        if self.pos + n > len(self.data):
            raise ValueError("a string runs past the end")
        self.pos += n
        return self.data[self.pos - n : self.pos].decode("utf-8")


@dataclass
class _Client:
    connection_id: int
    interval_s: float
    due_s: float


class AccServer(Sender):
    """ACC's side of the broadcasting protocol on ``(host, port)`` (bound at construction).

    A registration with ``password`` is answered with a success, the connection id (one per server,
    :attr:`connection_id`, random unless given: a restarted ACC has a new one) and the command
    flag (1 when ``command_password`` is set and the client sent it); with a wrong one, a refusal
    carrying :data:`WRONG_PASSWORD`. A registered client gets every ``msRealtimeUpdateInterval``
    ms (at least ``min_interval_ms``) of the game clock a realtime update and a car update per car
    (:meth:`AccField.updates`), the broadcasting events as laps complete, and answers to its
    entry-list and track-data requests (entry-list cars in ``protocol_version``'s form, 3 or 4)
    until it unregisters. ``pad_splits``: lap records carry 3 splits, "no time" for those not done
    (as the SDK reads them); False sends only the splits done.

    ``source``: an :class:`AccField` (default: ``AccField(cars, seed, speed)``) or a
    :class:`~rt.sim.game.ReplaySource` (see :func:`replay_server`). Malformed requests and requests
    from an address or with a connection id not registered are counted in :attr:`ignored`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, password: str = "asd", command_password: str = "",
                 *, source: AccField | ReplaySource | None = None, cars: int = 6, seed: int = 1, speed: float = 1.0,
                 connection_id: int | None = None, protocol_version: int = acc.PROTOCOL_VERSION,
                 pad_splits: bool = True, min_interval_ms: int = MIN_INTERVAL_MS) -> None:
        if protocol_version not in (acc.OLDEST_PROTOCOL_VERSION, acc.PROTOCOL_VERSION):
            raise ValueError(f"protocol_version must be 3 or 4, not {protocol_version}")
        super().__init__(source if source is not None else AccField(cars, seed, speed),
                         socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._listen(host, port)
        self.password, self.command_password = password, command_password
        self.connection_id = random.randrange(1, 2**31 - 1) if connection_id is None else connection_id
        self.protocol_version = protocol_version
        self.pad_splits = pad_splits
        self.min_interval_ms = max(MIN_INTERVAL_MS, int(min_interval_ms))
        self.clients: dict[tuple, _Client] = {}
        self.registrations = self.refused = self.unregistered = self.ignored = 0
        self.entry_list_requests = self.track_data_requests = 0
        self.registered = threading.Event()
        #: Replays: the recorded answers to an entry-list request and a track-data request.
        self.recorded_entry_list: list[bytes] = []
        self.recorded_track: list[bytes] = []
        self._now_s = 0.0
        self._advanced_s = -IDLE_STEP_S
        self._replayed_s = 0.0

    @property
    def field(self) -> AccField | None:
        return self.source if isinstance(self.source, AccField) else None

    @property
    def completed_laps(self) -> list[AccLap]:
        """Every lap completed so far, in completion order (the field's ground truth)."""
        return self.field.completed if self.field is not None else []

    def _send(self, payloads: list[bytes], addr) -> None:
        try:
            self._send_all(payloads, addr)
        except ConnectionRefusedError:
            pass  # the client has gone; it will time out of the list only by unregistering, as in ACC

    def _handle(self, data: bytes, addr) -> None:
        r = _Request(data)
        kind = r.num("<B")
        if kind == acc.REGISTER_COMMAND_APPLICATION:
            r.num("<B")  # the client's protocol version: ACC answers in its own
            r.text()  # display name
            password, interval_ms, command_password = r.text(), r.num("<i"), r.text()
            self._register(addr, password, interval_ms, command_password)
            return
        if kind not in (acc.UNREGISTER_COMMAND_APPLICATION, acc.REQUEST_ENTRY_LIST, acc.REQUEST_TRACK_DATA):
            self.ignored += 1
            return
        client = self.clients.get(addr)
        if client is None or r.num("<i") != client.connection_id:
            self.ignored += 1
        elif kind == acc.UNREGISTER_COMMAND_APPLICATION:
            del self.clients[addr]
            self.unregistered += 1
        elif kind == acc.REQUEST_ENTRY_LIST:
            self.entry_list_requests += 1
            field_ = self.field
            self._send(field_.entry_list(client.connection_id, self.protocol_version) if field_ else self.recorded_entry_list, addr)
        else:
            self.track_data_requests += 1
            field_ = self.field
            self._send([field_.track_data(client.connection_id)] if field_ else self.recorded_track, addr)

    def _register(self, addr, password: str, interval_ms: int, command_password: str) -> None:
        if password != self.password:
            self.refused += 1
            self._send([acc.encode(REGISTRATION, {"connectionId": -1, "connectionSuccess": 0, "isReadonly": 0,
                                                  "errorMessage": WRONG_PASSWORD})], addr)
            return
        commands = bool(self.command_password) and command_password == self.command_password
        interval_s = max(interval_ms, self.min_interval_ms) / 1000.0
        self.clients[addr] = _Client(self.connection_id, interval_s, self._now_s)
        self.registrations += 1
        self.registered.set()  # before the answer: whoever waits on it sees the client's view
        self._send([acc.encode(REGISTRATION, {"connectionId": self.connection_id, "connectionSuccess": 1,
                                              "isReadonly": int(commands), "errorMessage": ""})], addr)

    def _drain(self) -> None:
        for _ in range(64):  # a burst of requests is answered in one wake-up, within bounds
            try:
                data, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, ConnectionRefusedError):
                return
            try:
                self._handle(data, addr)
            except (struct.error, ValueError):  # UnicodeDecodeError is a ValueError
                self.ignored += 1
            if not select.select([self.sock], [], [], 0)[0]:
                return

    def run(self) -> None:
        while not self._stop.is_set():
            if select.select([self.sock], [], [], PACE_S)[0]:
                self._drain()
            now = self.game_time()
            elapsed, self._now_s = now - self._now_s, now
            field_ = self.field
            if field_ is None:  # a replay: the recording's clock runs while someone listens
                if self.clients:
                    self._replayed_s += elapsed
                    payloads = self.source.take(self._replayed_s)
                    for addr in list(self.clients):
                        self._send(payloads, addr)
                continue
            due = [addr for addr, client in self.clients.items() if now >= client.due_s]
            if not due and now - self._advanced_s < IDLE_STEP_S:
                continue
            # The field moves when an update is due (or now and then, with nobody listening): its
            # events then follow the updates that already show the laps they are about.
            self._advanced_s = now
            events = [acc.encode(EVENT, {"type": t, "message": m, "timeMs": ms, "carId": car})
                      for t, m, ms, car in field_.advance(int(now * field_.speed * 1000.0))]
            stream = field_.updates(self.pad_splits) if due else []
            for addr, client in list(self.clients.items()):
                out = events
                if addr in due:
                    out = stream + events
                    client.due_s += client.interval_s
                    if client.due_s <= now:  # fell behind (a hitch): no burst to catch up
                        client.due_s = now + client.interval_s
                if out:
                    self._send(out, addr)


def replay_server(times_ns: np.ndarray, payloads: list[bytes], host: str, port: int, password: str,
                  command_password: str = "", speed: float = 1.0) -> AccServer:
    """An :class:`AccServer` playing a recording of the acc feed (times in ns, payloads as received).

    It answers a registration itself (the recorded results are left out, the connection id is the
    recorded one if any), then streams the rest with the original timing ÷ ``speed``; it answers
    entry-list and track-data requests with the last recorded entry list (each of its cars' last
    entry-list car after it) and track data."""
    kept = [i for i, p in enumerate(payloads) if p[:1] != bytes([acc.REGISTRATION_RESULT])]
    recorded_id = None
    for p in payloads:
        if p[:1] == bytes([acc.REGISTRATION_RESULT]) and len(p) >= 6 and p[5]:
            recorded_id = struct.unpack_from("<i", p, 1)[0]
    source = ReplaySource(np.asarray(times_ns)[kept], [payloads[i] for i in kept], speed)
    server = AccServer(host, port, password, command_password, source=source, connection_id=recorded_id)
    lists = [p for p in payloads if p[:1] == bytes([acc.ENTRY_LIST]) and len(p) >= 7]
    if lists:
        n = struct.unpack_from("<H", lists[-1], 5)[0]
        cars = {p[1:3]: p for p in payloads if p[:1] == bytes([acc.ENTRY_LIST_CAR]) and len(p) >= 3}
        indices = [lists[-1][7 + 2 * k : 9 + 2 * k] for k in range(n)]
        server.recorded_entry_list = [lists[-1]] + [cars[i] for i in indices if i in cars]
    server.recorded_track = [p for p in payloads if p[:1] == bytes([acc.TRACK_DATA])][-1:]
    return server
