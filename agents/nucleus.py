"""The nucleus agent: a Mesa agent that takes the paper's five learning steps (Sec. 3).

1. :meth:`NucleusAgent.scan`    — read the positions of all other agents (the step's snapshot);
2. :meth:`NucleusAgent.encode`  — encode them into invariants phi_a^m, eq. (4.1);
3. :meth:`NucleusAgent.loss`    — evaluate its species' loss H, eq. (4.5), and G = -dH/dq, eq. (4.6);
4. :meth:`NucleusAgent.update_force` — relax its force towards G, eq. (3.1) (Newtonian: F = G);
5. :meth:`NucleusAgent.move`    — move, eq. (3.2) (Newtonian: a velocity-Verlet half-kick and drift).

The agent's numbers live in the model's arrays (row ``agent.index``), so the agent-by-agent
reference path and the vectorized path share one state.  These methods are that reference path:
readable, one agent at a time; :class:`environment.model.MolecularModel` drives them.
"""

from __future__ import annotations

import numpy as np
from mesa.experimental.continuous_space import ContinuousSpaceAgent

from agents.species import Species
from environment.integrators import clip_forces, kick, learning_velocity, relax_force


class NucleusAgent(ContinuousSpaceAgent):
    """One nucleus of species ``species`` in the model's periodic space.

    Attributes:
        species: its :class:`agents.species.Species` (symbol and mass).
        index: its row in the model's arrays (positions, velocities, forces).
        invariants: (phi (S, M), dphi (S, M, 3)) from its last :meth:`encode`.
    """

    def __init__(self, space, model, species: Species):
        super().__init__(space, model)
        self.species = species
        self.index = space._agent_to_index[self]
        self.snapshot = None
        self.invariants = None

    @property
    def mass(self) -> float:
        return self.species.mass

    @property
    def velocity(self) -> np.ndarray:
        """Velocity (angstrom/fs), a copy."""
        return self.model.velocities[self.index].copy()

    @property
    def force(self) -> np.ndarray:
        """Force (eV/angstrom) that moves it: the averaged gradient F of eq. (3.1), a copy."""
        return self.model.forces[self.index].copy()

    @property
    def loss_value(self) -> float:
        """Its current loss H (eV)."""
        return float(self.model.losses_values[self.index])

    def scan(self) -> None:
        """Step 1: read every agent's position from the snapshot taken at the start of the step."""
        self.snapshot = self.model.snapshot

    def encode(self) -> None:
        """Step 2: invariants phi[a, m] and their gradients d phi / d q_k, eq. (4.1)."""
        loss = self.model.species_loss(self.species.symbol)
        sources = self.model.source_indices(self.species.symbol)
        self.invariants = loss.invariants.compute_agent(self.index, self.snapshot, self.model.box, sources,
                                                        cutoff=self.model.cutoff)

    def loss(self) -> float:
        """Step 3: the loss H of eq. (4.5) and its negative gradient G of eq. (4.6)."""
        phi, dphi = self.invariants
        H, G = self.model.species_loss(self.species.symbol).evaluate(phi[None], dphi[None])
        self.model.losses_values[self.index] = H[0]
        self.model.gradients[self.index] = G[0]
        return float(H[0])

    def update_force(self, dt: float) -> None:
        """Step 4: F <- e^{-dt/tau} F + (1 - e^{-dt/tau}) G, eq. (3.1); Newtonian: F = G (clipped)."""
        integrator, i = self.model.integrator, self.index
        if integrator.mode == "learning":
            self.model.forces[i] = relax_force(self.model.forces[i], self.model.gradients[i], dt, integrator.tau)
        else:
            self.model.forces[i] = clip_forces(self.model.gradients[i], integrator.max_force)

    def move(self, dt: float) -> None:
        """Step 5: dq/dt = (tau / M) F, eq. (3.2); Newtonian: half-kick with F, then drift."""
        integrator, i = self.model.integrator, self.index
        if integrator.mode == "learning":
            self.model.velocities[i] = learning_velocity(self.model.forces[i], self.mass, integrator.tau)
        else:
            self.model.velocities[i] = kick(self.model.velocities[i], self.model.forces[i], self.mass, 0.5 * dt)
        self.model.move_agent(i, self.model.positions[i] + dt * self.model.velocities[i])

    def kick(self, dt: float) -> None:
        """Newtonian only: the closing half-kick of velocity Verlet with the new force."""
        i = self.index
        self.model.velocities[i] = kick(self.model.velocities[i], self.model.forces[i], self.mass, 0.5 * dt)

    def step(self) -> None:
        """Take this agent's part of the current model step (see ``MolecularModel.step_agent``)."""
        self.model.step_agent(self)
