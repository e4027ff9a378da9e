"""A fake Assetto Corsa Competizione *broadcasting* server over real UDP, written from
``../shared/PROTOCOLS.md`` §5 alone (never from the feed's code), to be the test oracle of issue 18.

It listens like ACC on 127.0.0.1 (an ephemeral port by default), answers the registration handshake
(checking the connection password), the entry-list and track-data requests, and, once a client is
registered, streams every ``interval`` ms one REALTIME_UPDATE then one REALTIME_CAR_UPDATE per car of a
small field lapping a circular track, plus BROADCASTING_EVENTs when laps complete.

Time base
    Everything derives from a tick counter: one tick per interval of wall-clock time, and
    ``session_ms_per_tick`` (default: the interval × ``time_scale``) session milliseconds per tick. The
    simulation advances only on ticks that are sent: while a client is registered and the fake is not
    quiet. So every value a client can see is a function of the tick number, and every completed lap
    in :attr:`FakeAcc.completed_laps` was streamed.

Track
    A circle of ``track_meters`` (default 3000 m) centred on (0, 0), driven anticlockwise:
    ``worldPosX = R·cos(2π·spline)``, ``worldPosY = R·sin(2π·spline)``, ``yaw = 2π·spline + π/2``
    (the direction of travel). The three sectors are the three equal thirds of the spline; each car
    drives each sector of each lap at a constant speed, so ``kmh`` is exactly (sector length / sector
    time) × 3.6, rounded, and lap and split times are whole milliseconds known in advance.

Laps (by *slot*, the car's place in the field, 0-based; laps numbered from 1)
    * lap 1 of every car is an out-lap (it starts in the pit lane, at spline 0, when the car appears);
    * slot 1: every lap with ``lap % 5 == 3`` (3, 8, …) is invalid (isInvalid = 1);
    * slot 2: every lap with ``lap % 6 == 3`` (3, 9, …) is an in-lap (it ends in the pit lane) and the
      next one an out-lap;
    * slot 3: every lap with ``lap % 7 == 2`` (2, 9, …) is invalid;
    * every other lap is valid: isValidForBest = 1 and all other flags 0. Out-, in- and invalid laps
      have isValidForBest = 0.
    Every completed lap has its three splits present and they sum to its lap time. The current lap
    carries the elapsed time, the splits done so far and INT32_MAX for the others, and its planned flags
    from its start. A lap record that does not exist yet ("no last lap") is INT32_MAX with three
    INT32_MAX splits and all flags 0.

Order of datagrams in a tick: REALTIME_UPDATE, the car updates in field order, then the events of the
laps completed during that tick (LAP_COMPLETED, then BEST_SESSION_LAP or BEST_PERSONAL_LAP if it is one).

Use::

    with FakeAcc(password="asd", cars=4, lap_ms=3000, session_ms_per_tick=100) as acc:  # started
        ...point the feed at acc.address (acc.port)...
        acc.wait_for(lambda: len(acc.completed_laps) >= 8)
        acc.go_quiet()                       # freeze: acc.sent is then final
        assert raw_payloads == acc.sent      # every datagram sent, in order

Choices where PROTOCOLS.md §5 is silent or loose (tests against this fake inherit them):
    * REGISTRATION_RESULT's flag byte after ``success`` is sent as 0 (read-only) unless the fake has a
      non-empty ``command_password`` and the client sent the same one; then 1.
    * A refused registration carries connectionId -1, success 0 and an error message
      (:data:`WRONG_PASSWORD_MESSAGE` for a wrong password; a version other than 3 or 4, or an interval
      ≤ 0, are refused too). The refused client gets nothing else.
    * ``version=None`` (default): ENTRY_LIST_CAR is encoded in the version the client registered with;
      ``version=3``/``4``: always in that one (an old or a new ACC whatever the client says).
    * BROADCASTING_EVENT timeMs is the lap time of the lap the event is about; carId its car index.
    * REALTIME_UPDATE sessionEndTime is the time *remaining* (session length − session time), in ms.
    * Requests (9, 10, 11, 49, 50, 51) count only from the registered address with the current connection
      id; others are counted (``not_registered``, ``wrong_connection_id``) and ignored; undecodable
      datagrams are counted as ``garbage``. One client at a time: a new registration replaces the old.
"""

from __future__ import annotations

import math
import select
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace

INT32_MAX = 2**31 - 1
NONE_MS = INT32_MAX  # "no time" in lap and split fields

# -- message types (PROTOCOLS.md §5.1) ------------------------------------------------------------
REGISTER_COMMAND_APPLICATION = 1
UNREGISTER_COMMAND_APPLICATION = 9
REQUEST_ENTRY_LIST = 10
REQUEST_TRACK_DATA = 11
CHANGE_HUD_PAGE = 49
CHANGE_FOCUS = 50
INSTANT_REPLAY_REQUEST = 51

REGISTRATION_RESULT = 1
REALTIME_UPDATE = 2
REALTIME_CAR_UPDATE = 3
ENTRY_LIST = 4
TRACK_DATA = 5
ENTRY_LIST_CAR = 6
BROADCASTING_EVENT = 7

# BROADCASTING_EVENT types
EVENT_GREEN_FLAG, EVENT_SESSION_OVER, EVENT_PENALTY, EVENT_ACCIDENT = 1, 2, 3, 4
EVENT_LAP_COMPLETED, EVENT_BEST_SESSION_LAP, EVENT_BEST_PERSONAL_LAP = 5, 6, 7

# carLocation
LOC_TRACK, LOC_PITLANE, LOC_PIT_ENTRY, LOC_PIT_EXIT = 1, 2, 3, 4

WRONG_PASSWORD_MESSAGE = "Wrong password, please check your broadcasting.json"
BAD_VERSION_MESSAGE = "Protocol version mismatch"


# == encoder layer: Python values → bytes, one function per message ==============================

class Writer:
    """Little-endian .NET BinaryWriter-alike; strings are a u16 byte count then UTF-8."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, v: int) -> Writer:
        self.buf += struct.pack("<B", v)
        return self

    def u16(self, v: int) -> Writer:
        self.buf += struct.pack("<H", v)
        return self

    def s32(self, v: int) -> Writer:
        self.buf += struct.pack("<i", v)
        return self

    def f32(self, v: float) -> Writer:
        self.buf += struct.pack("<f", v)
        return self

    def string(self, s: str) -> Writer:
        data = s.encode("utf-8")
        self.buf += struct.pack("<H", len(data)) + data
        return self

    def raw(self, b: bytes) -> Writer:
        self.buf += b
        return self

    def bytes(self) -> bytes:
        return bytes(self.buf)


@dataclass(frozen=True)
class LapInfo:
    """One LapInfo record (13 + 4·n bytes)."""
    lap_time_ms: int
    car_index: int
    driver_index: int
    splits_ms: tuple[int, ...]
    is_invalid: int = 0
    is_valid_for_best: int = 0
    is_outlap: int = 0
    is_inlap: int = 0

    @staticmethod
    def none(car_index: int, driver_index: int = 0, n_splits: int = 3) -> LapInfo:
        return LapInfo(NONE_MS, car_index, driver_index, (NONE_MS,) * n_splits)


def encode_lap_info(lap: LapInfo) -> bytes:
    w = Writer().s32(lap.lap_time_ms).u16(lap.car_index).u16(lap.driver_index).u8(len(lap.splits_ms))
    for split in lap.splits_ms:
        w.s32(split)
    return w.u8(lap.is_invalid).u8(lap.is_valid_for_best).u8(lap.is_outlap).u8(lap.is_inlap).bytes()


def encode_registration_result(connection_id: int, success: bool, readonly: bool, error: str) -> bytes:
    """The flag byte after ``success`` is 0 for a read-only connection (§5.2), 1 with command rights."""
    return (Writer().u8(REGISTRATION_RESULT).s32(connection_id).u8(1 if success else 0)
            .u8(0 if readonly else 1).string(error).bytes())


@dataclass(frozen=True)
class CarUpdate:
    """The fields of a REALTIME_CAR_UPDATE, in wire order (§5.3)."""
    car_index: int
    driver_index: int
    driver_count: int
    gear_raw: int
    world_x: float
    world_y: float
    yaw: float
    car_location: int
    kmh: int
    position: int
    cup_position: int
    track_position: int
    spline: float
    laps: int
    delta_ms: int
    best_session_lap: LapInfo
    last_lap: LapInfo
    current_lap: LapInfo


def encode_car_update(c: CarUpdate) -> bytes:
    head = struct.pack("<BHHBBfffBHHHHfHi", REALTIME_CAR_UPDATE, c.car_index, c.driver_index, c.driver_count,
                       c.gear_raw, c.world_x, c.world_y, c.yaw, c.car_location, c.kmh, c.position,
                       c.cup_position, c.track_position, c.spline, c.laps, c.delta_ms)
    assert len(head) == 38
    return head + encode_lap_info(c.best_session_lap) + encode_lap_info(c.last_lap) + encode_lap_info(c.current_lap)


@dataclass(frozen=True)
class RealtimeUpdate:
    """The fields of a REALTIME_UPDATE, in wire order (§5.4)."""
    event_index: int
    session_index: int
    session_type: int
    session_phase: int
    session_time_ms: float
    session_end_time_ms: float
    focused_car_index: int
    active_camera_set: str
    active_camera: str
    current_hud_page: str
    time_of_day_ms: float
    ambient_temp: int
    track_temp: int
    clouds: int
    rain_level: int
    wetness: int
    best_session_lap: LapInfo
    replay: tuple[float, float] | None = None  # (replaySessionTime, replayRemainingTime) if replaying


def encode_realtime_update(r: RealtimeUpdate) -> bytes:
    w = (Writer().u8(REALTIME_UPDATE).u16(r.event_index).u16(r.session_index).u8(r.session_type)
         .u8(r.session_phase).f32(r.session_time_ms).f32(r.session_end_time_ms).s32(r.focused_car_index)
         .string(r.active_camera_set).string(r.active_camera).string(r.current_hud_page)
         .u8(1 if r.replay else 0))
    if r.replay:
        w.f32(r.replay[0]).f32(r.replay[1])
    w.f32(r.time_of_day_ms).u8(r.ambient_temp).u8(r.track_temp).u8(r.clouds).u8(r.rain_level).u8(r.wetness)
    return w.raw(encode_lap_info(r.best_session_lap)).bytes()


def encode_entry_list(connection_id: int, car_indexes: list[int]) -> bytes:
    w = Writer().u8(ENTRY_LIST).s32(connection_id).u16(len(car_indexes))
    for index in car_indexes:
        w.u16(index)
    return w.bytes()


@dataclass(frozen=True)
class Driver:
    first_name: str
    last_name: str
    short_name: str
    category: int  # 0 Bronze, 1 Silver, 2 Gold, 3 Platinum, 255 unknown
    nationality: int


@dataclass(frozen=True)
class EntryCar:
    car_index: int
    car_model_type: int
    team_name: str
    race_number: int
    cup_category: int
    current_driver_index: int
    nationality: int
    drivers: tuple[Driver, ...]


def encode_entry_list_car(car: EntryCar, version: int) -> bytes:
    """ENTRY_LIST_CAR; protocol version 4 adds the u16 car and driver nationalities."""
    w = (Writer().u8(ENTRY_LIST_CAR).u16(car.car_index).u8(car.car_model_type).string(car.team_name)
         .s32(car.race_number).u8(car.cup_category).u8(car.current_driver_index))
    if version >= 4:
        w.u16(car.nationality)
    w.u8(len(car.drivers))
    for d in car.drivers:
        w.string(d.first_name).string(d.last_name).string(d.short_name).u8(d.category)
        if version >= 4:
            w.u16(d.nationality)
    return w.bytes()


def encode_track_data(connection_id: int, track_name: str, track_id: int, track_meters: int,
                      camera_sets: dict[str, list[str]], hud_pages: list[str]) -> bytes:
    w = (Writer().u8(TRACK_DATA).s32(connection_id).string(track_name).s32(track_id).s32(track_meters)
         .u8(len(camera_sets)))
    for name, cameras in camera_sets.items():
        w.string(name).u8(len(cameras))
        for camera in cameras:
            w.string(camera)
    w.u8(len(hud_pages))
    for page in hud_pages:
        w.string(page)
    return w.bytes()


def encode_broadcasting_event(kind: int, message: str, time_ms: int, car_id: int) -> bytes:
    return Writer().u8(BROADCASTING_EVENT).u8(kind).string(message).s32(time_ms).s32(car_id).bytes()


# -- client → ACC messages: encoders (for tests' clients) and the fake's reader -------------------

def encode_register(display_name: str, password: str, interval_ms: int, command_password: str = "",
                    version: int = 4) -> bytes:
    return (Writer().u8(REGISTER_COMMAND_APPLICATION).u8(version).string(display_name).string(password)
            .s32(interval_ms).string(command_password).bytes())


def encode_request(kind: int, connection_id: int) -> bytes:
    """UNREGISTER (9), REQUEST_ENTRY_LIST (10) or REQUEST_TRACK_DATA (11): u8 type + s32 connectionId."""
    return Writer().u8(kind).s32(connection_id).bytes()


class Reader:
    """Sequential little-endian reader; raises ValueError when the message is shorter than its fields."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ValueError(f"wanted {size} bytes at {self.pos}, {len(self.data) - self.pos} left")
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value

    def u8(self) -> int:
        return self._take("<B")

    def u16(self) -> int:
        return self._take("<H")

    def s32(self) -> int:
        return self._take("<i")

    def f32(self) -> float:
        return self._take("<f")

    def string(self) -> str:
        n = self.u16()
        if self.pos + n > len(self.data):
            raise ValueError(f"string of {n} bytes at {self.pos}, {len(self.data) - self.pos} left")
        s = self.data[self.pos:self.pos + n].decode("utf-8")
        self.pos += n
        return s


# == the simulated field ==========================================================================

@dataclass(frozen=True)
class CompletedLap:
    """Ground truth of one completed lap, as the fake sent it in lastLap."""
    car_index: int
    slot: int
    lap: int  # 1-based lap number of this car
    lap_time_ms: int
    splits_ms: tuple[int, int, int]
    is_invalid: int
    is_valid_for_best: int
    is_outlap: int
    is_inlap: int
    end_session_ms: int  # session time at which the lap ended
    tick: int  # the tick whose datagrams first showed it
    driver_index: int = 0  # the car's driver when the lap ended

    @property
    def kind(self) -> str:
        """'out', 'in', 'invalid' or 'valid'."""
        return lap_kind(self.slot, self.lap)


def lap_kind(slot: int, lap: int) -> str:
    """'out', 'in', 'invalid' or 'valid': the script of the module docstring."""
    if lap == 1 or (slot == 2 and lap % 6 == 4):
        return "out"
    if slot == 2 and lap % 6 == 3:
        return "in"
    if (slot == 1 and lap % 5 == 3) or (slot == 3 and lap % 7 == 2):
        return "invalid"
    return "valid"


def lap_flags(kind: str) -> tuple[int, int, int, int]:
    """(isInvalid, isValidForBest, isOutlap, isInlap) of a lap kind."""
    return {"valid": (0, 1, 0, 0), "invalid": (1, 0, 0, 0), "out": (0, 0, 1, 0), "in": (0, 0, 0, 1)}[kind]


def sector_times_ms(slot: int, lap: int, lap_ms: int) -> tuple[int, int, int]:
    """Whole-millisecond sector times of a lap: a base share of ``lap_ms``, per-slot and per-lap
    variations, +4 s in sector 1 of an out-lap (pit exit), +3 s in sector 3 of an in-lap."""
    kind = lap_kind(slot, lap)
    out = []
    for j, share in enumerate((0.31, 0.36, 0.33)):
        t = int(lap_ms * share) + 97 * slot + (lap * 7919 + j * 104729 + slot * 31) % 997
        t += 4000 if (kind == "out" and j == 0) else 0
        t += 3000 if (kind == "in" and j == 2) else 0
        out.append(t)
    return (out[0], out[1], out[2])


@dataclass
class Car:
    index: int
    slot: int
    start_ms: int  # session time of its appearance (start of its lap 1)
    entry: EntryCar
    lap_ends: list[int] = field(default_factory=list)  # elapsed ms (since start_ms) at the end of laps 1..

    def sectors(self, lap: int, lap_ms: int) -> tuple[int, int, int]:
        return sector_times_ms(self.slot, lap, lap_ms)

    def lap_at(self, elapsed: int, lap_ms: int) -> tuple[int, int]:
        """(1-based lap being driven, elapsed ms within it) at ``elapsed`` ms since the car's start."""
        while not self.lap_ends or self.lap_ends[-1] <= elapsed:
            prev = self.lap_ends[-1] if self.lap_ends else 0
            self.lap_ends.append(prev + sum(self.sectors(len(self.lap_ends) + 1, lap_ms)))
        lap = next(i for i, end in enumerate(self.lap_ends) if end > elapsed) + 1
        start = self.lap_ends[lap - 2] if lap > 1 else 0
        return lap, elapsed - start


_FIRST = ["Jürgen", "Ana", "Kenji", "Zoë", "Mateus", "Saoirse", "Ilya", "Ngozi"]
_LAST = ["Müller", "García", "Satō", "Lefèvre", "Silva", "Ó Briain", "Petrov", "Okafor"]


def default_entry(index: int, slot: int) -> EntryCar:
    """A deterministic entry; slot 0's car has two drivers; names are not all ASCII (byte counts ≠
    character counts)."""
    drivers = tuple(
        Driver(_FIRST[(slot + k) % 8], _LAST[(slot + k) % 8], _LAST[(slot + k) % 8][:3].upper(),
               (slot + k) % 4, 1 + 3 * slot + k)
        for k in range(2 if slot == 0 else 1))
    return EntryCar(index, (slot * 5 + 1) % 36, f"Équipe {slot} Racing", 10 + 7 * slot, slot % 5, 0,
                    20 + slot, drivers)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 free just now: to start a fake *after* its client, on a known port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# == the server ===================================================================================

class FakeAcc:
    """A fake ACC broadcasting endpoint. See the module docstring for what it simulates.

    Parameters: ``port`` (0: ephemeral), ``password`` (the connectionPassword, "asd"),
    ``command_password`` ("" : every client read-only), ``connection_id`` (given to registrations),
    ``version`` (None: the client's; 3 or 4), ``cars`` (field size) or ``car_indexes`` (explicit, in
    field order; default 1, 4, 7, …), ``focused_slot``, ``lap_ms`` (base lap time), ``track_meters``,
    ``session_ms_per_tick`` (or ``time_scale`` × the client's interval), ``session_type``,
    ``session_length_ms``, ``track_name``, ``track_id``.

    Test hooks: :meth:`start`/:meth:`stop` (or ``with``), :meth:`restart`, :meth:`add_car`,
    :meth:`swap_driver`, :meth:`go_quiet`/:meth:`resume`, :meth:`set_focus`, :meth:`set_session`,
    :meth:`send_event`, :meth:`wait_for`.

    Ground truth: :attr:`sent` (every datagram sent, in order; :attr:`sent_log` with addresses),
    :attr:`completed_laps`, :attr:`cars` (each with its ``entry``), :attr:`entry_lists_sent`,
    :attr:`tick`, :attr:`session_ms`, :attr:`last_registration`, :attr:`counts` and
    :attr:`received_log` ((tick, kind) in arrival order). Kinds counted: register, register_refused,
    unregister, entry_list, track_data, change_focus, change_hud_page, instant_replay, not_registered,
    wrong_connection_id, garbage, ignored_while_quiet; also restart and send_error.
    """

    def __init__(self, *, port: int = 0, password: str = "asd", command_password: str = "",
                 connection_id: int = 7, version: int | None = None, cars: int = 4,
                 car_indexes: list[int] | None = None, focused_slot: int = 0, lap_ms: int = 90_000,
                 track_meters: int = 3000, time_scale: float = 1.0, session_ms_per_tick: int | None = None,
                 session_type: int = 10, session_length_ms: int = 3_600_000, track_name: str = "fake_circle",
                 track_id: int = 42) -> None:
        self.password, self.command_password = password, command_password
        self.connection_id = connection_id
        self.version = version  # None: speak the client's version (3 or 4); 3 or 4: always that one
        self.lap_ms, self.track_meters = lap_ms, track_meters
        self.time_scale, self._fixed_step = time_scale, session_ms_per_tick
        self.session_type, self.session_length_ms = session_type, session_length_ms
        self.track_name, self.track_id = track_name, track_id
        self.camera_sets = {"Drivable": ["Chase", "FarChase", "Bonnet", "Cockpit"],
                            "Onboard": ["Onboard0", "Onboard1"], "TV1": ["CameraTV1"]}
        self.hud_pages = ["Blank", "Basic HUD", "Help", "TimeTable", "Broadcasting", "TrackMap"]
        indexes = car_indexes if car_indexes is not None else [3 * s + 1 for s in range(cars)]
        self.cars = [Car(i, s, 0, default_entry(i, s)) for s, i in enumerate(indexes)]
        self.focused_car_index = self.cars[focused_slot].index
        # state
        self.client: tuple[str, int] | None = None
        self.client_version = 4
        self.interval_ms = 100
        self.readonly = True
        self.quiet = False
        self.session_phase = 5  # "session"
        self.replay_playing = False  # True: REALTIME_UPDATE carries the two optional replay floats
        self.tick = 0
        self.session_ms = 0
        self.registrations = 0  # successful ones
        # ground truth and counters
        self.sent: list[bytes] = []
        self.sent_log: list[tuple[tuple[str, int], bytes]] = []
        self.completed_laps: list[CompletedLap] = []
        self.counts: Counter[str] = Counter()
        self.received_log: list[tuple[int, str]] = []  # (tick, kind), in order of arrival
        self.entry_lists_sent: list[list[int]] = []
        self.last_registration: dict[str, object] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_tick = 0.0
        self._positions: dict[int, tuple[int, int]] = {}
        self._cup: dict[int, int] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.address: tuple[str, int] = self.sock.getsockname()
        self.port = self.address[1]

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeAcc:
        self._thread = threading.Thread(target=self._run, name="fake-acc", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sock.close()

    def __enter__(self) -> FakeAcc:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- test hooks -------------------------------------------------------------------------------

    def restart(self, new_connection_id: int | None = None) -> None:
        """ACC restarts: registrations are forgotten, the next registration gets a new connection id
        (``new_connection_id``, or the old one + 1). The session itself carries on from the same tick."""
        with self._lock:
            self.client = None
            self.connection_id = new_connection_id if new_connection_id is not None else self.connection_id + 1
            self.counts["restart"] += 1

    def add_car(self, car_index: int | None = None) -> int:
        """A car joins: it is in the car updates from the next tick, out of the pits at spline 0, and in
        the entry list only from the next entry-list request. Returns its car index."""
        with self._lock:
            slot = len(self.cars)
            index = car_index if car_index is not None else max(c.index for c in self.cars) + 5
            self.cars.append(Car(index, slot, self.session_ms, default_entry(index, slot)))
            return index

    def swap_driver(self, car_index: int) -> int:
        """A driver swap to a new driver: from the next tick the car's updates show one driver more
        (driverCount) and the new driverIndex; the entry list shows them only once requested again.
        Returns the new driverIndex."""
        with self._lock:
            car = self._car(car_index)
            k = len(car.entry.drivers)
            new = Driver("Pat", "Nouveau-Relève", "NOU", 255, 99)
            car.entry = replace(car.entry, drivers=car.entry.drivers + (new,), current_driver_index=k)
            return k

    def go_quiet(self) -> None:
        """ACC hangs or the network drops, until :meth:`resume`: nothing is sent, not even answers;
        what arrives is counted as ``ignored_while_quiet`` and otherwise ignored; the session clock
        stops (so :attr:`sent` is final while quiet). The registration, if any, is kept."""
        with self._lock:
            self.quiet = True

    def resume(self) -> None:
        with self._lock:
            self.quiet = False
            self._next_tick = time.monotonic() + self.interval_ms / 1000

    def send_event(self, kind: int, message: str, time_ms: int, car_index: int) -> bytes | None:
        """Send one BROADCASTING_EVENT to the registered client now (e.g. EVENT_PENALTY,
        EVENT_SESSION_OVER); returns its bytes, or None when there is no client or the fake is quiet."""
        with self._lock:
            if self.client is None or self.quiet:
                return None
            data = encode_broadcasting_event(kind, message, time_ms, car_index)
            self._send(data, self.client)
            return data

    def set_session(self, *, session_type: int | None = None, phase: int | None = None,
                    replay_playing: bool | None = None) -> None:
        """Change what the next REALTIME_UPDATEs say: session type, phase (0..8), replay playing."""
        with self._lock:
            if session_type is not None:
                self.session_type = session_type
            if phase is not None:
                self.session_phase = phase
            if replay_playing is not None:
                self.replay_playing = replay_playing

    def set_focus(self, car_index: int) -> None:
        with self._lock:
            self.focused_car_index = car_index

    @property
    def registered(self) -> bool:
        return self.client is not None

    def wait_for(self, predicate, timeout: float = 5.0, poll: float = 0.002) -> bool:
        """Poll ``predicate()`` until it is true or ``timeout`` seconds pass; returns its last value."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                ok = predicate()
            if ok or time.monotonic() > deadline:
                return bool(ok)
            time.sleep(poll)

    def step_ms(self) -> int:
        """Session milliseconds per tick."""
        if self._fixed_step is not None:
            return self._fixed_step
        return max(1, int(round(self.interval_ms * self.time_scale)))

    # -- the loop ---------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                streaming = self.client is not None and not self.quiet
                wait = max(0.0, self._next_tick - time.monotonic()) if streaming else 0.02
            readable, _, _ = select.select([self.sock], [], [], min(wait, 0.02))
            if readable:
                try:
                    data, addr = self.sock.recvfrom(65535)
                except OSError:
                    continue
                with self._lock:
                    self._handle(data, addr)
            with self._lock:
                if self.client is not None and not self.quiet and time.monotonic() >= self._next_tick:
                    self._tick()
                    self._next_tick = max(self._next_tick + self.interval_ms / 1000,
                                          time.monotonic() - self.interval_ms / 1000)

    def _send(self, data: bytes, addr: tuple[str, int]) -> None:
        self.sent.append(data)
        self.sent_log.append((addr, data))
        try:
            self.sock.sendto(data, addr)
        except OSError:
            self.counts["send_error"] += 1

    # -- inbound ----------------------------------------------------------------------------------

    def _log(self, kind: str) -> None:
        self.counts[kind] += 1
        self.received_log.append((self.tick, kind))

    def _handle(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.quiet:
            self._log("ignored_while_quiet")
            return
        try:
            self._dispatch(Reader(data), addr)
        except (ValueError, UnicodeDecodeError):
            self._log("garbage")

    def _dispatch(self, r: Reader, addr: tuple[str, int]) -> None:
        kind = r.u8()
        if kind == REGISTER_COMMAND_APPLICATION:
            self._register(r, addr)
            return
        names = {UNREGISTER_COMMAND_APPLICATION: "unregister", REQUEST_ENTRY_LIST: "entry_list",
                 REQUEST_TRACK_DATA: "track_data", CHANGE_HUD_PAGE: "change_hud_page", CHANGE_FOCUS: "change_focus",
                 INSTANT_REPLAY_REQUEST: "instant_replay"}
        if kind not in names:
            raise ValueError(f"unknown message type {kind}")
        connection_id = r.s32()
        if addr != self.client:
            self._log("not_registered")
            return
        if connection_id != self.connection_id:
            self._log("wrong_connection_id")
            return
        self._log(names[kind])
        if kind == UNREGISTER_COMMAND_APPLICATION:
            self.client = None
        elif kind == REQUEST_ENTRY_LIST:
            self._send_entry_list(addr)
        elif kind == REQUEST_TRACK_DATA:
            self._send(self.track_data_bytes(), addr)
        elif kind == CHANGE_FOCUS:
            self._change_focus(r)

    def _change_focus(self, r: Reader) -> None:
        if r.u8():
            index = r.u16()
            if not self.readonly and any(c.index == index for c in self.cars):
                self.focused_car_index = index

    def _register(self, r: Reader, addr: tuple[str, int]) -> None:
        version, name, password, interval, command = r.u8(), r.string(), r.string(), r.s32(), r.string()
        self.last_registration = dict(version=version, display_name=name, password=password,
                                      interval_ms=interval, command_password=command)
        error = ""
        if password != self.password:
            error = WRONG_PASSWORD_MESSAGE
        elif version not in (3, 4):
            error = BAD_VERSION_MESSAGE
        elif interval <= 0:
            error = "Invalid realtime update interval"
        if error:
            self._log("register_refused")
            self._send(encode_registration_result(-1, False, True, error), addr)
            return
        self._log("register")
        self.registrations += 1
        self.client, self.client_version, self.interval_ms = addr, version, interval
        self.readonly = not (self.command_password and command == self.command_password)
        self._send(encode_registration_result(self.connection_id, True, self.readonly, ""), addr)
        self._next_tick = time.monotonic() + interval / 1000

    # -- outbound ---------------------------------------------------------------------------------

    def speaking_version(self) -> int:
        return self.version if self.version is not None else self.client_version

    def _send_entry_list(self, addr: tuple[str, int]) -> None:
        indexes = [c.index for c in self.cars]
        self.entry_lists_sent.append(indexes)
        self._send(encode_entry_list(self.connection_id, indexes), addr)
        for car in self.cars:
            self._send(encode_entry_list_car(car.entry, self.speaking_version()), addr)

    def track_data_bytes(self) -> bytes:
        return encode_track_data(self.connection_id, self.track_name, self.track_id, self.track_meters,
                                 self.camera_sets, self.hud_pages)

    def _tick(self) -> None:
        """Advance the session one step and send its datagrams (see the module docstring for order)."""
        self.tick += 1
        before = self.session_ms
        self.session_ms += self.step_ms()
        events = [lap for car in self.cars for lap in self._complete_laps(car, before)]
        updates = [self.car_update(car) for car in self._with_positions()]
        self._send(encode_realtime_update(self.realtime_update()), self.client)
        for update in updates:
            self._send(encode_car_update(update), self.client)
        for lap in events:
            self._send_lap_events(lap)

    def _complete_laps(self, car: Car, before_ms: int) -> list[CompletedLap]:
        """The laps of ``car`` that ended in (before_ms, session_ms], appended to the ground truth."""
        if self.session_ms <= car.start_ms:
            return []
        done_before = car.lap_at(max(0, before_ms - car.start_ms), self.lap_ms)[0] - 1
        done_now = car.lap_at(self.session_ms - car.start_ms, self.lap_ms)[0] - 1
        laps = [self._lap_record(car, n) for n in range(done_before + 1, done_now + 1)]
        self.completed_laps.extend(laps)
        return laps

    def _lap_record(self, car: Car, lap: int) -> CompletedLap:
        splits = car.sectors(lap, self.lap_ms)
        return CompletedLap(car.index, car.slot, lap, sum(splits), splits, *lap_flags(lap_kind(car.slot, lap)),
                            end_session_ms=car.start_ms + car.lap_ends[lap - 1], tick=self.tick,
                            driver_index=car.entry.current_driver_index)

    def _send_lap_events(self, lap: CompletedLap) -> None:
        short = self._car(lap.car_index).entry.drivers[0].short_name
        self._send(encode_broadcasting_event(EVENT_LAP_COMPLETED, f"{short} completed lap {lap.lap}",
                                             lap.lap_time_ms, lap.car_index), self.client)
        if not lap.is_valid_for_best:
            return
        session_best = [x.lap_time_ms for x in self.completed_laps if x.is_valid_for_best and x is not lap
                        and x.end_session_ms <= lap.end_session_ms]
        own_best = [x.lap_time_ms for x in self.completed_laps if x.is_valid_for_best and x is not lap
                    and x.car_index == lap.car_index and x.end_session_ms <= lap.end_session_ms]
        if not session_best or lap.lap_time_ms < min(session_best):
            self._send(encode_broadcasting_event(EVENT_BEST_SESSION_LAP, f"{short} best session lap",
                                                 lap.lap_time_ms, lap.car_index), self.client)
        elif not own_best or lap.lap_time_ms < min(own_best):
            self._send(encode_broadcasting_event(EVENT_BEST_PERSONAL_LAP, f"{short} personal best",
                                                 lap.lap_time_ms, lap.car_index), self.client)

    def _car(self, index: int) -> Car:
        return next(c for c in self.cars if c.index == index)

    # -- values of the current tick ---------------------------------------------------------------

    def _progress(self, car: Car) -> tuple[int, int, int, int, float]:
        """(laps completed, lap being driven, sector 0..2, ms into the lap, spline 0..1) now."""
        lap, within = car.lap_at(max(0, self.session_ms - car.start_ms), self.lap_ms)
        sectors = car.sectors(lap, self.lap_ms)
        j, t = 0, within
        while j < 2 and t >= sectors[j]:
            t -= sectors[j]
            j += 1
        return lap - 1, lap, j, within, (j + t / sectors[j]) / 3.0

    def _with_positions(self) -> list[Car]:
        """The field in order (cars are updated in field order, positions computed alongside)."""
        progress = {c.index: self._progress(c) for c in self.cars}
        official = sorted(self.cars, key=lambda c: (-progress[c.index][0], -progress[c.index][4], c.slot))
        on_track = sorted(self.cars, key=lambda c: (-progress[c.index][4], c.slot))
        self._positions = {c.index: (official.index(c) + 1, on_track.index(c) + 1) for c in self.cars}
        self._cup = {}
        for cup in {c.entry.cup_category for c in self.cars}:
            same = [c for c in official if c.entry.cup_category == cup]
            self._cup.update({c.index: same.index(c) + 1 for c in same})
        return list(self.cars)

    def best_lap_of(self, car_index: int | None = None) -> CompletedLap | None:
        """The best lap valid for best so far, of one car or (None) of the whole session."""
        laps = [x for x in self.completed_laps if x.is_valid_for_best
                and (car_index is None or x.car_index == car_index)]
        return min(laps, key=lambda x: (x.lap_time_ms, x.end_session_ms)) if laps else None

    @staticmethod
    def lap_info(lap: CompletedLap | None, car_index: int) -> LapInfo:
        if lap is None:
            return LapInfo.none(car_index)
        return LapInfo(lap.lap_time_ms, lap.car_index, lap.driver_index, lap.splits_ms, lap.is_invalid,
                       lap.is_valid_for_best, lap.is_outlap, lap.is_inlap)

    def car_update(self, car: Car) -> CarUpdate:
        laps_done, lap, j, within, spline = self._progress(car)
        sectors = car.sectors(lap, self.lap_ms)
        kmh = round(self.track_meters / 3 / (sectors[j] / 1000) * 3.6)
        radius = self.track_meters / (2 * math.pi)
        angle = 2 * math.pi * spline
        mine = [x for x in self.completed_laps if x.car_index == car.index]
        best = self.best_lap_of(car.index)
        current_splits = tuple(sectors[k] if k < j else NONE_MS for k in range(3))
        driver = car.entry.current_driver_index
        current = LapInfo(within, car.index, driver, current_splits, *lap_flags(lap_kind(car.slot, lap)))
        delta = within - round(best.lap_time_ms * spline) if best else 0
        position, track_position = self._positions[car.index]
        return CarUpdate(car.index, driver, len(car.entry.drivers), 2 + min(6, 1 + kmh // 45),
                         radius * math.cos(angle), radius * math.sin(angle), angle + math.pi / 2,
                         self._location(car, lap, j, spline), kmh, position, self._cup[car.index], track_position,
                         spline, laps_done, delta, self.lap_info(best, car.index),
                         self.lap_info(mine[-1] if mine else None, car.index), current)

    def _location(self, car: Car, lap: int, sector: int, spline: float) -> int:
        kind, frac = lap_kind(car.slot, lap), spline * 3 - sector
        if kind == "out" and sector == 0:
            return LOC_PITLANE if frac < 0.5 else LOC_PIT_EXIT if frac < 0.7 else LOC_TRACK
        if kind == "in" and sector == 2:
            return LOC_TRACK if frac < 0.5 else LOC_PIT_ENTRY if frac < 0.7 else LOC_PITLANE
        return LOC_TRACK

    def realtime_update(self) -> RealtimeUpdate:
        best = self.best_lap_of(None)
        replay = (float(max(0, self.session_ms - 10_000)), 10_000.0) if self.replay_playing else None
        return RealtimeUpdate(0, 0, self.session_type, self.session_phase, float(self.session_ms),
                              float(max(0, self.session_length_ms - self.session_ms)), self.focused_car_index,
                              "Drivable", "Chase", "Basic HUD", float(14 * 3_600_000 + self.session_ms),
                              22, 29, 2, 0, 0, self.lap_info(best, best.car_index if best else self.focused_car_index),
                              replay)
