"""Verlet neighbour list with a skin, built from a cell list (periodic cubic box), for cutoff sums.

The list holds, for every atom k, all atoms j != k within the minimum-image distance r_c + skin,
grouped by source species.  It works in a cache-friendly *sorted* numbering (atoms sorted by cell,
``order[s]`` is the atom at sorted position s): row s, species a is
``indices[pointers[s, a]:pointers[s, a + 1]]`` and holds sorted positions too
(:meth:`NeighborList.neighbors_of` answers in the original numbering).
It stays valid -- it still contains every pair within r_c -- until some atom has moved more than
skin / 2 from where it was at the last build (two atoms approach by at most skin), so
:meth:`NeighborList.update` rebuilds only then.  Building is O(N) (cells of side >= r_c + skin,
27 neighbouring cells) and parallel; boxes with fewer than 3 cells a side use all pairs.
Memory: 4 bytes per listed pair (about 150 pairs per atom in water at r_c + skin = 7 angstrom).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from agents.geometry import fold, wrap


@njit(cache=True, inline="always")
def _distance2(X, Y, Z, k, j, box):
    """Squared minimum-image distance between atoms k and j."""
    inv_box = 1.0 / box
    dx = fold(X[k] - X[j], box, inv_box)
    dy = fold(Y[k] - Y[j], box, inv_box)
    dz = fold(Z[k] - Z[j], box, inv_box)
    return dx * dx + dy * dy + dz * dz


@njit(cache=True, inline="always")
def _record(X, Y, Z, k, j, box, r2max, fill, indices, q, c):
    """Count (and, if ``fill``, store at ``q + c``) atom j as a neighbour of k; the new count."""
    if j == k or _distance2(X, Y, Z, k, j, box) > r2max:
        return c
    if fill:
        indices[q + c] = j
    return c + 1


@njit(cache=True, parallel=True)
def _brute(X, Y, Z, box, species, n_species, r2max, counts, fill, ptr, indices):
    N = X.size
    for k in prange(N):
        for a in range(n_species):
            q = ptr[k, a] if fill else 0
            c = 0
            for j in range(N):
                if species[j] == a:
                    c = _record(X, Y, Z, k, j, box, r2max, fill, indices, q, c)
            if not fill:
                counts[k, a] = c


@njit(cache=True, parallel=True)
def _cells(X, Y, Z, box, species, n_species, r2max, n_cell, cell_of, cell_ptr,
           counts, fill, ptr, indices):
    N = X.size
    for k in prange(N):
        c0 = cell_of[k]
        cx = c0 // (n_cell * n_cell)
        cy = (c0 // n_cell) % n_cell
        cz = c0 % n_cell
        for a in range(n_species):
            q = ptr[k, a] if fill else 0
            c = 0
            for ox in range(-1, 2):
                for oy in range(-1, 2):
                    for oz in range(-1, 2):
                        cell = (((cx + ox) % n_cell) * n_cell + (cy + oy) % n_cell) * n_cell + (cz + oz) % n_cell
                        key = cell * n_species + a
                        for j in range(cell_ptr[key], cell_ptr[key + 1]):
                            c = _record(X, Y, Z, k, j, box, r2max, fill, indices, q, c)
            if not fill:
                counts[k, a] = c


@njit(cache=True)
def _max_shift2(P, R, box):
    m = 0.0
    inv_box = 1.0 / box
    for k in range(P.shape[0]):
        s = 0.0
        for x in range(3):
            d = fold(P[k, x] - R[k, x], box, inv_box)
            s += d * d
        m = max(m, s)
    return m


class NeighborList:
    """Pairs within ``cutoff + skin`` (angstrom), rebuilt only after an atom moved more than skin / 2.

    Attributes after :meth:`update`:
        indices: (n_pairs,) int32 neighbour indices, rows grouped by species.
        pointers: (N, S + 1) int64 row/species offsets into ``indices``.
        max_block: the largest number of neighbours of one species in one row.
        n_builds: how many times the list was built.
        order: (N,) int64, the atom at each sorted position (sorted by cell, then species).
    """

    def __init__(self, cutoff: float, skin: float = 1.0):
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        if not self.cutoff > 0 or not self.skin >= 0:
            raise ValueError(f"need cutoff > 0 and skin >= 0 (angstrom), got {cutoff!r}, {skin!r}")
        self.indices = None
        self.pointers = None
        self.max_block = 0
        self.n_builds = 0
        self.order = None
        self._reference = None
        self._key = None

    @property
    def radius(self) -> float:
        """The list radius r_c + skin, angstrom."""
        return self.cutoff + self.skin

    def needs_rebuild(self, positions, box, species) -> bool:
        key = (float(box), len(positions), hash(np.asarray(species).tobytes()))
        if self._reference is None or key != self._key:
            return True
        shift2 = _max_shift2(np.asarray(positions, dtype=np.float64), self._reference, float(box))
        return bool(shift2 > (0.5 * self.skin) ** 2) or (self.skin == 0.0 and shift2 > 0.0)

    def update(self, positions, box, species, n_species=None) -> bool:
        """Rebuild if needed; True when rebuilt."""
        if not self.needs_rebuild(positions, box, species):
            return False
        self.build(positions, box, species, n_species)
        return True

    def build(self, positions, box, species, n_species=None) -> None:
        positions = np.asarray(positions, dtype=np.float64)
        box = float(box)
        species = np.asarray(species, dtype=np.int64)
        n_species = int(species.max()) + 1 if n_species is None else int(n_species)
        N = len(positions)
        q = wrap(positions, box)
        r2max = self.radius**2
        counts = np.zeros((N, n_species), dtype=np.int64)
        ptr = np.zeros((N, n_species + 1), dtype=np.int64)
        n_cell = int(box // self.radius)
        if n_cell < 3:
            order = np.argsort(species, kind="stable").astype(np.int64)
        else:
            cx = np.minimum((q * (n_cell / box)).astype(np.int64), n_cell - 1)
            cell_of = (cx[:, 0] * n_cell + cx[:, 1]) * n_cell + cx[:, 2]
            key = cell_of * n_species + species
            order = np.argsort(key, kind="stable").astype(np.int64)
            cell_ptr = np.zeros(n_cell**3 * n_species + 1, dtype=np.int64)
            cell_ptr[1:] = np.cumsum(np.bincount(key, minlength=n_cell**3 * n_species))
            cell_of = np.ascontiguousarray(cell_of[order])
        q = q[order]
        sorted_species = np.ascontiguousarray(species[order])
        X, Y, Z = (np.ascontiguousarray(q[:, x]) for x in range(3))
        if n_cell < 3:
            run = lambda fill, ptr, ind: _brute(X, Y, Z, box, sorted_species, n_species, r2max, counts, fill,
                                                ptr, ind)
        else:
            run = lambda fill, ptr, ind: _cells(X, Y, Z, box, sorted_species, n_species, r2max, n_cell, cell_of,
                                                cell_ptr, counts, fill, ptr, ind)
        dummy = np.zeros(1, dtype=np.int32)
        run(False, ptr, dummy)
        ptr[:, 1:] = np.cumsum(counts, axis=1)
        row_start = np.zeros(N, dtype=np.int64)
        row_start[1:] = np.cumsum(ptr[:-1, -1])
        ptr += row_start[:, None]
        indices = np.empty(int(ptr[-1, -1]) if N else 0, dtype=np.int32)
        run(True, ptr, indices)
        self.indices, self.pointers, self.order = indices, ptr, order
        self.max_block = int(counts.max()) if counts.size else 0
        self._reference = positions.copy()
        self._key = (box, N, hash(species.tobytes()))
        self.n_builds += 1

    def pairs(self):
        """All listed ordered pairs (k, j), original numbering, as two int arrays."""
        counts = self.pointers[:, -1] - self.pointers[:, 0]
        return np.repeat(self.order, counts), self.order[self.indices]

    def neighbors_of(self, k: int, a: int) -> np.ndarray:
        """Listed neighbours of species a of atom k (original numbering)."""
        s = int(np.flatnonzero(self.order == k)[0])
        return self.order[self.indices[self.pointers[s, a]:self.pointers[s, a + 1]]]
