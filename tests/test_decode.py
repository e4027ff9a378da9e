"""Batch decoding (rt.decode over rt_ext.decode) against the real captures and the struct reference."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference_decoder
from conftest import AC_MONZA, PCARS1, as_plain, need
from rt.decode import CHUNK, Decoder, classify_batch, classify_datagram, concatenated_offsets
from rt.errors import DecodeError
from rt.protocols import default_protocols
from rt_ext.ring import PacketRing

ALL_KINDS = sorted(reference_decoder.KINDS)
PROTOCOLS = default_protocols()


def test_every_reference_kind_is_declared_with_the_same_size():
    # ACC's messages have no fixed size: tests/test_acc_decode.py holds them to tests/reference_acc.py
    declared = {k.name: k.size for k in PROTOCOLS.kinds if not k.wire}
    declared["ac_handshaker"] = 12  # outbound only: not classified on any feed
    assert declared == reference_decoder.KINDS


def _same(a, b) -> bool:
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _layout(kind: str):
    if kind == "ac_handshaker":
        from rt.protocols.ac import HANDSHAKER

        return HANDSHAKER
    return PROTOCOLS[kind]


@pytest.mark.parametrize("kind", ALL_KINDS)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_packets_agree_field_for_field_with_reference(kind, data):
    size = reference_decoder.KINDS[kind]
    packets = data.draw(st.lists(st.binary(min_size=size, max_size=size), min_size=1, max_size=4))
    layout = _layout(kind)
    cols = Decoder(layout).columns(b"".join(packets), concatenated_offsets(len(packets), size))
    for i, payload in enumerate(packets):
        ref = {k: as_plain(v) for k, v in reference_decoder.decode(kind, payload).items()}
        ours = {name: as_plain(col[i]) for name, col in cols.items()}
        # char[1] identifier: numpy gives it as bytes too.
        assert set(ours) == set(ref), f"{kind}: field names differ: {set(ours) ^ set(ref)}"
        for name in ref:
            assert _same(ours[name], ref[name]), f"{kind}.{name}: {ours[name]!r} != {ref[name]!r}"


@pytest.mark.parametrize("kind", ALL_KINDS)
@pytest.mark.parametrize("n, shuffled", [(37, False), (1100, True)])
def test_rows_and_columns_hold_the_same_values(kind, n, shuffled):
    # Rows copy runs of fields that are contiguous on both sides in one go, columns copy field by
    # field: both plans must agree, in one block and across blocks, for even and uneven offsets.
    size = reference_decoder.KINDS[kind]
    rng = np.random.default_rng(7)
    buf = rng.integers(0, 256, n * size, dtype=np.uint8).tobytes()
    dec = Decoder(_layout(kind))
    offsets = concatenated_offsets(n, size)
    if shuffled:
        offsets = rng.permutation(offsets)
    rows, cols = dec.rows(buf, offsets), dec.columns(buf, offsets)
    for name, col in cols.items():
        assert rows[name].tobytes() == col.tobytes(), name
    last = int(offsets[-1])
    ref = {k: as_plain(v) for k, v in reference_decoder.decode(kind, buf[last : last + size]).items()}
    for name in ref:
        assert _same(as_plain(rows[name][-1]), ref[name]), name


# ---- real captures, checked on both implementations -------------------------------------------


def test_pcars1_telemetry_capture(impl):
    v = impl.decode("pcars1_telemetry", need(PCARS1 / "jamesremuscat_packet_0.bin").read_bytes())
    assert v["sBuildVersionNumber"] == 1122
    assert v["sPacketType"] & 3 == 0 and v["sPacketType"] >> 2 == 0
    assert v["sGameSessionState"] & 7 == 2  # INGAME_PLAYING
    assert (v["sGameSessionState"] >> 4) & 7 == 5  # RACE
    assert v["sViewedParticipantIndex"] == 0
    assert v["sNumParticipants"] == 21
    assert v["sGearNumGears"] & 15 == 0 and v["sGearNumGears"] >> 4 == 6
    assert v["sBrakeTempCelsius"][2] == 729
    assert v["sRideHeight"][3] == pytest.approx(0.06453919, abs=1e-7)
    assert v["sAmbientTemperature"] == 15
    assert v["sTrackLength"] == pytest.approx(3890.4072, abs=1e-3)
    assert v["sParticipantInfo.sCurrentLapDistance"][0] == 0
    assert v["sParticipantInfo.sRacePosition"][0] & 0x7F == 1
    assert v["sParticipantInfo.sLastSectorTime"][0] == -123.0
    # the fixture's "sector 2" is sector code 3 in the bits 0-2 enum (0 invalid, 1 start, 2 S1, 3 S2)
    assert v["sParticipantInfo.sSector"][0] & 7 == 3


def test_pcars1_strings_capture(impl):
    v = impl.decode("pcars1_participant_strings", need(PCARS1 / "jamesremuscat_ParticipantInfoStringsPacket_1.bin").read_bytes())
    assert v["sBuildVersionNumber"] == 1235 and v["sPacketType"] >> 2 == 8
    assert v["sCarName"].split(b"\0")[0] == b"Mitsubishi Lancer Evolution X FQ400"
    assert v["sCarClassName"].split(b"\0")[0] == b"Road C1"
    assert v["sTrackLocation"].split(b"\0")[0] == b"Cadwell"
    assert v["sTrackVariation"].split(b"\0")[0] == b"Woodland"
    assert v["sName"][0].split(b"\0")[0] == b"Andrew"
    assert v["sFastestLapTime"][0] == pytest.approx(62.4034, abs=1e-4)


def test_pcars1_additional_strings_capture(impl):
    v = impl.decode(
        "pcars1_participant_strings_additional",
        need(PCARS1 / "jamesremuscat_ParticipantInfoStringsAdditionalPacket_1.bin").read_bytes(),
    )
    assert v["sPacketType"] >> 2 == 32 and v["sOffset"] == 32
    assert v["sName"][0].split(b"\0")[0] == b"Abdullah El Khereiji"
    assert v["sName"][15].split(b"\0")[0].decode("latin-1") == "Dominic Sch\u00f6nberner"


def test_ac_monza_capture_batch(monza_raw):
    n = len(monza_raw) // 328
    cols = Decoder(PROTOCOLS["ac_car_info"]).columns(monza_raw, concatenated_offsets(n, 328))
    assert (cols["identifier"] == b"a").all() and (cols["size"] == 328).all()
    moving = cols["speed_Ms"] > 1.0
    assert moving.sum() > 8000
    ratio = cols["speed_Kmh"][moving] / cols["speed_Ms"][moving]
    assert np.allclose(ratio, 3.6, rtol=1e-6)
    # lap 1 ends at 344 684 ms: the last lap time appears exactly when the lap counter steps to 1
    step = int(np.flatnonzero(np.diff(cols["lapCount"]) == 1)[0]) + 1
    assert cols["lapCount"][step - 1] == 0 and cols["lapCount"][-1] == 1
    assert cols["lastLap"][step] == 344684 and cols["bestLap"][-1] == 344684
    assert cols["lapTime"][step] < cols["lapTime"][step - 1]  # the lap timer restarted


def test_ac_monza_capture_agrees_with_reference(monza_raw):
    n = len(monza_raw) // 328
    cols = Decoder(PROTOCOLS["ac_car_info"]).columns(monza_raw, concatenated_offsets(n, 328))
    for i in range(0, n, 97):
        ref = reference_decoder.decode("ac_car_info", monza_raw[i * 328 : (i + 1) * 328])
        for name, value in ref.items():
            assert _same(as_plain(cols[name][i]), as_plain(value)), (i, name)


def test_padding_garbage_is_ignored(monza_raw):
    packet = bytearray(monza_raw[5000 * 328 : 5001 * 328])
    clean = Decoder(PROTOCOLS["ac_car_info"]).one(bytes(packet))
    packet[1:4] = b"\xde\xad\xbe"  # after the leading char
    packet[26:28] = b"\xff\xee"  # after the six bools
    dirty = Decoder(PROTOCOLS["ac_car_info"]).one(bytes(packet))
    assert dirty == clean
    assert classify_datagram(PROTOCOLS, "ksudp", bytes(packet)).name == "ac_car_info"


# ---- input buffers and bounds ------------------------------------------------------------------


def test_decodes_from_bytes_memoryview_numpy_and_ring_memory(monza_raw):
    dec = Decoder(PROTOCOLS["ac_car_info"])
    n = 50
    chunk = monza_raw[: n * 328]
    offsets = concatenated_offsets(n, 328)
    expected = dec.columns(chunk, offsets)["speed_Kmh"]
    assert np.array_equal(dec.columns(memoryview(chunk), offsets)["speed_Kmh"], expected)
    ro = np.frombuffer(chunk, dtype=np.uint8)
    assert not ro.flags.writeable
    assert np.array_equal(dec.columns(ro, offsets)["speed_Kmh"], expected)
    ring = PacketRing(64, 512)
    for i in range(n):
        assert ring.push_bytes(i, chunk[i * 328 : (i + 1) * 328])
    first, ts, lens, data = ring.peek()
    assert (lens == 328).all()
    ring_offsets = (first + np.arange(len(ts), dtype=np.int64)) * ring.slot_size
    assert np.array_equal(dec.columns(ring.data_buffer, ring_offsets)["speed_Kmh"], expected)


def test_out_of_range_offsets_raise_instead_of_reading_past_the_buffer():
    dec = Decoder(PROTOCOLS["ac_car_info"])
    with pytest.raises(ValueError, match="needs 328 bytes"):
        dec.columns(b"\0" * 400, np.array([0, 100], dtype=np.int64))
    with pytest.raises(ValueError):
        dec.columns(b"\0" * 400, np.array([-1], dtype=np.int64))
    # offset + packet size overflowed int64 here and the check passed (a bus error; found in review)
    with pytest.raises(ValueError):
        dec.rows(b"\0" * 400, np.array([2**63 - 101], dtype=np.int64))
    kinds, bad = classify_batch(PROTOCOLS.feed_rules["ksudp"].rules, b"\0" * 400, np.array([2**63 - 101]), np.array([328]))
    assert bad == 1 and kinds[0] == -1
    with pytest.raises(DecodeError):
        dec.one(b"\0" * 327)


def test_large_batches_decode_in_chunks_equal_to_one_call(monza_raw):
    dec = Decoder(PROTOCOLS["ac_car_info"])
    n = len(monza_raw) // 328
    offsets = concatenated_offsets(n, 328)
    whole = dec.columns(monza_raw, offsets)["carCoordinates"]
    parts = [dec.columns(monza_raw, offsets[i : i + CHUNK])["carCoordinates"] for i in range(0, n, CHUNK)]
    assert np.array_equal(np.concatenate(parts), whole)


# ---- classifier --------------------------------------------------------------------------------


def _pc2_packet(ptype: int, size: int) -> bytes:
    b = bytearray(size)
    b[10] = ptype
    return bytes(b)


def test_classifier_by_feed():
    p = PROTOCOLS
    car = need(AC_MONZA).read_bytes()[:328]
    assert classify_datagram(p, "ksudp", car).name == "ac_car_info"
    assert classify_datagram(p, "ksudp", b"b" + car[1:]) is None  # wrong identifier byte
    assert classify_datagram(p, "ksudp", car[:327]) is None
    assert classify_datagram(p, "ksudp", bytes(408)).name == "ac_handshake_response"
    assert classify_datagram(p, "ksudp", bytes(212)).name == "ac_lap"
    assert classify_datagram(p, "telemetry_tool", bytes(357)).name == "tt_driver"
    assert classify_datagram(p, "telemetry_tool", bytes(356)) is None
    assert classify_datagram(p, "pcars", need(PCARS1 / "jamesremuscat_packet_0.bin").read_bytes()).name == "pcars1_telemetry"
    assert classify_datagram(p, "pcars", need(PCARS1 / "jamesremuscat_packet_1.bin").read_bytes()).name == "pcars1_participant_strings"
    assert classify_datagram(p, "pcars", need(PCARS1 / "jamesremuscat_packet_2.bin").read_bytes()).name == (
        "pcars1_participant_strings_additional"
    )
    # V1 size with the wrong type bits is foreign traffic
    bad = bytearray(need(PCARS1 / "jamesremuscat_packet_0.bin").read_bytes())
    bad[2] = (bad[2] & ~3) | 1
    assert classify_datagram(p, "pcars", bytes(bad)) is None


@pytest.mark.parametrize(
    "ptype,size,kind",
    [
        (0, 538, "pcars2_telemetry_538"),
        (0, 555, "pcars2_telemetry_555"),
        (0, 556, "pcars2_telemetry_556"),
        (0, 559, "pcars2_telemetry_559"),
        (1, 308, "pcars2_race_308"),
        (2, 1040, "pcars2_participants_1040"),
        (2, 1136, "pcars2_participants_1136"),
        (3, 993, "pcars2_timings_993"),
        (3, 1059, "pcars2_timings_1059"),
        (3, 1063, "pcars2_timings_1063"),
        (4, 24, "pcars2_game_state_24"),
        (7, 784, "pcars2_time_stats_784"),
        (7, 1040, "pcars2_time_stats_1040"),
        (8, 1164, "pcars2_vehicle_names_1164"),
        (8, 1452, "pcars2_class_names_1452"),
    ],
)
def test_classifier_pcars2_table(ptype, size, kind):
    assert classify_datagram(PROTOCOLS, "pcars", _pc2_packet(ptype, size)).name == kind
    assert classify_datagram(PROTOCOLS, "pcars", _pc2_packet(9, size)) is None  # no packet type 9 exists


@given(st.binary(min_size=0, max_size=1500))
def test_batch_classifier_agrees_with_single(payload):
    for feed, rules in PROTOCOLS.feed_rules.items():
        kinds, bad = classify_batch(rules.rules, payload + b"\0", np.array([0]), np.array([len(payload)]))
        assert int(kinds[0]) == reference_decoder.classify_one(rules.rules, payload)
        assert bad == (1 if kinds[0] < 0 else 0)


def test_batch_classifier_rejects_lengths_past_the_buffer():
    rules = PROTOCOLS.feed_rules["ksudp"].rules
    kinds, bad = classify_batch(rules, bytes(300), np.array([0]), np.array([328]))
    assert kinds[0] == -1 and bad == 1


def test_handshaker_struct_matches_layout():
    from rt.protocols.ac import HANDSHAKER, SUBSCRIBE_UPDATE

    payload = struct.pack("<iii", 1, 1, SUBSCRIBE_UPDATE)
    assert Decoder(HANDSHAKER).one(payload) == {"identifier": 1, "version": 1, "operationId": 1}


def test_reused_output_block_gives_fresh_values_each_call(monza_raw):
    dec = Decoder(PROTOCOLS["ac_car_info"])
    offsets = concatenated_offsets(64, 328)
    block = np.empty(dec.output_bytes(64), dtype=np.uint8)
    first = dec.columns(monza_raw, offsets, out=block)["speed_Kmh"].copy()
    second = dec.columns(monza_raw[6000 * 328 :], offsets, out=block)["speed_Kmh"]
    assert np.array_equal(first, dec.columns(monza_raw, offsets)["speed_Kmh"])
    assert np.array_equal(second, dec.columns(monza_raw[6000 * 328 :], offsets)["speed_Kmh"])
    assert not np.array_equal(first, second)
    with pytest.raises(ValueError, match="output holds"):
        dec.columns(monza_raw, offsets, out=np.empty(10, dtype=np.uint8))


def test_unevenly_spaced_offsets_take_the_general_path(monza_raw):
    dec = Decoder(PROTOCOLS["ac_car_info"])
    picks = np.array([5, 6, 9, 100, 101, 4000], dtype=np.int64)
    cols = dec.columns(monza_raw, picks * 328)
    every = dec.columns(monza_raw, concatenated_offsets(4001, 328))
    for name in ("speed_Kmh", "carCoordinates", "identifier", "lapTime"):
        assert np.array_equal(cols[name], every[name][picks]), name


def test_packed_layouts_decode_into_rows_as_one_copy_per_packet():
    # Row decoding merges fields that follow each other in both the packet and the row: a packed
    # layout (Telemetry Tool, PCARS 2 telemetry) is then one copy per packet, not one per field.
    for kind in ("tt_driver", "pcars2_telemetry_559", "ac_handshake_response"):
        assert Decoder(PROTOCOLS[kind]).plan.nsegments == 1, kind
    # PCARS 1 telemetry stores its participant array field by field: many runs, same values
    # (test_rows_and_columns_hold_the_same_values).
    assert Decoder(PROTOCOLS["pcars1_telemetry"]).plan.nsegments > 1
