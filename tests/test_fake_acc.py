"""The fake ACC itself (tests/fake_acc.py), checked over real UDP by a tiny client written here with
``struct`` straight from PROTOCOLS.md §5: its own parsers, not the fake's encoders, read every reply."""

from __future__ import annotations

import math
import socket
import struct
import time

import pytest

from fake_acc import EVENT_PENALTY, EVENT_SESSION_OVER, FakeAcc, free_udp_port, lap_kind

INT32_MAX = 2**31 - 1


# -- a tiny client: struct only ---------------------------------------------------------------------

def s(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<H", len(data)) + data


def register_bytes(password="asd", interval_ms=10, version=4, name="pytest", command=""):
    return struct.pack("<BB", 1, version) + s(name) + s(password) + struct.pack("<i", interval_ms) + s(command)


class Cursor:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def string(self) -> str:
        n = self.take("H")
        text = self.data[self.pos:self.pos + n].decode("utf-8")
        assert len(self.data) >= self.pos + n
        self.pos += n
        return text

    def lap(self) -> dict:
        time_ms, car, driver, n = self.take("iHHB")
        splits = [self.take("i") for _ in range(n)]
        invalid, valid_best, outlap, inlap = self.take("BBBB")
        return dict(lap_time_ms=time_ms, car_index=car, driver_index=driver, splits=splits, is_invalid=invalid,
                    is_valid_for_best=valid_best, is_outlap=outlap, is_inlap=inlap)

    def done(self) -> bool:
        return self.pos == len(self.data)


def parse_registration(d: bytes) -> dict:
    c = Cursor(d)
    kind, conn, success, flag = c.take("BiBB")
    out = dict(type=kind, connection_id=conn, success=success, readonly=flag == 0, error=c.string())
    assert c.done()
    return out


def parse_entry_list(d: bytes) -> tuple[int, list[int]]:
    c = Cursor(d)
    assert c.take("B") == 4
    conn, n = c.take("iH")
    cars = [c.take("H") for _ in range(n)]
    assert c.done()
    return conn, cars


def parse_entry_list_car(d: bytes, version: int) -> dict:
    c = Cursor(d)
    assert c.take("B") == 6
    car = dict(car_index=c.take("H"), model=c.take("B"), team=c.string())
    car.update(race_number=c.take("i"), cup=c.take("B"), current_driver=c.take("B"))
    car["nationality"] = c.take("H") if version >= 4 else None
    drivers = []
    for _ in range(c.take("B")):
        first, last, short, category = c.string(), c.string(), c.string(), c.take("B")
        nationality = c.take("H") if version >= 4 else None
        drivers.append((first, last, short, category, nationality))
    car["drivers"] = drivers
    assert c.done(), "trailing bytes: wrong version?"
    return car


def parse_track_data(d: bytes) -> dict:
    c = Cursor(d)
    assert c.take("B") == 5
    out = dict(connection_id=c.take("i"), name=c.string(), track_id=c.take("i"), meters=c.take("i"))
    sets = {}
    for _ in range(c.take("B")):
        name = c.string()
        sets[name] = [c.string() for _ in range(c.take("B"))]
    out["camera_sets"] = sets
    out["hud_pages"] = [c.string() for _ in range(c.take("B"))]
    assert c.done()
    return out


def parse_realtime(d: bytes) -> dict:
    c = Cursor(d)
    assert c.take("B") == 2
    event, session, stype, phase, t, end, focus = c.take("HHBBffi")
    cameras = (c.string(), c.string(), c.string())
    replay = c.take("ff") if c.take("B") else None
    tod, ambient, track, clouds, rain, wet = c.take("fBBBBB")
    best = c.lap()
    assert c.done()
    return dict(session_type=stype, phase=phase, session_ms=t, end_ms=end, focused=focus, cameras=cameras,
                time_of_day=tod, ambient=ambient, track_temp=track, best=best, replay=replay)


CAR_HEAD = "BHHBBfffBHHHHfHi"
CAR_KEYS = ("type car_index driver_index driver_count gear x y yaw location kmh position cup_position "
            "track_position spline laps delta").split()


def parse_car(d: bytes) -> dict:
    c = Cursor(d)
    car = dict(zip(CAR_KEYS, c.take(CAR_HEAD)))
    assert c.pos == 38 and car["type"] == 3
    car.update(best=c.lap(), last=c.lap(), current=c.lap())
    assert c.done()
    return car


def parse_event(d: bytes) -> dict:
    c = Cursor(d)
    assert c.take("B") == 7
    kind, message = c.take("B"), c.string()
    time_ms, car = c.take("ii")
    assert c.done()
    return dict(kind=kind, message=message, time_ms=time_ms, car=car)


class Client:
    """A raw UDP client that keeps every datagram it receives, in order."""

    def __init__(self, fake: FakeAcc):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.to = fake.address
        self.got: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.to)

    def request(self, kind: int, connection_id: int) -> None:
        self.send(struct.pack("<Bi", kind, connection_id))

    def until(self, predicate, timeout: float = 3.0) -> list[bytes]:
        """Receive until ``predicate(self.got)`` holds (fails at the deadline)."""
        deadline = time.monotonic() + timeout
        while not predicate(self.got):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out with {len(self.got)} datagrams"
            self.sock.settimeout(left)
            try:
                self.got.append(self.sock.recv(65535))
            except socket.timeout:
                pass
        return self.got

    def quiet_for(self, seconds: float) -> list[bytes]:
        """What arrives in ``seconds`` (for checks that nothing does)."""
        extra, deadline = [], time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                extra.append(self.sock.recv(65535))
            except socket.timeout:
                break
        self.got += extra
        return extra

    def close(self) -> None:
        self.sock.close()


def of_type(got: list[bytes], kind: int) -> list[bytes]:
    return [d for d in got if d and d[0] == kind]


@pytest.fixture
def make():
    made = []

    def _make(**kw):
        kw.setdefault("lap_ms", 3000)
        kw.setdefault("session_ms_per_tick", 100)
        fake = FakeAcc(**kw).start()
        client = Client(fake)
        made.append((fake, client))
        return fake, client

    yield _make
    for fake, client in made:
        client.close()
        fake.stop()


def registered(make, **kw):
    interval = kw.pop("interval_ms", 5)
    version = kw.pop("client_version", 4)
    fake, client = make(**kw)
    client.send(register_bytes(interval_ms=interval, version=version))
    client.until(lambda g: len(g) >= 1)
    result = parse_registration(client.got[0])
    assert result["success"]
    return fake, client, result["connection_id"]


# -- handshake ----------------------------------------------------------------------------------------

def test_right_password_registers_answers_requests_and_streams(make):
    fake, client = make(connection_id=1234)
    client.send(register_bytes(interval_ms=20))
    client.until(lambda g: len(g) >= 1)
    assert parse_registration(client.got[0]) == dict(type=1, connection_id=1234, success=1, readonly=True, error="")
    client.request(10, 1234)
    client.request(11, 1234)
    client.until(lambda g: of_type(g, 5) and len(of_type(g, 6)) == 4 and len(of_type(g, 2)) >= 10)
    conn, cars = parse_entry_list(of_type(client.got, 4)[0])
    assert conn == 1234 and cars == [c.index for c in fake.cars] and len(set(cars)) == 4
    assert [parse_entry_list_car(d, 4)["car_index"] for d in of_type(client.got, 6)] == cars
    track = parse_track_data(of_type(client.got, 5)[0])
    assert (track["connection_id"], track["name"], track["meters"]) == (1234, fake.track_name, 3000)
    assert "Drivable" in track["camera_sets"] and "Basic HUD" in track["hud_pages"]
    assert fake.counts["entry_list"] == 1 and fake.counts["track_data"] == 1 and fake.counts["register"] == 1
    assert fake.last_registration["interval_ms"] == 20


def test_stream_is_one_realtime_update_then_a_car_update_per_car_at_the_interval(make):
    fake, client, _ = registered(make, interval_ms=20)
    t0 = time.monotonic()
    client.until(lambda g: len(of_type(g, 2)) >= 11)
    elapsed = time.monotonic() - t0
    assert elapsed >= 10 * 0.020 * 0.8, elapsed  # not faster than the interval asked for
    stream = [d for d in client.got[1:] if d[0] in (2, 3)]
    start = stream.index(of_type(stream, 2)[0])
    for k in range(10):
        block = stream[start + 5 * k: start + 5 * (k + 1)]
        assert [d[0] for d in block] == [2, 3, 3, 3, 3]
        assert [parse_car(d)["car_index"] for d in block[1:]] == [c.index for c in fake.cars]
    times = [parse_realtime(d)["session_ms"] for d in of_type(stream, 2)]
    assert all(b - a == 100 for a, b in zip(times, times[1:]))  # session_ms_per_tick


def test_wrong_password_is_refused_with_a_message_and_nothing_streams(make):
    fake, client = make(password="s3cret")
    client.send(register_bytes(password="asd"))
    client.until(lambda g: len(g) >= 1)
    result = parse_registration(client.got[0])
    assert result["success"] == 0 and "password" in result["error"].lower()
    client.request(10, fake.connection_id)
    assert client.quiet_for(0.15) == []
    assert fake.counts["register_refused"] == 1 and fake.counts["not_registered"] == 1
    assert fake.tick == 0 and not fake.registered and len(fake.sent) == 1


def test_command_password_gives_command_rights(make):
    fake, client = make(command_password="cmd")
    client.send(register_bytes(command="cmd"))
    client.until(lambda g: len(g) >= 1)
    assert parse_registration(client.got[0])["readonly"] is False


@pytest.mark.parametrize("fake_version,client_version,wire", [(None, 3, 3), (None, 4, 4), (3, 4, 3), (4, 3, 4)])
def test_entry_list_car_encodings_v3_and_v4(make, fake_version, client_version, wire):
    fake, client, conn = registered(make, version=fake_version, client_version=client_version)
    client.request(10, conn)
    client.until(lambda g: len(of_type(g, 6)) == 4)
    for data, car in zip(of_type(client.got, 6), fake.cars):
        parsed = parse_entry_list_car(data, wire)
        e = car.entry
        assert parsed["car_index"] == e.car_index and parsed["team"] == e.team_name
        assert parsed["race_number"] == e.race_number and parsed["cup"] == e.cup_category
        assert parsed["nationality"] == (e.nationality if wire == 4 else None)
        assert [d[:4] for d in parsed["drivers"]] == [(d.first_name, d.last_name, d.short_name, d.category)
                                                      for d in e.drivers]
        if wire == 4:
            assert [d[4] for d in parsed["drivers"]] == [d.nationality for d in e.drivers]
        with pytest.raises((AssertionError, struct.error, UnicodeDecodeError)):
            parse_entry_list_car(data, 7 - wire)  # the other version does not fit the bytes
    assert any(len(d[0].encode()) != len(d[0]) for c in fake.cars for d in
               [(x.first_name,) for x in c.entry.drivers])  # byte counts, not character counts


# -- car updates and laps ---------------------------------------------------------------------------

def test_car_updates_are_113_bytes_and_consistent_with_the_motion(make):
    fake, client, _ = registered(make)
    client.until(lambda g: len(of_type(g, 3)) >= 4 * 60)
    cars = [parse_car(d) for d in of_type(client.got, 3)]
    assert {len(d) for d in of_type(client.got, 3)} == {38 + 3 * (13 + 4 * 3)} == {113}
    radius = fake.track_meters / (2 * math.pi)
    by_car: dict[int, list[dict]] = {}
    for car in cars:
        by_car.setdefault(car["car_index"], []).append(car)
        assert 0 <= car["spline"] < 1 and 1 <= car["position"] <= 4 and 1 <= car["track_position"] <= 4
        assert math.hypot(car["x"], car["y"]) == pytest.approx(radius, rel=1e-5)
        assert math.atan2(car["y"], car["x"]) % (2 * math.pi) == pytest.approx(2 * math.pi * car["spline"],
                                                                              abs=1e-4)
        assert all(len(car[k]["splits"]) == 3 for k in ("best", "last", "current"))
    for updates in by_car.values():
        for a, b in zip(updates, updates[1:]):
            ds = (b["spline"] - a["spline"]) % 1.0
            same_sector = int(a["spline"] * 3) == int(b["spline"] * 3) and b["laps"] == a["laps"]
            if same_sector:  # constant speed within a sector: 100 ms of travel at kmh
                assert ds * fake.track_meters == pytest.approx(b["kmh"] / 3.6 * 0.1, rel=0.02)
    assert {c["position"] for c in cars[-4:]} == {1, 2, 3, 4}


def test_laps_add_up_and_every_kind_occurs_as_scripted(make):
    fake, client, _ = registered(make, interval_ms=2)
    laps_of = lambda index: sum(x.car_index == index for x in fake.completed_laps)  # noqa: E731
    assert fake.wait_for(lambda: all(laps_of(c.index) >= 5 for c in fake.cars), timeout=5)
    fake.go_quiet()
    client.until(lambda g: len(g) >= len(fake.sent))
    laps = list(fake.completed_laps)
    for lap in laps:
        assert sum(lap.splits_ms) == lap.lap_time_ms and INT32_MAX not in lap.splits_ms
        kind = lap.kind
        assert kind == lap_kind(lap.slot, lap.lap)
        expect = {"valid": (0, 1, 0, 0), "invalid": (1, 0, 0, 0), "out": (0, 0, 1, 0), "in": (0, 0, 0, 1)}[kind]
        assert (lap.is_invalid, lap.is_valid_for_best, lap.is_outlap, lap.is_inlap) == expect
    kinds = {(x.slot, x.lap): lap_kind(x.slot, x.lap) for x in laps}
    assert kinds[(0, 1)] == "out" and kinds[(1, 3)] == "invalid" and kinds[(3, 2)] == "invalid"
    assert kinds[(2, 3)] == "in" and kinds[(2, 4)] == "out" and kinds[(0, 2)] == "valid"
    _last_laps_equal_the_truth(client.got, laps)
    _events_equal_the_truth(client.got, laps)


def _last_laps_equal_the_truth(got: list[bytes], laps) -> None:
    truth = {(x.car_index, x.lap): x for x in laps}
    seen = set()
    for car in map(parse_car, of_type(got, 3)):
        last, current = car["last"], car["current"]
        assert current["lap_time_ms"] >= 0 and INT32_MAX not in current["splits"][:int(car["spline"] * 3)]
        if car["laps"] == 0:
            assert last["lap_time_ms"] == INT32_MAX and last["splits"] == [INT32_MAX] * 3
            continue
        x = truth[(car["car_index"], car["laps"])]
        assert (last["lap_time_ms"], last["splits"]) == (x.lap_time_ms, list(x.splits_ms))
        assert (last["is_invalid"], last["is_valid_for_best"], last["is_outlap"], last["is_inlap"]) == (
            x.is_invalid, x.is_valid_for_best, x.is_outlap, x.is_inlap)
        best = [y.lap_time_ms for y in laps if y.car_index == x.car_index and y.is_valid_for_best
                and y.lap <= x.lap]
        assert car["best"]["lap_time_ms"] == (min(best) if best else INT32_MAX)
        seen.add((x.car_index, x.lap))
    assert seen == set(truth)


def _events_equal_the_truth(got: list[bytes], laps) -> None:
    events = [parse_event(d) for d in of_type(got, 7)]
    completed = [(e["car"], e["time_ms"]) for e in events if e["kind"] == 5]
    assert completed == [(x.car_index, x.lap_time_ms) for x in laps]
    best = [e["time_ms"] for e in events if e["kind"] == 6]
    assert best == sorted(best, reverse=True) and best[-1] == min(x.lap_time_ms for x in laps
                                                                  if x.is_valid_for_best)


def test_realtime_update_names_the_focused_car_and_the_session_best(make):
    fake, client, _ = registered(make, focused_slot=2)
    assert fake.wait_for(lambda: any(x.is_valid_for_best for x in fake.completed_laps), timeout=5)
    fake.go_quiet()
    client.until(lambda g: len(g) >= len(fake.sent))
    last = parse_realtime(of_type(client.got, 2)[-1])
    assert last["focused"] == fake.cars[2].index and last["session_type"] == 10 and last["phase"] == 5
    assert last["best"]["lap_time_ms"] == fake.best_lap_of(None).lap_time_ms


def test_received_bytes_equal_sent_bytes(make):
    fake, client, conn = registered(make)
    client.request(10, conn)
    client.request(11, conn)
    assert fake.wait_for(lambda: fake.tick >= 50)
    fake.go_quiet()
    client.until(lambda g: len(g) >= len(fake.sent))
    assert client.got == fake.sent


def test_the_stream_is_deterministic(make):
    streams = []
    for _ in range(2):
        fake, client, _ = registered(make, interval_ms=2)
        assert fake.wait_for(lambda: fake.tick >= 80)
        fake.go_quiet()
        streams.append([d for d in fake.sent if d[0] in (2, 3, 7)][: 80 * 5])
    assert streams[0] == streams[1]


# -- test hooks -----------------------------------------------------------------------------------------

def test_restart_forgets_the_client_and_changes_the_connection_id(make):
    fake, client, conn = registered(make)
    fake.restart(new_connection_id=conn + 100)
    tick = fake.tick
    client.quiet_for(0.05)
    assert fake.tick <= tick + 1  # nothing streams once restarted (one tick may have been in flight)
    client.request(10, conn)
    assert fake.wait_for(lambda: fake.counts["not_registered"] == 1)
    client.got.clear()
    client.send(register_bytes())
    client.until(lambda g: g and g[0][0] == 1)
    assert parse_registration(client.got[0])["connection_id"] == conn + 100
    client.request(10, conn)  # the old id is refused
    client.request(10, conn + 100)
    client.until(lambda g: of_type(g, 4))
    assert fake.counts["wrong_connection_id"] == 1 and fake.counts["entry_list"] == 1
    assert parse_entry_list(of_type(client.got, 4)[0])[0] == conn + 100


def test_an_added_car_is_unknown_until_the_entry_list_is_requested_again(make):
    fake, client, conn = registered(make)
    client.request(10, conn)
    client.until(lambda g: len(of_type(g, 6)) == 4)
    known = parse_entry_list(of_type(client.got, 4)[-1])[1]
    new = fake.add_car()
    client.until(lambda g: any(parse_car(d)["car_index"] == new for d in of_type(g, 3)))
    assert new not in known
    client.request(10, conn)
    client.until(lambda g: len(of_type(g, 4)) == 2 and len(of_type(g, 6)) == 9)
    assert parse_entry_list(of_type(client.got, 4)[-1])[1] == known + [new]
    assert fake.entry_lists_sent == [known, known + [new]]
    assert [k for _, k in fake.received_log].count("entry_list") == 2


def test_unregister_stops_the_stream(make):
    fake, client, conn = registered(make)
    client.until(lambda g: len(of_type(g, 2)) >= 3)
    client.request(9, conn)
    assert fake.wait_for(lambda: fake.counts["unregister"] == 1)
    tick = fake.tick
    client.quiet_for(0.05)
    assert fake.tick == tick and not fake.registered


def test_go_quiet_and_resume(make):
    fake, client, _ = registered(make)
    assert fake.wait_for(lambda: fake.tick >= 3)
    fake.go_quiet()
    tick = fake.tick
    client.quiet_for(0.05)
    assert fake.tick == tick
    client.request(10, fake.connection_id)  # a quiet ACC answers nothing
    assert fake.wait_for(lambda: fake.counts["ignored_while_quiet"] == 1)
    assert client.quiet_for(0.05) == []
    fake.resume()
    assert fake.wait_for(lambda: fake.tick >= tick + 3)


def test_garbage_and_strangers_are_counted_not_fatal(make):
    fake, client, conn = registered(make)
    for junk in (b"", b"\xff", b"\x01\x04\x05\x00ab", b"\x0a\x01", register_bytes()[:-3]):
        client.send(junk)
    stranger = Client(fake)
    stranger.request(10, conn)
    assert fake.wait_for(lambda: fake.counts["garbage"] == 5 and fake.counts["not_registered"] == 1)
    assert fake.counts["garbage"] == 5 and fake.counts["not_registered"] == 1
    assert stranger.quiet_for(0.05) == []
    stranger.close()
    client.request(11, conn)  # still answering its client
    client.until(lambda g: of_type(g, 5))


def test_a_driver_swap_shows_a_driver_count_the_entry_list_does_not_know(make):
    fake, client, conn = registered(make)
    client.request(10, conn)
    client.until(lambda g: len(of_type(g, 6)) == 4)
    car = fake.cars[1].index
    before = next(parse_entry_list_car(d, 4) for d in of_type(client.got, 6)
                  if parse_entry_list_car(d, 4)["car_index"] == car)
    new = fake.swap_driver(car)
    assert new == len(before["drivers"])
    client.until(lambda g: any(parse_car(d)["car_index"] == car and parse_car(d)["driver_count"] == new + 1
                               for d in of_type(g, 3)))
    update = next(parse_car(d) for d in reversed(of_type(client.got, 3)) if parse_car(d)["car_index"] == car)
    assert update["driver_index"] == new and update["current"]["driver_index"] == new
    client.request(10, conn)
    client.until(lambda g: len(of_type(g, 6)) == 8)
    after = next(parse_entry_list_car(d, 4) for d in of_type(client.got, 6)[4:]
                 if parse_entry_list_car(d, 4)["car_index"] == car)
    assert len(after["drivers"]) == new + 1 and after["current_driver"] == new


def test_a_fake_started_after_its_client_on_a_known_port():
    port = free_udp_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.sendto(register_bytes(), ("127.0.0.1", port))  # nobody listens yet
    with FakeAcc(port=port) as fake:
        assert fake.port == port
        sock.sendto(register_bytes(), ("127.0.0.1", port))
        sock.settimeout(3)
        try:
            reply = sock.recv(100)
        except ConnectionRefusedError:  # Linux reports the earlier "port unreachable" once
            reply = sock.recv(100)
        assert parse_registration(reply)["success"] == 1
    sock.close()


def test_session_phase_replay_fields_and_scripted_events(make):
    fake, client, _ = registered(make)
    client.until(lambda g: of_type(g, 2))
    assert parse_realtime(of_type(client.got, 2)[-1])["replay"] is None
    fake.set_session(phase=6, replay_playing=True, session_type=4)
    n = len(of_type(client.got, 2))
    client.until(lambda g: len(of_type(g, 2)) > n + 1)
    last = parse_realtime(of_type(client.got, 2)[-1])
    assert (last["phase"], last["session_type"]) == (6, 4) and last["replay"] is not None and last["replay"][1] == 10_000.0
    penalty = fake.send_event(EVENT_PENALTY, "Drive-through: speeding in the pit lane", 0, fake.cars[3].index)
    over = fake.send_event(EVENT_SESSION_OVER, "Session over", 123_456, -1)
    client.until(lambda g: over in g)
    events = [parse_event(d) for d in of_type(client.got, 7) if d in (penalty, over)]
    assert [(e["kind"], e["car"]) for e in events] == [(3, fake.cars[3].index), (2, -1)]
    assert events[0]["message"].startswith("Drive-through")


@pytest.mark.parametrize("command,moves", [("cmd", True), ("", False)])
def test_change_focus_needs_command_rights(make, command, moves):
    fake, client = make(command_password="cmd")
    client.send(register_bytes(command=command))
    client.until(lambda g: g)
    conn = parse_registration(client.got[0])["connection_id"]
    target = fake.cars[3].index
    client.send(struct.pack("<BiBHB", 50, conn, 1, target, 0))
    assert fake.wait_for(lambda: fake.counts["change_focus"] == 1)
    n = len(of_type(client.got, 2))
    client.until(lambda g: len(of_type(g, 2)) > n + 1)
    focused = parse_realtime(of_type(client.got, 2)[-1])["focused"]
    assert focused == (target if moves else fake.cars[0].index)
