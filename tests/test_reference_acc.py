"""The ACC broadcasting reference decoder (``tests/reference_acc.py``) against messages packed by
hand, field by field, from the tables of ``PROTOCOLS.md`` section 5: every inbound kind decodes
to the values packed, every truncation and overrun raises the decoder's own error, and mutated
datagrams give either a dict or that error, never anything else."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.reference_acc import (
    INT32_MAX,
    MESSAGE_TYPES,
    AccBadUtf8,
    AccDecodeError,
    AccStringOverrun,
    AccTrailingBytes,
    AccTruncated,
    AccUnknownMessageType,
    decode_acc,
)


# --------------------------------------------------------------------------------------------
# Packing by hand: one struct.pack per spec field.
# --------------------------------------------------------------------------------------------

def u8(v):
    return struct.pack("<B", v)


def u16(v):
    return struct.pack("<H", v)


def s32(v):
    return struct.pack("<i", v)


def f32(v):
    return struct.pack("<f", v)


def string(text):
    raw = text.encode("utf-8")
    return struct.pack("<H", len(raw)) + raw


def f32_exact(v):
    """The value an f32 field gives back (what the decoder must return)."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def lap_info(laptime, car, driver, splits, invalid=0, valid_for_best=1, outlap=0, inlap=0):
    out = s32(laptime) + u16(car) + u16(driver) + u8(len(splits))
    for s in splits:
        out += s32(s)
    return out + u8(invalid) + u8(valid_for_best) + u8(outlap) + u8(inlap)


def lap_dict(laptime, car, driver, splits, invalid=0, valid_for_best=1, outlap=0, inlap=0):
    return {
        "laptime_ms": None if laptime == INT32_MAX else laptime,
        "car_index": car,
        "driver_index": driver,
        "split_count": len(splits),
        "splits": [None if s == INT32_MAX else s for s in splits],
        "is_invalid": invalid,
        "is_valid_for_best": valid_for_best,
        "is_outlap": outlap,
        "is_inlap": inlap,
    }


BEST = (101_234, 7, 0, [31_000, 35_500, 34_734])
LAST = (103_900, 7, 1, [31_900, 36_000, 36_000], 1, 0, 0, 1)  # invalid in-lap
CURRENT = (INT32_MAX, 7, 1, [32_100, INT32_MAX, INT32_MAX], 0, 1, 1, 0)  # out-lap running


def car_update(gear=5, best=BEST, last=LAST, current=CURRENT):
    head = (
        u8(3)
        + u16(7)             # carIndex
        + u16(1)             # driverIndex
        + u8(2)              # driverCount
        + u8(gear)           # gear raw
        + f32(-123.25)       # worldPosX
        + f32(456.5)         # worldPosY
        + f32(1.5707964)     # yaw
        + u8(1)              # carLocation: track
        + u16(231)           # kmh
        + u16(3)             # position
        + u16(2)             # cupPosition
        + u16(4)             # trackPosition
        + f32(0.4321)        # splinePosition
        + u16(12)            # laps
        + s32(-345)          # delta
    )
    assert len(head) == 38
    return head + lap_info(*best) + lap_info(*last) + lap_info(*current)


def realtime_update(replay=False, best=BEST):
    out = (
        u8(2)
        + u16(3)                 # eventIndex
        + u16(2)                 # sessionIndex
        + u8(10)                 # sessionType: race
        + u8(5)                  # sessionPhase: session
        + f32(1_234_567.0)       # sessionTime ms
        + f32(3_600_000.0)       # sessionEndTime ms
        + s32(7)                 # focusedCarIndex
        + string("Drivable")
        + string("Chase")
        + string("Broadcasting")
        + u8(1 if replay else 0)
    )
    if replay:
        out += f32(1_200_000.0) + f32(15_000.5)
    return out + (
        f32(50_400_000.0)        # timeOfDay ms
        + u8(22) + u8(31)        # ambient, track temp
        + u8(3) + u8(1) + u8(2)  # clouds, rain, wetness
        + lap_info(*best)
    )


def registration_result(success=1, readonly=1, error=""):
    return u8(1) + s32(42) + u8(success) + u8(readonly) + string(error)


def entry_list(cars=(0, 7, 1001)):
    out = u8(4) + s32(42) + u16(len(cars))
    for c in cars:
        out += u16(c)
    return out


DRIVERS = [("Jürgen", "Müller", "MÜL", 2, 5), ("北京", "李", "LI", 255, 39)]


def entry_list_car(version=4, drivers=DRIVERS):
    out = u8(6) + u16(7) + u8(31) + string("Équipe Zürich") + s32(911) + u8(1) + u8(1)
    if version >= 4:
        out += u16(17)  # carNationality
    out += u8(len(drivers))
    for first, last, short, category, nationality in drivers:
        out += string(first) + string(last) + string(short) + u8(category)
        if version >= 4:
            out += u16(nationality)
    return out


CAMERA_SETS = [("Drivable", ["Chase", "FarChase", "Bonnet"]), ("Onboard", ["Onboard0"]), ("Empty", [])]
HUD_PAGES = ["Blank", "Basic HUD", "Broadcasting"]


def track_data(sets=CAMERA_SETS, pages=HUD_PAGES):
    out = u8(5) + s32(42) + string("Spa-Francorchamps") + s32(11) + s32(7004) + u8(len(sets))
    for name, cams in sets:
        out += string(name) + u8(len(cams))
        for c in cams:
            out += string(c)
    out += u8(len(pages))
    for p in pages:
        out += string(p)
    return out


def broadcasting_event(kind=5, message="Lap completed 北京"):
    return u8(7) + u8(kind) + string(message) + s32(1_234_567) + s32(7)


SAMPLES = {
    "registration_ok": (registration_result(), 4),
    "registration_refused": (registration_result(0, 0, "Wrong password ✗"), 4),
    "realtime_update": (realtime_update(), 4),
    "realtime_update_replay": (realtime_update(replay=True), 4),
    "car_update": (car_update(), 4),
    "entry_list": (entry_list(), 4),
    "entry_list_empty": (entry_list(()), 4),
    "track_data": (track_data(), 4),
    "entry_list_car_v4": (entry_list_car(4), 4),
    "entry_list_car_v3": (entry_list_car(3), 3),
    "broadcasting_event": (broadcasting_event(), 4),
}


# --------------------------------------------------------------------------------------------
# Every kind decodes to what was packed.
# --------------------------------------------------------------------------------------------

def test_car_update_of_113_bytes_decodes_to_the_values_packed():
    data = car_update()
    assert len(data) == 113  # 38 + 3 x (13 + 4 x 3), as the spec says
    assert decode_acc(data) == {
        "msg_type": 3,
        "msg_name": "REALTIME_CAR_UPDATE",
        "car_index": 7,
        "driver_index": 1,
        "driver_count": 2,
        "gear_raw": 5,
        "gear": 3,
        "world_pos_x_m": -123.25,
        "world_pos_y_m": 456.5,
        "yaw_rad": f32_exact(1.5707964),
        "car_location": 1,
        "kmh": 231,
        "position": 3,
        "cup_position": 2,
        "track_position": 4,
        "spline_position": f32_exact(0.4321),
        "laps": 12,
        "delta_ms": -345,
        "best_session_lap": lap_dict(*BEST),
        "last_lap": lap_dict(*LAST),
        "current_lap": lap_dict(*CURRENT),
    }


def test_int32_max_lap_times_and_splits_are_none():
    got = decode_acc(car_update())["current_lap"]
    assert got["laptime_ms"] is None
    assert got["splits"] == [32_100, None, None]
    assert decode_acc(car_update())["best_session_lap"]["splits"] == [31_000, 35_500, 34_734]


@pytest.mark.parametrize("raw, gear", [(0, -2), (1, -1), (2, 0), (3, 1), (8, 6), (255, 253)])
def test_gear_is_given_raw_and_minus_two(raw, gear):
    got = decode_acc(car_update(gear=raw))
    assert (got["gear_raw"], got["gear"]) == (raw, gear)


def test_lap_records_with_other_split_counts_move_the_rest_along():
    best = (90_000, 1, 0, [])
    last = (91_000, 1, 0, [30_000, 30_500, 30_000, 500, 0])
    current = (INT32_MAX, 1, 0, [INT32_MAX])
    data = car_update(best=best, last=last, current=current)
    assert len(data) == 38 + 13 * 3 + 4 * (0 + 5 + 1)
    got = decode_acc(data)
    assert got["best_session_lap"] == lap_dict(*best)
    assert got["last_lap"] == lap_dict(*last)
    assert got["current_lap"] == lap_dict(*current)


def test_realtime_update_without_replay_fields():
    data = realtime_update()
    assert decode_acc(data) == {
        "msg_type": 2,
        "msg_name": "REALTIME_UPDATE",
        "event_index": 3,
        "session_index": 2,
        "session_type": 10,
        "session_phase": 5,
        "session_time_ms": 1_234_567.0,
        "session_end_time_ms": 3_600_000.0,
        "focused_car_index": 7,
        "active_camera_set": "Drivable",
        "active_camera": "Chase",
        "current_hud_page": "Broadcasting",
        "is_replay_playing": 0,
        "replay_session_time": None,
        "replay_remaining_time": None,
        "time_of_day_ms": 50_400_000.0,
        "ambient_temp_c": 22,
        "track_temp_c": 31,
        "clouds": 3,
        "rain_level": 1,
        "wetness": 2,
        "best_session_lap": lap_dict(*BEST),
    }


def test_realtime_update_with_replay_fields():
    plain, replay = realtime_update(), realtime_update(replay=True)
    assert len(replay) == len(plain) + 8
    got = decode_acc(replay)
    assert got["is_replay_playing"] == 1
    assert got["replay_session_time"] == 1_200_000.0
    assert got["replay_remaining_time"] == 15_000.5
    assert got["time_of_day_ms"] == 50_400_000.0
    assert got["best_session_lap"] == lap_dict(*BEST)
    # the replay fields are read because of the flag: flipping it misaligns what follows
    flag_at = plain.index(b"Broadcasting") + len("Broadcasting")
    assert replay[flag_at] == 1
    flipped = bytearray(plain)
    flipped[flag_at] = 1
    with pytest.raises(AccDecodeError):
        decode_acc(bytes(flipped))
    unflagged = bytearray(replay)
    unflagged[flag_at] = 0
    with pytest.raises(AccDecodeError):
        decode_acc(bytes(unflagged))


def test_registration_result_accepted_and_refused():
    assert decode_acc(registration_result()) == {
        "msg_type": 1,
        "msg_name": "REGISTRATION_RESULT",
        "connection_id": 42,
        "connection_success": 1,
        "is_readonly": 1,
        "read_only": False,
        "error_message": "",
    }
    got = decode_acc(registration_result(0, 0, "Wrong password ✗"))
    assert (got["connection_success"], got["is_readonly"], got["read_only"]) == (0, 0, True)
    assert got["error_message"] == "Wrong password ✗"


def test_entry_list():
    assert decode_acc(entry_list()) == {
        "msg_type": 4,
        "msg_name": "ENTRY_LIST",
        "connection_id": 42,
        "car_count": 3,
        "car_indices": [0, 7, 1001],
    }
    assert decode_acc(entry_list(()))["car_indices"] == []


def test_entry_list_car_v4_with_nationalities_and_multibyte_names():
    assert decode_acc(entry_list_car(4), 4) == {
        "msg_type": 6,
        "msg_name": "ENTRY_LIST_CAR",
        "car_index": 7,
        "car_model_type": 31,
        "team_name": "Équipe Zürich",
        "race_number": 911,
        "cup_category": 1,
        "current_driver_index": 1,
        "car_nationality": 17,
        "driver_count": 2,
        "drivers": [
            {"first_name": "Jürgen", "last_name": "Müller", "short_name": "MÜL", "category": 2,
             "nationality": 5},
            {"first_name": "北京", "last_name": "李", "short_name": "LI", "category": 255,
             "nationality": 39},
        ],
    }


def test_entry_list_car_v3_has_no_nationalities():
    got = decode_acc(entry_list_car(3), 3)
    assert got["car_nationality"] is None
    assert [d["nationality"] for d in got["drivers"]] == [None, None]
    assert [d["first_name"] for d in got["drivers"]] == ["Jürgen", "北京"]
    assert got["team_name"] == "Équipe Zürich"


def test_entry_list_car_of_the_other_version_is_malformed():
    with pytest.raises(AccDecodeError):
        decode_acc(entry_list_car(4), 3)
    with pytest.raises(AccDecodeError):
        decode_acc(entry_list_car(3), 4)


def test_track_data_with_camera_sets_and_hud_pages():
    assert decode_acc(track_data()) == {
        "msg_type": 5,
        "msg_name": "TRACK_DATA",
        "connection_id": 42,
        "track_name": "Spa-Francorchamps",
        "track_id": 11,
        "track_meters": 7004,
        "camera_set_count": 3,
        "camera_sets": [
            {"name": "Drivable", "camera_count": 3, "cameras": ["Chase", "FarChase", "Bonnet"]},
            {"name": "Onboard", "camera_count": 1, "cameras": ["Onboard0"]},
            {"name": "Empty", "camera_count": 0, "cameras": []},
        ],
        "hud_page_count": 3,
        "hud_pages": ["Blank", "Basic HUD", "Broadcasting"],
    }
    empty = decode_acc(track_data(sets=[], pages=[]))
    assert (empty["camera_sets"], empty["hud_pages"]) == ([], [])


def test_broadcasting_event():
    assert decode_acc(broadcasting_event()) == {
        "msg_type": 7,
        "msg_name": "BROADCASTING_EVENT",
        "event_type": 5,
        "message": "Lap completed 北京",
        "time_ms": 1_234_567,
        "car_id": 7,
    }


def test_memoryview_and_bytearray_decode_alike():
    data = car_update()
    assert decode_acc(memoryview(data)) == decode_acc(bytearray(data)) == decode_acc(data)


def test_every_inbound_type_is_covered_by_the_samples():
    assert {data[0] for data, _ in SAMPLES.values()} == set(MESSAGE_TYPES) == set(range(1, 8))


# --------------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_truncation_at_every_byte_raises_the_decoders_error(name):
    data, version = SAMPLES[name]
    decode_acc(data, version)  # the whole message is fine
    for n in range(len(data)):
        with pytest.raises(AccTruncated) as info:
            decode_acc(data[:n], version)
        err = info.value
        assert 0 <= err.offset <= n
        if n:
            assert err.msg_type == data[0]
            assert err.msg_name in str(err) and ("offset %d" % err.offset) in str(err)


def test_empty_datagram():
    with pytest.raises(AccTruncated) as info:
        decode_acc(b"")
    assert (info.value.msg_type, info.value.offset, info.value.field) == (None, 0, "msgType")


@pytest.mark.parametrize("kind", [0, 8, 9, 10, 11, 49, 50, 255])
def test_unknown_message_type(kind):
    with pytest.raises(AccUnknownMessageType) as info:
        decode_acc(u8(kind) + bytes(40))
    assert info.value.msg_type == kind and info.value.offset == 0
    assert "type %d" % kind in str(info.value)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_trailing_bytes_are_an_error_unless_allowed(name):
    data, version = SAMPLES[name]
    with pytest.raises(AccTrailingBytes) as info:
        decode_acc(data + b"\x00", version)
    assert info.value.offset == len(data)
    assert decode_acc(data + b"\x00\x01", version, allow_trailing=True) == decode_acc(data, version)


def test_a_string_length_past_the_end_names_the_field_and_the_offset():
    data = bytearray(broadcasting_event(message="abc"))
    data[2:4] = u16(200)
    with pytest.raises(AccStringOverrun) as info:
        decode_acc(bytes(data))
    err = info.value
    assert (err.msg_type, err.offset, err.field) == (7, 2, "message")
    assert "BROADCASTING_EVENT" in str(err) and "offset 2" in str(err)
    assert isinstance(err, AccTruncated) and isinstance(err, ValueError)


def test_a_camera_string_overrun_deep_in_track_data():
    data = track_data()
    at = data.index(string("Bonnet"))
    bad = data[:at] + u16(0xFFFF) + data[at + 2:]
    with pytest.raises(AccStringOverrun) as info:
        decode_acc(bad)
    assert info.value.offset == at and info.value.field == "cameraSet[0].camera[2]"


def test_invalid_utf8_is_an_error_unless_replaced():
    data = u8(7) + u8(1) + u16(3) + b"a\xffb" + s32(0) + s32(0)
    with pytest.raises(AccBadUtf8) as info:
        decode_acc(data)
    assert info.value.offset == 5 and info.value.field == "message"
    assert decode_acc(data, utf8_errors="replace")["message"] == "a\ufffdb"


def test_a_wrong_protocol_version_argument_is_the_callers_mistake():
    with pytest.raises(ValueError) as info:
        decode_acc(car_update(), 5)
    assert not isinstance(info.value, AccDecodeError)


# --------------------------------------------------------------------------------------------
# Hypothesis: mutated, truncated, extended datagrams give a dict or the decoder's error.
# --------------------------------------------------------------------------------------------

_SAMPLE_LIST = [SAMPLES[k] for k in sorted(SAMPLES)]


def _decode_or_error(data, version):
    try:
        got = decode_acc(data, version)
    except AccDecodeError as err:
        assert isinstance(err.offset, int) and 0 <= err.offset <= len(data)
        return err
    assert isinstance(got, dict) and got["msg_type"] == data[0]
    return got


@settings(deadline=None)
@given(
    sample=st.sampled_from(_SAMPLE_LIST),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
    extra=st.binary(max_size=8),
    version=st.sampled_from([3, 4]),
    replace=st.booleans(),
)
def test_mutated_messages_give_a_dict_or_the_decoders_error(sample, edits, cut, extra, version, replace):
    data = bytearray(sample[0])
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        del data[cut % (len(data) + 1):]
    data += extra
    try:
        got = decode_acc(bytes(data), version, utf8_errors="replace" if replace else "strict")
    except AccDecodeError as err:
        assert 0 <= err.offset <= len(data)
    else:
        assert isinstance(got, dict) and got["msg_type"] == data[0]


@settings(deadline=None)
@given(st.integers(1, 7), st.binary(max_size=200), st.sampled_from([3, 4]))
def test_random_bodies_give_a_dict_or_the_decoders_error(kind, body, version):
    _decode_or_error(u8(kind) + body, version)


@settings(deadline=None)
@given(
    car=st.integers(0, 0xFFFF),
    gear=st.integers(0, 255),
    pos=st.tuples(st.floats(width=32, allow_nan=False), st.floats(width=32, allow_nan=False)),
    delta=st.integers(-(2**31), 2**31 - 1),
    laps=st.lists(
        st.tuples(
            st.integers(-(2**31), 2**31 - 1),
            st.lists(st.one_of(st.just(INT32_MAX), st.integers(0, 10**7)), max_size=6),
            st.tuples(*[st.integers(0, 255)] * 4),
        ),
        min_size=3,
        max_size=3,
    ),
)
def test_random_car_updates_decode_to_their_values(car, gear, pos, delta, laps):
    data = u8(3) + u16(car) + u16(0) + u8(1) + u8(gear) + f32(pos[0]) + f32(pos[1]) + f32(0.0)
    data += u8(2) + u16(100) + u16(1) + u16(1) + u16(1) + f32(0.5) + u16(3) + s32(delta)
    for laptime, splits, flags in laps:
        data += lap_info(laptime, car, 0, splits, *flags)
    got = decode_acc(data)
    assert (got["car_index"], got["gear_raw"], got["gear"], got["delta_ms"]) == (car, gear, gear - 2, delta)
    assert (got["world_pos_x_m"], got["world_pos_y_m"]) == pos
    for key, (laptime, splits, flags) in zip(("best_session_lap", "last_lap", "current_lap"), laps):
        assert got[key] == lap_dict(laptime, car, 0, splits, *flags)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_single_byte_mutation_gives_a_dict_or_the_decoders_error(name):
    data, version = SAMPLES[name]
    for pos in range(len(data)):
        for value in (0x00, 0x01, 0x03, 0x7F, 0x80, 0xFF):
            mutated = data[:pos] + u8(value) + data[pos + 1:]
            _decode_or_error(mutated, version)


def test_errors_name_the_field_and_survive_pickling():
    import pickle

    data = car_update()
    split_2 = 38 + 25 + 9 + 4 * 2  # lastLap = 38 + 25; its splits follow 9 bytes in
    cut = split_2 + 1  # inside lastLap's third split
    with pytest.raises(AccTruncated) as info:
        decode_acc(data[:cut])
    err = info.value
    assert (err.offset, err.field) == (split_2, "lastLap.splits[2]")
    assert str(err) == (
        "ACC REALTIME_CAR_UPDATE (type 3): truncated: s32 needs 4 bytes, 1 left at offset 80 "
        "(lastLap.splits[2])"
    )
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is AccTruncated and str(again) == str(err) and again.offset == err.offset


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(deadline=None)
@given(
    version=st.sampled_from([3, 4]),
    team=_TEXT,
    nationality=st.integers(0, 0xFFFF),
    drivers=st.lists(
        st.tuples(_TEXT, _TEXT, _TEXT, st.integers(0, 255), st.integers(0, 0xFFFF)), max_size=5
    ),
    sets=st.lists(st.tuples(_TEXT, st.lists(_TEXT, max_size=4)), max_size=4),
    pages=st.lists(_TEXT, max_size=4),
)
def test_random_entry_cars_and_track_data_decode_to_their_values(
    version, team, nationality, drivers, sets, pages
):
    car = u8(6) + u16(3) + u8(0) + string(team) + s32(-1) + u8(4) + u8(0)
    if version >= 4:
        car += u16(nationality)
    car += u8(len(drivers))
    for first, last, short, category, nat in drivers:
        car += string(first) + string(last) + string(short) + u8(category)
        if version >= 4:
            car += u16(nat)
    got = decode_acc(car, version)
    assert got["team_name"] == team and got["race_number"] == -1 and got["driver_count"] == len(drivers)
    assert got["car_nationality"] == (nationality if version >= 4 else None)
    assert [tuple(d.values()) for d in got["drivers"]] == [
        (f, la, sh, c, n if version >= 4 else None) for f, la, sh, c, n in drivers
    ]
    got = decode_acc(track_data(sets=sets, pages=pages), version)
    assert [(s["name"], s["cameras"]) for s in got["camera_sets"]] == [(n, c) for n, c in sets]
    assert [s["camera_count"] for s in got["camera_sets"]] == [len(c) for _, c in sets]
    assert got["hud_pages"] == pages and got["hud_page_count"] == len(pages)
