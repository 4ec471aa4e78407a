"""The Mesa model of nuclei as learning agents: space, agents, dynamics and data collection."""

from __future__ import annotations

import mesa
import numpy as np
from mesa.experimental.continuous_space import ContinuousSpace
from tqdm import tqdm

from agents.nucleus import NucleusAgent
from agents.species import species as make_species
from environment.integrators import LearningDynamics, VelocityVerlet
from environment.space import check_box, wrap
from environment.thermostats import kinetic_temperature
from environment.units import EV_PER_AMU_A2_FS2
from learning.invariants import source_index
from learning.kernels import LossForces
from learning.switching import as_cutoff
from learning.loss import AgentLosses

MODES = ("newtonian", "learning")
ENGINES = ("numba", "numpy")


def _array(name, value, shape):
    array = np.array(value, dtype=float)
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


class MolecularModel(mesa.Model):
    """Nuclei in a periodic cubic box, each a :class:`agents.nucleus.NucleusAgent` minimising its
    species' loss.

    Args:
        symbols: (N,) chemical symbols, one agent each, in this order.
        positions: (N, 3) positions in angstrom (wrapped into the box).
        box: side of the cubic box in angstrom.
        losses: :class:`learning.loss.AgentLosses` with one loss per species present.
        velocities: (N, 3) initial velocities in angstrom/fs (default zero).
        masses: optional ``{symbol: amu}`` overriding CP2K's default masses.
        mode: ``'newtonian'`` (velocity Verlet, eq. 4.6) or ``'learning'`` (finite tau, 3.1-3.2).
        dt: time step in fs.
        tau: the learning time constant in fs (learning mode).
        thermostat: ``None`` (NVE) or a :class:`environment.thermostats.NoseHooverChain` (newtonian).
        max_force: force clipping, eV/angstrom (newtonian).
        seed: seeds ``self.random`` and ``self.rng``.
        collect_every: collect the model reporters every this many steps (and at step 0).
        collect_agents: also collect per-agent reporters (position, velocity, loss).
        collect_positions: add a ``positions`` model reporter (an (N, 3) copy each time).
        engine: the fast path's force evaluation: ``'numba'`` (fused compiled kernels,
            :class:`learning.kernels.LossForces`, which copies the loss coefficients when the model
            is built) or ``'numpy'`` (the vectorized reference, reading ``losses`` at every step).
        cutoff: ``None`` (the paper: all pairs, minimum image) or a cutoff radius in angstrom (or a
            :class:`learning.switching.SmoothCutoff`): sums switched off smoothly towards r_c.
        skin: neighbour-list skin in angstrom (cutoff mode with the numba engine).

    The fast path is :meth:`step`; :meth:`step_agent` steps one agent at a time (the reference).
    """

    def __init__(
        self,
        symbols,
        positions,
        box,
        losses: AgentLosses,
        velocities=None,
        masses: dict | None = None,
        mode: str = "newtonian",
        dt: float = 0.5,
        tau: float | None = None,
        thermostat=None,
        max_force: float | None = None,
        seed=None,
        collect_every: int = 1,
        collect_agents: bool = False,
        collect_positions: bool = False,
        engine: str = "numba",
        cutoff=None,
        skin: float = 1.0,
    ):
        super().__init__(seed=seed)
        self.symbols = [str(s) for s in symbols]
        n = len(self.symbols)
        if n < 2:
            raise ValueError("symbols: a model needs at least two agents")
        self.box = check_box(box)
        positions = _array("positions", positions, (n, 3))
        velocities = np.zeros((n, 3)) if velocities is None else _array("velocities", velocities, (n, 3))
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "learning":
            if thermostat is not None or max_force is not None:
                raise ValueError("thermostat and max_force apply to mode='newtonian' only")
            self.integrator = LearningDynamics(dt, tau)
        else:
            self.integrator = VelocityVerlet(dt, thermostat, max_force)
        if int(collect_every) < 1:
            raise ValueError(f"collect_every must be a positive integer, got {collect_every!r}")
        self.collect_every = int(collect_every)

        masses = masses or {}
        species = {s: make_species(s, masses.get(s)) for s in dict.fromkeys(self.symbols)}
        self._check_losses(losses, list(species))
        self.losses = losses
        self._source_indices = {
            s: source_index(self.symbols, losses[s].invariants.sources) for s in species
        }
        symbols_array = np.array(self.symbols)
        self._sinks = {s: np.flatnonzero(symbols_array == s) for s in species}

        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.engine = engine
        self.cutoff = as_cutoff(cutoff)
        if self.cutoff is not None:
            self.cutoff.check_box(self.box)
        self._fast = LossForces(losses, self.symbols, self.box, self.cutoff, skin) if engine == "numba" else None

        self.space = ContinuousSpace([[0.0, self.box]] * 3, torus=True, random=self.random, n_agents=n)
        self.agent_list = [NucleusAgent(self.space, self, species[s]) for s in self.symbols]
        self.space.agent_positions[:] = wrap(positions, self.box)
        self.masses = np.array([species[s].mass for s in self.symbols])
        self.velocities = velocities
        self.forces = np.zeros((n, 3))
        self.gradients = np.zeros((n, 3))
        self.losses_values = np.zeros(n)
        self.n_dof = 3 * n - 3
        self.time_fs = 0.0
        self.snapshot = self.positions.copy()
        self._pending = None
        self.integrator.start(self)
        self.datacollector = mesa.DataCollector(
            model_reporters=self._model_reporters(species, collect_positions),
            agent_reporters=(
                {"species": lambda a: a.species.symbol, "position": lambda a: tuple(a.position),
                 "velocity": lambda a: tuple(a.velocity), "loss": "loss_value"}
                if collect_agents else None
            ),
        )
        self.datacollector.collect(self)

    @staticmethod
    def _check_losses(losses, present):
        if not isinstance(losses, AgentLosses):
            raise ValueError(f"losses must be an AgentLosses, got {type(losses).__name__}")
        for s in present:
            if s not in losses.losses:
                raise ValueError(f"unknown species {s!r}: the losses cover {losses.species}")
            sources = losses[s].invariants.sources
            if set(sources) != set(present):
                raise ValueError(
                    f"the loss of {s} reads source species {list(sources)} "
                    f"({losses[s].A.size} invariants) but the model has species {present}"
                )

    def _model_reporters(self, species, collect_positions):
        reporters = {
            "time_fs": "time_fs",
            "kinetic_energy": "kinetic_energy",
            "temperature": "temperature",
            "potential_half_sum": "potential_half_sum",
            "conserved": "conserved",
        }
        for s in species:
            reporters[f"loss_{s}"] = lambda m, s=s: float(np.mean(m.losses_values[m._sinks[s]]))
        if collect_positions:
            reporters["positions"] = lambda m: m.positions.copy()
        return reporters

    # -- state -------------------------------------------------------------------------------
    @property
    def positions(self) -> np.ndarray:
        """(N, 3) positions in angstrom: Mesa's space array (a live view; ``.copy()`` to keep)."""
        return self.space.agent_positions

    @property
    def mode(self) -> str:
        return self.integrator.mode

    @property
    def dt(self) -> float:
        return self.integrator.dt

    @property
    def kinetic_energy(self) -> float:
        """Kinetic energy in eV."""
        return float(0.5 * np.sum(self.masses[:, None] * self.velocities**2) * EV_PER_AMU_A2_FS2)

    @property
    def temperature(self) -> float:
        """Kinetic temperature in K, with N_f = 3N - 3 degrees of freedom."""
        return kinetic_temperature(self.velocities, self.masses)

    @property
    def potential_half_sum(self) -> float:
        """1/2 sum_k H_k (eV): the potential energy when the losses come from a symmetric pair potential."""
        return float(0.5 * np.sum(self.losses_values))

    @property
    def conserved(self) -> float:
        """KE + 1/2 sum_k H_k + the thermostat's energy (eV)."""
        thermostat = getattr(self.integrator, "thermostat", None)
        extra = thermostat.energy() if thermostat is not None else 0.0
        return self.kinetic_energy + self.potential_half_sum + extra

    def species_loss(self, symbol: str):
        return self.losses[symbol]

    def source_indices(self, symbol: str) -> np.ndarray:
        """Each atom's index among the source species of ``symbol``'s loss."""
        return self._source_indices[symbol]

    def state(self) -> dict:
        """Plain copies of the state: symbols, box, step, time, positions, velocities, forces, losses."""
        return {
            "symbols": list(self.symbols), "box": self.box, "step": self.steps, "time_fs": self.time_fs,
            "positions": self.positions.copy(), "velocities": self.velocities.copy(),
            "forces": self.forces.copy(), "losses": self.losses_values.copy(),
        }

    # -- physics -----------------------------------------------------------------------------
    def evaluate(self, positions):
        """Loss values H (N,) and gradient forces G = -dH/dq (N, 3) of all agents at ``positions``."""
        if self._fast is not None:
            return self._fast(positions)
        H = np.empty(len(positions))
        G = np.empty((len(positions), 3))
        for s, sinks in self._sinks.items():
            loss = self.losses[s]
            phi, dphi = loss.invariants.compute(positions, self.box, self._source_indices[s], sinks,
                                                cutoff=self.cutoff)
            H[sinks], G[sinks] = loss.evaluate(phi, dphi)
        return H, G

    def move_all(self, positions) -> None:
        self.space.agent_positions[:] = wrap(positions, self.box)

    def move_agent(self, index: int, position) -> None:
        self.space.agent_positions[index] = wrap(position, self.box)

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
        same state as :meth:`step`.  Learning mode: the agent takes all five steps.  Newtonian
        mode: the agent half-kicks and drifts; velocity Verlet's force update and closing half-kick
        need everyone's new position, so they run for all agents when the last agent has moved.
        """
        if self._act(agent):
            self.steps += 1  # a step completed outside Model.step, which counts its own
            self._finish_step()

    def _act(self, agent) -> bool:
        """One agent's part of the step; True when it completed the step."""
        if self._pending is None:
            self._pending = dict.fromkeys(self.agent_list)
            self.snapshot = self.positions.copy()
            if self.mode == "newtonian":
                self.integrator.thermostat_half_step(self)
        if agent not in self._pending:
            raise ValueError(f"agent {agent.unique_id} has already stepped in this step")
        del self._pending[agent]
        dt = self.dt
        if self.mode == "learning":
            agent.scan()
            agent.encode()
            agent.loss()
            agent.update_force(dt)
        agent.move(dt)
        if self._pending:
            return False
        if self.mode == "newtonian":
            self.snapshot = self.positions.copy()
            for other in self.agent_list:
                other.scan()
                other.encode()
                other.loss()
                other.update_force(dt)
                other.kick(dt)
            self.integrator.thermostat_half_step(self)
        self._pending = None
        return True

    def _finish_step(self) -> None:
        self.time_fs += self.dt
        if not np.all(np.isfinite(self.positions)) or not np.all(np.isfinite(self.velocities)):
            raise FloatingPointError(f"step {self.steps}: positions or velocities are no longer finite")
        if self.steps % self.collect_every == 0:
            self.datacollector.collect(self)

    def run(self, n_steps: int, progress: bool = False) -> None:
        """Take ``n_steps`` fast-path steps, with a progress bar (steps/s) if ``progress``."""
        if int(n_steps) < 0:
            raise ValueError(f"n_steps must be non-negative, got {n_steps}")
        for _ in tqdm(range(int(n_steps)), disable=not progress, unit="step", leave=False):
            self.step()

    @classmethod
    def water_box(cls, n_molecules: int, losses: AgentLosses, density_g_cm3: float = 0.997,
                  temperature_K: float = 300.0, seed=None, **kwargs) -> "MolecularModel":
        """A model of ``n_molecules`` waters from :func:`environment.builders.water_box`."""
        from environment.builders import water_box

        symbols, positions, velocities, box = water_box(n_molecules, density_g_cm3, temperature_K, seed)
        return cls(symbols, positions, box, losses, velocities=velocities, seed=seed, **kwargs)
