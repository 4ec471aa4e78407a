"""Time integrators of the agents' equations of motion: the integrator owns the choice of dynamics.

* :class:`LearningDynamics`: finite-tau learning dynamics, eqs (3.1)-(3.2);
* :class:`VelocityVerlet`: the large-tau (Newtonian) limit, eq. (4.6), with an optional thermostat
  and force clipping.

Each integrator gives the whole-population step (:meth:`Integrator.step`, the fast path) and the
hooks of the agent-by-agent reference path (:meth:`Integrator.begin_step`, :meth:`Integrator.agent_step`,
:meth:`Integrator.end_step`), plus the two per-agent rules the agent applies to its own row
(:meth:`Integrator.force_update`, :meth:`Integrator.velocity_update`).  Both paths call the same
rules (from :mod:`agents.dynamics`), so they run the same arithmetic.  The model never asks which
dynamics it runs.
"""

from __future__ import annotations

from agents.dynamics import clip_forces, kick, learning_velocity, relax_force
from agents.validation import positive
from environment.thermostats import NoseHooverChain

#: Thermostats a user can name for the Newtonian dynamics.
THERMOSTATS = ("nose-hoover", "none")

class Integrator:
    """Base: the time step ``dt`` (fs).  Subclasses implement every method below."""

    #: Short name written into summaries.
    name = "integrator"

    def __init__(self, dt: float = 0.5):
        self.dt = positive("dt", dt)

    def settings(self) -> dict:
        """The integrator's parameters as plain data (for summaries and checkpoints)."""
        return {"mode": self.name, "dt_fs": self.dt}

    def start(self, model) -> None:
        """Give the model its initial forces for the given positions and velocities."""
        raise NotImplementedError

    def state(self) -> dict:
        """The integrator's own state beyond the model's arrays (name -> array), for checkpoints."""
        return {}

    def restore(self, state: dict) -> None:
        """Set the state saved by :meth:`state`."""

    def step(self, model) -> None:
        """Advance every agent by dt at once (the fast path)."""
        raise NotImplementedError

    def force_update(self, force, loss_force, mass):
        """The force F that moves an agent (or all agents), from its loss force G = -dH/dq."""
        raise NotImplementedError

    def velocity_update(self, velocity, force, mass):
        """An agent's (or all agents') velocity after the update with force F."""
        raise NotImplementedError

    def begin_step(self, model) -> None:
        """Agent-by-agent path: before the first agent of a step acts (the snapshot is taken)."""

    def agent_step(self, agent) -> None:
        """Agent-by-agent path: one agent's own part of the step."""
        raise NotImplementedError

    def end_step(self, model) -> None:
        """Agent-by-agent path: after the last agent of a step has acted."""


class LearningDynamics(Integrator):
    """Finite-tau learning dynamics, eqs (3.1)-(3.2): every agent scans the same snapshot,
    relaxes its force towards its loss gradient with time constant ``tau`` (fs), then moves
    with velocity (tau / M) F.  No thermostat or clipping: the friction is 1/tau."""

    name = "learning"

    def __init__(self, dt: float = 0.5, tau: float | None = None):
        super().__init__(dt)
        if tau is None:
            raise ValueError("tau (fs) is required by the learning dynamics")
        self.tau = positive("tau", tau)

    def settings(self) -> dict:
        return {**super().settings(), "tau_fs": self.tau}

    @classmethod
    def from_options(cls, dt, start_temperature_K=None, tau=None, **others) -> LearningDynamics:
        """From user options (see :func:`make_integrator`); thermostat options are refused."""
        if others:
            raise ValueError(f"{', '.join(sorted(others))}: only for the newtonian dynamics; the learning "
                             "dynamics has no thermostat or clipping (its friction is 1/tau)")
        return cls(dt, tau)

    def start(self, model) -> None:
        """Initial averaged force F, chosen so the agents move off with the given velocities v0.

        The update below is a leapfrog in disguise (tau -> infinity: v_{n+1/2} = v_{n-1/2} + dt a_n),
        so F starts half a step back, (tau / M) F = v0 - (dt/2) G0 / M: then the tau -> infinity
        limit is exactly velocity Verlet's trajectory.
        """
        model.sense()
        scale = learning_velocity(1.0, model.masses[:, None], self.tau)
        model.forces[:] = model.velocities / scale - (0.5 * self.dt / self.tau) * model.loss_forces

    def force_update(self, force, loss_force, mass):
        """Eq. (3.1): the exponential moving average of the loss force."""
        return relax_force(force, loss_force, self.dt, self.tau)

    def velocity_update(self, velocity, force, mass):
        """Eq. (3.2): v = (tau / M) F."""
        return learning_velocity(force, mass, self.tau)

    def step(self, model) -> None:
        masses = model.masses[:, None]
        model.sense()
        model.forces[:] = self.force_update(model.forces, model.loss_forces, masses)
        model.velocities[:] = self.velocity_update(model.velocities, model.forces, masses)
        model.move_all(model.positions + self.dt * model.velocities)

    def agent_step(self, agent) -> None:
        """The agent's five steps: scan, encode, loss, update its force, move."""
        agent.scan()
        agent.encode()
        agent.loss()
        agent.update_force()
        agent.move()


class VelocityVerlet(Integrator):
    """The large-tau (Newtonian) limit, eq. (4.6), by velocity Verlet.

    Args:
        dt: time step (fs).
        thermostat: ``None`` (NVE) or a :class:`environment.thermostats.NoseHooverChain`.
        max_force: cap on each agent's force magnitude (eV/angstrom), or ``None``.
    """

    name = "newtonian"

    def __init__(self, dt: float = 0.5, thermostat=None, max_force: float | None = None):
        super().__init__(dt)
        self.thermostat = thermostat
        self.max_force = None if max_force is None else positive("max_force", max_force)

    def settings(self) -> dict:
        thermostat = None if self.thermostat is None else self.thermostat.settings()
        return {**super().settings(), "thermostat": thermostat, "max_force_eV_per_A": self.max_force}

    @classmethod
    def from_options(cls, dt, start_temperature_K=None, tau=None, thermostat="nose-hoover", temperature_K=None,
                     tdamp_fs=25.0, max_force=10.0) -> VelocityVerlet:
        """From user options (see :func:`make_integrator`), with the learned-water defaults: a plain
        Nose-Hoover thermostat (tdamp 25 fs) at the start's temperature and a 10 eV/A force clip."""
        if tau is not None:
            raise ValueError("tau: only for the learning dynamics (the newtonian dynamics is its tau -> infinity limit)")
        if thermostat not in THERMOSTATS:
            raise ValueError(f"thermostat must be one of {THERMOSTATS}, got {thermostat!r}")
        if thermostat == "none":
            if temperature_K is not None:
                raise ValueError("temperature_K: needs a thermostat (thermostat 'none' was chosen)")
            return cls(dt, None, max_force)
        target = temperature_K if temperature_K is not None else start_temperature_K
        if target is None:
            raise ValueError("temperature_K: the thermostat needs a target temperature")
        return cls(dt, NoseHooverChain(target, tdamp_fs, chain_length=1), max_force)

    def start(self, model) -> None:
        if self.thermostat is not None:
            self.thermostat.attach(model.n_dof)
        self.sense(model)

    def state(self) -> dict:
        """The thermostat's ``eta`` and ``xi`` as ``thermostat_eta``, ``thermostat_xi`` (if any)."""
        if self.thermostat is None:
            return {}
        return {f"thermostat_{name}": value for name, value in self.thermostat.state().items()}

    def restore(self, state: dict) -> None:
        if self.thermostat is not None:
            self.thermostat.restore({"eta": state["thermostat_eta"], "xi": state["thermostat_xi"]})

    def sense(self, model) -> None:
        """All agents: loss values and (clipped) forces at the current positions."""
        model.sense()
        model.forces[:] = self.force_update(model.forces, model.loss_forces, model.masses[:, None])

    def force_update(self, force, loss_force, mass):
        """F = G, its magnitude capped at ``max_force``."""
        return clip_forces(loss_force, self.max_force)

    def velocity_update(self, velocity, force, mass):
        """A half-kick: v + (dt/2) F / M."""
        return kick(velocity, force, mass, 0.5 * self.dt)

    def thermostat_half_step(self, model) -> None:
        if self.thermostat is not None:
            self.thermostat.half_step(model.velocities, model.masses, self.dt)

    def step(self, model) -> None:
        masses = model.masses[:, None]
        self.thermostat_half_step(model)
        model.velocities[:] = self.velocity_update(model.velocities, model.forces, masses)
        model.move_all(model.positions + self.dt * model.velocities)
        self.sense(model)
        model.velocities[:] = self.velocity_update(model.velocities, model.forces, masses)
        self.thermostat_half_step(model)

    def begin_step(self, model) -> None:
        self.thermostat_half_step(model)

    def agent_step(self, agent) -> None:
        """The agent's own part: half-kick and drift.  The force update needs everyone's new
        position, so it runs for all agents in :meth:`end_step`."""
        agent.move()

    def end_step(self, model) -> None:
        model.take_snapshot()
        for agent in model.agent_list:
            agent.scan()
            agent.encode()
            agent.loss()
            agent.update_force()
            agent.accelerate()
        self.thermostat_half_step(model)


def make_integrator(dynamics: str, dt: float = 0.5, start_temperature_K: float | None = None, **options) -> Integrator:
    """The integrator of a dynamics named by a user (the CLI's ``--mode``) with the user's options.

    Args:
        dynamics: ``'newtonian'`` or ``'learning'``.
        dt: time step (fs).
        start_temperature_K: the start's kinetic temperature, the thermostat's default target.
        **options: the user's options, None where not given: ``tau`` (learning); ``thermostat``
            (``'nose-hoover'`` or ``'none'``), ``temperature_K``, ``tdamp_fs``, ``max_force`` (newtonian).

    Raises:
        ValueError: an unknown dynamics, or an option the chosen dynamics does not use.
    """
    if dynamics not in DYNAMICS:
        raise ValueError(f"dynamics must be one of {list(DYNAMICS)}, got {dynamics!r}")
    given = {name: value for name, value in options.items() if value is not None}
    return DYNAMICS[dynamics].from_options(dt, start_temperature_K, **given)


#: The dynamics a user can name (the CLI's ``--mode``), each with its integrator.
DYNAMICS = {"newtonian": VelocityVerlet, "learning": LearningDynamics}


def integrator_from_settings(settings: dict) -> Integrator:
    """The integrator whose :meth:`Integrator.settings` are ``settings`` (a checkpoint's), state at zero."""
    mode = settings.get("mode")
    if mode == "learning":
        return LearningDynamics(settings["dt_fs"], settings["tau_fs"])
    if mode == "newtonian":
        thermostat = settings.get("thermostat")
        thermostat = None if thermostat is None else NoseHooverChain.from_settings(thermostat)
        return VelocityVerlet(settings["dt_fs"], thermostat, settings.get("max_force_eV_per_A"))
    raise ValueError(f"unknown dynamics {mode!r} in the integrator settings (expected one of {list(DYNAMICS)})")
