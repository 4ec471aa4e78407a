"""Kinetic energy and kinetic temperature of the nuclei: the one home of both formulas.

Velocities (..., N, 3) in angstrom/fs (one frame, or many frames stacked in front), masses (N,) in
amu, energies in eV, temperatures in K.  The temperature of a whole system uses N_f = 3N - 3 degrees
of freedom: the total momentum is conserved (or removed), so three of the 3N velocity components
carry no thermal energy; a subset of atoms (one species) has 3 N_s.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from agents.units import EV_PER_AMU_A2_FS2, KB_EV_PER_K


def degrees_of_freedom(n_atoms: int) -> int:
    """N_f = 3N - 3: the velocity components left once the total momentum is fixed."""
    return 3 * int(n_atoms) - 3


def kinetic_energy(velocities, masses):
    """1/2 sum_k m_k |v_k|^2 in eV: a float for one frame (N, 3), an array (F,) for frames (F, N, 3)."""
    velocities = np.asarray(velocities, dtype=float)
    energy = 0.5 * np.einsum("n,...nk,...nk->...", np.asarray(masses, dtype=float), velocities, velocities)
    energy = energy * EV_PER_AMU_A2_FS2
    return float(energy) if energy.ndim == 0 else energy


def kinetic_temperature(velocities, masses, n_dof: int | None = None):
    """Kinetic temperature (K), 2 KE / (N_f k_B), with N_f = 3N - 3 unless ``n_dof`` is given."""
    n_dof = degrees_of_freedom(len(masses)) if n_dof is None else n_dof
    return 2.0 * kinetic_energy(velocities, masses) / (n_dof * KB_EV_PER_K)


@njit(cache=True)
def kinetic_temperature_compiled(velocities, masses, n_dof):
    """:func:`kinetic_temperature` of one frame (N, 3) with ``n_dof`` given, for compiled code (the
    guard of :mod:`environment.fused`); equal to it up to the order of the sum."""
    twice = 0.0
    for k in range(velocities.shape[0]):
        for x in range(3):
            twice += masses[k] * velocities[k, x] * velocities[k, x]
    return twice * EV_PER_AMU_A2_FS2 / (n_dof * KB_EV_PER_K)
