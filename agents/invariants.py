"""Invariants phi_a^m of eq. (4.1) and their gradients with respect to the sink's own position.

For sink agent k, source species a and weight function w_m::

    phi[k, a, m]     = sum_{i in a, i != k} w_m(r_ki)                       (4.1)
    dphi[k, a, m, :] = sum_{i in a, i != k} w_m'(r_ki) (q_k - q_i) / r_ki

with r_ki the minimum-image distance.  :meth:`InvariantSet.compute` is the whole-population
(vectorized) path; :meth:`InvariantSet.compute_agent` is the readable per-agent reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.geometry import minimum_image
from agents.cutoff import as_cutoff
from agents.weights import WeightFunction, weight_functions


def source_index(symbols, sources) -> np.ndarray:
    """Index of each atom's species in ``sources``; ``ValueError`` for a species not listed."""
    lookup = {s: a for a, s in enumerate(sources)}
    unknown = sorted({s for s in symbols if s not in lookup})
    if unknown:
        raise ValueError(f"species {unknown} not among the invariants' source species {list(sources)}")
    return np.fromiter((lookup[s] for s in symbols), dtype=np.intp, count=len(symbols))


@dataclass(frozen=True)
class InvariantSet:
    """An ordered set of weight functions applied to every source species.

    Attributes:
        functions: the weight functions w_m, in order (index m).
        sources: the source species symbols, in order (index a).
    """

    functions: tuple[WeightFunction, ...]
    sources: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "functions", weight_functions(self.functions))
        object.__setattr__(self, "sources", tuple(self.sources))
        if not self.functions:
            raise ValueError("an invariant set needs at least one weight function")
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ValueError(f"sources must be distinct species symbols, got {self.sources}")

    @property
    def names(self) -> list[str]:
        """Readable names of the weight functions, e.g. ``['exp(a=1/5)', 'gauss(s=4)']``."""
        return [f.name for f in self.functions]

    @property
    def feature_names(self) -> list[str]:
        """Names of the flattened invariants ``p = a * M + m``, e.g. ``'H:gauss(s=4)'``."""
        return [f"{a}:{f.name}" for a in self.sources for f in self.functions]

    @property
    def shape(self) -> tuple[int, int]:
        """(number of source species S, number of weight functions M)."""
        return len(self.sources), len(self.functions)

    def compute(self, positions, box, species, sinks=None, gradient=True, *, cutoff=None):
        """Invariants of many sink agents at once (the fast path).

        Args:
            positions: (N, 3) positions in angstrom.
            box: cubic box side in angstrom.
            species: (N,) source-species index of every atom (see :func:`source_index`).
            sinks: indices of the sink agents (default: all N).
            gradient: also return d phi / d q_k.
            cutoff: None (default: minimum image, all pairs) or r_c / a
                :class:`~agents.cutoff.SmoothCutoff`: sums cut smoothly by w -> w S(r).

        Returns:
            phi of shape (n_sinks, S, M) and, if ``gradient``, dphi of shape (n_sinks, S, M, 3).
        """
        switch = as_cutoff(cutoff)
        if switch is not None:
            switch.check_box(box)
        positions = np.asarray(positions, dtype=float)
        sinks = np.arange(len(positions)) if sinks is None else np.asarray(sinks, dtype=np.intp)
        n_species, n_functions = self.shape
        onehot = np.zeros((len(positions), n_species))
        onehot[np.arange(len(positions)), species] = 1.0

        # Component-major differences d[x, k, i] = (q_k - q_i)_x: contiguous planes for the sums.
        d = minimum_image(positions[sinks].T[:, :, None] - positions.T[:, None, :], box)
        r = np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2)
        own = (np.arange(len(sinks)), sinks)
        r[own] = 1.0  # a safe placeholder: an agent does not see itself, its terms are zeroed

        if switch is not None:
            s, ds = switch.value(r), switch.derivative(r)
        phi = np.empty((len(sinks), n_species, n_functions))
        dphi = np.empty((len(sinks), n_species, n_functions, 3)) if gradient else None
        for m, w in enumerate(self.functions):
            value = w.value(r) if switch is None else w.value(r) * s
            value[own] = 0.0
            phi[:, :, m] = value @ onehot
            if gradient:
                dw = w.derivative(r) if switch is None else w.derivative(r) * s + w.value(r) * ds
                g = dw / r  # (n_sinks, N)
                g[own] = 0.0
                for x in range(3):
                    dphi[:, :, m, x] = (g * d[x]) @ onehot
        return (phi, dphi) if gradient else phi

    def compute_agent(self, k, positions, box, species, cutoff=None):
        """Invariants of one agent k, read straight from eq. (4.1) (the reference path).

        With ``cutoff`` (r_c or a :class:`~agents.cutoff.SmoothCutoff`) every w_m(r) becomes
        w_m(r) S(r), so its r-derivative is w_m'(r) S(r) + w_m(r) S'(r).

        Returns:
            phi of shape (S, M) and dphi of shape (S, M, 3).
        """
        positions = np.asarray(positions, dtype=float)
        n_species, n_functions = self.shape
        phi = np.zeros((n_species, n_functions))
        dphi = np.zeros((n_species, n_functions, 3))
        for a in range(n_species):
            others = [i for i in np.flatnonzero(species == a) if i != k]
            d_ki = minimum_image(positions[k] - positions[others], box)
            r_ki = np.linalg.norm(d_ki, axis=1)
            s, ds = np.ones_like(r_ki), np.zeros_like(r_ki)
            if cutoff is not None:
                s, ds = as_cutoff(cutoff).value(r_ki), as_cutoff(cutoff).derivative(r_ki)
            for m, w in enumerate(self.functions):
                phi[a, m] = np.sum(w.value(r_ki) * s)
                dw = w.derivative(r_ki) * s + w.value(r_ki) * ds
                dphi[a, m] = np.sum((dw / r_ki)[:, None] * d_ki, axis=0)
        return phi, dphi
