"""Periodic geometry of a cubic box of side ``box`` (angstrom), as pure functions.

One sign convention everywhere: ``displacement(a, b, box)`` is the minimum-image vector from ``a``
to ``b``, i.e. ``b - a`` folded into ``[-box/2, box/2]``.  The invariants (4.1) use
``d_ki = q_k - q_i = displacement(q_i, q_k)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
