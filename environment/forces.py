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
from agents.loss import AgentLosses
from agents.validation import count, non_negative
from environment.kernels import LossForces

ENGINES = ("numba", "numpy")


class ForceEvaluator:
    """Loss values and loss forces of all agents at given positions.

    Args:
        losses: :class:`agents.loss.AgentLosses`, one loss per species present.
        symbols: (N,) species symbol of every agent.
        box: cubic box side (angstrom).
        engine: ``'numba'`` (copies the loss coefficients now) or ``'numpy'`` (reads ``losses`` at
            every call).
        cutoff: ``None`` (the paper: all pairs, minimum image) or r_c in angstrom (or a
            :class:`agents.cutoff.SmoothCutoff`): sums switched off smoothly towards r_c.
        skin: neighbour-list skin (angstrom), numba engine in cutoff mode.
        threads: numba threads per call (None: numba's current setting); restored after the call.

    ``H, G = evaluator(positions)``: H (N,) in eV, G (N, 3) in eV/angstrom.
    """

    def __init__(self, losses: AgentLosses, symbols, box: float, engine: str = "numba", cutoff=None,
                 skin: float = 1.0, threads: int | None = None):
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
        self.threads = None if threads is None else min(count("threads", threads), numba.config.NUMBA_NUM_THREADS)
        symbols_array = np.array(self.symbols)
        self.sinks = {s: np.flatnonzero(symbols_array == s) for s in present}
        self.sources = {s: source_index(self.symbols, losses[s].invariants.sources) for s in present}
        self._kernel = LossForces(losses, self.symbols, self.box, self.cutoff, skin) if engine == "numba" else None

    def __call__(self, positions):
        if self.threads is None:
            return self._evaluate(positions)
        previous = numba.get_num_threads()
        numba.set_num_threads(self.threads)
        try:
            return self._evaluate(positions)
        finally:
            numba.set_num_threads(previous)

    def _evaluate(self, positions):
        if self._kernel is not None:
            return self._kernel(positions)
        H = np.empty(len(positions))
        G = np.empty((len(positions), 3))
        for s, sinks in self.sinks.items():
            loss = self.losses[s]
            phi, dphi = loss.invariants.compute(positions, self.box, self.sources[s], sinks, cutoff=self.cutoff)
            H[sinks], G[sinks] = loss.evaluate(phi, dphi)
        return H, G

    def agent_invariants(self, k: int, positions):
        """Agent k's invariants from eq. (4.1) directly (the reference path): phi (S, M), dphi (S, M, 3)."""
        loss = self.losses[self.symbols[k]]
        return loss.invariants.compute_agent(k, positions, self.box, self.sources[self.symbols[k]], self.cutoff)
