"""Checks of user-given parameters: each returns the clean value or raises ``ValueError`` naming it.

One home for the project's validators, so every message reads the same way:
``"NAME must be ..., got VALUE"``.
"""

from __future__ import annotations

import numpy as np


def positive(name: str, value) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` unless it is finite and > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return number


def non_negative(name: str, value) -> float:
    """``value`` as a float; ``ValueError`` naming ``name`` unless it is finite and >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}") from None
    if not np.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be non-negative and finite, got {value!r}")
    return number


def count(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int; ``ValueError`` naming ``name`` unless it is an integer >= ``minimum``."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if number != value or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return number


def finite_array(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float array of ``shape``; ``ValueError`` naming ``name`` on a wrong shape or NaN."""
    array = np.array(value, dtype=float)
    if array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array
