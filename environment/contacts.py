"""Close contacts: the closest pair of nuclei nearer than a given distance (the fusion guard).

Two nuclei that come closer than a fraction of an angstrom mean the learned forces let them fuse:
nothing in a learned loss keeps them apart, and the run is no longer physical long before it turns
into NaN.  :func:`closest_pair_within` finds such a pair in O(N): the atoms are binned into a cell
grid whose cells are at least ``radius`` wide (at most about one cell per atom), and each atom is
compared only with the atoms of its own and the 26 neighbouring cells (minimum image).  That takes
about 10 microseconds for 96 atoms (a step takes a few hundred) and a few hundred milliseconds for a
million (a step takes about a second), so :func:`experiments.guarded_run.run_guarded` checks after
every step below 100,000 atoms and every few steps above.  Distances in angstrom.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from agents.geometry import fold


@njit(cache=True)
def closest_pair_in_cells(q, box, radius, n_cell):
    """(squared distance, i, j) of the closest pair i < j nearer than ``radius``; (inf, -1, -1) if none."""
    N = q.shape[0]
    inv_box = 1.0 / box
    best = radius * radius
    bi = -1
    bj = -1
    if n_cell < 3:  # too few cells for a 27-cell neighbourhood without repeats: all pairs
        for k in range(N):
            for j in range(k + 1, N):
                dx = fold(q[k, 0] - q[j, 0], box, inv_box)
                dy = fold(q[k, 1] - q[j, 1], box, inv_box)
                dz = fold(q[k, 2] - q[j, 2], box, inv_box)
                d2 = dx * dx + dy * dy + dz * dz
                if d2 < best:
                    best, bi, bj = d2, k, j
        return (best if bi >= 0 else np.inf), bi, bj
    W = np.empty((N, 3))  # wrapped into [0, box)
    for k in range(N):
        for x in range(3):
            w = q[k, x] - box * np.floor(q[k, x] * inv_box)
            W[k, x] = w if w < box else 0.0
    cell = np.empty(N, dtype=np.int64)
    start = np.zeros(n_cell**3 + 1, dtype=np.int64)
    scale = n_cell * inv_box
    for k in range(N):
        cx = min(int(W[k, 0] * scale), n_cell - 1)
        cy = min(int(W[k, 1] * scale), n_cell - 1)
        cz = min(int(W[k, 2] * scale), n_cell - 1)
        cell[k] = (cx * n_cell + cy) * n_cell + cz
        start[cell[k] + 1] += 1
    for c in range(n_cell**3):
        start[c + 1] += start[c]
    fill = start[:-1].copy()
    members = np.empty(N, dtype=np.int64)  # atoms sorted by cell
    for k in range(N):
        members[fill[cell[k]]] = k
        fill[cell[k]] += 1
    X = np.empty(N)
    Y = np.empty(N)
    Z = np.empty(N)
    for s in range(N):
        X[s] = W[members[s], 0]
        Y[s] = W[members[s], 1]
        Z[s] = W[members[s], 2]
    for cx in range(n_cell):
        for cy in range(n_cell):
            for cz in range(n_cell):
                c0 = (cx * n_cell + cy) * n_cell + cz
                for ox in range(-1, 2):
                    for oy in range(-1, 2):
                        for oz in range(-1, 2):
                            c = (((cx + ox) % n_cell) * n_cell + (cy + oy) % n_cell) * n_cell + (cz + oz) % n_cell
                            for s in range(start[c0], start[c0 + 1]):
                                for t in range(max(start[c], s + 1), start[c + 1]):
                                    dx = fold(X[s] - X[t], box, inv_box)
                                    dy = fold(Y[s] - Y[t], box, inv_box)
                                    dz = fold(Z[s] - Z[t], box, inv_box)
                                    d2 = dx * dx + dy * dy + dz * dz
                                    if d2 < best:
                                        best, bi, bj = d2, s, t
    if bi >= 0:
        bi, bj = min(members[bi], members[bj]), max(members[bi], members[bj])
    return (best if bi >= 0 else np.inf), bi, bj


def cell_count(n_atoms: int, box: float, radius: float) -> int:
    """Cells per box side of :func:`closest_pair_in_cells`'s grid: cells at least ``radius`` wide, about one atom per cell."""
    return int(min(box // radius, max(3.0, np.ceil(n_atoms ** (1.0 / 3.0)))))


def closest_pair_within(positions, box: float, radius: float) -> tuple[float, int, int]:
    """The closest pair of atoms nearer than ``radius`` (minimum image).

    Args:
        positions: (N, 3) angstrom.
        box: cubic box side, angstrom.
        radius: only pairs closer than this count (angstrom, positive).

    Returns:
        ``(distance, i, j)`` with i < j, or ``(inf, -1, -1)`` when no pair is closer than ``radius``.
    """
    box = float(box)
    radius = float(radius)
    if not radius > 0:
        raise ValueError(f"radius must be a positive distance in angstrom, got {radius!r}")
    q = np.asarray(positions, dtype=np.float64)
    d2, i, j = closest_pair_in_cells(q, box, radius, cell_count(len(q), box, radius))
    return float(np.sqrt(d2)), int(i), int(j)
