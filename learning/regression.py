"""Learning a species' loss (4.5) from accelerations by linear least squares, eq. (5.1).

The force of eq. (4.6) is linear in the loss parameters theta = (A_p, B_pq for p <= q)::

    F = -(A + B phi) . dphi = X theta,  X = [-dphi_p | -(phi_p dphi_q + phi_q dphi_p) (p < q), -phi_p dphi_p (p = q)]

and the acceleration is F / M, so minimising eq. (5.1) is one least-squares problem per species.
:class:`NormalEquations` accumulates X^T X, X^T y and y^T y frame by frame (memory stays bounded)
for ALL candidate weight functions at once; any subset of functions is then a sub-block of those
matrices, so a fit or a validation error of a subset costs no pass over the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.linalg.lapack

from agents.species import species as make_species
from agents.units import ACCEL_EV_PER_AMU_A
from agents.invariants import InvariantSet, source_index
from agents.loss import SpeciesLoss
from agents.weights import weight_functions

ORDERS = ("linear", "quadratic")
#: Pivot tolerance of the unit-diagonal Gram matrix below which a design column counts as dependent.
RANK_TOL = 1e-10


def design_matrix(phi, dphi) -> np.ndarray:
    """Columns of eq. (5.1) for n agents: (3n, P + P(P+1)/2) from phi (n, P) and dphi (n, P, 3).

    Rows are agent-major (agent k, component x); column j < P is A_p, then B_pq in ``np.triu_indices`` order.
    """
    n, P = phi.shape
    iu, ju = np.triu_indices(P)
    pair = phi[:, iu, None] * dphi[:, ju, :] + phi[:, ju, None] * dphi[:, iu, :]
    pair[:, iu == ju] *= 0.5
    X = -np.concatenate([dphi, pair], axis=1)  # (n, columns, 3)
    return X.transpose(0, 2, 1).reshape(3 * n, -1)


def parameter_columns(P_full: int, keep) -> np.ndarray:
    """Columns of the full design (P_full invariants) that belong to the flattened invariants ``keep``."""
    keep = np.sort(np.asarray(keep))
    iu, ju = np.triu_indices(P_full)
    lookup = np.full((P_full, P_full), -1)
    lookup[iu, ju] = P_full + np.arange(len(iu))
    ki, kj = np.triu_indices(len(keep))
    return np.concatenate([keep, lookup[keep[ki], keep[kj]]])


@dataclass
class NormalEquations:
    """Running sums X^T X, X^T y, y^T y over the rows seen (eq. 5.1, targets y = forces in eV/A)."""

    gram: np.ndarray
    moment: np.ndarray
    yy: float = 0.0
    rows: int = 0

    @classmethod
    def empty(cls, columns: int) -> NormalEquations:
        return cls(np.zeros((columns, columns)), np.zeros(columns))

    def add(self, X, y) -> None:
        self.gram += X.T @ X
        self.moment += X.T @ y
        self.yy += float(y @ y)
        self.rows += len(y)

    def solve(self, columns, ridge: float = 0.0, condition: bool = True):
        """Least-squares parameters on ``columns`` (scaled to unit norm; optional ridge on that scale).

        Solved by pivoted Cholesky of the scaled Gram matrix: a column whose part orthogonal to the
        columns already taken has relative norm below sqrt(RANK_TOL) is numerically dependent and its
        parameter is set to zero (a basic least-squares solution).  All BLAS level 3, so it stays fast
        on a loaded machine, unlike an eigen or SVD solve.

        Returns:
            theta (len(columns),) and the condition number of the scaled design matrix (a LAPACK
            1-norm estimate; inf when numerically rank-deficient; NaN unless ``condition``).
        """
        G = self.gram[np.ix_(columns, columns)]
        scale = np.sqrt(np.diag(G))
        scale[scale == 0] = 1.0
        G = G / np.outer(scale, scale) + ridge * np.eye(len(columns))
        b = self.moment[columns] / scale
        factor, pivots, rank, _ = scipy.linalg.lapack.dpstrf(G, tol=RANK_TOL)
        independent = pivots[:rank] - 1
        U = np.triu(factor[:rank, :rank])
        theta = np.zeros(len(columns))
        theta[independent] = scipy.linalg.cho_solve((U, False), b[independent])
        kappa = np.nan
        if condition:
            kappa = np.inf
            if rank == len(columns):
                rcond = scipy.linalg.lapack.dpocon(U, np.abs(G).sum(axis=0).max())[0]
                kappa = float(np.sqrt(1.0 / rcond)) if rcond > 0 else np.inf
        return theta / scale, kappa

    def relative_rmse(self, columns, theta) -> float:
        """Relative RMSE (5.2) of ``theta`` on these rows: sqrt(|X theta - y|^2 / |y|^2)."""
        G = self.gram[np.ix_(columns, columns)]
        residual = theta @ G @ theta - 2 * theta @ self.moment[columns] + self.yy
        return float(np.sqrt(max(residual, 0.0) / self.yy))


class SpeciesData:
    """Normal equations of one species for every candidate weight function, per frame split.

    Args:
        trajectory: a :class:`learning.cp2k.reader.Trajectory`.
        species: the sink species (e.g. ``"O"``).
        functions: the candidate weight functions (e.g. the paper's 18).
        splits: ``{name: frame indices}`` (see :func:`learning.splits.split_frames`).
        sources: the source species (default: the trajectory's species, in order of appearance).
        progress: show a progress bar.
    """

    def __init__(self, trajectory, species, functions, splits, sources=None, progress=False, chunk=8):
        from tqdm import tqdm

        sources = tuple(sources or dict.fromkeys(trajectory.symbols))
        self.species = species
        self.invariants = InvariantSet(weight_functions(functions), sources)
        self.sinks = np.flatnonzero(np.array(trajectory.symbols) == species)
        if len(self.sinks) == 0:
            raise ValueError(f"species {species!r} is not in the trajectory ({sorted(set(trajectory.symbols))})")
        self.mass = float(trajectory.masses[self.sinks[0]])
        index = source_index(trajectory.symbols, sources)
        P = self.invariants.shape[0] * self.invariants.shape[1]
        self.P = P
        self.equations = {name: NormalEquations.empty(P + P * (P + 1) // 2) for name in splits}
        frames = [(name, f) for name, idx in splits.items() for f in idx]
        for start in tqdm(range(0, len(frames), chunk), desc=f"invariants of {species}", disable=not progress,
                          unit="chunk", leave=False):
            batch = frames[start : start + chunk]
            for name in dict.fromkeys(n for n, _ in batch):
                rows = [f for n, f in batch if n == name]
                X = np.concatenate([self._design(trajectory.positions[f], trajectory.box, index) for f in rows])
                y = np.concatenate([self.targets(trajectory, f) for f in rows])
                self.equations[name].add(X, y)

    def _design(self, positions, box, index):
        phi, dphi = self.invariants.compute(positions, box, index, self.sinks)
        n = len(self.sinks)
        return design_matrix(phi.reshape(n, -1), dphi.reshape(n, -1, 3))

    def targets(self, trajectory, frame) -> np.ndarray:
        """The species' forces (eV/A) in frame ``frame`` as M a, flattened agent-major."""
        return (trajectory.accelerations[frame, self.sinks] * self.mass / ACCEL_EV_PER_AMU_A).reshape(-1)

    def columns(self, keep_functions, order: str) -> np.ndarray:
        """Design columns for the weight functions with indices ``keep_functions`` (into the candidates)."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        S, M = self.invariants.shape
        keep = np.array([a * M + m for a in range(S) for m in sorted(keep_functions)])
        cols = parameter_columns(self.P, keep)
        return cols[: len(keep)] if order == "linear" else cols

    def fit(self, keep_functions, order="quadratic", ridge=0.0, split="train", condition=True):
        """Fit on ``split``: the SpeciesLoss, relative RMSE (5.2) on every split, condition number."""
        columns = self.columns(keep_functions, order)
        theta, condition = self.equations[split].solve(columns, ridge, condition)
        metrics = {name: eq.relative_rmse(columns, theta) for name, eq in self.equations.items() if eq.rows}
        keep = sorted(keep_functions)
        invariants = InvariantSet(tuple(self.invariants.functions[m] for m in keep), self.invariants.sources)
        return loss_from_parameters(self.species, invariants, theta, order), metrics, condition


def loss_from_parameters(species, invariants: InvariantSet, theta, order) -> SpeciesLoss:
    """A SpeciesLoss from the least-squares parameters (A, then B's upper triangle)."""
    S, M = invariants.shape
    P = S * M
    B = np.zeros((P, P))
    if order == "quadratic":
        iu, ju = np.triu_indices(P)
        B[iu, ju] = theta[P:]
        B[ju, iu] = theta[P:]
    return SpeciesLoss(species, invariants, theta[:P].reshape(S, M), B.reshape(S, M, S, M))


class LossRegressor:
    """A species' loss (4.5) fitted to accelerations, eq. (5.1), in scikit-learn style.

    Args:
        species: the sink species.
        functions: weight functions (objects, names, or a comma-separated string).
        sources: the source species, in order.
        order: ``'quadratic'`` or ``'linear'`` (B = 0).
        ridge: ridge penalty on the column-scaled problem (0: plain least squares).

    Attributes (after ``fit``):
        loss_: the learned :class:`agents.loss.SpeciesLoss`.
        rmse_: relative RMSE (5.2) on the fitted frames.
        condition_number_: of the column-scaled design matrix.
    """

    def __init__(self, species, functions, sources=("O", "H"), order="quadratic", ridge=0.0):
        self.species = species
        self.functions = functions
        self.sources = sources
        self.order = order
        self.ridge = ridge

    def fit(self, trajectory, frames=None) -> LossRegressor:
        frames = np.arange(len(trajectory)) if frames is None else np.asarray(frames)
        data = SpeciesData(trajectory, self.species, self.functions, {"fit": frames}, self.sources)
        all_functions = range(len(data.invariants.functions))
        self.loss_, metrics, self.condition_number_ = data.fit(all_functions, self.order, self.ridge, "fit")
        self.rmse_ = metrics["fit"]
        return self

    def predict(self, positions, box, symbols) -> np.ndarray:
        """Accelerations (n, 3) in angstrom/fs^2 of the agents of this species in one configuration."""
        return predict_accelerations(self.loss_, positions, box, symbols)

    def score(self, trajectory, frames=None) -> float:
        """Relative RMSE (5.2) of the predicted accelerations on ``frames`` (default: all)."""
        return relative_rmse(self.loss_, trajectory, frames)


def predict_accelerations(loss: SpeciesLoss, positions, box, symbols) -> np.ndarray:
    """Accelerations (n, 3), angstrom/fs^2, of the agents of ``loss.species`` in one configuration."""
    sinks = np.flatnonzero(np.array(symbols) == loss.species)
    phi, dphi = loss.invariants.compute(positions, box, source_index(symbols, loss.invariants.sources), sinks)
    return loss.evaluate(phi, dphi)[1] * ACCEL_EV_PER_AMU_A / make_species(loss.species).mass


def relative_rmse(loss: SpeciesLoss, trajectory, frames=None) -> float:
    """Relative RMSE (5.2) of ``loss``'s accelerations against the trajectory's, over ``frames``."""
    frames = np.arange(len(trajectory)) if frames is None else np.asarray(frames)
    sinks = np.flatnonzero(np.array(trajectory.symbols) == loss.species)
    error = total = 0.0
    for f in frames:
        target = trajectory.accelerations[f, sinks]
        error += np.sum((predict_accelerations(loss, trajectory.positions[f], trajectory.box, trajectory.symbols) - target) ** 2)
        total += np.sum(target**2)
    return float(np.sqrt(error / total))
