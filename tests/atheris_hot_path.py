"""Coverage-guided fuzzing (atheris / libFuzzer) of the datagram hot path.

Complements the hypothesis tests (test_hostile.py, test_decode.py): libFuzzer mutates real captured
datagrams and keeps whatever reaches new code in rt's (instrumented) Python modules, so it walks
into corners a fixed strategy does not, e.g. several packet kinds in one batch, sequence counters
across batches, the ksudp handshake handler and the live view after odd values.

Each input is a small script of datagrams (see :func:`parse`); each run checks

1. ``rt.decode.classify_batch`` with every feed's rules on all datagrams of the input laid end to
   end, against ``reference_decoder.classify_one``; ``Decoder(layout).rows`` / ``.columns`` (fresh and
   with a reused output block) of every kind found, against the packet bytes gathered in numpy
   from the layout table; and a decode at arbitrary offsets, which must raise ``ValueError``
   exactly when an offset does not leave room for a whole packet inside the buffer;
2. the consumer path of one feed (or all three): a fresh ``Feed(name, 0, protocols, None)``, the
   datagrams pushed with ``feed.ring.push_bytes`` and taken by ``feed.consume`` (in one batch or
   one at a time): nothing may escape, packets == pushed, malformed == what the classifier
   rejects, every well-formed datagram decoded once, decoded batches never in ring memory,
   ``feed.live()`` a dict that serialises (``orjson``, as ``GET /api/live`` does).

Any exception or failed check is a crash: libFuzzer prints the traceback and writes the input to
``<artifact_prefix>crash-<sha1>``. Warnings are errors too, as in the test suite (pyproject:
``filterwarnings = error``); ``RT_FUZZ_WARNINGS=report`` lists them instead (see :func:`main`).
The first version of this harness found numpy overflow warnings escaping the canonical mapping
on well-formed packets carrying extreme floats; those values are now made NaN there.

Only rt's Python modules are instrumented (``atheris.instrument_imports(include=["rt"])``); the
compiled ``rt_ext`` code is exercised and checked but gives libFuzzer no coverage feedback.

Run by ``tests/test_fuzz_atheris.py`` in a subprocess with a small budget. By hand, longer::

    python tests/atheris_hot_path.py --write-seeds /tmp/corpus
    python tests/atheris_hot_path.py /tmp/corpus -seed=1 -max_len=6144 -max_total_time=120
    RT_FUZZ_WARNINGS=report python tests/atheris_hot_path.py /tmp/corpus ...  # survey all warnings
    python tests/atheris_hot_path.py crash-<sha1>          # replay one input (prints the traceback)
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
from captures import AC_MONZA as AC_RAW, PCARS1  # noqa: E402  (beside this file)
import reference_decoder  # noqa: E402

FEEDS = ("ksudp", "telemetry_tool", "pcars")
MAX_RECORDS = 64
#: Receive time of the first datagram (ns, epoch-like as the recorder's clock) and the step.
T0_NS = 1_700_000_000 * 10**9
STEP_NS = 3_000_000

# ---- input format --------------------------------------------------------------------------------
#
#   byte 0  flags  bits 0-1  feed: 0 ksudp, 1 telemetry_tool, 2 pcars, 3 all three
#                  bit 2     consume after every datagram (many batches) instead of once
#                  bit 3     every datagram has the same receive time (else 3 ms apart)
#                  bit 4     ksudp: attach the handshake session (stub socket) as the handler
#                  bits 5-6  push every datagram 1..4 times
#                  bit 7     add a negative offset to the arbitrary-offset decode
#   byte 1  kind   index (mod the number of kinds) of the layout for the arbitrary-offset decode
#   then    records: u16 little-endian length, then that many bytes (fewer if the input ends)


def frame(payloads, flags: int = 0, kind: int = 0) -> bytes:
    """An input in the format above (used for the seeds)."""
    out = bytearray([flags & 0xFF, kind & 0xFF])
    for p in payloads:
        out += struct.pack("<H", len(p)) + p
    return bytes(out)


def parse(data: bytes):
    """(flags, kind byte, datagrams) of an input, datagrams already repeated as the flags say."""
    if len(data) < 2:
        return 0, 0, []
    flags, kind = data[0], data[1]
    payloads: list[bytes] = []
    pos = 2
    while pos + 2 <= len(data) and len(payloads) < MAX_RECORDS:
        (n,) = struct.unpack_from("<H", data, pos)
        pos += 2
        payloads.append(data[pos : pos + n])
        pos += n
    repeat = 1 + ((flags >> 5) & 3)
    return flags, kind, [p for p in payloads for _ in range(repeat)]


# ---- seeds -----------------------------------------------------------------------------------------


def seed_inputs() -> dict[str, bytes]:
    """Named seed inputs: real captures (AC RTCarInfo, PCARS 1) and synthetic packets of every kind."""
    import numpy as np
    from rigs import ScriptedSim

    from rt.protocols import default_protocols, pcars2
    from rt.sim.game import (
        ac_handshake_response,
        pcars1_strings,
        pcars1_telemetry,
        pcars2_telemetry,
        tt_driver,
    )

    P = default_protocols()
    raw = AC_RAW.read_bytes()
    ac = [raw[i * 328 : (i + 1) * 328] for i in range(len(raw) // 328)]
    pc1 = {p.name: p.read_bytes() for p in sorted(PCARS1.glob("*.bin"))}
    sim = ScriptedSim()
    tt = [row.tobytes() for row in tt_driver(sim.step_block(3), 41)]
    assert tt[0][0] == 1 and len(tt[0]) == 357  # Telemetry Tool: version byte 1, 357 bytes
    pc2 = [row.tobytes() for row in pcars2_telemetry(sim.step_block(3), 7)]
    pc1_sim = [row.tobytes() for row in pcars1_telemetry(sim.step_block(3), 5, 3000.0)]

    def pc2_header(ptype: int, size: int, number: int) -> bytes:
        b = bytearray(size)
        struct.pack_into("<IIBBBB", b, 0, number, number, 1, 1, ptype, 2)
        return bytes(b)

    # a header of every PCARS 2 kind (type byte and size), in inputs within -max_len (6144)
    pc2_groups: list[list[bytes]] = [[]]
    for i, (ptype, size) in enumerate(pcars2.KINDS):
        if sum(len(p) + 2 for p in pc2_groups[-1]) + size > 6000:
            pc2_groups.append([])
        pc2_groups[-1].append(pc2_header(ptype, size, 100 + i))

    seeds = {
        # real captures
        "ac_capture_start": frame(ac[0:1]),
        "ac_capture_mid_run": frame(ac[4000:4006], flags=0),
        "ac_capture_lap_change": frame(ac[7895:7903], flags=1 << 2),  # lap 1 completes at 7899
        "ac_capture_end": frame(ac[-3:]),
        "ac_capture_same_time": frame(ac[100:104], flags=(1 << 3)),
        **{f"pcars1_{name}": frame([data], flags=2) for name, data in pc1.items()},
        "pcars1_all_captures": frame(list(pc1.values()), flags=2 | (1 << 5)),
        # synthetic: every kind of every feed
        "ksudp_handshake_then_stream": frame([ac_handshake_response(), *ac[10:13], bytes(212)], flags=0 | (1 << 4)),
        "ksudp_handshake_response": frame([ac_handshake_response()], flags=0),
        "ksudp_lap": frame([bytes(212)], flags=0),
        "tt_driver": frame(tt, flags=1),
        "tt_driver_single": frame(tt[:1], flags=1, kind=P.kind_id["tt_driver"]),
        "pcars1_sim": frame([pc1_sim[0], pcars1_strings("RT Sim GT", "RT Test Ring", 1), *pc1_sim[1:]], flags=2),
        "pcars2_telemetry": frame(pc2, flags=2, kind=P.kind_id["pcars2_telemetry_559"]),
        **{f"pcars2_every_kind_{i}": frame(group, flags=2) for i, group in enumerate(pc2_groups)},
        "pcars2_game_state": frame([pc2_header(4, 24, 3)], flags=2),
        # one of each feed, through all three feeds, with the arbitrary-offset decode near the end
        "all_feeds_mixed": frame([ac[5000], tt[0], pc1["jamesremuscat_packet_0.bin"], pc2[0]], flags=3, kind=1),
        # not well-formed on any feed
        "garbage": frame([b"", b"a", bytes(327), b"a" * 329, bytes(2100), np.arange(256, dtype=np.uint8).tobytes()],
                         flags=3 | (1 << 7)),
    }
    return seeds


def write_seeds(directory: str | Path) -> list[Path]:
    """Write the seed inputs into ``directory`` (the libFuzzer corpus); returns the files."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in seed_inputs().items():
        path = d / f"seed_{name}"
        path.write_bytes(data)
        out.append(path)
    return out


# ---- the fuzz target -----------------------------------------------------------------------------


class _StubSocket:
    """Stands in for the ksudp feed's socket: the handshake session sends through it."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, object]] = []

    def sendto(self, data: bytes, addr) -> int:
        self.sent.append((bytes(data), addr))
        return len(data)


def make_target():
    """Import rt (instrumented when called inside ``atheris.instrument_imports``); return the target."""
    import numpy as np
    import orjson

    from rt import clock
    from rt.decode import BatchDecoder, Decoder, classify_batch
    from rt.feeds.feed import Feed
    from rt.feeds.ksudp import KsudpSession
    from rt.protocols import default_protocols
    from rt.protocols.canonical import CANONICAL_DTYPE, MAPPERS

    # The recorder's clock, made deterministic (the ksudp session and the live view read it): a
    # run then depends on its input alone, and libFuzzer's comparison hints on nothing else.
    clock.now_ns = lambda: T0_NS + 3600 * 10**9

    P = default_protocols()
    decoders = [Decoder(k) for k in P.kinds]

    def gather_index(layout) -> np.ndarray:
        """Byte positions in a datagram of each byte of a packed row, in row order (from the table)."""
        parts = []
        for f in layout.fields:
            if f.stride:
                base = f.offset + np.arange(f.records, dtype=np.int64)[:, None] * f.stride
                parts.append((base + np.arange(f.element_bytes, dtype=np.int64)[None, :]).reshape(-1))
            else:
                parts.append(f.offset + np.arange(f.nbytes, dtype=np.int64))
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    gathers = [gather_index(k) for k in P.kinds]
    # Kinds of variable length (ACC) are parsed into their rows first: their rows are not bytes of
    # the datagram at fixed places, so they are held to their parse instead (check_parsed).
    fixed_kinds = [i for i, k in enumerate(P.kinds) if not k.wire]
    variable_feeds = {feed for feed, kinds in P.feed_kinds.items() if any(k.wire for k in kinds)}

    def check_parsed(feed_name: str, buf: bytes, offsets: np.ndarray, lengths: np.ndarray, rule_kinds) -> None:
        """The feed's whole path over the batch: a parse refuses what the rules let through, never
        the reverse, nothing escapes, and every datagram is decoded or counted malformed."""
        batch = BatchDecoder(P, feed_name)
        kinds, bad = batch.classify(buf, offsets, lengths)
        assert ((kinds == rule_kinds) | (kinds == -1)).all()
        assert bad == int((kinds < 0).sum())
        t_ns = np.arange(len(offsets), dtype=np.int64)
        decoded = sum(len(g.t_ns) for g in batch.groups(buf, offsets, t_ns, kinds, lengths=lengths))
        assert decoded + bad == len(offsets)
    for dec, idx in zip(decoders, gathers):
        assert idx.size == dec.plan.row_bytes, dec.layout.name
    blocks: dict[int, np.ndarray] = {}

    def decode_all(kind_id: int, buf: bytes, offs: np.ndarray):
        """rows, columns, and columns into a reused output block (its views are cached with it)."""
        dec = decoders[kind_id]
        rows = dec.rows(buf, offs)
        cols = dec.columns(buf, offs)
        need = dec.output_bytes(len(offs))
        block = blocks.get(kind_id)
        if block is None or block.size < need:
            block = blocks[kind_id] = np.empty(max(need, 1), dtype=np.uint8)
        reused = dec.columns(buf, offs, out=block)
        return rows, cols, reused

    def check_decoded(kind_id: int, u8: np.ndarray, offs: np.ndarray, rows, cols, reused) -> None:
        dec = decoders[kind_id]
        n = len(offs)
        assert rows.shape == (n,) and rows.dtype == dec.row_dtype
        # every byte of every row where the layout table says it comes from
        expected = u8[offs[:, None] + gathers[kind_id][None, :]] if n else b""
        assert rows.tobytes() == bytes(expected), dec.layout.name
        for name in rows.dtype.names:
            want = np.ascontiguousarray(rows[name]).tobytes()
            for c in (cols, reused):
                assert c[name].shape == (n, *dec.layout[name].shape), name
                assert c[name].tobytes() == want, (dec.layout.name, name)
    def check_classify_and_decode(flags: int, kind_byte: int, payloads: list[bytes]) -> None:
        buf = b"".join(payloads)
        u8 = np.frombuffer(buf, dtype=np.uint8)
        lengths = np.array([len(p) for p in payloads], dtype=np.int64)
        offsets = np.zeros(len(payloads), dtype=np.int64)
        if len(payloads) > 1:
            offsets[1:] = np.cumsum(lengths)[:-1]
        for feed_name, rules in P.feed_rules.items():
            kinds, bad = classify_batch(rules.rules, buf, offsets, lengths)
            expected = [reference_decoder.classify_one(rules.rules, p) for p in payloads]
            assert kinds.tolist() == expected, (feed_name, kinds.tolist(), expected)
            assert bad == expected.count(-1), (feed_name, bad, expected)
            if feed_name in variable_feeds:
                check_parsed(feed_name, buf, offsets, lengths, kinds)
                continue
            for kind_id in sorted(set(expected) - {-1}):
                sel = offsets[kinds == kind_id]
                check_decoded(kind_id, u8, sel, *decode_all(kind_id, buf, sel))
        # a decode at arbitrary offsets: every datagram's start, read as one packet kind (plus a
        # negative offset): ValueError exactly when a packet would not fit inside the buffer
        kind_id = fixed_kinds[kind_byte % len(fixed_kinds)]
        dec = decoders[kind_id]
        size = dec.layout.size
        offs = offsets if not flags & 0x80 else np.append(offsets, -1 - (kind_byte & 7))
        fits = bool(((offs >= 0) & (offs + size <= len(buf))).all())
        if fits:
            check_decoded(kind_id, u8, offs, *decode_all(kind_id, buf, offs))
            return
        for call in (lambda: dec.rows(buf, offs), lambda: dec.columns(buf, offs)):
            try:
                call()
            except ValueError:
                continue
            raise AssertionError(f"{dec.layout.name}: decoded offsets {offs.tolist()} of a {len(buf)}-byte buffer")


    class CheckingSink:
        def __init__(self, feed) -> None:
            self.feed = feed
            self.raw = self.malformed = self.decoded = 0

        def on_raw(self, feed, t_ns, lengths, data, malformed) -> bool:
            n = len(t_ns)
            assert feed is self.feed and len(lengths) == n and data.shape == (n, feed.ring.slot_size)
            assert 0 <= malformed <= n
            self.raw += n
            self.malformed += malformed
            return True

        def on_decoded(self, feed, layout, columns, t_ns, canonical) -> None:
            n = len(t_ns)
            assert n > 0 and len(columns.rows) == n and columns.rows.dtype == layout.dtype
            ring_mem = feed.ring.data_buffer
            assert not np.may_share_memory(columns.rows, ring_mem), "decoded rows are ring memory"
            assert not np.may_share_memory(t_ns, feed.ring.peek()[1]), "t_ns is ring memory"
            if layout.name in MAPPERS:
                assert canonical is not None and canonical.dtype == CANONICAL_DTYPE and len(canonical) == n
                assert (canonical["t_ns"] == t_ns).all()
            else:
                assert canonical is None, layout.name
            self.decoded += n

    def run_feed(feed_name: str, flags: int, payloads: list[bytes]) -> None:
        feed = Feed(feed_name, 0, P, None)
        sink = CheckingSink(feed)
        handler = session = None
        if feed_name == "ksudp" and flags & 0x10:
            feed.sock = _StubSocket()
            session = KsudpSession(feed, ("127.0.0.1", 9996))
            handler = session.on_decoded
        one_by_one = bool(flags & 0x04)
        # receive times grow in ring order, as the receive thread stamps them
        step = 0 if flags & 0x08 else STEP_NS
        t = T0_NS
        times = []
        taken = 0
        for p in payloads:
            assert feed.ring.push_bytes(t, p), "ring refused a datagram"
            times.append(t)
            t += step
            if one_by_one:
                got = feed.consume([sink], handler)
                assert got == 1, got
                taken += got
        got = feed.consume([sink], handler)
        taken += got
        n = len(payloads)
        good = [reference_decoder.classify_one(P.feed_rules[feed_name].rules, p) >= 0 for p in payloads]
        bad = good.count(False)
        st = feed.stats
        assert taken == n and st.packets == n and sink.raw == n, (taken, st, sink.raw, n)
        assert st.malformed == bad and sink.malformed == bad, (st, sink.malformed, bad)
        assert sink.decoded == n - bad, (sink.decoded, n, bad)
        assert st.bytes == sum(len(p) for p in payloads), st
        assert st.dropped == 0 and feed.ring.pending == 0 and feed.ring.dropped == 0
        good_times = [t for t, g in zip(times, good) if g]
        assert feed.last_good_ns == (max(good_times) if good_times else None), (feed.last_good_ns, good_times)
        now = (max(times) if times else T0_NS) + STEP_NS
        if session is not None:
            session.tick(now)
        live = feed.live(now)
        assert isinstance(live, dict), type(live)
        assert live["packets"] == n and live["malformed"] == bad, live
        orjson.dumps(live)  # GET /api/live serialises it: only JSON's own types
        assert isinstance(feed.live(), dict)  # and at the clock's now (an hour later: lost)

    def target(data: bytes) -> None:
        flags, kind_byte, payloads = parse(data)
        check_classify_and_decode(flags, kind_byte, payloads)
        sel = flags & 3
        for feed_name in FEEDS if sel == 3 else (FEEDS[sel],):
            run_feed(feed_name, flags, payloads)

    return target


def _reporting(target, artifact_prefix: str):
    """Wrap ``target`` so warnings that the filters let through do not stop the run: each distinct
    one is reported once, with its input written to ``<artifact_prefix>warning-<sha1>``."""
    import hashlib
    import traceback
    import warnings

    seen: set[tuple] = set()

    def run(data: bytes) -> None:
        with warnings.catch_warnings(record=True) as caught:
            target(data)  # under the filters set up in main(): "error" ones raise here
        for w in caught:
            key = (w.category.__name__, w.filename, w.lineno, str(w.message))
            if key in seen:
                continue
            seen.add(key)
            path = f"{artifact_prefix}warning-{hashlib.sha1(data).hexdigest()}"
            Path(path).write_bytes(data)
            print(f"\n=== {w.category.__name__} at {w.filename}:{w.lineno}: {w.message} (input: {path})",
                  file=sys.stderr, flush=True)
            with warnings.catch_warnings():  # where it came from: replay with warnings as errors
                warnings.simplefilter("error")
                try:
                    target(data)
                except Warning:
                    traceback.print_exc(file=sys.stderr)

    return run


def main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[1] == "--write-seeds":
        for p in write_seeds(argv[2]):
            print(p)
        return
    import os
    import warnings

    import atheris

    # RT_FUZZ_WARNINGS:
    #   error   (default) every warning is a crash, as in the test suite (filterwarnings = error)
    #   report  every distinct warning is reported once and the run goes on (to survey them)
    mode = os.environ.get("RT_FUZZ_WARNINGS", "error")
    if mode not in ("error", "report"):
        raise SystemExit(f"RT_FUZZ_WARNINGS must be error or report, not {mode!r}")
    warnings.simplefilter("always" if mode == "report" else "error")
    with atheris.instrument_imports(include=["rt"]):
        target = make_target()
    if mode != "error":
        prefix = next((a.split("=", 1)[1] for a in argv if a.startswith("-artifact_prefix=")), "./")
        target = _reporting(target, prefix)
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
