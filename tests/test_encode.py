"""Encoding from the layout tables round-trips through the decoder and matches the struct reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference_decoder
from rt.decode import Decoder, concatenated_offsets
from rt.protocols import default_protocols
from rt.protocols.encode import encode, encode_batch

P = default_protocols()


@pytest.mark.parametrize("kind", [k.name for k in P.kinds])
@settings(max_examples=10)
@given(seed=st.integers(0, 2**32 - 1))
def test_decode_of_encode_is_identity(kind, seed):
    layout = P[kind]
    rng = np.random.default_rng(seed)
    n = 5
    raw = rng.integers(0, 256, (n, layout.size), dtype=np.uint8)
    cols = Decoder(layout).columns(raw.tobytes(), concatenated_offsets(n, layout.size))
    again = encode_batch(layout, cols, n)
    cols2 = Decoder(layout).columns(again.tobytes(), concatenated_offsets(n, layout.size))
    for name in cols:
        assert cols[name].tobytes() == cols2[name].tobytes(), name


def test_encoded_ac_packet_reads_back_in_the_reference_decoder():
    payload = encode(P["ac_car_info"], {"identifier": b"a", "size": 328, "speed_Kmh": 123.5, "gear": 4,
                                        "carCoordinates": [1.0, 2.0, 3.0]})
    ref = reference_decoder.decode("ac_car_info", payload)
    assert ref["speed_Kmh"] == 123.5 and ref["gear"] == 4 and ref["carCoordinates"] == (1.0, 2.0, 3.0)
    assert ref["identifier"] == b"a" and ref["size"] == 328


def test_struct_array_fields_land_in_their_records():
    values = {"sParticipantInfo.sCurrentLapDistance": np.arange(56, dtype=np.uint16) * 10,
              "sParticipantInfo.sWorldPosition": np.full((56, 3), -7, dtype=np.int16)}
    ref = reference_decoder.decode("pcars1_telemetry", encode(P["pcars1_telemetry"], values))
    assert list(ref["sParticipantInfo.sCurrentLapDistance"]) == [i * 10 for i in range(56)]
    assert ref["sParticipantInfo.sWorldPosition"][55] == (-7, -7, -7)


def test_fill_pattern_and_unknown_field():
    packet = encode_batch(P["ac_car_info"], {}, 1, fill=b"\xab")
    assert packet[0, 1] == 0xAB  # padding carries the fill
    with pytest.raises(KeyError):
        encode(P["ac_car_info"], {"no_such_field": 1})
