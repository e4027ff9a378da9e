"""The acc feed against a fake ACC (tests/fake_acc.py, written from PROTOCOLS.md alone), over real UDP.

Registration with the right and a wrong password, ACC started after the recorder, ACC restarted
with a new connection id, cars and drivers the entry list does not know yet, live values equal to
what was sent, only the game host's datagrams counted, and an unregistration on the way out.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

import fake_acc as fa
import reference_acc as ref
from rigs import feed_config, free_udp_port, wait_until
from rt.feeds.acc import ENTRY_LIST_EVERY_S, REFUSED_RETRY_S
from rt.protocols import acc as acc_protocol

LOST_S = 1.0


def _decoded(acc: fa.FakeAcc) -> list[dict]:
    return [ref.decode_acc(m, acc.speaking_version()) for m in acc.sent]


@pytest.fixture
def fake():
    made = []

    def make(**kw) -> fa.FakeAcc:
        kw.setdefault("session_ms_per_tick", 100)
        acc = fa.FakeAcc(**kw).start()
        made.append(acc)
        return acc

    yield make
    for acc in made:
        acc.stop()


def _manager(manager_factory, port: int, **kw):
    return manager_factory(feed_config(acc_port=port, **kw), lost_s=LOST_S)


def test_live_values_of_the_focused_car_are_what_acc_sent(manager_factory, fake):
    acc = fake(cars=4, focused_slot=1, lap_ms=3000)
    mgr = _manager(manager_factory, acc.port)
    wait_until(lambda: mgr.live()["acc"]["health"] == "healthy" and mgr.live()["acc"]["driver"] is not None)
    acc.wait_for(lambda: len(acc.completed_laps) >= 4)
    acc.go_quiet()  # acc.sent is final
    wait_until(lambda: mgr.feeds["acc"].stats.packets == len(acc.sent))
    assert mgr.drain()
    live = mgr.feeds["acc"].live()
    focus = acc.focused_car_index
    sent = _decoded(acc)
    car = [m for m in sent if m["msg_type"] == fa.REALTIME_CAR_UPDATE and m["car_index"] == focus][-1]
    realtime = [m for m in sent if m["msg_type"] == fa.REALTIME_UPDATE][-1]
    entry = [m for m in sent if m["msg_type"] == fa.ENTRY_LIST_CAR and m["car_index"] == focus][-1]
    track = [m for m in sent if m["msg_type"] == fa.TRACK_DATA][-1]
    assert realtime["focused_car_index"] == focus
    assert live["speed_kmh"] == car["kmh"]
    assert live["gear"] == car["gear_raw"] - 2
    assert live["lap_count"] == car["laps"]
    assert live["lap_time_ms"] == car["current_lap"]["laptime_ms"]
    assert live["last_lap_ms"] == car["last_lap"]["laptime_ms"]
    assert live["best_lap_ms"] == car["best_session_lap"]["laptime_ms"]
    assert live["position"] == car["position"] and live["delta_ms"] == car["delta_ms"]
    assert live["session_type"] == acc_protocol.SESSION_TYPES[realtime["session_type"]]
    assert live["session_phase"] == acc_protocol.SESSION_PHASES[realtime["session_phase"]]
    assert live["track"] == track["track_name"]
    assert live["car"] == acc_protocol.car_model_name(entry["car_model_type"])
    driver = entry["drivers"][entry["current_driver_index"]]
    assert live["driver"] == f"{driver['first_name']} {driver['last_name']}"
    assert live["race_number"] == entry["race_number"] and live["cars"] == 4
    # what ACC's broadcasting does not carry is unknown, not zero
    assert live["rpm"] is None and live["throttle"] is None and live["brake"] is None and live["steer"] is None
    assert live["malformed"] == 0 and live["packets"] == len(acc.sent)
    assert acc.counts["entry_list"] >= 1 and acc.counts["track_data"] == 1


def test_a_wrong_password_is_refused_with_accs_words_and_retried_slowly(manager_factory, fake):
    acc = fake(password="not-asd")
    mgr = _manager(manager_factory, acc.port)  # the recorder sends the default, asd
    wait_until(lambda: mgr.live()["acc"]["health"] == "refused")
    live = mgr.live()["acc"]
    assert fa.WRONG_PASSWORD_MESSAGE in live["error"]
    refused = acc.counts["register_refused"]
    # never a tight loop: the next attempt waits REFUSED_RETRY_S; then the fixed password is taken
    acc.password = "asd"
    wait_until(lambda: mgr.live()["acc"]["health"] == "healthy", timeout=REFUSED_RETRY_S + 5)
    assert acc.counts["register_refused"] == refused
    assert "error" not in mgr.live()["acc"]


def test_acc_started_after_the_recorder_is_registered_with(manager_factory, fake):
    port = free_udp_port()
    mgr = _manager(manager_factory, port)
    wait_until(lambda: mgr.acc.registrations >= 2)  # asking while nobody listens (ICMP refusals)
    assert mgr.live()["acc"]["health"] == "handshaking"
    acc = fake(port=port)
    wait_until(lambda: mgr.live()["acc"]["health"] == "healthy")
    assert acc.registrations == 1 and mgr.acc.connection_id == acc.connection_id


def test_a_restarted_acc_with_a_new_connection_id_is_registered_with_again(manager_factory, fake):
    acc = fake(connection_id=7)
    mgr = _manager(manager_factory, acc.port)
    wait_until(lambda: mgr.live()["acc"]["health"] == "healthy" and mgr.acc.cars)
    lists = acc.counts["entry_list"]
    acc.restart(new_connection_id=99)  # ACC forgets us: the stream stops until we register again
    wait_until(lambda: mgr.acc.connection_id == 99 and mgr.live()["acc"]["health"] == "healthy")
    assert acc.registrations == 2
    wait_until(lambda: acc.counts["entry_list"] > lists)  # the new connection's field is asked for


def test_an_unknown_car_or_a_driver_swap_asks_for_the_entry_list_at_most_once_a_second(manager_factory, fake):
    acc = fake(cars=3)
    mgr = _manager(manager_factory, acc.port)
    wait_until(lambda: len(mgr.acc.cars) == 3 and mgr.live()["acc"]["health"] == "healthy")
    lists = acc.counts["entry_list"]
    new = acc.add_car()
    wait_until(lambda: new in mgr.acc.cars)
    assert acc.counts["entry_list"] > lists
    swapped = acc.cars[0].index
    drivers = mgr.acc.cars[swapped]["driver_count"]
    acc.swap_driver(swapped)
    wait_until(lambda: mgr.acc.cars[swapped]["driver_count"] == drivers + 1)
    # requests are spaced: over the whole test no more than one per ENTRY_LIST_EVERY_S (+ the first)
    ticks = [t for t, kind in acc.received_log if kind == "entry_list"]
    gaps_ms = np.diff(ticks) * acc.step_ms()
    assert len(ticks) >= 3 and (gaps_ms >= ENTRY_LIST_EVERY_S * 1000 * 0.9).all(), gaps_ms


def test_only_the_game_hosts_datagrams_count_and_garbage_is_counted_as_malformed(manager_factory, fake):
    acc = fake()
    mgr = _manager(manager_factory, acc.port)
    wait_until(lambda: mgr.live()["acc"]["health"] == "healthy")
    acc.go_quiet()
    wait_until(lambda: mgr.feeds["acc"].stats.packets == len(acc.sent))
    feed = mgr.feeds["acc"]
    car = next(m for m in acc.sent if m[0] == fa.REALTIME_CAR_UPDATE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder:
        for _ in range(5):
            intruder.sendto(car, ("127.0.0.1", feed.sock.getsockname()[1]))
    wait_until(lambda: mgr.live()["acc"]["refused"] == 5)
    assert mgr.live()["acc"]["packets"] == len(acc.sent)
    # from ACC itself, cut messages and unknown types are recorded and counted, never fatal
    for junk in (car[:40], b"\x63junk", b"\x02", car + b"\0"):
        acc.sock.sendto(junk, feed.sock.getsockname())
    wait_until(lambda: mgr.live()["acc"]["malformed"] == 4)
    acc.resume()
    wait_until(lambda: mgr.live()["acc"]["packets"] > len(acc.sent) - 10 > 0 and mgr.live()["acc"]["health"] == "healthy")


def test_stopping_unregisters(manager_factory, fake):
    acc = fake()
    mgr = _manager(manager_factory, acc.port)
    wait_until(lambda: mgr.live()["acc"]["health"] == "healthy")
    mgr.stop()
    assert acc.wait_for(lambda: acc.counts["unregister"] == 1)
    assert not acc.registered


def test_a_recording_holds_every_acc_datagram_and_the_whole_field(server_factory, fake, tmp_path):
    import h5py

    from rt.store import rawfile

    acc = fake(cars=5, focused_slot=2, lap_ms=3000)
    srv = server_factory(RUSTY_TELEMETRY_ACC_PORT=str(acc.port))
    wait_until(lambda: srv.get("/api/live")[1]["feeds"]["acc"]["health"] == "healthy"
               and srv.get("/api/live")[1]["feeds"]["acc"]["car"] is not None)
    status, rec = srv.call("POST", "/api/recordings", {"name": "acc field"})
    assert status == 201
    before = len(acc.sent)
    acc.wait_for(lambda: len(acc.completed_laps) >= 5)
    acc.go_quiet()  # acc.sent is final
    wait_until(lambda: srv.get("/api/live")[1]["feeds"]["acc"]["packets"] == len(acc.sent))
    status, stopped = srv.call("POST", "/api/recordings/stop")
    assert status == 200
    assert (stopped["game"], stopped["track"]) == ("assetto_corsa_competizione", acc.track_name)
    focus_entry = next(c.entry for c in acc.cars if c.index == acc.focused_car_index)
    assert stopped["car"] == acc_protocol.car_model_name(focus_entry.car_model_type)

    status, _, body = srv.request("GET", f"/api/recordings/{rec['id']}/data/acc")
    assert status == 200
    t_ns, offsets, lengths, end = rawfile.parse(body)
    raw = [body[o:o + n] for o, n in zip(offsets.tolist(), lengths.tolist())]
    # every datagram from the recording's start on, byte for byte and in order
    assert len(raw) >= len(acc.sent) - before and raw == acc.sent[len(acc.sent) - len(raw):]
    assert stopped["feeds"]["acc"]["packets"] == len(raw) and stopped["feeds"]["acc"]["malformed"] == 0

    sent = [ref.decode_acc(m, acc.speaking_version()) for m in raw]
    cars = [m for m in sent if m["msg_type"] == fa.REALTIME_CAR_UPDATE]
    focused = [m for m in cars if m["car_index"] == acc.focused_car_index]
    with h5py.File(tmp_path / "data" / rec["id"] / "data.h5", "r") as f:
        rows = f["acc/acc_car_update/rows"][:]
        assert len(rows) == len(cars)  # every car of the field, not only the focused one
        assert rows["carIndex"].tolist() == [m["car_index"] for m in cars]
        assert rows["kmh"].tolist() == [m["kmh"] for m in cars]
        assert rows["lastLap.laptimeMs"].tolist() == [m["last_lap"]["laptime_ms"] or fa.NONE_MS for m in cars]
        assert set(rows["carIndex"].tolist()) == {c.index for c in acc.cars}
        assert f["acc/acc_realtime_update/t_ns"].shape[0] == sum(m["msg_type"] == fa.REALTIME_UPDATE for m in sent)
        # the canonical frames follow the focused car
        assert f["acc/canonical/speed_kmh"][:].tolist() == [m["kmh"] for m in focused]
        assert np.isnan(f["acc/canonical/rpm"][:]).all()
        assert f["acc/canonical/pos_z"][:].tolist() == [-np.float32(m["world_pos_y_m"]) for m in focused]
    # data.h5 is what a rebuild from the raw file makes (the recovery path decodes the same way)
    from rt.protocols import default_protocols
    from rt.store.h5store import agrees_with_raw

    assert agrees_with_raw(tmp_path / "data" / rec["id"], default_protocols())


def test_sigterm_unregisters_from_acc(server_factory, fake):
    acc = fake()
    srv = server_factory(RUSTY_TELEMETRY_ACC_PORT=str(acc.port))
    wait_until(lambda: srv.get("/api/live")[1]["feeds"]["acc"]["health"] == "healthy")
    code, _ = srv.stop()
    assert code == 0
    assert acc.wait_for(lambda: acc.counts["unregister"] == 1) and not acc.registered


def test_a_version_3_acc_is_understood(manager_factory, fake):
    acc = fake(version=3, cars=2)  # an ACC older than 1.13.11: no nationalities in its entry list
    mgr = _manager(manager_factory, acc.port)
    wait_until(lambda: mgr.live()["acc"]["driver"] is not None and len(mgr.acc.cars) == 2)
    live = mgr.live()["acc"]
    entry = next(c.entry for c in acc.cars if c.index == acc.focused_car_index)
    driver = entry.drivers[entry.current_driver_index]
    assert live["driver"] == f"{driver.first_name} {driver.last_name}" and live["malformed"] == 0
