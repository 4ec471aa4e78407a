"""Splitting a trajectory by time (Sec. 5.1): equilibration, then train / validation / test."""

from __future__ import annotations

import numpy as np

#: The paper's protocol: drop 200 of 1000 steps, then 600 / 100 / 100 of the remaining 800.
PAPER_SPLIT = {"equilibration": 0.2, "train": 0.75, "validation": 0.125, "test": 0.125}


def split_frames(n_frames: int, equilibration: float = PAPER_SPLIT["equilibration"],
                 train: float = PAPER_SPLIT["train"], validation: float = PAPER_SPLIT["validation"],
                 test: float = PAPER_SPLIT["test"]) -> dict[str, np.ndarray]:
    """Consecutive frame indices for each split, as fractions that scale with the run's length.

    Args:
        n_frames: number of frames of the run.
        equilibration: fraction of all frames dropped at the start.
        train, validation, test: fractions of the remaining frames (summing to 1).

    Returns:
        ``{"train": idx, "validation": idx, "test": idx}``, consecutive in time, in that order.
    """
    if not 0 <= equilibration < 1:
        raise ValueError(f"equilibration must be a fraction in [0, 1), got {equilibration}")
    fractions = np.array([train, validation, test], dtype=float)
    if np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"train, validation and test must be non-negative fractions summing to 1, got {fractions}")
    start = round(equilibration * n_frames)
    remaining = n_frames - start
    bounds = start + np.round(np.cumsum(np.concatenate([[0], fractions])) * remaining).astype(int)
    splits = {name: np.arange(bounds[i], bounds[i + 1]) for i, name in enumerate(("train", "validation", "test"))}
    empty = [name for name, idx in splits.items() if len(idx) == 0 and fractions[list(splits).index(name)] > 0]
    if empty:
        raise ValueError(f"{n_frames} frames are too few: the {', '.join(empty)} split would be empty")
    return splits
