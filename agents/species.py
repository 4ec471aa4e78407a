"""Chemical species of the nuclei (agents): symbol and mass in amu."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: CP2K 2023.1's default atomic masses (its periodic table), in amu.
CP2K_MASSES = {
    "H": 1.00794, "He": 4.002602, "Li": 6.941, "C": 12.0107, "N": 14.0067, "O": 15.9994,
    "F": 18.9984032, "Na": 22.98977, "Mg": 24.305, "P": 30.973761, "S": 32.065,
    "Cl": 35.453, "K": 39.0983, "Ca": 40.078,
}


@dataclass(frozen=True)
class Species:
    """A species of agent: chemical symbol and mass (amu)."""

    symbol: str
    mass: float

    def __post_init__(self):
        mass = float(self.mass)
        if not np.isfinite(mass) or mass <= 0:
            raise ValueError(f"species {self.symbol}: mass must be positive (amu), got {self.mass!r}")
        object.__setattr__(self, "mass", mass)


OXYGEN = Species("O", CP2K_MASSES["O"])
HYDROGEN = Species("H", CP2K_MASSES["H"])


def species(symbol: str, mass: float | None = None) -> Species:
    """The species of ``symbol`` with CP2K's default mass unless ``mass`` is given."""
    if mass is None:
        if symbol not in CP2K_MASSES:
            raise ValueError(
                f"unknown species {symbol!r}: give its mass, or use one of {sorted(CP2K_MASSES)}"
            )
        mass = CP2K_MASSES[symbol]
    return Species(symbol, mass)
