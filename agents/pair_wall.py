"""A repulsive prior: a fixed pair wall V_ab(r) = eps (sigma_ab / r)^12 f_c(r) (DESIGN.md, "Repulsive prior").

A quadratic loss (4.5) fitted to forces can turn attractive at distances the data never reach, and
two atoms then collapse.  The wall, with sigma_ab just below the closest a-b contact of the training
frames, is subtracted from the target forces before a fit and added back whenever the loss is used,
so it changes nothing the data constrain and keeps atoms apart where the data say nothing.  f_c is
the descriptors' quintic switch (:class:`agents.cutoff.SmoothCutoff`) at r_c, so the wall is
finite-ranged like the descriptors.  It is a symmetric pair potential U = sum_{i<j} V(r_ij):
its forces obey the third law in both forms of loss.

Units: r, sigma, r_c in angstrom; eps in eV; forces in eV/angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agents.descriptor_jacobian import neighbor_pairs
from agents.descriptors import species_symbols
from agents.cutoff import SmoothCutoff

#: Default wall height at r = sigma, eV.
DEFAULT_EPS = 0.1
#: Default sigma as a fraction of the closest contact seen in training (DESIGN.md's OO 1.9, OH 0.7,
#: HH 1.0 angstrom are about 0.8 of the closest contacts of the project's CP2K water).
DEFAULT_SIGMA_FACTOR = 0.8


def _pair_key(a: str, b: str) -> str:
    return "".join(sorted((a, b)))


@dataclass(frozen=True)
class PairWall:
    """V_ab(r) = eps (sigma_ab / r)^12 f_c(r) for every listed species pair.

    Attributes:
        sigma: ``{"HO": 0.72, ...}`` angstrom, one entry per unordered pair (keys in any order:
            ``"OH"`` and ``"HO"`` are the same pair); pairs not listed feel no wall.
        eps: wall height at r = sigma, eV.
        rc: cutoff of the switch, angstrom.
    """

    sigma: dict = field(hash=False)
    eps: float = DEFAULT_EPS
    rc: float = 4.5

    def __post_init__(self):
        sigma = {}
        for key, value in self.sigma.items():
            symbols = species_symbols(key)
            if len(symbols) != 2 or not float(value) > 0:
                raise ValueError(f"wall sigma: expected {{'OH': angstrom > 0, ...}}, got {key!r}: {value!r}")
            sigma[_pair_key(*symbols)] = float(value)
        object.__setattr__(self, "sigma", sigma)
        if not float(self.eps) > 0:
            raise ValueError(f"wall eps must be positive (eV), got {self.eps!r}")
        object.__setattr__(self, "eps", float(self.eps))
        object.__setattr__(self, "rc", SmoothCutoff(self.rc).r_c)

    @classmethod
    def from_contacts(cls, frames, box: float, symbols, rc: float, eps: float = DEFAULT_EPS,
                      factor: float = DEFAULT_SIGMA_FACTOR) -> PairWall:
        """sigma_ab = ``factor`` x the closest a-b distance over ``frames`` (F, N, 3) (training frames).

        Pairs never closer than ``rc`` get no wall.
        """
        species = list(dict.fromkeys(symbols))
        index = np.array([species.index(s) for s in symbols])
        closest = np.full((len(species), len(species)), np.inf)
        for positions in frames:
            i, j, _, r = neighbor_pairs(positions, box, rc)
            np.minimum.at(closest, (index[i], index[j]), r)
        return cls({_pair_key(a, b): factor * closest[ia, ib] for ia, a in enumerate(species)
                    for ib, b in enumerate(species) if np.isfinite(closest[ia, ib])}, eps, rc)

    def sigma12(self, species) -> np.ndarray:
        """(S, S) eps sigma_ab^12 (eV angstrom^12) for the species in order; 0 where no wall."""
        out = np.zeros((len(species), len(species)))
        for a, sa in enumerate(species):
            for b, sb in enumerate(species):
                out[a, b] = self.eps * self.sigma.get(_pair_key(sa, sb), 0.0) ** 12
        return out

    def check_box(self, box: float) -> None:
        """``ValueError`` unless rc <= box / 2 (one periodic image within the wall's reach)."""
        if self.rc > 0.5 * float(box) + 1e-12:
            raise ValueError(f"wall rc = {self.rc} angstrom exceeds half the box ({0.5 * float(box)} angstrom)")

    def evaluate(self, positions, box: float, symbols):
        """Per-atom wall sums and forces.

        Returns:
            v (N,) with v_i = sum_j V(r_ij) in eV (the pair energy is U = sum(v) / 2), and
            F = -dU/dq (N, 3) in eV/angstrom.
        """
        self.check_box(box)
        positions = np.asarray(positions, dtype=float)
        symbols = list(symbols)
        species = list(dict.fromkeys(symbols))
        index = np.array([species.index(s) for s in symbols])
        i, j, d, r = neighbor_pairs(positions, box, self.rc)
        c12 = self.sigma12(species)[index[i], index[j]]
        switch = SmoothCutoff(self.rc)
        bare = c12 / r**12
        V = bare * switch.value(r)
        dV = bare * (switch.derivative(r) - 12.0 * switch.value(r) / r)
        N = len(positions)
        v = np.bincount(i, V, minlength=N)
        # pair (i, j) with d = q_j - q_i pushes i along -d: F_i = sum_j dV/dr d/r
        F = np.stack([np.bincount(i, dV * d[:, x] / r, minlength=N) for x in range(3)], axis=1)
        return v, F

    def to_dict(self) -> dict:
        return {"eps_eV": self.eps, "sigma_angstrom": dict(self.sigma), "rc_angstrom": self.rc}

    @classmethod
    def from_dict(cls, data: dict) -> PairWall:
        return cls(data["sigma_angstrom"], data["eps_eV"], data["rc_angstrom"])
