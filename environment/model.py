"""The Mesa model of nuclei as learning agents: space, agents, dynamics and data collection."""

from __future__ import annotations

import mesa
import numpy as np
from mesa.experimental.continuous_space import ContinuousSpace
from tqdm import tqdm

from agents.cutoff import as_cutoff
from agents.geometry import wrap
from agents.loss import AgentLosses
from agents.nucleus import NucleusAgent
from agents.species import species as make_species
from agents.validation import count, finite_array, positive
import environment.checkpoint as checkpoint
from environment.builders import water_box
from environment.forces import ForceEvaluator
from environment.fused import NOT_FINITE, advance, supports as fused_supports
from environment.integrators import Integrator, VelocityVerlet
from environment.neighbors import DEFAULT_SKIN
from environment.kinetics import degrees_of_freedom, kinetic_energy, kinetic_temperature

#: The methods of a fast-path step; :mod:`environment.fused` does what they do.
_STEP_METHODS = ("step", "sense", "_shares", "move_all", "_finish_step")


class MolecularModel(mesa.Model):
    """Nuclei in a periodic cubic box, each a :class:`agents.nucleus.NucleusAgent` minimising its
    species' loss.

    Args:
        symbols: (N,) chemical symbols, one agent each, in this order.
        positions: (N, 3) positions in angstrom (wrapped into the box).
        box: side of the cubic box in angstrom.
        losses: :class:`agents.loss.AgentLosses` with one loss per species present.
        velocities: (N, 3) initial velocities in angstrom/fs (default zero).
        masses: optional ``{symbol: amu}`` overriding CP2K's default masses.
        integrator: the dynamics, an :class:`environment.integrators.Integrator`:
            ``VelocityVerlet(dt, thermostat, max_force)`` (the Newtonian limit, eq. 4.6; the default,
            NVE with dt = 0.5 fs) or ``LearningDynamics(dt, tau)`` (finite tau, eqs 3.1-3.2).
        seed: seeds ``self.random`` and ``self.rng``.
        collect_every: collect the model reporters every this many steps (and at step 0).
        collect_agents: also collect per-agent reporters (position, velocity, loss).
        collect_positions: add a ``positions`` model reporter (an (N, 3) copy each time).
        collect_velocities: add a ``velocities`` model reporter (an (N, 3) copy each time).
        engine, cutoff, skin, threads: how forces are computed, see
            :class:`environment.forces.ForceEvaluator`.
        allow_other_box: use losses outside the box (and cutoff) they were learned in; by default that
            is a ``ValueError`` (see :meth:`agents.loss.AgentLosses.check_domain`).
        zero_net_force: subtract from every agent's loss force its mass share of the net force, so the
            centre of mass is not accelerated (default).  Own-form forces need not sum to zero (no third
            law): without this a thermostat turns their heat into centre-of-mass motion.  Shared-form
            forces already sum to zero; the paper's protocol (``mld reproduce``) keeps them as they are.

    The fast path is :meth:`step`; :meth:`step_agent` steps one agent at a time (the reference).
    :meth:`save_checkpoint` and :meth:`load_checkpoint` stop and resume a run bit-for-bit
    (:mod:`environment.checkpoint`).

    Arrays, row i for ``agent_list[i]`` (Mesa's ``space.active_agents`` order): ``positions`` (Mesa's
    space array), ``velocities`` (angstrom/fs), ``forces`` F that move the agents (eV/angstrom: the
    averaged force of eq. 3.1, or the clipped loss force in the Newtonian limit), ``loss_forces``
    G = -dH_k/dq_k (eV/angstrom, eq. 4.6), ``loss_values`` H_k (eV, eq. 4.5) and ``masses`` (amu).
    """

    def __init__(
        self,
        symbols,
        positions,
        box,
        losses: AgentLosses,
        velocities=None,
        masses: dict | None = None,
        integrator: Integrator | None = None,
        seed=None,
        collect_every: int = 1,
        collect_agents: bool = False,
        collect_positions: bool = False,
        collect_velocities: bool = False,
        engine: str = "numba",
        cutoff=None,
        skin: float = DEFAULT_SKIN,
        threads: int | None = None,
        allow_other_box: bool = False,
        zero_net_force: bool = True,
    ):
        super().__init__(seed=seed)
        self.symbols = [str(s) for s in symbols]
        n = len(self.symbols)
        if n < 2:
            raise ValueError("symbols: a model needs at least two agents")
        self.box = positive("box", box)
        positions = finite_array("positions", positions, (n, 3))
        velocities = np.zeros((n, 3)) if velocities is None else finite_array("velocities", velocities, (n, 3))
        self.integrator = VelocityVerlet() if integrator is None else integrator
        if not isinstance(self.integrator, Integrator):
            raise ValueError(f"integrator must be an environment.integrators.Integrator, got {integrator!r}")
        self.collect_every = count("collect_every", collect_every)
        self.collect_agents = bool(collect_agents)
        self.collect_positions = bool(collect_positions)
        self.collect_velocities = bool(collect_velocities)
        self.zero_net_force = bool(zero_net_force)
        masses = masses or {}
        self.species = {s: make_species(s, masses.get(s)) for s in dict.fromkeys(self.symbols)}
        self.losses = losses
        self.allow_other_box = bool(allow_other_box)
        r_c = as_cutoff(cutoff)
        losses.check_domain(self.box, None if r_c is None else r_c.r_c, self.allow_other_box, "losses")
        self._force_options = {"engine": engine, "cutoff": cutoff, "skin": skin, "threads": threads}
        self.evaluator = ForceEvaluator(losses, self.symbols, self.box, **self._force_options)

        self.space = ContinuousSpace([[0.0, self.box]] * 3, torus=True, random=self.random, n_agents=n)
        self.agent_list = [NucleusAgent(self.space, self, self.species[s]) for s in self.symbols]
        self._rows = {agent: i for i, agent in enumerate(self.space.active_agents)}
        self.space.agent_positions[:] = wrap(positions, self.box)
        self.masses = np.array([self.species[s].mass for s in self.symbols])
        self.velocities = velocities
        self.forces = np.zeros((n, 3))
        self.loss_forces = np.zeros((n, 3))
        self.loss_values = np.zeros(n)
        self.time_fs = 0.0
        self.net_force_share = np.zeros((n, 3))
        self.take_snapshot()
        self._pending = None
        self.integrator.start(self)
        self.datacollector = mesa.DataCollector(
            model_reporters=self._model_reporters(collect_positions, collect_velocities),
            agent_reporters=(
                {"species": lambda a: a.species.symbol, "position": lambda a: tuple(a.position),
                 "velocity": lambda a: tuple(a.velocity), "loss": "loss_value"}
                if collect_agents else None
            ),
        )
        self.datacollector.collect(self)

    def _model_reporters(self, collect_positions, collect_velocities):
        reporters = {
            "time_fs": "time_fs",
            "kinetic_energy": "kinetic_energy",
            "temperature": "temperature",
            "potential_half_sum": "potential_half_sum",
            "conserved": "conserved",
        }
        for s in self.species:
            reporters[f"loss_{s}"] = lambda m, s=s: float(np.mean(m.loss_values[m.evaluator.sinks[s]]))
        if collect_positions:
            reporters["positions"] = lambda m: m.positions.copy()
        if collect_velocities:
            reporters["velocities"] = lambda m: m.velocities.copy()
        return reporters

    # -- state -------------------------------------------------------------------------------
    @property
    def positions(self) -> np.ndarray:
        """(N, 3) positions in angstrom: Mesa's space array (a live view; ``.copy()`` to keep)."""
        return self.space.agent_positions

    @property
    def dt(self) -> float:
        return self.integrator.dt

    @property
    def n_dof(self) -> int:
        """Degrees of freedom of the kinetic temperature, 3N - 3."""
        return degrees_of_freedom(len(self.agent_list))

    @property
    def kinetic_energy(self) -> float:
        """Kinetic energy in eV."""
        return kinetic_energy(self.velocities, self.masses)

    @property
    def temperature(self) -> float:
        """Kinetic temperature in K, with N_f = 3N - 3 degrees of freedom."""
        return kinetic_temperature(self.velocities, self.masses)

    @property
    def potential_half_sum(self) -> float:
        """1/2 sum_k H_k (eV): the potential energy when the losses come from a symmetric pair potential."""
        return float(0.5 * np.sum(self.loss_values))

    @property
    def conserved(self) -> float:
        """KE + 1/2 sum_k H_k + the thermostat's energy (eV)."""
        thermostat = getattr(self.integrator, "thermostat", None)
        extra = thermostat.energy() if thermostat is not None else 0.0
        return self.kinetic_energy + self.potential_half_sum + extra

    def index_of(self, agent: NucleusAgent) -> int:
        """The agent's row in the model's arrays."""
        try:
            return self._rows[agent]
        except KeyError:
            raise ValueError(f"agent {agent.unique_id} is not in this model") from None

    def state(self) -> dict:
        """Plain copies of the state: symbols, box, step, time, positions, velocities, forces, losses."""
        return {
            "symbols": list(self.symbols), "box": self.box, "step": self.steps, "time_fs": self.time_fs,
            "positions": self.positions.copy(), "velocities": self.velocities.copy(),
            "forces": self.forces.copy(), "losses": self.loss_values.copy(),
        }

    def save_checkpoint(self, path, extra: dict | None = None):
        """Write everything needed to continue this run bit-for-bit to ``path`` (one ``.npz``, replaced
        atomically); ``extra``: the caller's own settings (plain JSON data), given back on loading.
        See :mod:`environment.checkpoint` for the format."""
        return checkpoint.save_checkpoint(self, path, extra)

    @classmethod
    def load_checkpoint(cls, path, threads: int | None = None) -> "MolecularModel":
        """The model saved by :meth:`save_checkpoint`, ready to continue (``threads``: as in
        :class:`environment.forces.ForceEvaluator`; results do not depend on it).  The caller's
        ``extra`` settings are in the model's ``checkpoint_extra``."""
        return checkpoint.load_checkpoint(cls, path, threads)

    # -- physics -----------------------------------------------------------------------------
    def sense(self) -> None:
        """Every agent's loss value and loss force at the current positions (the fast path), less its
        share of the net force when ``zero_net_force``."""
        self.loss_values[:], self.loss_forces[:] = self.evaluator(self.positions)
        if self.zero_net_force:
            self.loss_forces -= self._shares(self.loss_forces)

    def _shares(self, forces) -> np.ndarray:
        """(N, 3) m_k / M sum_i F_i: subtracted from every force, it leaves the centre of mass unaccelerated
        and the relative accelerations unchanged."""
        return (self.masses / self.masses.sum())[:, None] * forces.sum(axis=0)

    def take_snapshot(self) -> None:
        """The positions every agent of the coming agent-by-agent round scans; with ``zero_net_force``
        also each agent's share of the snapshot's net force (the environment, not an agent, knows it)."""
        self.snapshot = self.positions.copy()
        if self.zero_net_force:
            self.net_force_share = self._shares(self.evaluator(self.snapshot)[1])

    def move_all(self, positions) -> None:
        self.space.agent_positions[:] = wrap(positions, self.box)

    def move_agent(self, index: int, position) -> None:
        self.space.agent_positions[index] = wrap(position, self.box)

    def remove_rows(self, agent: NucleusAgent) -> int:
        """Drop ``agent``'s rows from the model's arrays before Mesa removes it from the space.

        Called by :meth:`agents.nucleus.NucleusAgent.remove`.  The force evaluation and the
        thermostat's degrees of freedom follow the smaller system; the forces of the agents left are
        recomputed only at the next step.  Returns the row the agent had.
        """
        if self._pending is not None:
            raise RuntimeError("cannot remove an agent in the middle of an agent-by-agent step")
        if len(self.agent_list) <= 2:
            raise ValueError("cannot remove an agent: a model needs at least two agents")
        row = self.index_of(agent)
        self.agent_list.pop(row)
        del self.symbols[row]
        for name in ("masses", "velocities", "forces", "loss_forces", "loss_values"):
            setattr(self, name, np.delete(getattr(self, name), row, axis=0))
        self.evaluator = ForceEvaluator(self.losses, self.symbols, self.box, **self._force_options)
        thermostat = getattr(self.integrator, "thermostat", None)
        if thermostat is not None:
            thermostat.attach(self.n_dof)
        return row

    def reindex(self) -> None:
        """Rows follow Mesa's ``space.active_agents`` order (after a removal)."""
        self._rows = {agent: i for i, agent in enumerate(self.space.active_agents)}
        if list(self._rows) != self.agent_list:
            raise RuntimeError("the model's agents and Mesa's space disagree on the order of rows")
        self.take_snapshot()

    # -- stepping ----------------------------------------------------------------------------
    def step(self, reference: bool = False) -> None:
        """Advance all agents by dt: vectorized, or agent by agent with ``reference=True``."""
        if self._pending is not None:
            self.steps -= 1  # Mesa counted this call before it got here; no step is taken
            raise RuntimeError(f"{len(self._pending)} agents have not yet stepped: finish with step_agent")
        if reference:
            for agent in self.agent_list:
                self._act(agent)
        else:
            self.integrator.step(self)
        self._finish_step()

    def step_agent(self, agent: NucleusAgent) -> None:
        """Step one agent; the model step completes when every agent has stepped.

        All agents of a step scan the same snapshot (simultaneous update), so any order ends in the
        same state as :meth:`step`.  What an agent's own part is depends on the integrator (see
        :meth:`environment.integrators.Integrator.agent_step`).
        """
        if self._act(agent):
            self.steps += 1  # a step completed outside Model.step, which counts its own
            self._finish_step()

    @property
    def pending_agents(self) -> list[NucleusAgent]:
        """Agents that have not yet taken their part of the current agent-by-agent step."""
        return [] if self._pending is None else list(self._pending)

    def _act(self, agent) -> bool:
        """One agent's part of the step; True when it completed the step."""
        if self._pending is None:
            self._pending = dict.fromkeys(self.agent_list)
            self.take_snapshot()
            self.integrator.begin_step(self)
        if agent not in self._pending:
            raise ValueError(f"agent {agent.unique_id} has already stepped in this step")
        del self._pending[agent]
        self.integrator.agent_step(agent)
        if self._pending:
            return False
        self.integrator.end_step(self)
        self._pending = None
        return True

    def _finish_step(self) -> None:
        self.time_fs += self.dt
        if not np.all(np.isfinite(self.positions)) or not np.all(np.isfinite(self.velocities)):
            raise FloatingPointError(f"step {self.steps}: positions or velocities are no longer finite")
        if self.steps % self.collect_every == 0:
            self.datacollector.collect(self)

    def run(self, n_steps: int, progress: bool = False, fused: bool = True) -> None:
        """Take ``n_steps`` fast-path steps, with a progress bar (steps/s) if ``progress``.

        With ``fused`` (default) the steps between two data collections run in compiled code
        (:meth:`run_compiled`: the same arithmetic, the same bits) when the fast path allows it (see
        :meth:`fusable`), else one :meth:`step` at a time; the step count, ``time_fs``, the collected
        rows and a non-finite blow-up (``FloatingPointError`` naming the step) come out the same.
        """
        n_steps = count("n_steps", n_steps, minimum=0)
        with tqdm(total=n_steps, disable=not progress, unit="step", leave=False) as bar:
            left = n_steps
            while left:
                if fused and self.fusable():
                    done = self.run_compiled(left)
                else:
                    self.step()
                    done = 1
                left -= done
                bar.update(done)

    def run_compiled(self, n_steps: int, guard=None) -> int:
        """Up to ``n_steps`` fast-path steps in compiled code (:mod:`environment.fused`; needs :meth:`fusable`),
        as far as the next data collection, which it makes; returns the steps taken.

        The step count, ``time_fs``, the rows and a non-finite blow-up (``FloatingPointError`` naming the
        step) are those of :meth:`step`.  A :class:`environment.fused.Guard` that trips stops the run after
        the step that tripped it (counted, and collected if a collection is due), and says why.
        """
        chunk = min(n_steps, self.collect_every - self.steps % self.collect_every)
        done, status = advance(self, chunk, guard)
        for _ in range(done):
            self.time_fs += self.dt  # one addition per step, as _finish_step
        self.steps += done
        if status == NOT_FINITE:
            raise FloatingPointError(f"step {self.steps}: positions or velocities are no longer finite")
        if self.steps % self.collect_every == 0:
            self.datacollector.collect(self)
        return done

    def fusable(self) -> bool:
        """Whether :meth:`run` can take its steps in compiled code: no agent-by-agent step under way, this
        class's own step methods (a subclass that overrides one is stepped in Python), and dynamics and
        forces :mod:`environment.fused` knows."""
        own = all(getattr(type(self), name) is getattr(MolecularModel, name) for name in _STEP_METHODS)
        return self._pending is None and own and type(self.evaluator) is ForceEvaluator and fused_supports(self)

    @classmethod
    def water_box(cls, n_molecules: int, losses: AgentLosses, density_g_cm3: float = 0.997,
                  temperature_K: float = 300.0, seed=None, **kwargs) -> "MolecularModel":
        """A model of ``n_molecules`` waters from :func:`environment.builders.water_box`."""
        symbols, positions, velocities, box = water_box(n_molecules, density_g_cm3, temperature_K, seed)
        return cls(symbols, positions, box, losses, velocities=velocities, seed=seed, **kwargs)
