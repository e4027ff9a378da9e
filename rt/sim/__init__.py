"""The built-in driving simulator: demo data source and test rig with known true answers.

* :mod:`rt.sim.car` — :class:`CarSpec` (torque curve, gearbox, drag, grip) and the true optimal
  upshift points; :data:`CARS`.
* :mod:`rt.sim.track` — :class:`Track`, closed circuits of straights and arcs with exact geometry,
  corners and sectors; :data:`TRACKS`.
* :mod:`rt.sim.driver` — :class:`Simulation`, a deterministic car lapping a track at the limit (or
  doing full-throttle pulls), sampled into arrays by :meth:`Simulation.step_block`, with the exact
  answers in :attr:`Simulation.truth`.
* :mod:`rt.sim.quirks` — :class:`Quirks`, real-game behaviours the game side can reproduce (gear
  blips, a hotlap out-lap, pauses, PCARS 1 menus and shared counters), all off by default.

numpy only; everything is deterministic for a given seed.
"""

from .car import CARS, G, CarSpec
from .driver import CHANNELS, DEFAULT_START_TIME_NS, ShiftEvent, Simulation, SimTruth
from .quirks import Quirks
from .track import TRACKS, Corner, Segment, Track

__all__ = [
    "CARS",
    "CHANNELS",
    "DEFAULT_START_TIME_NS",
    "G",
    "Quirks",
    "TRACKS",
    "CarSpec",
    "Corner",
    "Segment",
    "ShiftEvent",
    "SimTruth",
    "Simulation",
    "Track",
]
