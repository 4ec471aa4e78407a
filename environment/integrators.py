"""Time integrators of the agents' equations of motion, one small class each over a shared base.

The update formulas are plain functions of arrays, used both by the whole-population step here
and by each :class:`agents.nucleus.NucleusAgent` on its own row, so the two paths run the same code:

* finite-tau learning dynamics (3.1)-(3.2): :func:`relax_force`, :func:`learning_velocity`;
* the large-tau (Newtonian) limit (4.6) by velocity Verlet: :func:`kick`, :func:`clip_forces`.
"""

from __future__ import annotations

import numpy as np

from environment.units import ACCEL_EV_PER_AMU_A


def positive(name: str, value) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` unless it is positive and finite."""
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return value


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


class Integrator:
    """Base: time step ``dt`` (fs) and the whole-population ``step(model)``.

    Subclasses implement :meth:`start` (initial forces), :meth:`step` and the per-agent pieces.
    """

    mode = None

    def __init__(self, dt: float = 0.5):
        self.dt = positive("dt", dt)

    def start(self, model) -> None:
        """Give the model its initial forces and velocities."""
        raise NotImplementedError

    def step(self, model) -> None:
        """Advance every agent by dt at once (the fast path)."""
        raise NotImplementedError


class LearningDynamics(Integrator):
    """Finite-tau learning dynamics, eqs (3.1)-(3.2): every agent scans the same snapshot,
    relaxes its force towards its loss gradient with time constant ``tau`` (fs), then moves
    with velocity (tau / M) F."""

    mode = "learning"

    def __init__(self, dt: float = 0.5, tau: float | None = None):
        super().__init__(dt)
        if tau is None:
            raise ValueError("tau (fs) is required in learning mode")
        self.tau = positive("tau", tau)

    def start(self, model) -> None:
        """Initial averaged force F, chosen so the agents move off with the given velocities v0.

        The update below is a leapfrog in disguise (tau -> infinity: v_{n+1/2} = v_{n-1/2} + dt a_n),
        so F starts half a step back, (tau / M) F = v0 - (dt/2) G0 / M: then the tau -> infinity
        limit is exactly velocity Verlet's trajectory.
        """
        model.losses_values[:], model.gradients[:] = model.evaluate(model.positions)
        scale = self.tau * ACCEL_EV_PER_AMU_A / model.masses[:, None]
        model.forces[:] = model.velocities / scale - (0.5 * self.dt / self.tau) * model.gradients

    def step(self, model) -> None:
        masses = model.masses[:, None]
        model.losses_values[:], model.gradients[:] = model.evaluate(model.positions)
        model.forces[:] = relax_force(model.forces, model.gradients, self.dt, self.tau)
        model.velocities[:] = learning_velocity(model.forces, masses, self.tau)
        model.move_all(model.positions + self.dt * model.velocities)


class VelocityVerlet(Integrator):
    """The large-tau (Newtonian) limit, eq. (4.6), by velocity Verlet.

    Args:
        dt: time step (fs).
        thermostat: ``None`` (NVE) or a :class:`environment.thermostats.NoseHooverChain`.
        max_force: cap on each agent's force magnitude (eV/angstrom), or ``None``.
    """

    mode = "newtonian"

    def __init__(self, dt: float = 0.5, thermostat=None, max_force: float | None = None):
        super().__init__(dt)
        self.thermostat = thermostat
        self.max_force = None if max_force is None else positive("max_force", max_force)

    def start(self, model) -> None:
        if self.thermostat is not None:
            self.thermostat.attach(model.n_dof)
        self.sense(model)

    def sense(self, model) -> None:
        """All agents: loss values and (clipped) forces at the current positions."""
        model.losses_values[:], model.gradients[:] = model.evaluate(model.positions)
        model.forces[:] = clip_forces(model.gradients, self.max_force)

    def thermostat_half_step(self, model) -> None:
        if self.thermostat is not None:
            self.thermostat.half_step(model.velocities, model.masses, self.dt)

    def step(self, model) -> None:
        masses = model.masses[:, None]
        self.thermostat_half_step(model)
        model.velocities[:] = kick(model.velocities, model.forces, masses, 0.5 * self.dt)
        model.move_all(model.positions + self.dt * model.velocities)
        self.sense(model)
        model.velocities[:] = kick(model.velocities, model.forces, masses, 0.5 * self.dt)
        self.thermostat_half_step(model)
