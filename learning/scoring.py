"""Scoring any loss on a trajectory: the relative force RMSE of eq. (5.2), per sink species.

The same :class:`environment.forces.ForceEvaluator` that drives the model predicts the forces, so a
score is of exactly what a simulation would use, whatever the kind (paper or descriptor) and form
(own or shared) of the loss.  Forces and M a are the same target up to the constant mass of a
species, so the relative RMSE of forces equals that of accelerations (eq. 5.2).
"""

from __future__ import annotations

import numpy as np

from agents.units import ACCEL_EV_PER_AMU_A
from environment.forces import ForceEvaluator


def relative_force_rmse(losses, trajectory, frames=None) -> dict[str, float]:
    """{species: sqrt(sum |F_pred - M a|^2 / sum |M a|^2)} over ``frames`` (default all) of ``trajectory``."""
    frames = np.arange(len(trajectory)) if frames is None else np.asarray(frames)
    symbols = np.asarray(trajectory.symbols)
    evaluator = ForceEvaluator(losses, list(trajectory.symbols), trajectory.box)
    error = dict.fromkeys(dict.fromkeys(trajectory.symbols), 0.0)
    total = dict(error)
    for f in frames:
        target = trajectory.accelerations[f] * trajectory.masses[:, None] / ACCEL_EV_PER_AMU_A
        _, predicted = evaluator(trajectory.positions[f])
        for s in error:
            mine = symbols == s
            error[s] += float(np.sum((predicted[mine] - target[mine]) ** 2))
            total[s] += float(np.sum(target[mine] ** 2))
    return {s: float(np.sqrt(error[s] / total[s])) for s in error}
