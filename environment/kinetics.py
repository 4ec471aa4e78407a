"""Kinetic energy and kinetic temperature of the nuclei: the one home of both formulas.

Velocities in angstrom/fs, masses (N,) in amu, energies in eV, temperatures in K.  The temperature
uses N_f = 3N - 3 degrees of freedom: the total momentum is conserved (or removed), so three of the
3N velocity components carry no thermal energy.
"""

from __future__ import annotations

import numpy as np

from agents.units import EV_PER_AMU_A2_FS2, KB_EV_PER_K


def degrees_of_freedom(n_atoms: int) -> int:
    """N_f = 3N - 3: the velocity components left once the total momentum is fixed."""
    return 3 * int(n_atoms) - 3


def kinetic_energy(velocities, masses) -> float:
    """1/2 sum_k m_k |v_k|^2 in eV."""
    return float(0.5 * np.sum(np.asarray(masses)[:, None] * np.asarray(velocities) ** 2) * EV_PER_AMU_A2_FS2)


def kinetic_temperature(velocities, masses) -> float:
    """Kinetic temperature (K): 2 KE / (N_f k_B) with N_f = 3N - 3."""
    return 2.0 * kinetic_energy(velocities, masses) / (degrees_of_freedom(len(masses)) * KB_EV_PER_K)
