"""Learning descriptor losses (own or shared form) from forces by one linear least-squares solve, eq. (5.1).

In both forms the predicted force is linear in theta = (A_p, B_pq) (DESIGN.md, "Fitting stays linear").
With the descriptors' sparse Jacobian (:class:`agents.descriptor_jacobian.DescriptorJacobian`), the
column of a parameter for the force on atom k is::

    own, sink species s (rows: agents of s):
        A_p:  -d phi_p(k)/dq_k        B_pq:  -(phi_p(k) d phi_q(k)/dq_k + phi_q(k) d phi_p(k)/dq_k)   (p < q)
    shared (rows: every atom; columns of every species s, one joint fit):
        A_sp: -sum_{i in s} d phi_p(i)/dq_k     B_spq: -sum_{i in s} (phi_p(i) d phi_q(i)/dq_k + ...)

with half the B_pp column for p = q (as :func:`learning.regression.design_matrix`, which builds them
edge by edge here).  Quadratic terms may be restricted to a subset Q of the descriptors
(``quadratic``): B is then nonzero only on Q x Q, which keeps the shared fit small:
C = P + |Q|(|Q|+1)/2 columns per species, S C jointly.  :class:`DescriptorEquations` accumulates the
normal equations X^T X, X^T y frame by frame (memory (S C)^2 floats per split and species, whatever
the number of frames), per split and per sink species, so the relative RMSE (5.2) of every species on
every split comes from the same sums.  The solve adds a ridge on the raw normal equations,
X^T X + lambda mean(diag X^T X) I (DESIGN.md, "Regularisation"), with lambda chosen on the
validation split from a grid.  A :class:`agents.pair_wall.PairWall` prior is subtracted from the
target forces before the fit and becomes part of the returned loss.
Units: forces in eV/angstrom, A in eV, B in eV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from agents.descriptor_jacobian import DescriptorJacobian, descriptor_jacobian
from agents.descriptor_loss import FORMS, DescriptorLoss
from agents.descriptors import DescriptorSet
from agents.pair_wall import PairWall
from agents.units import ACCEL_EV_PER_AMU_A
from learning.regression import ORDERS, NormalEquations, design_matrix
from learning.selection import provenance
from learning.splits import split_frames

#: Default ridge grid: lambda relative to the mean diagonal of X^T X, 0 (plain least squares) and
#: 1e-14 ... 1e-4.  On the CP2K water run the validation chose 1e-14 ... 1e-10; 0 fails (the
#: descriptor columns are numerically dependent).
RIDGES = (0.0,) + tuple(10.0**-k for k in range(14, 3, -1))


def local_quadratic(descriptors: DescriptorSet) -> np.ndarray:
    """Indices of the radial descriptors and of the angular ones with the largest eta (the most local).

    The quadratic subset Q of the measured fits: on the CP2K water run, adding these angular
    descriptors to Q lowered the shared quadratic test RMSE from about 0.12 / 0.14 (O / H; Q = radial
    only) to 0.10 / 0.10.  A full Q (all P = 96 of the prototype set) would give the joint shared fit
    2 x 4752 columns: a 720 MB Gram matrix per split and species.
    """
    etas = [f.function.eta for f in descriptors.features if f.angular]
    top = max(etas, default=None)
    return np.array([p for p, f in enumerate(descriptors.features) if not f.angular or f.function.eta == top],
                    dtype=np.int64)


def trajectory_forces(trajectory) -> np.ndarray:
    """Target forces (F, N, 3) eV/angstrom of a :class:`learning.cp2k.Trajectory`: M a (as eq. 5.1)."""
    return trajectory.accelerations * trajectory.masses[None, :, None] / ACCEL_EV_PER_AMU_A


class DescriptorEquations:
    """Normal equations (5.1) of one form of descriptor loss, accumulated frame by frame.

    Args:
        descriptors: the invariants (P of them).
        form: ``"own"`` (one block per sink species) or ``"shared"`` (one joint block).
        species: the sink species, in order.
        quadratic: indices of the descriptors with quadratic terms (Q; default all P).
        wall: a :class:`PairWall` prior subtracted from the targets, or None.

    Attributes:
        equations: ``{split: {species: NormalEquations}}``; own: the species' columns and rows;
            shared: all S C joint columns, rows of that species' atoms.
        target_norm2: ``{split: {species: sum |F|^2}}`` of the forces before the wall is subtracted.
    """

    def __init__(self, descriptors: DescriptorSet, form: str, species, quadratic=None, wall: PairWall | None = None):
        if form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {form!r}")
        self.descriptors = descriptors
        self.form = form
        self.species = tuple(species)
        P = len(descriptors)
        Q = np.arange(P) if quadratic is None else np.asarray(quadratic, dtype=np.int64)
        if len(set(Q.tolist())) != len(Q) or np.any((Q < 0) | (Q >= P)):
            raise ValueError(f"quadratic must be distinct descriptor indices in [0, {P}), got {Q}")
        self.quadratic = Q
        self.wall = wall
        self.block = P + len(Q) * (len(Q) + 1) // 2  # columns per species
        self.equations: dict[str, dict[str, NormalEquations]] = {}
        self.target_norm2: dict[str, dict[str, float]] = {}

    @property
    def n_columns(self) -> int:
        """Columns of one solve: C (own, per species) or S C (shared)."""
        return self.block * (len(self.species) if self.form == "shared" else 1)

    def _edge_columns(self, phi, grad) -> np.ndarray:
        """(n, 3, C) columns of n (centre, atom) edges: -grad for A, product-rule terms for B on Q x Q."""
        Q = self.quadratic
        pairs = design_matrix(phi[:, Q], grad[:, Q])[:, len(Q):].reshape(len(phi), 3, -1)
        return np.concatenate([-grad.transpose(0, 2, 1), pairs], axis=2)

    def design(self, jacobian: DescriptorJacobian, symbols) -> dict[str, np.ndarray]:
        """``{species: X}``: rows (3 n_s, agent-major) of the species' atoms, columns as :attr:`n_columns`."""
        symbols = np.asarray(symbols)
        J = jacobian
        if self.form == "own":
            out = {}
            for s in self.species:
                sinks = np.flatnonzero(symbols == s)
                out[s] = self._edge_columns(J.phi[sinks], J.own[sinks]).reshape(3 * len(sinks), -1)
            return out
        blocks = []
        for s in self.species:
            edges = np.flatnonzero(symbols[J.centre] == s)
            blocks.append(J.scatter(self._edge_columns(J.phi[J.centre[edges]], J.grad[edges]), edges))
        X = np.concatenate(blocks, axis=2)  # (N, 3, S C)
        return {s: X[symbols == s].reshape(-1, X.shape[2]) for s in self.species}

    def add(self, split: str, positions, box: float, symbols, forces) -> None:
        """Add one frame's rows to ``split``: positions (N, 3) angstrom, target forces (N, 3) eV/angstrom."""
        symbols = np.asarray(symbols)
        forces = np.asarray(forces, dtype=float)
        J = descriptor_jacobian(positions, box, symbols, self.descriptors)
        targets = forces if self.wall is None else forces - self.wall.evaluate(positions, box, symbols)[1]
        equations = self.equations.setdefault(split, {s: NormalEquations.empty(self.n_columns) for s in self.species})
        norms = self.target_norm2.setdefault(split, dict.fromkeys(self.species, 0.0))
        for s, X in self.design(J, symbols).items():
            sel = symbols == s
            equations[s].add(X, targets[sel].reshape(-1))
            norms[s] += float(np.sum(forces[sel] ** 2))

    def add_frames(self, splits: dict, positions, box: float, symbols, forces) -> DescriptorEquations:
        """Add every frame of ``splits`` (``{name: frame indices}``) of a run (F, N, 3); returns self."""
        for name, frames in splits.items():
            for f in frames:
                self.add(name, positions[f], box, symbols, forces[f])
        return self

    def columns(self, order: str) -> np.ndarray:
        """Indices of the columns of ``order`` (linear: the A columns of every block)."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        per_block = np.arange(self.block) if order == "quadratic" else np.arange(len(self.descriptors))
        blocks = len(self.species) if self.form == "shared" else 1
        return np.concatenate([b * self.block + per_block for b in range(blocks)])

    def solve(self, order: str, ridge: float, split: str = "train") -> dict[str, np.ndarray]:
        """Parameters on ``split``: ``{species: theta}`` (own) or ``{"joint": theta}`` (shared).

        Raises:
            numpy.linalg.LinAlgError: the ridged normal equations are not positive definite.
        """
        cols = self.columns(order)
        groups = {s: [s] for s in self.species} if self.form == "own" else {"joint": list(self.species)}
        theta = {}
        for name, members in groups.items():
            G = sum(self.equations[split][s].gram[np.ix_(cols, cols)] for s in members)
            b = sum(self.equations[split][s].moment[cols] for s in members)
            G = G + ridge * np.mean(np.diag(G)) * np.eye(len(cols))
            theta[name] = scipy.linalg.cho_solve(scipy.linalg.cho_factor(G), b)
        return theta

    def relative_rmse(self, order: str, theta: dict, split: str) -> dict[str, float]:
        """Relative force RMSE (5.2) per species on ``split`` (the wall included in the prediction)."""
        cols = self.columns(order)
        out = {}
        for s in self.species:
            eq = self.equations[split][s]
            t = theta[s] if self.form == "own" else theta["joint"]
            G = eq.gram[np.ix_(cols, cols)]
            residual = t @ G @ t - 2.0 * t @ eq.moment[cols] + eq.yy
            out[s] = float(np.sqrt(max(residual, 0.0) / self.target_norm2[split][s]))
        return out

    def loss(self, order: str, theta: dict, provenance: dict | None = None) -> DescriptorLoss:
        """The :class:`DescriptorLoss` of solved parameters (B symmetric on Q x Q, zero elsewhere)."""
        P = len(self.descriptors)
        Q = self.quadratic
        iu, ju = np.triu_indices(len(Q))
        A, B = {}, {}
        for index, s in enumerate(self.species):
            full = np.zeros(self.block)
            if self.form == "own":
                full[self.columns(order)] = theta[s]
            else:
                joint = np.zeros(self.n_columns)
                joint[self.columns(order)] = theta["joint"]
                full = joint[index * self.block:(index + 1) * self.block]
            A[s] = full[:P].copy()
            B[s] = np.zeros((P, P))
            B[s][Q[iu], Q[ju]] = full[P:]
            B[s][Q[ju], Q[iu]] = full[P:]
        return DescriptorLoss(self.descriptors, self.form, A, B, self.wall, provenance or {})


@dataclass
class DescriptorFit:
    """A fitted loss and how it was chosen.

    Attributes:
        loss: the :class:`DescriptorLoss` (wall included).
        ridge: the chosen lambda (shared: one; own: ``{species: lambda}``).
        rmse: ``{split: {species: relative RMSE (5.2)}}``.
        curve: ``[(lambda, {species: validation RMSE})]`` over the grid (inf where the solve failed).
    """

    loss: DescriptorLoss
    ridge: float | dict
    rmse: dict
    curve: list


def fit(equations: DescriptorEquations, order: str = "quadratic", ridges=RIDGES, train: str = "train",
        validation: str = "validation") -> DescriptorFit:
    """Solve on ``train`` for every ridge of the grid and keep the best on ``validation``.

    Own form: each species takes its own best lambda; shared (one joint solve): the lambda with the
    lowest mean of the species' validation RMSEs.  A lambda whose ridged equations are not positive
    definite counts as inf.
    """
    curve, solutions = [], []
    for ridge in ridges:
        try:
            theta = equations.solve(order, ridge, train)
        except np.linalg.LinAlgError:
            curve.append((ridge, dict.fromkeys(equations.species, np.inf)))
            solutions.append(None)
            continue
        curve.append((ridge, equations.relative_rmse(order, theta, validation)))
        solutions.append(theta)
    if all(t is None for t in solutions):
        raise ValueError(f"no ridge in {list(ridges)} gives positive definite normal equations")
    if equations.form == "own":
        best = {s: int(np.argmin([scores[s] for _, scores in curve])) for s in equations.species}
        theta = {s: solutions[best[s]][s] for s in equations.species}
        ridge = {s: ridges[best[s]] for s in equations.species}
    else:
        b = int(np.argmin([np.mean(list(scores.values())) for _, scores in curve]))
        theta, ridge = solutions[b], ridges[b]
    rmse = {split: equations.relative_rmse(order, theta, split) for split in equations.equations}
    provenance = {"form": equations.form, "order": order, "ridge": ridge, "relative_rmse": rmse,
                  "quadratic": [equations.descriptors.names[q] for q in equations.quadratic]}
    return DescriptorFit(equations.loss(order, theta, provenance), ridge, rmse, curve)


def fit_descriptor_loss(trajectory, descriptors: DescriptorSet, form: str = "shared", order: str = "quadratic",
                        ridges=RIDGES, wall: bool | None = None, splits=None, progress: bool = False) -> DescriptorLoss:
    """A descriptor loss learned from a trajectory: equations accumulated on every split, the ridge
    chosen on validation (:func:`fit`), the provenance recording data, splits, domain and metrics.

    Args:
        trajectory: a :class:`learning.cp2k.reader.Trajectory` (or any with the same fields).
        descriptors: the invariants; their largest cutoff must fit the trajectory's box.
        form: ``'own'`` or ``'shared'``.
        order: ``'linear'`` or ``'quadratic'`` (B on :func:`local_quadratic`).
        wall: the repulsive prior (None: on for quadratic losses, sized from the training frames).
        splits: frame splits (default :func:`learning.splits.split_frames`).
    """
    from tqdm import tqdm

    splits = split_frames(len(trajectory)) if splits is None else splits
    descriptors.check_box(trajectory.box)
    species = tuple(dict.fromkeys(trajectory.symbols))
    prior = None
    if wall if wall is not None else order == "quadratic":
        prior = PairWall.from_contacts(trajectory.positions[splits["train"]], trajectory.box, trajectory.symbols,
                                       descriptors.rc_max)
    equations = DescriptorEquations(descriptors, form, species, local_quadratic(descriptors), prior)
    forces = trajectory_forces(trajectory)
    for name, frames in splits.items():
        for f in tqdm(frames, desc=f"{form} equations, {name}", disable=not progress, leave=False):
            equations.add(name, trajectory.positions[f], trajectory.box, trajectory.symbols, forces[f])
    result = fit(equations, order, ridges)
    metrics = result.rmse.get("test", result.rmse.get("validation"))
    fit_details = {k: v for k, v in result.loss.provenance.items() if k not in ("order", "ridge")}
    result.loss.provenance = provenance(trajectory, splits, order, result.ridge, metrics,
                                        cutoff_A=descriptors.rc_max, **fit_details)
    return result.loss
