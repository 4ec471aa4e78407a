"""Descriptor sets: cutoff radial and angular (three-body) invariants of an agent, with readable names.

Beyond the paper's all-pairs radial invariants (4.1), an agent k can encode its neighbourhood within a
cutoff r_c by two kinds of invariant (DESIGN.md, "Beyond the paper: many-body invariants"):

* cutoff radial, per source species a (eq. 4.1 times a cutoff)::

      phi(k) = sum_{i in a, i != k} w(r_ki) f_c(r_ki)                 name: ``gauss(s=2,rc=4.5)``

* angular, per unordered source-species pair (a, b) (eq. 2.11 with d = (r_ki, r_kj, cos theta_ikj)),
  each unordered neighbour pair {i, j} (i in a, j in b, i != j, both != k) counted once::

      phi(k) = sum 2^(1-zeta) (1 + lambda c)^zeta exp(-eta (r_ki^2 + r_kj^2)) f_c(r_ki) f_c(r_kj)
      c = cos theta_ikj = u_ki . u_kj                       name: ``angle(eta=0.3,zeta=2,lambda=+1,rc=4.5)``

A :class:`Feature` is one invariant applied to its source species (``O:gauss(s=2,rc=4.5)``,
``OH:angle(eta=0.3,zeta=2,lambda=+1,rc=4.5)``) and a :class:`DescriptorSet` an ordered list of
features (index p), the vector phi(k) of length P that a loss (4.5) reads.  Every name parses back
(:func:`parse_feature`) and a set round-trips through plain JSON (:meth:`DescriptorSet.to_dict`).

The cutoff function f_c is the project's quintic switch (:class:`agents.cutoff.SmoothCutoff`,
f_c = 1 up to r_on = max(r_c - 1 A, r_c / 2), then 1 - x^3 (10 - 15 x + 6 x^2) down to 0 at r_c) for
both kinds, rather than the cosine 0.5 (cos(pi r / r_c) + 1): it is C2 (the cosine's second derivative
jumps at r_c, so forces would have a kink), it leaves w(r) untouched inside r_on (the radial
invariants equal the paper's there), it is a polynomial (cheaper than cos in the compiled path),
and the cutoff radial invariants are exactly those of ``InvariantSet.compute(cutoff=SmoothCutoff(r_c))``.

Units: distances and r_c in angstrom, eta in 1/angstrom^2; zeta a positive integer, lambda = +1 or -1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from agents.cutoff import DEFAULT_WIDTH, SmoothCutoff
from agents.validation import positive
from agents.weights import WeightFunction, weight_function

FORMAT = "mld-descriptors/1"
#: The cutoff function, as recorded in JSON (see the module docstring).
SWITCH = {"kind": "quintic", "r_on": f"max(rc - {DEFAULT_WIDTH:g}, rc / 2) angstrom"}


def _number(x: float) -> str:
    """``4.0`` -> ``4``, ``0.3`` -> ``0.3`` (shortest repr that reads back exactly)."""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _read_number(text: str, what: str) -> float:
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"{what}: cannot read the number {text!r}") from None


@dataclass(frozen=True)
class CutRadial:
    """Cutoff radial weight w(r) f_c(r): a weight function of eqs (4.2)-(4.4) times the switch.

    Attributes:
        weight: the weight function w (:mod:`agents.weights`).
        rc: cutoff radius r_c, angstrom.
    """

    weight: WeightFunction
    rc: float

    def __post_init__(self):
        object.__setattr__(self, "rc", positive("descriptor parameter rc", self.rc))

    @property
    def name(self) -> str:
        return f"{self.weight.name[:-1]},rc={_number(self.rc)})"

    @property
    def cutoff(self) -> SmoothCutoff:
        return SmoothCutoff(self.rc)

    def value(self, r):
        """w(r) f_c(r) of distances r (any shape, angstrom)."""
        return self.weight.value(r) * self.cutoff.value(r)

    def derivative(self, r):
        """d/dr [w f_c] = w' f_c + w f_c', 1/angstrom."""
        return self.weight.derivative(r) * self.cutoff.value(r) + self.weight.value(r) * self.cutoff.derivative(r)


@dataclass(frozen=True)
class Angular:
    """Angular weight of a neighbour pair (eq. 2.11): 2^(1-zeta) (1 + lambda c)^zeta G(r1) G(r2).

    G(r) = exp(-eta r^2) f_c(r) is the radial factor of one leg.

    Attributes:
        eta: radial width, 1/angstrom^2 (> 0).
        zeta: angular sharpness, a positive integer.
        lam: +1 (peaks at c = 1) or -1 (peaks at c = -1).
        rc: cutoff radius r_c, angstrom.
    """

    eta: float
    zeta: int
    lam: int
    rc: float

    def __post_init__(self):
        object.__setattr__(self, "eta", positive("descriptor parameter eta", self.eta))
        if float(self.zeta) != int(self.zeta) or int(self.zeta) < 1:
            raise ValueError(f"descriptor parameter zeta must be a positive integer, got {self.zeta!r}")
        object.__setattr__(self, "zeta", int(self.zeta))
        if self.lam not in (1, -1):
            raise ValueError(f"descriptor parameter lambda must be +1 or -1, got {self.lam!r}")
        object.__setattr__(self, "lam", int(self.lam))
        object.__setattr__(self, "rc", positive("descriptor parameter rc", self.rc))

    @property
    def name(self) -> str:
        return f"angle(eta={_number(self.eta)},zeta={self.zeta},lambda={self.lam:+d},rc={_number(self.rc)})"

    @property
    def cutoff(self) -> SmoothCutoff:
        return SmoothCutoff(self.rc)

    def leg(self, r):
        """G(r) = exp(-eta r^2) f_c(r) and dG/dr (1/angstrom), arrays of the shape of r."""
        s = self.cutoff
        e = np.exp(-self.eta * np.asarray(r, dtype=float) ** 2)
        return e * s.value(r), e * (s.derivative(r) - 2.0 * self.eta * r * s.value(r))

    def angle(self, c):
        """K(c) = 2^(1-zeta) (1 + lambda c)^zeta and dK/dc, arrays of the shape of c."""
        base = 1.0 + self.lam * np.asarray(c, dtype=float)
        k = 2.0 ** (1 - self.zeta)
        power = base ** (self.zeta - 1)
        return k * power * base, k * self.zeta * self.lam * power

    def term(self, leg1, leg2, c):
        """A neighbour pair's term T = K(c) G(r1) G(r2) and its partials dT/dr1, dT/dr2 (1/angstrom), dT/dc.

        Args:
            leg1, leg2: (G, G') of each neighbour, as :meth:`leg` returns them.
            c: cos theta of the pair at the centre.
        """
        (g1, dg1), (g2, dg2) = leg1, leg2
        K, dK = self.angle(c)
        return K * g1 * g2, K * dg1 * g2, K * g1 * dg2, dK * g1 * g2


Function = CutRadial | Angular

_SPECIES = re.compile(r"[A-Z][a-z]?")
_RADIAL = re.compile(r"^(exp|gauss|pow)\(\s*(a|s|n)\s*=\s*([^,()]+),\s*rc\s*=\s*([^,()]+)\)$")
_ANGLE = re.compile(r"^angle\(\s*eta\s*=\s*([^,()]+),\s*zeta\s*=\s*([^,()]+),\s*lambda\s*=\s*([+-]?1)\s*,"
                    r"\s*rc\s*=\s*([^,()]+)\)$")


def parse_function(name: str) -> Function:
    """``gauss(s=2,rc=4.5)`` -> :class:`CutRadial`; ``angle(eta=0.3,zeta=2,lambda=+1,rc=4.5)`` -> :class:`Angular`."""
    name = name.strip()
    if match := _RADIAL.match(name):
        family, key, value, rc = match.groups()
        return CutRadial(weight_function(f"{family}({key}={value})"), _read_number(rc, name))
    if match := _ANGLE.match(name):
        eta, zeta, lam, rc = match.groups()
        return Angular(_read_number(eta, name), _read_number(zeta, name), int(lam), _read_number(rc, name))
    raise ValueError(f"unknown descriptor {name!r}: expected e.g. gauss(s=2,rc=4.5), exp(a=1/2,rc=4.5), "
                     f"pow(n=2,rc=4.5) or angle(eta=0.3,zeta=2,lambda=+1,rc=4.5)")


@dataclass(frozen=True)
class Feature:
    """One invariant of an agent: a function applied to its source species.

    Attributes:
        sources: one species symbol (cutoff radial) or an unordered pair (angular), e.g. ``("O", "H")``.
        function: a :class:`CutRadial` or :class:`Angular`.
    """

    sources: tuple[str, ...]
    function: Function

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple(self.sources))
        needed = 2 if isinstance(self.function, Angular) else 1
        if len(self.sources) != needed or not all(_SPECIES.fullmatch(s) for s in self.sources):
            raise ValueError(f"descriptor {self.function.name} needs {needed} source species symbol(s) "
                             f"such as 'O' or 'Na', got {self.sources}")

    @property
    def name(self) -> str:
        return f"{''.join(self.sources)}:{self.function.name}"

    @property
    def angular(self) -> bool:
        return isinstance(self.function, Angular)

    @property
    def key(self) -> tuple:
        """Identity up to the order of an angular pair (OH == HO)."""
        return tuple(sorted(self.sources)), self.function


def species_symbols(text: str) -> tuple[str, ...]:
    """``'OH'`` -> ``('O', 'H')``, ``'NaCl'`` -> ``('Na', 'Cl')``; ``ValueError`` for anything else."""
    symbols = tuple(_SPECIES.findall(text.strip()))
    if not symbols or "".join(symbols) != text.strip():
        raise ValueError(f"{text!r} is not a run of species symbols such as 'O', 'OH' or 'NaCl'")
    return symbols


def parse_feature(name: str) -> Feature:
    """``O:gauss(s=2,rc=4.5)`` or ``OH:angle(eta=0.3,zeta=2,lambda=+1,rc=4.5)`` -> :class:`Feature`."""
    prefix, colon, rest = name.partition(":")
    if not colon:
        raise ValueError(f"descriptor {name!r}: expected SOURCES:FUNCTION such as 'O:gauss(s=2,rc=4.5)'")
    return Feature(species_symbols(prefix), parse_function(rest))


@dataclass(frozen=True)
class DescriptorSet:
    """An ordered list of features: the invariant vector phi(k) (length P) of every agent.

    Attributes:
        features: the features in order (index p).
    """

    features: tuple[Feature, ...]

    def __post_init__(self):
        features = tuple(parse_feature(f) if isinstance(f, str) else f for f in self.features)
        if not features:
            raise ValueError("a descriptor set needs at least one feature")
        keys = [f.key for f in features]
        if len(set(keys)) != len(keys):
            repeated = sorted({f.name for f, k in zip(features, keys) if keys.count(k) > 1})
            raise ValueError(f"descriptor features repeat: {repeated}")
        object.__setattr__(self, "features", features)

    @classmethod
    def from_names(cls, names) -> DescriptorSet:
        """From feature names (an iterable, or one string separated by ';' or newlines)."""
        if isinstance(names, str):
            names = [n for n in re.split(r"[;\n]", names) if n.strip()]
        return cls(tuple(parse_feature(n) for n in names))

    def __len__(self) -> int:
        return len(self.features)

    @property
    def names(self) -> list[str]:
        """Feature names in order, e.g. ``['O:gauss(s=2,rc=4.5)', 'OH:angle(...)']``."""
        return [f.name for f in self.features]

    @cached_property
    def species(self) -> tuple[str, ...]:
        """Source species symbols in order of first appearance."""
        return tuple(dict.fromkeys(s for f in self.features for s in f.sources))

    @cached_property
    def rc_max(self) -> float:
        """The largest cutoff radius, angstrom: the neighbourhood every agent scans."""
        return max(f.function.rc for f in self.features)

    def check_box(self, box: float) -> None:
        """``ValueError`` unless every cutoff fits the box: r_c <= box / 2 (one image within r_c)."""
        if self.rc_max > 0.5 * float(box) + 1e-12:
            worst = next(f.name for f in self.features if f.function.rc == self.rc_max)
            raise ValueError(f"descriptor {worst}: rc = {self.rc_max} angstrom exceeds half the box "
                             f"(box = {float(box)} angstrom); use rc <= {0.5 * float(box)}")

    def species_index(self, symbols) -> np.ndarray:
        """(N,) index of each atom's species in :attr:`species`; -1 for species no feature reads."""
        lookup = {s: a for a, s in enumerate(self.species)}
        return np.array([lookup.get(s, -1) for s in symbols], dtype=np.int64)

    def to_dict(self) -> dict:
        """Plain JSON: ``{"format", "switch", "features": [names]}``."""
        return {"format": FORMAT, "switch": dict(SWITCH), "features": self.names}

    @classmethod
    def from_dict(cls, data: dict, where: str = "descriptors") -> DescriptorSet:
        if data.get("format") != FORMAT:
            raise ValueError(f"{where}: not a descriptor set (format {data.get('format')!r}, expected {FORMAT!r})")
        if data.get("switch") != SWITCH:
            raise ValueError(f"{where}: cutoff function {data.get('switch')!r} is not this version's {SWITCH!r}")
        return cls.from_names(data["features"])


#: The prototype's angular grid (DESIGN.md): eta in 1/angstrom^2, zeta, lambda.
PROTOTYPE_ETAS = (0.05, 0.3, 1.0)
PROTOTYPE_ZETAS = (1, 2, 4, 16)
PROTOTYPE_LAMBDAS = (1, -1)
#: The zetas of ``mld fit --invariants many-body-l2``: (1 + lambda c)^zeta of degree <= 2 in c = cos theta, the
#: angular resolution of Legendre orders l <= 2 (the compiled forces sum such sets through moments, O(neighbours)).
L2_ZETAS = (1, 2)


#: Radial weights for a cutoff of about 4.5 angstrom.  The paper's long-range ones (exp with alpha <=
#: 1/4, gauss with sigma >= 4) are nearly f_c itself inside such a cutoff, so nearly collinear; on the
#: CP2K water run these 12 fit as well as the paper's 18 (shared quadratic, test RMSE O 0.117 / H
#: 0.137 against 0.119 / 0.141 with quadratic terms on the radial descriptors).
SHORT_RANGE_WEIGHTS = ("exp(a=2)", "exp(a=1)", "exp(a=1/2)", "gauss(s=0.5)", "gauss(s=0.75)", "gauss(s=1)",
                       "gauss(s=1.5)", "gauss(s=2)", "gauss(s=3)", "pow(n=1)", "pow(n=2)", "pow(n=4)")


def prototype_descriptors(species=("O", "H"), rc: float = 4.5, weights=SHORT_RANGE_WEIGHTS, etas=PROTOTYPE_ETAS,
                          zetas=PROTOTYPE_ZETAS, lambdas=PROTOTYPE_LAMBDAS,
                          angular_rc: float | None = None) -> DescriptorSet:
    """A starting set: cutoff radial functions per source species plus the angular grid per species pair.

    Args:
        species: source species symbols.
        rc: cutoff radius of the radial features (and of the angular ones unless ``angular_rc``), angstrom.
        weights: radial weight functions (objects or names); default :data:`SHORT_RANGE_WEIGHTS`
            (``paper_weight_functions()`` gives the paper's 18 of Sec. 5.2).
        etas, zetas, lambdas: the angular grid (default eta 0.05, 0.3, 1; zeta 1, 2, 4, 16; lambda +-1).
        angular_rc: cutoff of the angular features, angstrom (default ``rc``).  The cost of the angular
            terms grows as the number of neighbour pairs, about angular_rc^6: on the CP2K water run,
            3.5 instead of 4.5 angstrom halved the force time for a test RMSE of 0.103 / 0.111
            instead of 0.098 / 0.102 (O / H, shared quadratic).

    Returns:
        Radial features (species-major), then angular ones for each unordered pair (a <= b in the
        order of ``species``): len(species) * len(weights) + n_pairs * len(etas) * len(zetas) * len(lambdas).
    """
    weights = [weight_function(w) if isinstance(w, str) else w for w in weights]
    radial = [Feature((a,), CutRadial(w, rc)) for a in species for w in weights]
    pairs = [(a, b) for i, a in enumerate(species) for b in species[i:]]
    rc_angle = rc if angular_rc is None else angular_rc
    angular = [Feature(pair, Angular(eta, zeta, lam, rc_angle)) for pair in pairs for eta in etas
               for zeta in zetas for lam in lambdas]
    return DescriptorSet(tuple(radial + angular))
