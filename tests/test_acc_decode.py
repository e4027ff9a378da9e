"""ACC's broadcasting messages through the feed's decoder, against the independent reference decoder.

The messages come from the fake ACC's encoders (``tests/fake_acc.py``, written from PROTOCOLS.md
alone), are classified and decoded as the feed does (``BatchDecoder``: one batch, slot memory), and
every stored field is compared with ``tests/reference_acc.py``. Hypothesis then mutates and cuts
them: nothing escapes the decoder, a datagram is malformed exactly when the reference rejects it,
and the counts add up.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fake_acc as fa
import reference_acc as ref
from rt.decode import BatchDecoder
from rt.protocols import default_protocols
from rt.protocols.acc import MAX_CARS, MAX_DRIVERS, MAX_SPLITS, NO_TIME

SLOT = 2048


def _lap(i: int, n: int = 3, **kw) -> fa.LapInfo:
    splits = tuple(30_000 + 1000 * i + k if k % 4 != 3 else fa.NONE_MS for k in range(n))
    return fa.LapInfo(90_000 + i, i % 50, i % 3, splits, **kw)


def _messages() -> list[bytes]:
    """Every inbound kind, with the shapes that stress a sequential parser."""
    out = [
        fa.encode_registration_result(7, True, False, ""),
        fa.encode_registration_result(-1, False, True, "Wrong password ünd ümlauts"),
        fa.encode_registration_result(3, True, True, "x" * 300),  # longer than the stored 128 bytes
        fa.encode_entry_list(7, [1, 2, 3, 500]),
        fa.encode_entry_list(7, list(range(MAX_CARS + 5))),
        fa.encode_entry_list(7, []),
        fa.encode_track_data(7, "monza", 4, 5793, {"Drivable": ["Chase", "Cockpit"], "TV": []}, ["Basic", "Blank"]),
        fa.encode_track_data(7, "", 0, 0, {}, []),
        fa.encode_broadcasting_event(5, "Lap completed", 91234, 3),
        fa.encode_broadcasting_event(3, "Drive through — cutting 🏁", -1, 0),
    ]
    for version in (3, 4):
        for ndrivers in (0, 1, 3, MAX_DRIVERS + 2):
            drivers = tuple(fa.Driver(f"Fïrst{k}", "Läst" * (k + 1), f"S{k}", k % 4, 100 + k) for k in range(ndrivers))
            out.append(fa.encode_entry_list_car(
                fa.EntryCar(ndrivers, 25, "Team Ørsted " * 8, 911, 2, 0, 44, drivers), version))
    for n in (0, 1, 3, MAX_SPLITS, MAX_SPLITS + 3):
        car = fa.CarUpdate(n, 1, 2, 4, 100.5 * n, -3.25, 1.5, 1, 212, 3, 2, 4, 0.25 + n / 100, 12, -345,
                           _lap(n, n), _lap(n + 1, n, is_invalid=1, is_outlap=1), _lap(n + 2, n, is_inlap=1))
        out.append(fa.encode_car_update(car))
        for replay in (None, (1234.5, 99.0)):
            out.append(fa.encode_realtime_update(fa.RealtimeUpdate(
                3, 1, 10, 5, 123456.0, 3.6e6, n, "set", "cam", "hud page", 4.3e7, 21, 30, 2, 0, 1, _lap(n, n), replay)))
    return out


def _batch(messages: list[bytes]):
    """Datagrams in ring-like slots: (buffer, offsets, lengths)."""
    buf = np.zeros(len(messages) * SLOT, dtype=np.uint8)
    for i, m in enumerate(messages):
        buf[i * SLOT:i * SLOT + len(m)] = np.frombuffer(m, dtype=np.uint8)
    offsets = np.arange(len(messages), dtype=np.int64) * SLOT
    lengths = np.array([len(m) for m in messages], dtype=np.int64)
    return buf, offsets, lengths


def _reference(message: bytes) -> dict | None:
    """What the reference decodes, as version 4 first and then 3 (as the feed accepts), or None."""
    for version in (4, 3):
        try:
            return ref.decode_acc(message, version)
        except ref.AccDecodeError:
            continue
    return None


def _text(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8")


def _cut(s: str, size: int) -> str:
    """What a row keeps of a text: its first ``size`` bytes, whole characters only, up to a NUL (rows
    are NUL-padded, so a NUL in ACC's text ends it there; the raw file keeps the rest)."""
    data = s.encode("utf-8")[:size]
    return data.decode("utf-8", errors="ignore").split("\0", 1)[0]


def _check_lap(row, prefix: str, lap: dict) -> None:
    assert row[f"{prefix}.laptimeMs"] == (NO_TIME if lap["laptime_ms"] is None else lap["laptime_ms"])
    assert row[f"{prefix}.carIndex"] == lap["car_index"]
    assert row[f"{prefix}.driverIndex"] == lap["driver_index"]
    assert row[f"{prefix}.splitCount"] == lap["split_count"]
    splits = [NO_TIME if s is None else s for s in lap["splits"]][:MAX_SPLITS]
    assert row[f"{prefix}.splits"].tolist() == splits + [NO_TIME] * (MAX_SPLITS - len(splits))
    for ours, theirs in (("isInvalid", "is_invalid"), ("isValidForBest", "is_valid_for_best"),
                         ("isOutlap", "is_outlap"), ("isInlap", "is_inlap")):
        assert row[f"{prefix}.{ours}"] == lap[theirs]


_PLAIN = {  # our field → the reference's key, per kind, for numbers stored as they come
    "acc_registration_result": {"connectionId": "connection_id", "connectionSuccess": "connection_success",
                                "isReadonly": "is_readonly"},
    "acc_realtime_update": {"eventIndex": "event_index", "sessionIndex": "session_index",
                            "sessionType": "session_type", "sessionPhase": "session_phase",
                            "sessionTime": "session_time_ms", "sessionEndTime": "session_end_time_ms",
                            "focusedCarIndex": "focused_car_index", "isReplayPlaying": "is_replay_playing",
                            "timeOfDay": "time_of_day_ms", "ambientTemp": "ambient_temp_c",
                            "trackTemp": "track_temp_c", "clouds": "clouds", "rainLevel": "rain_level",
                            "wetness": "wetness"},
    "acc_car_update": {"carIndex": "car_index", "driverIndex": "driver_index", "driverCount": "driver_count",
                       "gear": "gear_raw", "worldPosX": "world_pos_x_m", "worldPosY": "world_pos_y_m",
                       "yaw": "yaw_rad", "carLocation": "car_location", "kmh": "kmh", "position": "position",
                       "cupPosition": "cup_position", "trackPosition": "track_position",
                       "splinePosition": "spline_position", "laps": "laps", "delta": "delta_ms"},
    "acc_entry_list": {"connectionId": "connection_id", "carCount": "car_count"},
    "acc_track_data": {"connectionId": "connection_id", "trackId": "track_id", "trackMeters": "track_meters",
                       "cameraSetCount": "camera_set_count", "hudPageCount": "hud_page_count"},
    "acc_entry_list_car": {"carIndex": "car_index", "carModelType": "car_model_type", "raceNumber": "race_number",
                           "cupCategory": "cup_category", "currentDriverIndex": "current_driver_index",
                           "driverCount": "driver_count"},
    "acc_broadcasting_event": {"type": "event_type", "timeMs": "time_ms", "carId": "car_id"},
}
_TEXTS = {
    "acc_registration_result": {"errorMessage": "error_message"},
    "acc_realtime_update": {"activeCameraSet": "active_camera_set", "activeCamera": "active_camera",
                            "currentHudPage": "current_hud_page"},
    "acc_track_data": {"trackName": "track_name"},
    "acc_entry_list_car": {"teamName": "team_name"},
    "acc_broadcasting_event": {"message": "message"},
}


def _check_row(layout, row, want: dict) -> None:
    for ours, theirs in _PLAIN[layout.name].items():
        assert row[ours] == want[theirs], (layout.name, ours)
    for ours, theirs in _TEXTS.get(layout.name, {}).items():
        assert _text(row[ours]) == _cut(want[theirs], layout[ours].strlen), (layout.name, ours)
    name = layout.name
    if name == "acc_realtime_update":
        for ours, theirs in (("replaySessionTime", "replay_session_time"), ("replayRemainingTime", "replay_remaining_time")):
            assert row[ours] == (want[theirs] or 0.0)
        _check_lap(row, "bestSessionLap", want["best_session_lap"])
    elif name == "acc_car_update":
        for prefix, key in (("bestSessionLap", "best_session_lap"), ("lastLap", "last_lap"), ("currentLap", "current_lap")):
            _check_lap(row, prefix, want[key])
    elif name == "acc_entry_list":
        kept = want["car_indices"][:MAX_CARS]
        assert row["carIndex"].tolist() == kept + [0] * (MAX_CARS - len(kept))
    elif name == "acc_entry_list_car":
        v4 = want["car_nationality"] is not None
        assert row["protocol_version"] == (4 if v4 else 3)
        assert row["carNationality"] == (want["car_nationality"] or 0)
        for k, d in enumerate(want["drivers"][:MAX_DRIVERS]):
            for ours, theirs in (("firstName", "first_name"), ("lastName", "last_name"), ("shortName", "short_name")):
                assert _text(row[f"drivers.{ours}"][k]) == _cut(d[theirs], layout[f"drivers.{ours}"].strlen)
            assert row["drivers.category"][k] == d["category"]
            assert row["drivers.nationality"][k] == (d["nationality"] or 0)


def _decode(messages: list[bytes]):
    decoder = BatchDecoder(default_protocols(), "acc")
    buf, offsets, lengths = _batch(messages)
    kinds, bad = decoder.classify(buf, offsets, lengths)
    t_ns = np.arange(len(messages), dtype=np.int64)
    rows = {}
    for group in decoder.groups(buf, offsets, t_ns, kinds.copy(), lengths=lengths):
        for pos, row in zip(np.flatnonzero(group.selected), group.columns.rows):
            rows[int(pos)] = (group.layout, row)
    return kinds, bad, rows


def test_every_kind_decodes_as_the_reference_reads_it():
    messages = _messages()
    kinds, bad, rows = _decode(messages)
    assert bad == 0 and (kinds >= 0).all()
    assert sorted(rows) == list(range(len(messages)))
    seen = set()
    for i, message in enumerate(messages):
        layout, row = rows[i]
        want = _reference(message)
        assert want is not None
        assert layout.name == "acc_" + {1: "registration_result", 2: "realtime_update", 3: "car_update",
                                         4: "entry_list", 5: "track_data", 6: "entry_list_car",
                                         7: "broadcasting_event"}[message[0]]
        _check_row(layout, row, want)
        seen.add(layout.name)
    assert len(seen) == 7


def test_a_version_3_entry_is_read_as_version_3_and_a_version_4_one_as_4():
    car = fa.EntryCar(5, 1, "T", 7, 0, 0, 300, (fa.Driver("A", "B", "C", 1, 200),))
    _, bad, rows = _decode([fa.encode_entry_list_car(car, 3), fa.encode_entry_list_car(car, 4)])
    assert bad == 0
    assert [rows[i][1]["protocol_version"] for i in (0, 1)] == [3, 4]
    assert [rows[i][1]["carNationality"] for i in (0, 1)] == [0, 300]


@pytest.mark.parametrize("message", [m for m in _messages() if len(m) > 1][:40:3])
def test_every_cut_of_a_message_is_malformed_and_counted(message):
    cuts = [message[:k] for k in range(1, len(message))] + [message + b"\0"]
    kinds, bad, rows = _decode(cuts)
    judged = [_reference(c) is not None for c in cuts]
    assert [bool(k >= 0) for k in kinds] == judged
    assert bad == judged.count(False) and len(rows) == judged.count(True)


def test_texts_that_are_not_utf8_make_the_message_malformed():
    good = fa.encode_broadcasting_event(5, "ab", 1, 2)
    bad_utf8 = good.replace(b"ab", b"\xc3\x28")  # a lead byte without its continuation
    kinds, bad, _ = _decode([good, bad_utf8])
    assert kinds.tolist()[1] == -1 and kinds[0] >= 0 and bad == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_and_cut_messages_never_escape_and_the_counts_add_up(data):
    base = _messages()
    picks = data.draw(st.lists(st.sampled_from(base), min_size=1, max_size=12))
    batch = []
    for m in picks:
        m = bytearray(m)
        for _ in range(data.draw(st.integers(0, 3))):
            if not m:
                break
            at = data.draw(st.integers(0, len(m) - 1))
            m[at] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(0, len(m)))
        m = m[:cut] if data.draw(st.booleans()) else m
        batch.append(bytes(m) + data.draw(st.binary(max_size=3)))
    kinds, bad, rows = _decode(batch)
    judged = [len(m) > 0 and _reference(m) is not None for m in batch]
    assert [bool(k >= 0) for k in kinds] == judged
    assert bad == judged.count(False)
    assert len(rows) == judged.count(True)
    for i, ok in enumerate(judged):
        if ok:
            _check_row(rows[i][0], rows[i][1], _reference(batch[i]))


def test_the_car_update_head_is_38_bytes_and_a_lap_record_13_plus_4n():
    # PROTOCOLS.md §5.3's sizes, from the grammar the decoder runs
    car = fa.CarUpdate(1, 0, 1, 3, 0.0, 0.0, 0.0, 1, 100, 1, 1, 1, 0.5, 0, 0,
                       _lap(0, 3), _lap(1, 3), _lap(2, 3))
    message = fa.encode_car_update(car)
    assert len(message) == 38 + 3 * (13 + 4 * 3) == 113
    kinds, bad, rows = _decode([message, message[:38 + 13 + 11]])
    assert bad == 1 and kinds[0] >= 0 and kinds[1] == -1
    assert struct.unpack_from("<f", message, 28)[0] == rows[0][1]["splinePosition"]
