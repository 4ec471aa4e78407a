"""Backward elimination over a union of descriptors (radial + angular), own or shared form (Sec. 5.2).

The paper's selection (:mod:`learning.selection`) removes one weight function at a time, keeping the
validation relative RMSE (5.2) lowest.  Here the candidates are the descriptors of a
:class:`agents.descriptors.DescriptorSet` (e.g. the ``many-body`` preset: 24 radial and 72 angular),
and one round removes one descriptor: its A column and every B column that involves it (in every
species block of the shared form).  The score of a set is the mean over species of the validation
force RMSE.

Nothing is recomputed from the data: the normal equations of the full union are accumulated once
(:func:`learning.descriptor_fit.accumulate`) and every candidate is a deletion of rows/columns of the
Gram matrix.  With the columns scaled to unit diagonal, G = X^T X + mu I (mu: the ridge chosen on
validation for the full set, kept fixed in absolute terms so that every reduced problem is exactly a
sub-block) and H = G^-1, deleting the columns g gives the solution and inverse::

    theta' = theta - H[:, g] H[g, g]^-1 theta[g]          (theta'[g] = 0)
    H'     = H[r, r] - H[r, g] H[g, g]^-1 H[g, r]          (r: the columns kept)

so one round costs O(n^2 (|g| + candidates)), not a factorisation per candidate; H is refactorised
afresh whenever the columns have halved.  The validation error of every candidate is
theta'^T G_v theta' - 2 theta'^T b_v + y_v^T y_v, batched over candidates.  The set kept is the
smallest within a tolerance of the best validation score (:func:`learning.selection.chosen`); its
loss is then refitted with the ridge chosen again on validation.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
from tqdm import tqdm

from learning.descriptor_fit import RIDGES, DescriptorEquations, accumulate, fit, with_provenance
from learning.selection import chosen
from learning.splits import split_frames

#: Default selection rule: the smallest set whose validation score is within 2 % of the best.
DEFAULT_TOLERANCE = 0.02
#: Refactorise H when the columns have shrunk below this fraction of the last factorisation.
REFRESH = 0.5


class _Group:
    """One solve (a species of the own form, or the joint shared solve) during elimination.

    Scaled quantities (unit diagonal of the ridged training Gram): ``G`` training Gram + mu I, ``H`` its
    inverse on the live columns, ``b`` moment, ``splits[split][species] = (G_s, b_s, yy_s)``.
    """

    def __init__(self, equations: DescriptorEquations, order: str, members, relative_ridge: float,
                 energy_weight: float):
        self.members = list(members)
        G, b = equations.normal(order, members, "train", energy_weight)
        G = G + relative_ridge * np.mean(np.diag(G)) * np.eye(len(G))
        self.scale = np.sqrt(np.diag(G))
        self.scale[self.scale == 0] = 1.0
        self.G = G / np.outer(self.scale, self.scale)
        self.b = b / self.scale
        cols = equations.columns(order)
        self.splits = {split: {s: (eq[s].gram[np.ix_(cols, cols)] / np.outer(self.scale, self.scale),
                                   eq[s].moment[cols] / self.scale, eq[s].yy, equations.target_norm2[split][s])
                               for s in self.members}
                       for split, eq in equations.equations.items()}
        self.live = np.arange(len(self.b))
        self.refactorise()

    def refactorise(self) -> None:
        live = self.live
        factor = scipy.linalg.cho_factor(self.G[np.ix_(live, live)])
        self.H = scipy.linalg.cho_solve(factor, np.eye(len(live)))
        self.factored = len(live)

    def theta(self) -> np.ndarray:
        return self.H @ self.b[self.live]

    def rmse(self, split: str, theta) -> dict[str, float]:
        """Relative force RMSE (5.2) per member species of the live-column ``theta`` on ``split``."""
        out = {}
        for s, (G, b, yy, norm2) in self.splits[split].items():
            Gl = G[np.ix_(self.live, self.live)]
            out[s] = float(np.sqrt(max(theta @ Gl @ theta - 2 * theta @ b[self.live] + yy, 0.0) / norm2))
        return out

    def scores(self, theta, removals: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Validation RMSE per species (candidates,) after deleting each of ``removals`` (live positions)."""
        delta = np.zeros((len(theta), len(removals)))
        for c, g in enumerate(removals):
            delta[:, c] = self.H[:, g] @ np.linalg.solve(self.H[np.ix_(g, g)], theta[g])
        out = {}
        for s, (G, b, yy, norm2) in self.splits["validation"].items():
            Gl = G[np.ix_(self.live, self.live)]
            residual = Gl @ theta - b[self.live]
            sse = theta @ Gl @ theta - 2 * theta @ b[self.live] + yy
            sse = sse - 2 * delta.T @ residual + np.einsum("pc,pc->c", Gl @ delta, delta)
            out[s] = np.sqrt(np.maximum(sse, 0.0) / norm2)
        return out

    def delete(self, g: np.ndarray) -> None:
        """Drop the live positions ``g``: Schur-complement downdate of H (or a fresh factorisation)."""
        rest = np.setdiff1d(np.arange(len(self.live)), g)
        if len(rest) < REFRESH * self.factored:
            self.live = self.live[rest]
            self.refactorise()
            return
        Hrg = self.H[np.ix_(rest, g)]
        self.H = self.H[np.ix_(rest, rest)] - Hrg @ np.linalg.solve(self.H[np.ix_(g, g)], Hrg.T)
        self.H = 0.5 * (self.H + self.H.T)
        self.live = self.live[rest]


def backward_elimination(equations: DescriptorEquations, order: str = "quadratic", ridge=None, ridges=RIDGES,
                         energy_weight: float = 0.0, progress: bool = False) -> list[dict]:
    """The elimination curve over the descriptors of ``equations``, from all down to one.

    Args:
        equations: normal equations of the full union, with ``train`` and ``validation`` splits.
        order: ``'linear'`` or ``'quadratic'``.
        ridge: the relative ridge of every solve (own form: ``{species: ridge}``); None: the one
            :func:`learning.descriptor_fit.fit` chooses on validation for the full set.  It is held
            fixed in absolute terms (mu = ridge x mean diagonal of the full X^T X).
        energy_weight: energy rows in the training solves (shared form).

    Returns:
        One dict per size (largest first): ``n_invariants``, ``invariants`` (names kept), ``removed``
        (the name dropped to reach this size, None at the start), ``validation`` (the score: mean over
        species), and ``{split}_{species}`` relative force RMSE (5.2) for every split and species.
    """
    if ridge is None:
        ridge = fit(equations, order, ridges, energy_weight=energy_weight).ridge
    groups = [_Group(equations, order, members, ridge[name] if isinstance(ridge, dict) else ridge, energy_weight)
              for name, members in equations.groups.items()]
    owners = equations.column_descriptors(order)
    names = equations.descriptors.names
    keep = list(range(len(names)))
    curve, removed = [], None
    with tqdm(total=len(names) - 1, desc=f"eliminating ({equations.form})", disable=not progress,
              leave=False) as bar:
        while True:
            thetas = [g.theta() for g in groups]
            row = {"n_invariants": len(keep), "invariants": [names[p] for p in keep], "removed": removed}
            for split in equations.equations:
                for group, theta in zip(groups, thetas):
                    row.update({f"{split}_{s}": v for s, v in group.rmse(split, theta).items()})
            row["validation"] = float(np.mean([row[f"validation_{s}"] for s in equations.species]))
            curve.append(row)
            if len(keep) == 1:
                return curve
            removals = [[np.flatnonzero(np.any(owners[g.live] == p, axis=1)) for p in keep] for g in groups]
            per_species = {}
            for group, theta, rem in zip(groups, thetas, removals):
                per_species.update(group.scores(theta, rem))
            best = int(np.argmin(np.mean([per_species[s] for s in equations.species], axis=0)))
            for group, rem in zip(groups, removals):
                group.delete(rem[best])
            removed = names[keep.pop(best)]
            bar.update()


def select_descriptors(equations: DescriptorEquations, order: str = "quadratic", ridges=RIDGES,
                       n_keep: int | None = None, tolerance: float | None = DEFAULT_TOLERANCE,
                       energy_weight: float = 0.0, progress: bool = False) -> dict:
    """Backward elimination, the chosen set and its refitted loss.

    Args:
        n_keep: keep this many descriptors (None: the tolerance rule).
        tolerance: the smallest set within this fraction of the best validation score
            (:func:`learning.selection.chosen`); None with ``n_keep`` None: the best.

    Returns:
        ``{"curve", "selected" (names), "full": DescriptorFit of the union, "fit": DescriptorFit of the
        chosen set (ridge chosen again on validation), "wall_time_s"}``.
    """
    started = time.perf_counter()
    full = fit(equations, order, ridges, energy_weight=energy_weight)
    curve = backward_elimination(equations, order, full.ridge, energy_weight=energy_weight, progress=progress)
    row = chosen(curve, n_keep, tolerance)
    names = equations.descriptors.names
    keep = [names.index(n) for n in row["invariants"]]
    selected = fit(equations.restrict(keep), order, ridges, energy_weight=energy_weight)
    return {"curve": curve, "selected": row["invariants"], "full": full, "fit": selected,
            "wall_time_s": time.perf_counter() - started}


def select_descriptor_loss(trajectory, descriptors, form: str = "shared", order: str = "quadratic", ridges=RIDGES,
                           n_keep: int | None = None, tolerance: float | None = DEFAULT_TOLERANCE,
                           energy_weight: float = 0.0, wall: bool | None = None, splits=None,
                           progress: bool = False) -> dict:
    """:func:`select_descriptors` on a trajectory's equations (:func:`learning.descriptor_fit.accumulate`).

    Returns:
        As :func:`select_descriptors`, with ``"losses"`` (the chosen set's DescriptorLoss, its provenance naming the
        candidates, the rule and the curve) and ``"accumulate_s"`` (seconds to build the equations).
    """
    if energy_weight and form != "shared":
        raise ValueError(f"--energy-weight {energy_weight} needs --form shared: the own form has no energy")
    started = time.perf_counter()
    splits = split_frames(len(trajectory)) if splits is None else splits
    equations = accumulate(trajectory, descriptors, form, order, wall, splits, progress=progress)
    accumulated = time.perf_counter() - started
    result = select_descriptors(equations, order, ridges, n_keep, tolerance, energy_weight, progress)
    rule = f"n_keep = {n_keep}" if n_keep is not None else (
        f"smallest within {tolerance:g} of the best validation score" if tolerance is not None else "best")
    curve = [{"n_invariants": r["n_invariants"], "removed": r["removed"], "validation": r["validation"]}
             for r in result["curve"]]
    result["losses"] = with_provenance(
        trajectory, splits, result["fit"],
        selection={"method": "backward elimination on the validation force RMSE (mean over species)",
                   "rule": rule, "candidates": descriptors.names, "curve": curve})
    result["accumulate_s"] = accumulated
    return result
