"""Weight functions w(r) of the invariants, eqs (4.2)-(4.4), with analytic derivatives.

Each family is a frozen dataclass with ``value(r)``, ``derivative(r)`` (dw/dr) and a readable
``name`` that :func:`weight_function` parses back::

    exp(a=1/5)   exp(-r/5)            (4.2), alpha in 1/angstrom
    gauss(s=4)   exp(-r^2 / 2 s^2)    (4.3), sigma in angstrom
    pow(n=2)     r^-2                 (4.4)

Distances are in angstrom.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from agents.validation import positive


def _format(x: float) -> str:
    """``0.2`` -> ``1/5``, ``4.0`` -> ``4``, anything else -> shortest repr."""
    if float(x).is_integer():
        return str(int(x))
    inverse = 1.0 / x
    if abs(inverse - round(inverse)) < 1e-12:
        return f"1/{int(round(inverse))}"
    return repr(float(x))


@dataclass(frozen=True)
class Exponential:
    """w(r) = exp(-alpha r), eq. (4.2); ``alpha`` in 1/angstrom."""

    alpha: float

    def __post_init__(self):
        object.__setattr__(self, "alpha", positive("weight-function parameter alpha", self.alpha))

    @property
    def name(self) -> str:
        return f"exp(a={_format(self.alpha)})"

    def value(self, r):
        return np.exp(-self.alpha * r)

    def derivative(self, r):
        return -self.alpha * np.exp(-self.alpha * r)


@dataclass(frozen=True)
class Gaussian:
    """w(r) = exp(-r^2 / (2 sigma^2)), eq. (4.3); ``sigma`` in angstrom."""

    sigma: float

    def __post_init__(self):
        object.__setattr__(self, "sigma", positive("weight-function parameter sigma", self.sigma))

    @property
    def name(self) -> str:
        return f"gauss(s={_format(self.sigma)})"

    def value(self, r):
        return np.exp(-0.5 * (r / self.sigma) ** 2)

    def derivative(self, r):
        return -(r / self.sigma**2) * self.value(r)


@dataclass(frozen=True)
class PowerLaw:
    """w(r) = r^-n, eq. (4.4)."""

    n: float

    def __post_init__(self):
        object.__setattr__(self, "n", positive("weight-function parameter n", self.n))

    @property
    def name(self) -> str:
        return f"pow(n={_format(self.n)})"

    def value(self, r):
        return np.power(r, -self.n)

    def derivative(self, r):
        return -self.n * np.power(r, -self.n - 1.0)


WeightFunction = Exponential | Gaussian | PowerLaw

_NAME = re.compile(r"^\s*(exp|gauss|pow)\(\s*(a|s|n)\s*=\s*([0-9.eE+\-/]+)\s*\)\s*$")
_FAMILIES = {("exp", "a"): Exponential, ("gauss", "s"): Gaussian, ("pow", "n"): PowerLaw}


def weight_function(name: str) -> WeightFunction:
    """Parse a readable name such as ``exp(a=1/5)``, ``gauss(s=4)`` or ``pow(n=2)``."""
    match = _NAME.match(name)
    family = match and _FAMILIES.get((match.group(1), match.group(2)))
    if not family:
        raise ValueError(
            f"unknown weight function {name!r}: expected exp(a=ALPHA), gauss(s=SIGMA) or pow(n=N)"
        )
    try:
        value = float(Fraction(match.group(3)))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"weight function {name!r}: cannot read the number {match.group(3)!r}")
    return family(value)


def weight_functions(names) -> tuple[WeightFunction, ...]:
    """A tuple of weight functions from names (a comma-separated string or an iterable)."""
    if isinstance(names, str):
        names = [n for n in re.split(r",(?![^(]*\))", names) if n.strip()]
    functions = tuple(n if not isinstance(n, str) else weight_function(n) for n in names)
    if len({f.name for f in functions}) != len(functions):
        raise ValueError(f"weight functions repeat: {[f.name for f in functions]}")
    return functions


def paper_weight_functions() -> tuple[WeightFunction, ...]:
    """The paper's 18 weight functions (Sec. 5.2): exp alpha = 1..1/8, gauss sigma = 1..8, pow n = 1, 2."""
    return (
        tuple(Exponential(1.0 / k) for k in range(1, 9))
        + tuple(Gaussian(float(s)) for s in range(1, 9))
        + (PowerLaw(1.0), PowerLaw(2.0))
    )


#: The paper's seven most relevant weight functions per sink species (Sec. 5.2, Table 1).
PAPER_SELECTED = {
    "O": "exp(a=1/5),exp(a=1/6),exp(a=1/7),gauss(s=4),gauss(s=6),gauss(s=8),pow(n=2)",
    "H": "exp(a=1/2),exp(a=1/4),gauss(s=2),gauss(s=3),gauss(s=4),gauss(s=5),gauss(s=6)",
}
