"""A smooth cutoff for the invariants (4.1): w_m(r) -> w_m(r) S(r).

S is the quintic "smoothstep" switch, C2 on the whole line::

    S(r) = 1                                     r <= r_on
    S(r) = 1 - x^3 (10 - 15 x + 6 x^2)           x = (r - r_on) / (r_c - r_on) in (0, 1)
    S(r) = 0                                     r >= r_c

so the cut invariants and their gradients are continuous in the positions and vanish smoothly at
r_c.  S(r) grows pointwise with r_c at a fixed width ``r_c - r_on``, so for positive weight functions
the cut invariants approach the minimum-image ones monotonically as r_c grows towards half the box.
Distances in angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Default width r_c - r_on of the switching region, angstrom.
DEFAULT_WIDTH = 1.0


@dataclass(frozen=True)
class SmoothCutoff:
    """The switch S(r) on [r_on, r_c] (angstrom)."""

    r_c: float
    r_on: float | None = None

    def __post_init__(self):
        r_c = float(self.r_c)
        if not np.isfinite(r_c) or r_c <= 0:
            raise ValueError(f"cutoff r_c must be a positive distance in angstrom, got {self.r_c!r}")
        r_on = max(r_c - DEFAULT_WIDTH, 0.5 * r_c) if self.r_on is None else float(self.r_on)
        if not 0.0 <= r_on < r_c:
            raise ValueError(f"switch start r_on must satisfy 0 <= r_on < r_c = {r_c}, got {r_on!r}")
        object.__setattr__(self, "r_c", r_c)
        object.__setattr__(self, "r_on", r_on)

    def check_box(self, box: float) -> None:
        """``ValueError`` unless r_c <= box / 2 (one periodic image within the cutoff)."""
        if self.r_c > 0.5 * float(box) + 1e-12:
            raise ValueError(f"cutoff r_c = {self.r_c} exceeds half the box ({0.5 * float(box)} angstrom)")

    def _x(self, r):
        return np.clip((np.asarray(r, dtype=float) - self.r_on) / (self.r_c - self.r_on), 0.0, 1.0)

    def value(self, r):
        x = self._x(r)
        return 1.0 - x**3 * (10.0 - 15.0 * x + 6.0 * x * x)

    def derivative(self, r):
        """dS/dr, 1/angstrom."""
        x = self._x(r)
        return -30.0 * x * x * (1.0 - x) ** 2 / (self.r_c - self.r_on)


def as_cutoff(cutoff) -> SmoothCutoff | None:
    """``None`` (minimum image, all pairs), a distance r_c, or a :class:`SmoothCutoff`."""
    if cutoff is None or isinstance(cutoff, SmoothCutoff):
        return cutoff
    return SmoothCutoff(float(cutoff))
