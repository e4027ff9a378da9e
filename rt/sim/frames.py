"""Frames from the simulator, through the real packet builders, decoder and canonical mapping (tests, benchmarks).

So an analysis test sees exactly what a recording of that game would hold (the game's units,
quantisation and missing channels), while the simulation's ``truth`` says what the right answer is.
"""

from __future__ import annotations

import weakref

import numpy as np

from rt.analysis.frames import Frames
from rt.decode import Decoder, concatenated_offsets
from rt.protocols import default_protocols
from rt.protocols.canonical import to_canonical
from rt.sim.game import GameStream, ac_car_info, pcars1_telemetry, pcars2_telemetry, tt_driver
from rt.sim.quirks import Quirks

P = default_protocols()
_KIND = {"ac": "ac_car_info", "tt": "tt_driver", "pcars1": "pcars1_telemetry", "pcars2": "pcars2_telemetry_559"}
#: The quirky stream of each (sim, game), so consecutive calls continue it (gear blips, pauses).
_STREAMS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def packets(sim, n: int, game: str, quirks: Quirks | bool | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``n`` samples of ``sim`` as the game's datagrams: (packets n × size, t_ns, the sim's state).

    With ``quirks`` (default: ``sim.quirks`` as :func:`rt.sim.game.make_sim` leaves it) the ``n``
    datagrams come from a :class:`~rt.sim.game.GameStream` at ``sim.rate_hz``: a pause repeats
    datagrams and a menu sends menu packets, so fewer than ``n`` simulation samples are taken;
    ``t_ns`` is then the real time of each datagram and the state is "as sent" (see GameStream).
    """
    q = Quirks.of(quirks if quirks is not None else getattr(sim, "quirks", None))
    if q.any:
        streams = _STREAMS.setdefault(sim, {})
        stream = streams.get(game)
        if stream is None or stream.quirks != q:
            stream = streams[game] = GameStream(game, sim, sim.rate_hz, q)
        rows, state = stream.next(n)
        return rows, state["t_ns"], state
    state = sim.step_block(n)
    if game == "ac":
        rows = ac_car_info(state)
    elif game == "tt":
        rows = tt_driver(state, 0)
    elif game == "pcars1":
        rows = pcars1_telemetry(state, 0, sim.truth.track_length_m)
    elif game == "pcars2":
        rows = pcars2_telemetry(state, 0)
    else:
        raise ValueError(game)
    return rows, state["t_ns"], state


def frames_from_sim(sim, n: int, game: str = "ac", meta: dict | None = None,
                    quirks: Quirks | bool | None = None) -> tuple[Frames, dict]:
    """The next ``n`` datagrams of ``sim`` as a run's Frames (decoded as recorded), and the state
    they were built from (with ``quirks``, see :func:`packets`)."""
    rows, t_ns, state = packets(sim, n, game, quirks)
    layout = P[_KIND[game]]
    cols = Decoder(layout).columns(rows.tobytes(), concatenated_offsets(len(rows), layout.size))
    canon = to_canonical(layout.name, cols, t_ns)
    extras = {}
    if game == "pcars1":
        extras["sector_times_s"] = np.stack(
            [cols["sCurrentSector1Time"], cols["sCurrentSector2Time"], cols["sCurrentSector3Time"]], axis=1
        ).astype(np.float64)
    m = {"feed_name": {"ac": "ksudp", "tt": "telemetry_tool"}.get(game, "pcars"), "lost_frames": 0}
    if game == "pcars1":
        m["track_length_m"] = float(cols["sTrackLength"][-1])
    m.update(meta or {})
    return Frames.from_rows(canon, extras, m), state
