"""Periodic geometry of a cubic box of side ``box`` (angstrom), as pure functions.

One sign convention everywhere: ``displacement(a, b, box)`` is the minimum-image vector from ``a``
to ``b``, i.e. ``b - a`` folded into ``[-box/2, box/2]``.  The invariants (4.1) use
``d_ki = q_k - q_i = displacement(q_i, q_k)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Most pair distances held in memory at once by :func:`pair_distances` (float64: 16 MB per array).
PAIR_BUDGET = 2_000_000


def minimum_image(dr: np.ndarray, box: float) -> np.ndarray:
    """Fold difference vectors ``dr`` (..., 3) into the minimum image of a cubic box."""
    return dr - box * np.round(dr / box)


@njit(cache=True, inline="always")
def fold(d: float, box: float, inv_box: float) -> float:
    """One minimum-image component ``d`` folded into [-box/2, box/2] (compiled code's :func:`minimum_image`)."""
    return d - box * np.rint(d * inv_box)


def displacement(a: np.ndarray, b: np.ndarray, box: float) -> np.ndarray:
    """Minimum-image vector from ``a`` to ``b`` (broadcasting), shape (..., 3)."""
    return minimum_image(np.asarray(b) - np.asarray(a), box)


def pair_displacements(sinks: np.ndarray, sources: np.ndarray, box: float) -> np.ndarray:
    """All minimum-image vectors ``sinks[k] - sources[i]``, shape (n_sinks, n_sources, 3)."""
    return minimum_image(sinks[:, None, :] - sources[None, :, :], box)


def distance(a: np.ndarray, b: np.ndarray, box: float) -> np.ndarray:
    """Minimum-image distance between ``a`` and ``b`` (broadcasting)."""
    return np.linalg.norm(displacement(a, b, box), axis=-1)


def wrap(positions: np.ndarray, box: float) -> np.ndarray:
    """Positions folded into the primary cell ``[0, box)``."""
    wrapped = np.mod(positions, box)
    # np.mod can return exactly ``box`` for tiny negative inputs; fold those to 0.
    return np.where(wrapped >= box, wrapped - box, wrapped)


def unwrap(positions: np.ndarray, box: float) -> np.ndarray:
    """Remove periodic jumps from a trajectory (n_frames, n_atoms, 3) frame by frame."""
    steps = minimum_image(np.diff(positions, axis=0), box)
    return np.concatenate([positions[:1], positions[:1] + np.cumsum(steps, axis=0)], axis=0)


def _frame_chunks(n_frames: int, per_frame: int) -> list[slice]:
    """Slices of frames holding at most :data:`PAIR_BUDGET` values of ``per_frame`` each (at least one frame)."""
    step = max(1, PAIR_BUDGET // max(per_frame, 1))
    return [slice(start, min(start + step, n_frames)) for start in range(0, n_frames, step)]


def pair_distances(positions: np.ndarray, box: float, first: np.ndarray, second: np.ndarray):
    """Minimum-image distances of the atom pairs (first[p], second[p]) of frames (F, N, 3), in chunks of frames.

    Coordinate by coordinate, on (F, N) arrays: several times faster than on (F, n_pairs, 3) vectors.

    Yields:
        (frames, r): a slice of frames and their distances (n_chunk, n_pairs) in angstrom.
    """
    coordinates = np.ascontiguousarray(np.moveaxis(positions, -1, 0))  # (3, F, N)
    for frames in _frame_chunks(len(positions), len(first)):
        squared = np.zeros((frames.stop - frames.start, len(first)))
        for x in coordinates[:, frames]:
            squared += minimum_image(x[:, second] - x[:, first], box) ** 2
        yield frames, np.sqrt(squared)


def nearest_atoms(positions: np.ndarray, box: float, members: np.ndarray, candidates: np.ndarray):
    """The nearest of ``candidates`` (atom indices) to each of ``members`` (atom indices), frame by frame.

    Args:
        positions: (F, N, 3) angstrom; box: cubic box side.

    Returns:
        nearest (F, len(members)): atom indices taken from ``candidates``; distance (F, len(members)) in
        angstrom.
    """
    members, candidates = np.asarray(members, dtype=int), np.asarray(candidates, dtype=int)
    if len(candidates) == 0:
        raise ValueError("nearest_atoms: no candidate atoms")
    nearest = np.empty((len(positions), len(members)), dtype=int)
    distance = np.empty((len(positions), len(members)))
    first, second = np.repeat(members, len(candidates)), np.tile(candidates, len(members))
    for frames, r in pair_distances(positions, box, first, second):
        r = r.reshape(len(r), len(members), len(candidates))
        k = np.argmin(r, axis=-1)
        nearest[frames] = candidates[k]
        distance[frames] = np.take_along_axis(r, k[..., None], axis=-1)[..., 0]
    return nearest, distance
