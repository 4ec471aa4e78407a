"""The agent's update rules, each a plain function of one agent's (or all agents') arrays.

* finite-tau learning dynamics (3.1)-(3.2): :func:`relax_force` then :func:`learning_velocity`;
* the large-tau (Newtonian) limit (4.6), by velocity Verlet: :func:`kick` with :func:`clip_forces`.

The whole-population integrators (:mod:`environment.integrators`) and each
:class:`agents.nucleus.NucleusAgent` on its own row call the same functions, so the two paths run
the same arithmetic.  Units: force eV/angstrom, mass amu, time fs, velocity angstrom/fs.
"""

from __future__ import annotations

import numpy as np

from agents.units import ACCEL_EV_PER_AMU_A


def relax_force(force, gradient_force, dt: float, tau: float):
    """Eq. (3.1) solved exactly for a gradient held over dt: an exponential moving average.

    tau dF/dt = G - F  =>  F(t + dt) = e^{-dt/tau} F(t) + (1 - e^{-dt/tau}) G.
    """
    decay = np.exp(-dt / tau)
    return decay * force + (1.0 - decay) * gradient_force


def learning_velocity(force, mass, tau: float):
    """Eq. (3.2): dq/dt = (tau / M) F, in angstrom/fs (F in eV/angstrom, M in amu, tau in fs)."""
    return (tau * ACCEL_EV_PER_AMU_A / mass) * force


def kick(velocity, force, mass, dt: float):
    """Velocity after a time dt under ``force`` (eV/angstrom) on ``mass`` (amu)."""
    return velocity + (dt * ACCEL_EV_PER_AMU_A / mass) * force


def clip_forces(forces, max_force: float | None):
    """Forces (..., 3) with their magnitude capped at ``max_force`` (eV/angstrom); None: unchanged."""
    if max_force is None:
        return forces
    norm = np.linalg.norm(forces, axis=-1, keepdims=True)
    return forces * np.minimum(1.0, max_force / np.maximum(norm, np.finfo(float).tiny))
