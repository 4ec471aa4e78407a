"""Feature selection by backward elimination (Sec. 5.2, Fig. 2) and the loss table (Table 1).

Starting from all candidate weight functions, each round removes the one whose removal gives the
lowest validation relative RMSE (5.2), down to a single function.  Every fit is a sub-block of the
normal equations accumulated once (:class:`learning.regression.SpeciesData`), so the whole
elimination costs no pass over the data after the first.
"""

from __future__ import annotations

import time

import numpy as np
from tqdm import tqdm

from environment.kinetics import kinetic_temperature
from learning.cp2k.reader import portable_path
from learning.splits import split_frames
from agents.loss import AgentLosses
from learning.regression import ORDERS, SpeciesData
from agents.weights import paper_weight_functions, weight_functions

#: Default ridge penalty (on the column-scaled least-squares problem): plain least squares.
DEFAULT_RIDGE = 0.0


def backward_elimination(data: SpeciesData, order: str = "quadratic", ridge: float = 0.0,
                         progress: bool = False) -> list[dict]:
    """The elimination curve of one species, from all candidates down to one function.

    Returns:
        One dict per size (largest first): ``n_invariants``, ``invariants`` (names kept), ``removed``
        (the name dropped to reach this size, None at the start), ``train``/``validation``/``test``
        relative RMSE and ``condition_number``.
    """
    names = [f.name for f in data.invariants.functions]
    keep = list(range(len(names)))
    curve, removed = [], None
    with tqdm(total=len(names) - 1, desc=f"selecting {data.species}", disable=not progress, leave=False) as bar:
        while True:
            _, metrics, condition = data.fit(keep, order, ridge)
            curve.append({"n_invariants": len(keep), "invariants": [names[m] for m in keep], "removed": removed,
                          **metrics, "condition_number": condition})
            if len(keep) == 1:
                return curve
            scores = [data.fit([m for m in keep if m != drop], order, ridge, condition=False)[1]["validation"]
                      for drop in keep]
            drop = keep[int(np.argmin(scores))]
            keep.remove(drop)
            removed = names[drop]
            bar.update()


def chosen(curve: list[dict], n_keep: int | None, tolerance: float | None = None) -> dict:
    """The row of ``curve`` with ``n_keep`` invariants; with ``n_keep`` None, the lowest validation RMSE,
    or with a ``tolerance`` the smallest set whose validation RMSE is within that fraction of the lowest
    (validation <= (1 + tolerance) x best)."""
    if n_keep is None:
        best = min(curve, key=lambda row: row["validation"])
        if tolerance is None:
            return best
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be a fraction >= 0, got {tolerance}")
        good = [row for row in curve if row["validation"] <= (1 + tolerance) * best["validation"]]
        return min(good, key=lambda row: row["n_invariants"])
    sizes = [row["n_invariants"] for row in curve]
    if n_keep not in sizes:
        raise ValueError(f"n_keep must be between 1 and {max(sizes)}, got {n_keep}")
    return curve[sizes.index(n_keep)]


def select_and_fit(trajectory, n_keep: int | None = 7, order: str = "quadratic", ridge: float = 0.0,
                   functions=None, splits=None, progress: bool = False) -> dict:
    """Fig. 2, Table 1 and the learned losses of every species in one pass over the data.

    Args:
        trajectory: a :class:`learning.cp2k.reader.Trajectory`.
        n_keep: invariants kept per species (the paper: 7); None picks the best validation size.
        order: the loss order used for selection and for the returned losses.
        ridge: ridge penalty of every fit (on the column-scaled problem).
        functions: candidate weight functions (default: the paper's 18).
        splits: frame splits (default: :func:`learning.splits.split_frames` of the trajectory).

    Returns:
        ``{"curves": {species: curve}, "selected": {species: names}, "best_size": {species: the size
        of lowest validation RMSE}, "table1": rows, "losses": AgentLosses, "wall_time_s": seconds}``.
    """
    started = time.perf_counter()
    functions = weight_functions(functions or paper_weight_functions())
    splits = splits or split_frames(len(trajectory))
    species = list(dict.fromkeys(trajectory.symbols))
    curves, selected, best_size, table, losses, metrics = {}, {}, {}, [], {}, {}
    for s in species:
        data = SpeciesData(trajectory, s, functions, splits, species, progress)
        curves[s] = backward_elimination(data, order, ridge, progress)
        row = chosen(curves[s], n_keep)
        selected[s] = row["invariants"]
        best_size[s] = chosen(curves[s], None)["n_invariants"]
        keep = [i for i, f in enumerate(functions) if f.name in row["invariants"]]
        for table_order in ("linear", "quadratic"):
            loss, scores, condition = data.fit(keep, table_order, ridge)
            table.append({"species": s, "order": table_order, "n_invariants": len(keep), **scores,
                          "condition_number": condition})
            if table_order == order:
                losses[s], metrics[s] = loss, scores
    record = provenance(trajectory, splits, order, ridge, metrics, selected=selected, best_size=best_size,
                             candidates=[f.name for f in functions],
                             selection="backward elimination on validation RMSE")
    return {"curves": curves, "selected": selected, "best_size": best_size, "table1": table,
            "losses": AgentLosses(losses, record), "wall_time_s": time.perf_counter() - started}


def fit_losses(trajectory, invariants="auto", order="quadratic", ridge=DEFAULT_RIDGE, n_keep=7, progress=False) -> AgentLosses:
    """Learned losses of every species: ``invariants='auto'`` selects ``n_keep`` per species by backward
    elimination (Sec. 5.2); otherwise a list of weight-function names used for every species."""
    if order not in ORDERS:
        raise ValueError(f"--order must be one of {ORDERS}, got {order!r}")
    if invariants == "auto":
        return select_and_fit(trajectory, n_keep, order, ridge, progress=progress)["losses"]
    functions = weight_functions(invariants)
    splits = split_frames(len(trajectory))
    species = list(dict.fromkeys(trajectory.symbols))
    losses, metrics, conditions = {}, {}, {}
    for s in species:
        data = SpeciesData(trajectory, s, functions, splits, species, progress)
        losses[s], metrics[s], conditions[s] = data.fit(range(len(functions)), order, ridge)
    return AgentLosses(losses, provenance(trajectory, splits, order, ridge, metrics, condition_numbers=conditions))


def provenance(trajectory, splits, order, ridge, metrics, **extra) -> dict:
    """How a set of losses was learned: data, steps of each split, order, ridge, metrics, and the domain
    where it applies: ``box_A`` (cubic box side), ``cutoff_A`` (None: minimum-image sums, the only kind
    fitted here), ``species``, ``temperature_K`` ([min, max] over the training frames) and
    ``accelerations`` (the fit's targets: ``'forces'`` or finite differences; see
    :attr:`learning.cp2k.reader.Trajectory.acceleration_source`)."""
    from learning import __version__

    return {
        "data": portable_path(trajectory.source),
        "steps": [int(trajectory.steps[0]), int(trajectory.steps[-1])],
        "splits": {name: [int(trajectory.steps[idx[0]]), int(trajectory.steps[idx[-1]])]
                   for name, idx in splits.items() if len(idx)},
        "order": order, "ridge": ridge, "metrics": metrics, "mld_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "box_A": float(trajectory.box), "cutoff_A": None, "species": list(dict.fromkeys(trajectory.symbols)),
        "temperature_K": _temperature_range(trajectory, splits.get("train")),
        "accelerations": getattr(trajectory, "acceleration_source", "forces"),
        **extra,
    }


def _temperature_range(trajectory, frames) -> list[float] | None:
    """[min, max] temperature (K) of ``frames`` (all if None): CP2K's, else the kinetic temperature."""
    frames = np.arange(len(trajectory)) if frames is None or not len(frames) else np.asarray(frames)
    temperature = np.asarray(trajectory.temperature, dtype=float)[frames]
    if not np.all(np.isfinite(temperature)) and trajectory.velocities is not None:
        temperature = np.array([kinetic_temperature(trajectory.velocities[f], trajectory.masses) for f in frames])
    finite = temperature[np.isfinite(temperature)]
    return [float(finite.min()), float(finite.max())] if len(finite) else None
