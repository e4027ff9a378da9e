"""Things real games do that our own assumptions would not: the simulator's optional quirks.

Every quirk is off in ``Quirks()`` (the default everywhere), so the simulator speaks the clean
protocol unless a caller asks for more. ``Quirks.real()`` switches them all on with values like the
real captures; ``Quirks.of(True)`` is the same, ``Quirks.of(None | False)`` all off.

* ``gear_blips`` (Project CARS 1 and 2): around every gear change the gear byte shows one-sample
  values of another gear between neutral samples, e.g. ``5 5 5 3 0 0 3 4 4`` for a 5→4 downshift
  (real Spa capture). The pattern starts at the first sample in the new gear, so the reported gear
  lags the real one by the pattern's length (≤ 5 samples); drawn per shift from the seed.
* ``out_lap_m`` (a :class:`~rt.sim.driver.Simulation` option, :func:`rt.sim.game.make_sim` takes it
  from here): the car starts this far (along its line) before the start/finish line, at racing
  speed, with the lap timer standing at 0 until it first crosses the line (AC's hotlap start).
  The truth's first lap starts at ``truth.out_lap_s``; the out-lap is not a lap.
* ``pauses``: ``((at_s, duration_s), ...)``: after ``at_s`` seconds of driving, the game re-sends
  the same datagram for ``duration_s`` seconds while real time runs on (the real Monza capture
  ends with 480 identical frames, ≈ 7.5 s). The simulation does not step meanwhile: the car
  continues where it stopped and the truth (odometer, lap times) excludes the pause.
* ``menu_s`` (Project CARS 1): the stream starts in the menus: for this long the game sends
  telemetry with ``sNumParticipants = -1`` (game state front end, everything else zero) and
  participant-strings packets with empty car and track names; the car only starts then.
* ``shared_seq`` (Project CARS 1): a participant-strings packet carries the 6-bit sequence number
  of the telemetry packet sent before it (it does not advance the counter), as in the real Spa
  capture (telemetry 11, 12, strings 12, telemetry 13).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

#: Values of :meth:`Quirks.real`.
REAL_OUT_LAP_M = 400.0
REAL_PAUSE = (45.0, 7.5)
REAL_MENU_S = 5.0


@dataclass(frozen=True)
class Quirks:
    """Which real-game behaviours the simulator reproduces (see the module docstring)."""

    gear_blips: bool = False
    out_lap_m: float = 0.0
    pauses: tuple[tuple[float, float], ...] = ()
    menu_s: float = 0.0
    shared_seq: bool = False

    def __post_init__(self) -> None:
        if self.out_lap_m < 0 or self.menu_s < 0:
            raise ValueError("out_lap_m and menu_s must be ≥ 0")
        pauses = tuple((float(a), float(d)) for a, d in self.pauses)
        for at, dur in pauses:
            if at <= 0 or dur < 0:
                raise ValueError("a pause needs at_s > 0 (a frame to repeat) and duration_s ≥ 0")
        object.__setattr__(self, "pauses", tuple(sorted(pauses)))

    @classmethod
    def real(cls, **changes) -> "Quirks":
        """Every quirk on, with values like the real captures (``changes`` override them)."""
        base = cls(gear_blips=True, out_lap_m=REAL_OUT_LAP_M, pauses=(REAL_PAUSE,), menu_s=REAL_MENU_S,
                   shared_seq=True)
        return replace(base, **changes)

    @classmethod
    def of(cls, value: "Quirks | bool | None") -> "Quirks":
        """``None``/``False`` → all off, ``True`` → :meth:`real`, a :class:`Quirks` as it is."""
        if value is None or value is False:
            return cls()
        if value is True:
            return cls.real()
        if isinstance(value, Quirks):
            return value
        raise TypeError(f"quirks must be a Quirks, a bool or None, not {type(value).__name__}")

    @property
    def any(self) -> bool:
        return self != Quirks()


class GearBlips:
    """The gear a Project CARS game reports around each shift (stateful across blocks).

    :meth:`apply` takes the true gear of consecutive sample blocks and returns the reported one: at
    every change from gear a to gear b (a, b ≥ 1) a pattern of ``[blip] 0×k [blip]`` (k = 1..3
    neutral samples, at least one blip; a blip is the next-but-one gear b + (b − a), the previous
    gear a or a − (b − a), clipped to the box) replaces the first samples in gear b. Patterns are
    drawn from ``(seed, shift number)``, so any block split gives the same stream.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self.prev: int | None = None  # true gear of the last sample seen
        self.pending: list[int] = []  # pattern values still to be written
        self.shifts = 0

    def pattern(self, a: int, b: int, num_gears: int) -> list[int]:
        rng = np.random.default_rng([self.seed, 0xB11B, self.shifts])
        self.shifts += 1
        d = 1 if b > a else -1
        top = max(int(num_gears), 1)

        def blip() -> int:
            g = int(min(max((b + d, a, a - d)[int(rng.integers(3))], 1), top))
            return a if g == b else g

        pre, post = rng.random() < 0.5, rng.random() < 0.6
        if not (pre or post):
            pre = True
        out = [blip()] if pre else []
        out += [0] * int(rng.integers(1, 4))
        if post:
            out.append(blip())
        return out

    def apply(self, gear: np.ndarray, num_gears) -> np.ndarray:
        true = np.asarray(gear)
        out = true.copy()
        n = len(true)
        if n == 0:
            return out
        ng = np.broadcast_to(np.asarray(num_gears), (n,))
        prev = np.concatenate([[true[0] if self.prev is None else self.prev], true[:-1]])
        changes = np.flatnonzero(true != prev).tolist()
        # A pattern left over from the last block goes first, up to the next change.
        pos, stop = 0, (changes[0] if changes else n)
        while self.pending and pos < stop:
            out[pos] = self.pending.pop(0)
            pos += 1
        for i, c in enumerate(changes):
            stop = changes[i + 1] if i + 1 < len(changes) else n
            a, b = int(prev[c]), int(true[c])
            self.pending = self.pattern(a, b, int(ng[c])) if a >= 1 and b >= 1 else []
            pos = c
            while self.pending and pos < stop:
                out[pos] = self.pending.pop(0)
                pos += 1
        self.prev = int(true[-1])
        return out
