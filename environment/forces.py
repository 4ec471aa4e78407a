"""Positions in, every agent's loss and loss force out: the one place that owns how forces are computed.

:class:`ForceEvaluator` turns the positions of all agents into their loss values H_k (4.5) and loss
forces G_k = -dH_k/dq_k (4.6).  It owns the choices that only concern cost, never the physics:
the engine (``'numba'``: the fused compiled kernels of :mod:`environment.kernels`; ``'numpy'``: the
vectorized reference of :meth:`agents.invariants.InvariantSet.compute`), the smooth cutoff and the
neighbour-list skin, and the number of threads, which it restores after each call.
"""

from __future__ import annotations

import numba
import numpy as np

from agents.cutoff import as_cutoff
from agents.invariants import source_index
from agents.descriptor_jacobian import agent_descriptors
from agents.descriptor_loss import DescriptorLoss
from agents.loss import AgentLosses
from agents.validation import count, non_negative
from environment.descriptor_kernels import DescriptorForces
from environment.kernels import LossForces
from environment.neighbors import DEFAULT_SKIN

ENGINES = ("numba", "numpy")

#: Below this many atoms the default is one thread (the measured crossover, ``docs/threads.md``).
SERIAL_BELOW_ATOMS = 1000


def default_threads(n_atoms: int) -> int:
    """The default number of threads for ``n_atoms`` atoms: 1 below :data:`SERIAL_BELOW_ATOMS`, else
    numba's maximum (``NUMBA_NUM_THREADS``, the number of cores unless set)."""
    return 1 if n_atoms < SERIAL_BELOW_ATOMS else int(numba.config.NUMBA_NUM_THREADS)


class ForceEvaluator:
    """Loss values and loss forces of all agents at given positions.

    Args:
        losses: :class:`agents.loss.AgentLosses` (the paper's losses: one per species present, own form)
            or :class:`agents.descriptor_loss.DescriptorLoss` (descriptors that carry their cutoffs,
            own or shared form).
        symbols: (N,) species symbol of every agent.
        box: cubic box side (angstrom).
        engine: ``'numba'`` (copies the loss coefficients now) or ``'numpy'`` (reads ``losses`` at
            every call).
        cutoff: ``None`` (the paper: all pairs, minimum image) or r_c in angstrom (or a
            :class:`agents.cutoff.SmoothCutoff`): sums switched off smoothly towards r_c (``AgentLosses``
            only; a descriptor loss carries its own cutoffs).
        skin: neighbour-list skin (angstrom), numba engine with a cutoff.
        threads: numba threads per call (None: :func:`default_threads` of the number of atoms, which
            ``threads`` then holds); restored after the call.

    ``H, G = evaluator(positions)``: H (N,) in eV, G (N, 3) in eV/angstrom: each agent's loss and the
    force it descends by (own form: -dH_k/dq_k; shared form: -dE/dq_k with E = sum_k H_k).
    """

    def __init__(self, losses: AgentLosses | DescriptorLoss, symbols, box: float, engine: str = "numba", cutoff=None,
                 skin: float = DEFAULT_SKIN, threads: int | None = None):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        self.symbols = list(symbols)
        present = list(dict.fromkeys(self.symbols))
        losses.check_species(present, "losses")
        self.losses = losses
        self.box = float(box)
        self.engine = engine
        self.cutoff = as_cutoff(cutoff)
        if self.cutoff is not None:
            self.cutoff.check_box(self.box)
        self.skin = non_negative("skin", skin)
        threads = default_threads(len(self.symbols)) if threads is None else count("threads", threads)
        self.threads = min(threads, int(numba.config.NUMBA_NUM_THREADS))
        symbols_array = np.array(self.symbols)
        self.sinks = {s: np.flatnonzero(symbols_array == s) for s in present}
        self.descriptor_loss = isinstance(losses, DescriptorLoss)
        if self.descriptor_loss:
            losses.check_domain(self.box, self.cutoff)
            self.sources = {}
            self._kernel = DescriptorForces(losses, self.symbols, self.box, skin) if engine == "numba" else None
        else:
            self.sources = {s: source_index(self.symbols, losses[s].invariants.sources) for s in present}
            self._kernel = LossForces(losses, self.symbols, self.box, self.cutoff, skin) if engine == "numba" else None

    def __call__(self, positions):
        previous = numba.get_num_threads()
        if previous == self.threads:
            return self._evaluate(positions)
        numba.set_num_threads(self.threads)
        try:
            return self._evaluate(positions)
        finally:
            numba.set_num_threads(previous)

    def _evaluate(self, positions):
        if self._kernel is not None:
            return self._kernel(positions)
        if self.descriptor_loss:
            return self.losses.evaluate(positions, self.box, self.symbols)
        H = np.empty(len(positions))
        G = np.empty((len(positions), 3))
        for s, sinks in self.sinks.items():
            loss = self.losses[s]
            phi, dphi = loss.invariants.compute(positions, self.box, self.sources[s], sinks, cutoff=self.cutoff)
            H[sinks], G[sinks] = loss.evaluate(phi, dphi)
        return H, G

    @property
    def neighbors(self):
        """The neighbour list (numba engine in cutoff mode), else None."""
        return None if self._kernel is None else self._kernel.neighbors

    def state(self) -> dict:
        """What a checkpoint needs to rebuild the same neighbour list: ``neighbor_reference``, the
        positions at its last build (the list's pair order, and so the summation order, follows them)."""
        neighbors = self.neighbors
        if neighbors is None or neighbors.reference is None:
            return {}
        return {"neighbor_reference": neighbors.reference.copy()}

    def restore(self, state: dict) -> None:
        """Rebuild the neighbour list at the saved reference positions (bit-identical forces)."""
        neighbors = self.neighbors
        reference = state.get("neighbor_reference")
        if neighbors is None or reference is None:
            return
        self._kernel.rebuild_neighbors(np.asarray(reference, dtype=np.float64))

    def agent_invariants(self, k: int, positions):
        """Agent k's invariants read straight from their definition (the reference path).

        ``AgentLosses``: phi (S, M) and dphi (S, M, 3) of eq. (4.1), gradients with respect to q_k.
        ``DescriptorLoss``: phi (P,) and d phi / d q_j (P, N, 3) for every atom j (many-body terms
        move the neighbours too).
        """
        if self.descriptor_loss:
            return agent_descriptors(k, positions, self.box, self.symbols, self.losses.descriptors)
        loss = self.losses[self.symbols[k]]
        return loss.invariants.compute_agent(k, positions, self.box, self.sources[self.symbols[k]], self.cutoff)

    def agent_loss(self, k: int, invariants, positions):
        """Agent k's loss H_k (eV) and the force it descends by (3,) eV/angstrom (the reference path).

        Own form: from its own invariants, G_k = -dH_k/dq_k (eq. 4.6).  Shared form: its scan also
        reads the neighbours' invariant gradients, G_k = -sum_i dH_i/dq_k.
        """
        if self.descriptor_loss:
            return self.losses.agent_loss(k, positions, self.box, self.symbols)
        phi, dphi = invariants
        H, G = self.losses[self.symbols[k]].evaluate(phi[None], dphi[None])
        return float(H[0]), G[0]
