"""Verlet neighbour list with a skin, built from a cell list (periodic cubic box), for cutoff sums.

The list holds, for every atom k, all atoms j != k within the minimum-image distance r_c + skin,
grouped by source species.  It works in a cache-friendly *sorted* numbering (atoms sorted by cell,
then species; ``order[s]`` is the atom at sorted position s): row s, species a is
``indices[pointers[s, a]:pointers[s, a + 1]]`` and holds sorted positions too
(:meth:`NeighborList.neighbors_of` answers in the original numbering).
It stays valid -- it still contains every pair within r_c -- until some atom has moved more than
skin / 2 from where it was at the last build (two atoms approach by at most skin), so
:meth:`NeighborList.update` rebuilds only then.

The whole build is compiled: a counting sort of the atoms into cells of side >= (r_c + skin) / 2
(``CELLS_PER_RADIUS``), then one distance pass over the 5 x 5 x 5 neighbouring cells, each sink
scanning only the runs of cells that come within r_c + skin of it, parallel over fixed chunks of
sinks that write into their own buffers; the buffers are appended in chunk order, so the list does
not depend on the number of threads.
Boxes under 2.5 (r_c + skin), too small for that stencil, use one cell (all pairs, minimum image).
Memory: 4 bytes per listed pair (about 145 pairs per atom in water at r_c + skin = 7 angstrom, and up
to 5 % spare room) and 8 (S + 1) bytes of row pointers per atom; see docs/neighbors.md.
"""

from __future__ import annotations

import time

import numpy as np
from numba import njit, prange

from agents.geometry import fold

#: Default skin (angstrom), chosen by measurement (docs/neighbors.md).
DEFAULT_SKIN = 1.0
#: Cells per list radius along each axis (cell side >= radius / CELLS_PER_RADIUS), when the box allows it.
CELLS_PER_RADIUS = 2
#: Sinks per parallel task, and tasks per wave (fixed: the output never depends on the thread count).
_CHUNK = 64
_WAVE = 32


@njit(cache=True, parallel=True)
def _bin(P, box, species, n_species, n_cell):
    """Counting sort of the atoms by (cell, species).

    Returns:
        order (N,) atom at each sorted position; X, Y, Z (N,) its position folded into [0, box);
        sp (N,) its species; cell (N,) its cell; cell_ptr (n_cell**3 * n_species + 1,) start of each (cell, species) segment.
    """
    N = P.shape[0]
    key = np.empty(N, dtype=np.int64)
    scale = n_cell / box
    for k in prange(N):
        c = 0
        for x in range(3):
            q = P[k, x] - box * np.floor(P[k, x] / box)
            i = min(max(int(q * scale), 0), n_cell - 1)
            c = c * n_cell + i
        key[k] = c * n_species + species[k]
    n_keys = n_cell**3 * n_species
    cell_ptr = np.zeros(n_keys + 1, dtype=np.int64)
    for k in range(N):
        cell_ptr[key[k] + 1] += 1
    for i in range(n_keys):
        cell_ptr[i + 1] += cell_ptr[i]
    order = np.empty(N, dtype=np.int64)
    cursor = cell_ptr[:-1].copy()
    for k in range(N):  # stable: atoms of one (cell, species) keep their original order
        order[cursor[key[k]]] = k
        cursor[key[k]] += 1
    X, Y, Z = np.empty(N), np.empty(N), np.empty(N)
    cell = np.empty(N, dtype=np.int64)
    sp = np.empty(N, dtype=np.int64)
    for s in prange(N):
        k = order[s]
        cell[s] = key[k] // n_species
        sp[s] = species[k]
        X[s] = P[k, 0] - box * np.floor(P[k, 0] / box)
        Y[s] = P[k, 1] - box * np.floor(P[k, 1] / box)
        Z[s] = P[k, 2] - box * np.floor(P[k, 2] / box)
    return order, X, Y, Z, sp, cell, cell_ptr


@njit(cache=True, inline="always")
def _scan(lo, hi, s, xs, ys, zs, sx, sy, sz, X, Y, Z, r2max, box, minimum_image, hits, n):
    """Append to ``hits[n:]`` the atoms lo..hi-1 within the list radius of sink s (branch-free), atom j
    taken at X[j] + sx (the image the cell offset names) or, if ``minimum_image``, at its minimum image;
    the new length."""
    inv_box = 1.0 / box
    for j in range(lo, hi):
        dx = xs - X[j] - sx
        dy = ys - Y[j] - sy
        dz = zs - Z[j] - sz
        if minimum_image:
            dx, dy, dz = fold(dx, box, inv_box), fold(dy, box, inv_box), fold(dz, box, inv_box)
        hits[n] = j
        n += 1 if dx * dx + dy * dy + dz * dz <= r2max and j != s else 0
    return n


@njit(cache=True, inline="always")
def _collect(s, X, Y, Z, box, r2max, n_cell, reach, cell, cell_ptr, n_species, hits):
    """Sink s's neighbours into ``hits`` in scan order; their number.

    Neighbour cells are offsets -reach..reach of the sink's cell (distinct when n_cell >= 2 reach + 1),
    the periodic image chosen by the offset; for each (x, y) column the run of cells along z that comes
    within the radius is one contiguous range of atoms (two where it wraps).  With ``n_cell == 1``:
    all atoms, minimum image.
    """
    xs, ys, zs = X[s], Y[s], Z[s]
    if n_cell == 1:
        return _scan(0, X.size, s, xs, ys, zs, 0.0, 0.0, 0.0, X, Y, Z, r2max, box, True, hits, 0)
    side = box / n_cell
    tol = 1e-9 * box
    n = 0
    c0 = cell[s]
    cx, cy, cz = c0 // (n_cell * n_cell), (c0 // n_cell) % n_cell, c0 % n_cell
    for ux in range(cx - reach, cx + reach + 1):
        gx = max(0.0, ux * side - xs - tol, xs - (ux + 1) * side - tol)
        wx = ux % n_cell
        sx = (ux - wx) // n_cell * box  # image shift: -box, 0 or box
        for uy in range(cy - reach, cy + reach + 1):
            gy = max(0.0, uy * side - ys - tol, ys - (uy + 1) * side - tol)
            rest = r2max - gx * gx - gy * gy
            if rest < 0.0:
                continue
            wy = uy % n_cell
            sy = (uy - wy) // n_cell * box
            h = np.sqrt(rest) + tol
            z0 = max(cz - reach, int(np.floor((zs - h) / side)))
            z1 = min(cz + reach, int(np.floor((zs + h) / side)))
            column = (wx * n_cell + wy) * n_cell
            while z0 <= z1:  # runs of cells without a wrap: one image shift each
                wz = z0 % n_cell
                end = min(z1, z0 - wz + n_cell - 1)
                lo = cell_ptr[(column + wz) * n_species]
                hi = cell_ptr[(column + wz + end - z0 + 1) * n_species]
                sz = (z0 - wz) // n_cell * box
                n = _scan(lo, hi, s, xs, ys, zs, sx, sy, sz, X, Y, Z, r2max, box, False, hits, n)
                z0 = end + 1
    return n


@njit(cache=True, parallel=True)
def _wave(first, X, Y, Z, sp, box, r2max, n_cell, reach, cell, cell_ptr, local_ptr, buffer, totals):
    """Rows of the chunks ``first, first + 1, ...`` (``buffer.shape[0]`` of them, _CHUNK sinks each), in
    parallel: chunk w's rows, split by species, into ``buffer[w]``, their offsets there into
    ``local_ptr[w * _CHUNK + row]`` and their length into ``totals[w]``."""
    N = X.size
    n_species = local_ptr.shape[1] - 1
    for w in prange(buffer.shape[0]):
        totals[w] = 0
        s0 = (first + w) * _CHUNK
        if s0 >= N:
            continue
        hits = np.empty(buffer.shape[1] // _CHUNK, dtype=np.int32)
        cursor = np.empty(n_species, dtype=np.int64)
        at = 0
        for s in range(s0, min(N, s0 + _CHUNK)):
            n = _collect(s, X, Y, Z, box, r2max, n_cell, reach, cell, cell_ptr, n_species, hits)
            row = local_ptr[w * _CHUNK + s - s0]
            row[:] = 0
            for i in range(n):
                row[sp[hits[i]] + 1] += 1
            row[0] = at
            for a in range(n_species):
                row[a + 1] += row[a]
                cursor[a] = row[a]
            for i in range(n):  # within a (row, species) block, neighbours in scan order
                j = hits[i]
                buffer[w, cursor[sp[j]]] = j
                cursor[sp[j]] += 1
            at += n
        totals[w] = at


@njit(cache=True)
def _assemble(X, Y, Z, sp, box, r2max, n_cell, reach, cell, cell_ptr, capacity, n_species, estimate):
    """The list in one distance pass: waves of chunks (:func:`_wave`), each wave's rows appended in chunk
    order (so the list does not depend on the thread count) to ``indices``, which grows by half when full.

    Returns:
        indices (its first ``ptr[-1, -1]`` entries are the list), ptr (N, S + 1), the largest block.
    """
    N = X.size
    n_chunks = (N + _CHUNK - 1) // _CHUNK
    W = min(n_chunks, _WAVE)
    buffer = np.empty((W, _CHUNK * capacity), dtype=np.int32)
    local_ptr = np.empty((W * _CHUNK, n_species + 1), dtype=np.int64)
    totals = np.empty(W, dtype=np.int64)
    ptr = np.empty((N, n_species + 1), dtype=np.int64)
    indices = np.empty(max(estimate, 1), dtype=np.int32)
    at = 0
    largest = 0
    for first in range(0, n_chunks, W):
        _wave(first, X, Y, Z, sp, box, r2max, n_cell, reach, cell, cell_ptr, local_ptr, buffer, totals)
        need = at + totals.sum()
        if need > indices.size:
            grown = np.empty(max(need, indices.size + indices.size // 2), dtype=np.int32)
            grown[:at] = indices[:at]
            indices = grown
        for w in range(W):
            s0 = (first + w) * _CHUNK
            for s in range(s0, min(N, s0 + _CHUNK)):
                for a in range(n_species + 1):
                    ptr[s, a] = local_ptr[w * _CHUNK + s - s0, a] + at
                for a in range(n_species):
                    largest = max(largest, ptr[s, a + 1] - ptr[s, a])
            indices[at:at + totals[w]] = buffer[w, :totals[w]]
            at += totals[w]
    return indices, ptr, largest


@njit(cache=True)
def stale(P, R, species, reference_species, box, half_skin):
    """Whether some atom moved more than ``half_skin`` (minimum image) from R, or a species changed: a list
    built at R may then miss a pair (compiled; :mod:`environment.fused` calls it between steps)."""
    limit = half_skin * half_skin
    inv_box = 1.0 / box
    for k in range(P.shape[0]):
        if species[k] != reference_species[k]:
            return True
        s = 0.0
        for x in range(3):
            d = fold(P[k, x] - R[k, x], box, inv_box)
            s += d * d
        if s > limit or (half_skin == 0.0 and s > 0.0):
            return True
    return False


def _grid(box: float, radius: float) -> tuple[int, int]:
    """(cells per side, stencil reach) for a list of ``radius`` in a box of side ``box``; (1, 0) when the
    box is too small for 2 reach + 1 distinct cells along each axis."""
    radius *= 1.0 + 1e-12  # cells a hair wider than radius / reach: rounding in the binning cannot matter
    n_cell = int(box * CELLS_PER_RADIUS / radius)
    return (n_cell, CELLS_PER_RADIUS) if n_cell >= 2 * CELLS_PER_RADIUS + 1 else (1, 0)


class NeighborList:
    """Pairs within ``cutoff + skin`` (angstrom), rebuilt only after an atom moved more than skin / 2.

    Attributes after :meth:`update`:
        indices: (n_pairs,) int32 neighbour indices, rows grouped by species.
        pointers: (N, S + 1) int64 row/species offsets into ``indices``.
        max_block: the largest number of neighbours of one species in one row.
        max_row: the largest number of neighbours in one row.
        n_builds: how many times the list was built.
        build_seconds: wall seconds spent in :meth:`build`, summed over all builds.
        order: (N,) int64, the atom at each sorted position (sorted by cell, then species).
    """

    def __init__(self, cutoff: float, skin: float = DEFAULT_SKIN):
        self.cutoff = float(cutoff)
        self.skin = float(skin)
        if not self.cutoff > 0 or not self.skin >= 0:
            raise ValueError(f"need cutoff > 0 and skin >= 0 (angstrom), got {cutoff!r}, {skin!r}")
        self.indices = None
        self.pointers = None
        self.max_block = 0
        self.max_row = 0
        self.n_builds = 0
        self.build_seconds = 0.0
        self.order = None
        self._reference = None
        self._species = None
        self._key = None

    @property
    def reference(self):
        """Positions (N, 3) at the last build (None before the first): the list holds every pair within the
        cutoff until some atom has moved skin / 2 from here (:func:`stale`)."""
        return self._reference

    @property
    def reference_species(self):
        """Species (N,) int64 at the last build (None before the first)."""
        return self._species

    @property
    def radius(self) -> float:
        """The list radius r_c + skin, angstrom."""
        return self.cutoff + self.skin

    def needs_rebuild(self, positions, box, species) -> bool:
        """Whether the list may miss a pair within the cutoff: no list yet, another box, atom count or
        species, or an atom moved more than skin / 2 since the last build."""
        positions = np.asarray(positions, dtype=np.float64)
        if self._reference is None or self._key != (float(box), len(positions)):
            return True
        species = np.asarray(species)
        if species.dtype != np.int64:
            species = species.astype(np.int64)
        return bool(stale(positions, self._reference, species, self._species, float(box), 0.5 * self.skin))

    def update(self, positions, box, species, n_species=None) -> bool:
        """Rebuild if needed; True when rebuilt."""
        if not self.needs_rebuild(positions, box, species):
            return False
        self.build(positions, box, species, n_species)
        return True

    def build(self, positions, box, species, n_species=None) -> None:
        """Build the list at ``positions`` (N, 3) angstrom, cubic ``box``, ``species`` (N,) in [0, n_species)."""
        start = time.perf_counter()
        positions = np.ascontiguousarray(positions, dtype=np.float64)
        box = float(box)
        species = np.ascontiguousarray(species, dtype=np.int64)
        N = len(positions)
        n_species = (int(species.max()) + 1 if N else 1) if n_species is None else int(n_species)
        if N and (species.min() < 0 or species.max() >= n_species):
            raise ValueError(f"species must lie in [0, n_species = {n_species}), got {species.min()}..{species.max()}")
        previous = len(self.indices) if self.indices is not None and self._key == (box, N) else None
        self.indices = self.pointers = None  # the old list's memory is free for the new one
        n_cell, reach = _grid(box, self.radius)
        order, X, Y, Z, sp, cell, cell_ptr = _bin(positions, box, species, n_species, n_cell)
        r2max = self.radius**2
        # a sink's candidates all lie in its (2 reach + 1)^3 distinct cells
        occupancy = np.diff(cell_ptr[::n_species]).max() if N else 0
        capacity = min(N, (2 * reach + 1) ** 3 * int(occupancy)) + 1
        # room for the last list's pairs, else for what the density says, and a little more
        expected = previous if previous is not None else N * min(N, N / box**3 * 4.19 * self.radius**3)
        estimate = int(1.05 * expected) + N
        indices, ptr, largest = _assemble(X, Y, Z, sp, box, r2max, n_cell, reach, cell, cell_ptr, capacity,
                                          n_species, estimate)
        indices = indices[:ptr[-1, -1] if N else 0]
        self.max_block = int(largest)
        self.indices, self.pointers, self.order = indices, ptr, order
        self.max_row = int(np.max(ptr[:, -1] - ptr[:, 0])) if N else 0
        self._reference = positions.copy()
        self._species = species.copy()
        self._key = (box, N)
        self.n_builds += 1
        self.build_seconds += time.perf_counter() - start

    def pairs(self):
        """All listed ordered pairs (k, j), original numbering, as two int arrays."""
        counts = self.pointers[:, -1] - self.pointers[:, 0]
        return np.repeat(self.order, counts), self.order[self.indices]

    def neighbors_of(self, k: int, a: int) -> np.ndarray:
        """Listed neighbours of species a of atom k (original numbering)."""
        s = int(np.flatnonzero(self.order == k)[0])
        return self.order[self.indices[self.pointers[s, a]:self.pointers[s, a + 1]]]
