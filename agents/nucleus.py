"""The nucleus agent: a Mesa agent that takes the paper's five learning steps (Sec. 3).

1. :meth:`NucleusAgent.scan`    — read the positions of all other agents (the step's snapshot);
2. :meth:`NucleusAgent.encode`  — encode them into invariants phi_a^m, eq. (4.1);
3. :meth:`NucleusAgent.loss`    — evaluate its species' loss H, eq. (4.5), and G = -dH/dq, eq. (4.6);
4. :meth:`NucleusAgent.update_force` — update the force F that moves it from G (finite tau: the
   exponential average of eq. 3.1; the Newtonian limit: F = G, clipped);
5. :meth:`NucleusAgent.move`    — update its velocity from F (eq. 3.2, or a velocity-Verlet half-kick)
   and move.

The rules of steps 4 and 5 belong to the model's integrator (the agent asks it; it never asks which
dynamics it runs), and their formulas live in :mod:`agents.dynamics`.  The agent's numbers live in
the model's arrays (its row ``agent.index``), so the agent-by-agent reference path and the
vectorized path share one state.  These methods are that reference path: readable, one agent at a
time; :class:`environment.model.MolecularModel` drives them.
"""

from __future__ import annotations

import numpy as np
from mesa.experimental.continuous_space import ContinuousSpaceAgent

from agents.species import Species


class NucleusAgent(ContinuousSpaceAgent):
    """One nucleus of species ``species`` in the model's periodic space.

    Attributes:
        species: its :class:`agents.species.Species` (symbol and mass).
        snapshot: the (N, 3) positions it last scanned.
        invariants: (phi (S, M), dphi (S, M, 3)) from its last :meth:`encode`.
    """

    def __init__(self, space, model, species: Species):
        super().__init__(space, model)
        self.species = species
        self.snapshot = None
        self.invariants = None

    @property
    def index(self) -> int:
        """Its row in the model's arrays (positions, velocities, forces)."""
        return self.model.index_of(self)

    @property
    def mass(self) -> float:
        return self.species.mass

    @property
    def velocity(self) -> np.ndarray:
        """Velocity (angstrom/fs), a copy."""
        return self.model.velocities[self.index].copy()

    @property
    def force(self) -> np.ndarray:
        """Force (eV/angstrom) that moves it: F of eq. (3.1) (Newtonian: the clipped loss force), a copy."""
        return self.model.forces[self.index].copy()

    @property
    def loss_value(self) -> float:
        """Its current loss H (eV)."""
        return float(self.model.loss_values[self.index])

    def scan(self) -> None:
        """Step 1: read every agent's position from the snapshot taken at the start of the step."""
        self.snapshot = self.model.snapshot

    def encode(self) -> None:
        """Step 2: invariants phi[a, m] and their gradients d phi / d q_k, eq. (4.1)."""
        self.invariants = self.model.evaluator.agent_invariants(self.index, self.snapshot)

    def loss(self) -> float:
        """Step 3: the loss H of eq. (4.5) and the force G it descends by: -dH/dq_k, eq. (4.6), in the
        own form; in the shared form -dE/dq_k, which also reads the neighbours' invariants."""
        i = self.index
        H, G = self.model.evaluator.agent_loss(i, self.invariants, self.snapshot)
        self.model.loss_values[i] = H
        self.model.loss_forces[i] = G - self.model.net_force_share[i]
        return H

    def update_force(self) -> None:
        """Step 4: the force F that moves it, from its loss force G by the integrator's rule."""
        model, i = self.model, self.index
        model.forces[i] = model.integrator.force_update(model.forces[i], model.loss_forces[i], self.mass)

    def accelerate(self) -> None:
        """Its velocity from F by the integrator's rule (eq. 3.2, or a velocity-Verlet half-kick)."""
        model, i = self.model, self.index
        model.velocities[i] = model.integrator.velocity_update(model.velocities[i], model.forces[i], self.mass)

    def move(self) -> None:
        """Step 5: :meth:`accelerate`, then drift dt with the new velocity (dq/dt = v)."""
        self.accelerate()
        i = self.index
        self.model.move_agent(i, self.model.positions[i] + self.model.dt * self.model.velocities[i])

    def step(self) -> None:
        """Take this agent's part of the current model step (see ``MolecularModel.step_agent``)."""
        self.model.step_agent(self)

    def remove(self) -> None:
        """Leave the model: its rows leave the model's arrays, then Mesa removes it from the space."""
        model = self.model
        model.remove_rows(self)
        super().remove()
        model.reindex()
