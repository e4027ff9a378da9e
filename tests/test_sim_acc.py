"""The simulator as ACC's broadcasting side (rt/sim/acc.py), over real UDP on 127.0.0.1.

What the server sends is decoded with the independent reference decoder (tests/reference_acc.py)
only; the requests are built here from PROTOCOLS.md §5. Fast-forwarded (``speed``) so laps complete
within a second or two; the game clock is gated on the registration where a test needs every lap.
"""

from __future__ import annotations

import math
import os
import socket
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from reference_acc import AccDecodeError, decode_acc
from rigs import free_udp_port, wait_until
from rt.replay import guess_feed
from rt.sim.acc import PLAYER_CAR, WRONG_PASSWORD, AccServer, replay_server
from rt.sim.track import TRACKS
from rt.store.rawfile import HEADER, MAGIC

CARS = 6
SPEED = 200.0  # game seconds per second: a lap of the test ring (~87 s) in under half a second


def _text(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("<H", len(raw)) + raw


def register(password: str, interval_ms: int = 10, command_password: str = "", version: int = 4) -> bytes:
    return (struct.pack("<BB", 1, version) + _text("rt tests") + _text(password) + struct.pack("<i", interval_ms)
            + _text(command_password))


def request(kind: int, connection_id: int) -> bytes:
    return struct.pack("<Bi", kind, connection_id)


UNREGISTER, ENTRY_LIST, TRACK_DATA = 9, 10, 11


class Client:
    """A broadcasting client's socket: sends requests, collects what the server sends (decoded)."""

    def __init__(self, port: int, version: int = 4) -> None:
        self.addr = ("127.0.0.1", port)
        self.version = version
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.raw: list[bytes] = []
        self.messages: list[dict] = []

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.addr)

    def collect(self, done, timeout: float = 20.0) -> list[dict]:
        """Receive until ``done(messages)`` holds (a deadline only fails the test)."""
        deadline = time.monotonic() + timeout
        while not done(self.messages):
            assert time.monotonic() < deadline, f"not done after {len(self.messages)} messages"
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            self.raw.append(data)
            self.messages.append(decode_acc(data, self.version))
        return self.messages

    def pending(self) -> list[bytes]:
        """What is already in the socket's buffer (loopback delivers within sendto)."""
        self.sock.setblocking(False)
        out = []
        try:
            while True:
                out.append(self.sock.recv(4096))
        except BlockingIOError:
            return out
        finally:
            self.sock.settimeout(0.2)

    def close(self) -> None:
        self.sock.close()


def of_type(messages: list[dict], t: int) -> list[dict]:
    return [m for m in messages if m["msg_type"] == t]


@pytest.fixture
def servers():
    made: list = []

    def make(**kw) -> AccServer:
        kw.setdefault("speed", SPEED)
        server = AccServer("127.0.0.1", 0, kw.pop("password", "asd"), kw.pop("command_password", ""), **kw)
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def clients():
    made: list[Client] = []

    def make(port: int, version: int = 4) -> Client:
        made.append(Client(port, version))
        return made[-1]

    yield make
    for client in made:
        client.close()


def cycles(messages: list[dict]) -> list[tuple[dict, list[dict]]]:
    """(realtime update, the car updates after it) per complete interval, events left out."""
    out: list[tuple[dict, list[dict]]] = []
    for m in messages:
        if m["msg_type"] == 2:
            out.append((m, []))
        elif m["msg_type"] == 3 and out:
            out[-1][1].append(m)
    return out[:-1]  # the last may be cut short


# ---- registration --------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_with_a_message_and_nothing_else(servers, clients):
    server = servers(password="right").start()
    client = clients(server.port)
    client.send(register("wrong"))
    client.collect(lambda ms: len(ms) >= 1)
    client.send(register("right"))
    msgs = client.collect(lambda ms: len(ms) >= 2)
    refusal, accepted = msgs[0], msgs[1]
    assert refusal["msg_name"] == "REGISTRATION_RESULT" and refusal["connection_success"] == 0
    assert refusal["error_message"] == WRONG_PASSWORD
    # nothing was streamed to the refused client before it registered with the right password
    assert accepted["msg_name"] == "REGISTRATION_RESULT" and accepted["connection_success"] == 1
    assert accepted["error_message"] == "" and accepted["connection_id"] == server.connection_id
    assert server.refused == 1 and server.registrations == 1 and server.registered.is_set()


def test_the_command_password_decides_the_readonly_flag_and_each_server_has_its_own_id(servers, clients):
    server = servers(command_password="cmd").start()
    other = servers(command_password="cmd").start()
    flags = []
    for sent in ("cmd", "nope"):
        client = clients(server.port)
        client.send(register("asd", command_password=sent))
        flags.append(client.collect(lambda ms: len(ms) >= 1)[0]["is_readonly"])
    assert flags == [1, 0]
    client = clients(other.port)
    client.send(register("asd"))
    assert client.collect(lambda ms: len(ms) >= 1)[0]["connection_id"] == other.connection_id != server.connection_id
    assert servers(connection_id=77).connection_id == 77


def test_after_registering_every_interval_brings_a_realtime_update_then_one_update_per_car(servers, clients):
    server = servers(cars=CARS).start()
    client = clients(server.port)
    client.send(register("asd", interval_ms=20))
    msgs = client.collect(lambda ms: len(of_type(ms, 2)) >= 12)
    assert msgs[0]["msg_name"] == "REGISTRATION_RESULT"
    seen = cycles(msgs[1:])
    assert len(seen) >= 10
    times = []
    for realtime, cars in seen:
        assert realtime["focused_car_index"] == PLAYER_CAR and realtime["session_phase"] == 5
        assert realtime["session_type"] in (0, 10) and realtime["is_replay_playing"] == 0
        assert len(cars) == CARS and len({c["car_index"] for c in cars}) == CARS and PLAYER_CAR in {c["car_index"] for c in cars}
        assert sorted(c["track_position"] for c in cars) == list(range(1, CARS + 1))
        assert sorted(c["position"] for c in cars) == list(range(1, CARS + 1))
        times.append(realtime["session_time_ms"])
    assert times == sorted(times) and times[-1] > times[0]


# ---- entry list, track data, malformed requests ------------------------------------------------------


@pytest.mark.parametrize("version", [3, 4])
def test_entry_list_and_track_data_on_request_in_the_servers_protocol_version(servers, clients, version):
    server = servers(cars=CARS, protocol_version=version).start()
    client = clients(server.port, version)
    client.send(register("asd", interval_ms=1000))
    connection = client.collect(lambda ms: len(ms) >= 1)[0]["connection_id"]
    client.send(request(ENTRY_LIST, connection))
    client.send(request(TRACK_DATA, connection))
    msgs = client.collect(lambda ms: of_type(ms, 5) and len(of_type(ms, 6)) >= CARS)
    entry_list = of_type(msgs, 4)
    assert len(entry_list) == 1 and entry_list[0]["connection_id"] == connection
    cars = of_type(msgs, 6)
    assert [c["car_index"] for c in cars] == entry_list[0]["car_indices"] and entry_list[0]["car_count"] == CARS
    for car in cars:
        assert car["team_name"] and car["race_number"] > 0 and 1 <= car["driver_count"] == len(car["drivers"])
        assert all(d["first_name"] and d["last_name"] and d["short_name"] for d in car["drivers"])
        assert (car["car_nationality"] is None) == (version == 3)
    # the other version's form does not parse: the two forms really differ
    raw_car = next(d for d in client.raw if d[0] == 6)
    with pytest.raises(AccDecodeError):
        decode_acc(raw_car, 7 - version)
    (track,) = of_type(msgs, 5)
    assert track["connection_id"] == connection and track["track_name"] == TRACKS["test_ring"].name
    assert track["track_meters"] == round(TRACKS["test_ring"].length_m)
    assert track["camera_set_count"] >= 2 and all(s["cameras"] for s in track["camera_sets"]) and track["hud_pages"]
    assert server.entry_list_requests == 1 and server.track_data_requests == 1


def test_malformed_and_foreign_requests_are_ignored_and_the_server_carries_on(servers, clients):
    server = servers().start()
    client = clients(server.port)
    client.send(register("asd", interval_ms=1000))
    connection = client.collect(lambda ms: len(ms) >= 1)[0]["connection_id"]
    for junk in (b"", b"\x01\x04", register("asd")[:-3], b"\x01\x04\x02\x00\xff\xfe", b"\x63" * 9,
                 request(TRACK_DATA, connection + 1), request(TRACK_DATA, connection)[:3]):
        client.send(junk)
    stranger = clients(server.port)
    stranger.send(request(TRACK_DATA, connection))  # not registered from there
    client.send(request(TRACK_DATA, connection))
    client.collect(lambda ms: of_type(ms, 5))
    wait_until(lambda: server.ignored == 8)
    assert server.track_data_requests == 1 and server.refused == 0


# ---- laps ----------------------------------------------------------------------------------------


def _expected_events(laps) -> list[tuple[int, int, int]]:
    """What ACC's events should say of these laps: lap completed, then a session or personal best."""
    out, best, session = [], {}, None
    for lap in laps:
        out.append((5, lap.car_index, lap.lap_ms))
        if lap.is_invalid or lap.is_outlap or lap.is_inlap or lap.lap_ms >= best.get(lap.car_index, math.inf):
            continue
        best[lap.car_index] = lap.lap_ms
        if session is None or lap.lap_ms < session:
            session = lap.lap_ms
            out.append((6, lap.car_index, lap.lap_ms))
        else:
            out.append((7, lap.car_index, lap.lap_ms))
    return out


def test_lap_records_are_exact_to_the_ms_and_agree_with_the_ground_truth_and_the_events(servers, clients):
    server = servers(cars=CARS)
    server.gate = lambda sent: server.registered.is_set()  # the session starts with the client
    server.start()
    client = clients(server.port)
    client.send(register("asd", interval_ms=10))

    def enough(ms):  # the player's 4th lap (invalid) done, and an in-lap of another car
        last = [m["last_lap"] for m in ms if m["msg_type"] == 3 and m["last_lap"]["laptime_ms"] is not None]
        return any(lap["is_inlap"] for lap in last) and any(m["car_index"] == PLAYER_CAR and m["laps"] >= 4 for m in of_type(ms, 3))

    msgs = client.collect(enough)
    server.stop()
    truth = {(lap.car_index, lap.lap): lap for lap in server.completed_laps}

    seen: dict[tuple[int, int], dict] = {}
    current: dict[tuple[int, int], tuple[dict, float]] = {}  # (car, lap) → its last currentLap seen, at session time
    closed: dict[tuple[int, int], float] = {}  # (car, lap) → session time of the first update showing it done
    session_ms = 0.0
    for m in msgs:
        if m["msg_type"] == 2:
            session_ms = m["session_time_ms"]
        if m["msg_type"] != 3:
            continue
        car, last, cur = m["car_index"], m["last_lap"], m["current_lap"]
        for record in (last, cur, m["best_session_lap"]):
            assert record["split_count"] == 3
        current[(car, m["laps"] + 1)] = (cur, session_ms)
        closed.setdefault((car, m["laps"]), session_ms)
        if last["laptime_ms"] is None:
            assert m["laps"] == 0 and last["splits"] == [None] * 3
            continue
        assert sum(last["splits"]) == last["laptime_ms"]
        assert last["is_valid_for_best"] == int(not (last["is_invalid"] or last["is_outlap"] or last["is_inlap"]))
        seen[(car, m["laps"])] = last

    assert seen and set(seen) <= set(truth)
    for key, last in seen.items():
        lap = truth[key]
        assert (last["laptime_ms"], tuple(last["splits"])) == (lap.lap_ms, lap.splits_ms)
        assert (last["is_invalid"], last["is_outlap"], last["is_inlap"]) == (lap.is_invalid, lap.is_outlap, lap.is_inlap)
        # the current lap as last shown before it ended: its splits so far exact, its time short of
        # the lap's by at most the session time until the update that showed the lap done
        cur, at_ms = current[key]
        done = [s for s in cur["splits"] if s is not None]
        assert tuple(done) == lap.splits_ms[: len(done)]
        assert 0 <= lap.lap_ms - cur["laptime_ms"] <= closed[key] - at_ms + 1
    flags = [(lap.is_outlap, lap.is_invalid, lap.is_inlap) for lap in map(truth.get, seen)]
    assert any(f[0] for f in flags) and any(f[1] for f in flags) and any(f[2] for f in flags)
    assert truth[(PLAYER_CAR, 1)].is_outlap and truth[(PLAYER_CAR, 4)].is_invalid

    # the player's laps are the simulation's own, rounded to the ms
    sim = server.field.sim.truth
    player = [lap for lap in server.completed_laps if lap.car_index == PLAYER_CAR]
    assert [lap.lap_ms for lap in player] == [round(t * 1000) for t in sim.lap_times_s[: len(player)]]
    assert [lap.splits_ms[0] for lap in player] == [round(s[0] * 1000) for s in sim.sector_times_s[: len(player)]]

    # the events: one "lap completed" per lap in completion order, then a best lap where it is one
    events = [(m["event_type"], m["car_id"], m["time_ms"]) for m in of_type(msgs, 7)]
    completions = sum(1 for e in events if e[0] == 5)
    assert events == _expected_events(server.completed_laps[:completions])[: len(events)]
    assert {e[0] for e in events} >= {5, 6}

    # the best lap a car update carries is the car's best valid lap so far
    final = cycles(msgs)[-1][1]
    for m in final:
        valid = [lap.lap_ms for lap in server.completed_laps
                 if lap.car_index == m["car_index"] and lap.lap <= m["laps"]
                 and not (lap.is_invalid or lap.is_outlap or lap.is_inlap)]
        assert m["best_session_lap"]["laptime_ms"] == (min(valid) if valid else None)


def test_without_padding_a_lap_record_carries_only_the_splits_it_has(servers, clients):
    server = servers(pad_splits=False).start()
    client = clients(server.port)
    client.send(register("asd"))
    msgs = client.collect(lambda ms: any(m["msg_type"] == 3 and m["current_lap"]["split_count"] == 2 for m in ms))
    counts = {m["current_lap"]["split_count"] for m in of_type(msgs, 3)}
    assert {0, 1, 2} <= counts and all(s is not None for m in of_type(msgs, 3) for s in m["current_lap"]["splits"])


def test_unregistering_stops_the_stream(servers, clients):
    server = servers().start()
    first, second = clients(server.port), clients(server.port)
    first.send(register("asd"))
    connection = first.collect(lambda ms: len(of_type(ms, 2)) >= 2)[0]["connection_id"]
    first.send(request(UNREGISTER, connection))
    wait_until(lambda: server.unregistered == 1)
    first.pending()  # what was sent before the server heard the request
    second.send(register("asd"))
    second.collect(lambda ms: len(of_type(ms, 2)) >= 20)
    assert first.pending() == []


# ---- the world frame -----------------------------------------------------------------------------


def _signed_area(x: np.ndarray, z: np.ndarray) -> float:
    return 0.5 * float(np.sum(x * np.roll(z, -1) - np.roll(x, -1) * z))


def test_world_positions_and_yaw_are_in_accs_frame_and_every_car_moves_along_its_lap(servers, clients):
    server = servers(cars=CARS).start()
    client = clients(server.port)
    client.send(register("asd"))
    msgs = client.collect(lambda ms: sum(1 for m in of_type(ms, 3) if m["car_index"] == PLAYER_CAR and m["laps"] == 2) >= 1)
    track = TRACKS["test_ring"]
    updates = of_type(msgs, 3)
    for m in updates:
        s = m["spline_position"] * track.length_m
        x, z = track.xz(s)
        th = track.heading(s)
        # canonical (x, z) = (worldPosX, -worldPosY): on the track, within the cars' 1.5 m lines
        assert math.hypot(m["world_pos_x_m"] - x, -m["world_pos_y_m"] - z) < 1.6
        # the yaw is the heading in ACC's X-Y plane, where the tangent (cos θ, sin θ) is (cos θ, -sin θ)
        assert math.cos(m["yaw_rad"]) == pytest.approx(math.cos(th), abs=1e-3)
        assert math.sin(m["yaw_rad"]) == pytest.approx(-math.sin(th), abs=1e-3)
        assert 0.0 <= m["spline_position"] < 1.0 and m["car_location"] in (1, 2)
        assert m["gear_raw"] >= 1 and (m["kmh"] > 0) == (m["gear"] >= 1)
    # over the player's lap 2 the path has the orientation of the track's own (x, z) path
    lap = [m for m in updates if m["car_index"] == PLAYER_CAR and m["laps"] == 1]
    px = np.array([m["world_pos_x_m"] for m in lap])
    pz = -np.array([m["world_pos_y_m"] for m in lap])
    s = np.linspace(0.0, track.length_m, 400, endpoint=False)
    tx, tz = track.xz(s)
    assert len(lap) >= 10 and np.sign(_signed_area(px, pz)) == np.sign(_signed_area(np.asarray(tx), np.asarray(tz))) != 0
    # each car's spline only grows within a lap, and the lap count grows by one as it wraps
    for car in {m["car_index"] for m in updates}:
        mine = [(m["laps"], m["spline_position"]) for m in updates if m["car_index"] == car]
        for (laps0, s0), (laps1, s1) in zip(mine, mine[1:]):
            assert (laps1 == laps0 and s1 >= s0) or (laps1 == laps0 + 1 and s1 < s0 + 0.5)


# ---- the commands --------------------------------------------------------------------------------


def test_simulate_game_acc_answers_a_registration():
    port = free_udp_port()
    env = {**os.environ, "RUSTY_TELEMETRY_ACC_PASSWORD": "sim-pw"}
    proc = subprocess.Popen([sys.executable, "-m", "rt", "simulate", "--game", "acc", "--port", str(port), "--seconds", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    client = Client(port)
    try:
        assert "Assetto Corsa Competizione" in proc.stdout.readline()  # bound: it listens
        client.send(register("sim-pw", interval_ms=50))
        msgs = client.collect(lambda ms: len(of_type(ms, 2)) >= 2)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        client.close()
    assert proc.returncode == 0, err
    assert msgs[0]["msg_name"] == "REGISTRATION_RESULT" and msgs[0]["connection_success"] == 1
    assert len(cycles(msgs[1:])[0][1]) == CARS
    assert "sent" in out


def _record(server: AccServer, cycles_wanted: int = 30) -> tuple[np.ndarray, list[bytes]]:
    """A session as the acc feed records it: registration result, entry list, track data, the stream."""
    client = Client(server.port)
    try:
        client.send(register("asd", interval_ms=10))
        connection = client.collect(lambda ms: len(ms) >= 1)[0]["connection_id"]
        client.send(request(ENTRY_LIST, connection))
        client.send(request(TRACK_DATA, connection))
        client.collect(lambda ms: len(of_type(ms, 2)) >= cycles_wanted and of_type(ms, 5) and len(of_type(ms, 6)) == CARS)
    finally:
        client.close()
    times = 1_700_000_000_000_000_000 + np.arange(len(client.raw), dtype=np.int64) * 2_000_000
    return times, client.raw


def _write_raw(path, times: np.ndarray, payloads: list[bytes]) -> None:
    with path.open("wb") as fh:
        fh.write(MAGIC)
        for t, p in zip(times, payloads):
            fh.write(HEADER.pack(int(t), len(p)) + p)


def test_a_replay_answers_the_registration_and_requests_and_streams_the_recording(servers, clients):
    times, payloads = _record(servers(cars=CARS).start())
    assert guess_feed(payloads) == "acc"
    recorded_id = struct.unpack_from("<i", payloads[0], 1)[0]
    server = replay_server(times, payloads, "127.0.0.1", 0, "asd", speed=20.0)
    server.gate = lambda sent: False  # the recording's clock stands still until the requests are answered
    server.start()
    try:
        client = clients(server.port)
        client.send(register("nope"))
        client.send(register("asd"))
        msgs = client.collect(lambda ms: len(ms) >= 3)  # refusal, a fresh result, the first recorded datagram
        assert msgs[0]["connection_success"] == 0 and msgs[0]["error_message"] == WRONG_PASSWORD
        assert msgs[1]["connection_success"] == 1 and msgs[1]["connection_id"] == recorded_id
        client.send(request(ENTRY_LIST, recorded_id))
        client.send(request(TRACK_DATA, recorded_id))
        client.collect(lambda ms: len(ms) >= 3 + 1 + CARS + 1)
        server.gate = None
        stream = [p for p in payloads if p[0] != 1]
        client.collect(lambda ms: len(ms) >= 2 + len(stream) + 1 + CARS + 1)
    finally:
        server.stop()
    recorded_list = [p for p in payloads if p[0] in (4, 6)][-1 - CARS:]
    recorded_track = [p for p in payloads if p[0] == 5]
    assert client.raw[2:] == stream[:1] + recorded_list + recorded_track + stream[1:]
    assert server.source.done and server.entry_list_requests == 1 and server.track_data_requests == 1


def test_replay_command_plays_accs_side_of_an_acc_recording(servers, tmp_path):
    times, payloads = _record(servers(cars=CARS).start(), cycles_wanted=10)
    path = tmp_path / "acc.bin"
    _write_raw(path, times, payloads)
    port = free_udp_port()
    env = {**os.environ, "RUSTY_TELEMETRY_ACC_PASSWORD": "asd"}
    proc = subprocess.Popen([sys.executable, "-m", "rt", "replay", str(path), "--port", str(port), "--speed", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    client = Client(port)
    stream = [p for p in payloads if p[0] != 1]
    try:
        assert "waiting for a registration" in proc.stdout.readline()  # the feed was guessed: acc
        client.send(register("asd"))
        client.collect(lambda ms: len(ms) >= 1 + len(stream))
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        client.close()
    assert proc.returncode == 0, err
    assert client.raw[1:] == stream and f"sent {len(stream) + 1} datagrams" in out
