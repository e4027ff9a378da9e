"""Use case → analysis, its version, and the guidance a driver gets for it.

Every analysis is a pure function ``analyze(runs: list[Frames]) -> dict`` in its own module; this
table is the only place that knows which one serves which use case. Results are wrapped with
``use_case``, ``version``, ``computed_at`` and ``runs`` here, in the shape of the API contract.
"""

from __future__ import annotations

from importlib import import_module

from ..clock import iso
from .frames import Frames

#: use case → (module, function name)
ANALYSES: dict[str, tuple[str, str]] = {
    "shift_points": ("shift_points", "analyze"),
    "racing_line": ("racing_line", "analyze"),
    "braking_analysis": ("braking", "analyze"),
    "lap_times": ("laps", "analyze_lap_times"),
    "sector_analysis": ("laps", "analyze_sectors"),
    "track_map": ("track_map", "analyze"),
    "general": ("general", "analyze"),
}

#: What the driver should do for each use case: concrete enough to follow without a manual.
GUIDANCE: dict[str, str] = {
    "shift_points": (
        "On a long straight, pull flat out from low speed in 1st through every gear, shifting at the rev "
        "limiter, steering straight and keeping the clutch out except to shift. Do at least 3 pulls, in both "
        "directions if the road has a slope. Avoid wheelspin, traction-control cuts and lifting."
    ),
    "racing_line": (
        "Drive at least 5 clean, consistent laps at a steady pace, then 2-3 laps trying a different line in "
        "the corners you want to compare. Stay on track; a lap with a spin or an off counts as invalid."
    ),
    "braking_analysis": (
        "Drive at least 5 laps at race pace, braking at the points you normally use; then vary the brake "
        "point by a few metres in one corner per lap to compare. Avoid locking the wheels and skipping corners."
    ),
    "lap_times": (
        "Start the run before you cross the start/finish line and drive at least 5 full laps at race pace. "
        "Stop the run after crossing the line; out- and in-laps are marked invalid automatically."
    ),
    "sector_analysis": (
        "Drive at least 5 full laps at race pace, starting the run before the start/finish line; focus on one "
        "sector at a time if you want to compare approaches. Clean laps give the theoretical best lap."
    ),
    "track_map": (
        "Drive 1-3 clean laps close to the racing line at any pace, starting before the start/finish line. "
        "No pit stops and no shortcuts: the map follows where the car went."
    ),
    "general": (
        "Drive as you normally would, for at least 10 minutes; the summary covers distance, speeds, throttle "
        "and brake use, and the time spent in each gear."
    ),
}


def analyze(use_case: str, runs: list[Frames]) -> dict:
    """Run the use case's analysis on ``runs`` (raises ValueError when the data cannot be analyzed)."""
    module_name, func_name = ANALYSES[use_case]
    module = import_module(f"{__package__}.{module_name}")
    result = getattr(module, func_name)(runs)
    return {
        "use_case": use_case,
        "version": getattr(module, "VERSION", 1),
        "computed_at": iso(),
        "runs": [f.meta.get("run_id") for f in runs],
        **result,
    }
