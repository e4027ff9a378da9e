"""The declared layouts themselves: consistent, non-overlapping, and the single source for docs."""

from __future__ import annotations

import json

import pytest

from rt.errors import ConfigError
from rt.protocols import FEEDS, default_protocols
from rt.protocols.layout import decode_text, markdown_table
from rt.protocols.telemetry_tool import load_layout

P = default_protocols()


@pytest.mark.parametrize("layout", P.kinds, ids=lambda k: k.name)
def test_fields_do_not_overlap_and_dtype_is_packed(layout):
    spans = []
    for f in layout.fields:
        for r in range(f.records):
            start = f.offset + r * (f.stride or 0)
            spans.append((start, start + f.element_bytes, f.name))
    spans.sort()
    for (s0, e0, n0), (s1, e1, n1) in zip(spans, spans[1:]):
        assert e0 <= s1, f"{layout.name}: {n0} overlaps {n1}"
    assert layout.dtype.itemsize == sum(f.nbytes for f in layout.fields)
    assert max(e for _, e, _ in spans) <= layout.size


def test_every_feed_has_rules_and_sizes_are_unique_per_check():
    assert set(P.feed_rules) == set(FEEDS)
    for feed, rules in P.feed_rules.items():
        keys = [(r[0], r[1], r[3]) for r in rules.rules.tolist()]
        assert len(keys) == len(set(keys)), feed


def test_pcars_v1_and_v2_sizes_are_disjoint():
    v1 = {k.size for k in P.feed_kinds["pcars"] if k.name.startswith("pcars1")}
    v2 = {k.size for k in P.feed_kinds["pcars"] if k.name.startswith("pcars2")}
    assert v1 == {1367, 1347, 1028} and not (v1 & v2)


def test_markdown_docs_come_from_the_table():
    text = markdown_table(P["ac_car_info"])
    assert "| 316 | f32 | 3 | `carCoordinates` | m |" in text
    assert "every 16 B" in markdown_table(P["pcars1_telemetry"])


def test_ac_strings_end_at_percent_and_junk_after_it_is_dropped():
    raw = "bmw_m3_e30_gra%".encode("utf-16-le") + "junk".encode("utf-16-le")
    raw += bytes(100 - len(raw))
    assert decode_text(raw, wide=True) == "bmw_m3_e30_gra"
    assert decode_text(b"Sch\xf6nberner\0stale", wide=False) == "Sch\u00f6nberner"


def test_telemetry_tool_table_is_replaceable_and_validated(tmp_path):
    shipped = load_layout()
    assert shipped.provisional and shipped.size == 357
    spec = {"size": 8, "fields": [[0, "u32", "packet_id"], [4, "f32", "speed_kmh", [], "km/h"]]}
    path = tmp_path / "tt.json"
    path.write_text(json.dumps(spec))
    custom = load_layout(path)
    assert custom.size == 8 and custom["speed_kmh"].unit == "km/h" and not custom.provisional
    spec["fields"].append([6, "f32", "beyond_the_end"])
    path.write_text(json.dumps(spec))
    with pytest.raises(ConfigError, match="outside the 8-byte packet"):
        load_layout(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="tt.json"):
        load_layout(path)
    spec["fields"] = [[0, "f64", "unknown_type"]]
    path.write_text(json.dumps(spec))
    with pytest.raises(ConfigError):
        load_layout(path)
