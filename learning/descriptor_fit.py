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

Energy rows (shared form only): E = sum_i H_i is a potential energy, so each frame also gives one
row, E_frame - E_wall(frame) = x . theta + c, with x_sp = sum_{i in s} phi_p(i) (A columns) and
sum_{i in s} phi_p(i) phi_q(i) (B columns, half for p = q): minus the force columns are its gradient.
The constant c (one per frame composition: a trajectory has one) is eliminated by centring rows and
targets on the training frames (:class:`EnergySums`).  The rows enter the normal equations with
weight w^2 = W sum_train |F - F_wall|^2 / sum_train (y - mean y)^2: with W = 1 a given relative
error costs as much in the energy rows (together) as in the force rows (together), so one energy
row counts like the force rows of one frame.  W = 0 is the force-only fit, bit for bit.
Units: forces in eV/angstrom, energies in eV, A in eV, B in eV.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numba import njit

from agents.descriptor_jacobian import DescriptorJacobian, descriptor_jacobian
from agents.descriptor_loss import FORMS, DescriptorLoss
from agents.descriptors import DescriptorSet
from agents.pair_wall import PairWall
from agents.units import ACCEL_EV_PER_AMU_A
from learning.regression import ORDERS, NormalEquations, design_matrix, parameter_columns
from learning.cp2k.reader import portable_path
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


@dataclass
class EnergySums:
    """Running sums over frames of energy rows x (C,) and targets y = E - E_wall (eV), for centring.

    Every row, target and energy is taken relative to the first frame's (``x0``, ``y0``, ``e0``): the
    centred sums are the same, and they do not lose digits to the large mean energy (about -15000 eV
    against a 0.5 eV fluctuation in the CP2K water run).

    Attributes:
        n: frames.  atoms: atoms per frame.  x0, y0, e0: the first frame's row, target and energy.
        x, xx, y, xy, yy: sums of x, x x^T, y, x y, y^2 (shifted).  e, ee: sums of E and E^2 (shifted).
    """

    n: int
    atoms: int
    x0: np.ndarray
    y0: float = 0.0
    e0: float = 0.0
    x: np.ndarray | None = None
    xx: np.ndarray | None = None
    y: float = 0.0
    xy: np.ndarray | None = None
    yy: float = 0.0
    e: float = 0.0
    ee: float = 0.0

    @classmethod
    def first(cls, x, y: float, energy: float, atoms: int) -> EnergySums:
        """The sums of one frame, which becomes the reference."""
        C = len(x)
        sums = cls(0, atoms, np.array(x, dtype=float), float(y), float(energy), np.zeros(C), np.zeros((C, C)),
                   xy=np.zeros(C))
        sums.add(x, y, energy)
        return sums

    def add(self, x, y: float, energy: float) -> None:
        x, y, energy = x - self.x0, y - self.y0, energy - self.e0
        self.n += 1
        self.x += x
        self.xx += np.outer(x, x)
        self.y += y
        self.xy += x * y
        self.yy += y * y
        self.e += energy
        self.ee += energy * energy

    def centred(self, cols) -> tuple[np.ndarray, np.ndarray]:
        """Gram and moment of the rows and targets centred on their means (columns ``cols``)."""
        x = self.x[cols]
        return self.xx[np.ix_(cols, cols)] - np.outer(x, x) / self.n, self.xy[cols] - x * self.y / self.n

    @property
    def centred_yy(self) -> float:
        """sum (y - mean y)^2 (eV^2)."""
        return self.yy - self.y**2 / self.n

    @property
    def energy_spread(self) -> float:
        """Standard deviation of E over the frames (eV)."""
        return float(np.sqrt(max(self.ee / self.n - (self.e / self.n) ** 2, 0.0)))

    def mean_x(self, cols) -> np.ndarray:
        """Mean row over the frames (columns ``cols``)."""
        return self.x0[cols] + self.x[cols] / self.n

    @property
    def mean_y(self) -> float:
        """Mean target over the frames (eV)."""
        return self.y0 + self.y / self.n

    def restricted(self, cols) -> EnergySums:
        """The same sums over the columns ``cols`` only."""
        return EnergySums(self.n, self.atoms, self.x0[cols].copy(), self.y0, self.e0, self.x[cols].copy(),
                          self.xx[np.ix_(cols, cols)].copy(), self.y, self.xy[cols].copy(), self.yy, self.e, self.ee)


def trajectory_forces(trajectory) -> np.ndarray:
    """Target forces (F, N, 3) eV/angstrom of a :class:`learning.cp2k.Trajectory`: M a (as eq. 5.1)."""
    return trajectory.accelerations * trajectory.masses[None, :, None] / ACCEL_EV_PER_AMU_A


@njit(cache=True)
def _scatter_pair_columns(phi, grad, atom, n_atoms: int, iu, ju):
    """(n_atoms, 3, len(iu)): out[j, x, c] = -sum over edges e into j (atom[e] == j, in edge order) of
    phi[e, a] grad[e, b, x] + phi[e, b] grad[e, a, x] with (a, b) = (iu[c], ju[c]), halved where a == b:
    the B columns of :func:`learning.regression.design_matrix` summed into atoms, the same arithmetic in
    the same order (no fused multiply-adds), so the same bits."""
    out = np.zeros((n_atoms, 3, iu.shape[0]))
    for e in range(phi.shape[0]):
        row = out[atom[e]]
        for x in range(3):
            for col in range(iu.shape[0]):
                a = iu[col]
                b = ju[col]
                value = phi[e, a] * grad[e, b, x] + phi[e, b] * grad[e, a, x]
                if a == b:
                    value *= 0.5
                row[x, col] -= value
    return out


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
        energy: ``{split: EnergySums}`` of the frames added with an energy (shared form only).
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
        self.energy: dict[str, EnergySums] = {}

    @property
    def n_columns(self) -> int:
        """Columns of one solve: C (own, per species) or S C (shared)."""
        return self.block * (len(self.species) if self.form == "shared" else 1)

    def _edge_columns(self, phi, grad) -> np.ndarray:
        """(n, 3, C) columns of n (centre, atom) edges: -grad for A, product-rule terms for B on Q x Q."""
        Q = self.quadratic
        pairs = design_matrix(phi[:, Q], grad[:, Q])[:, len(Q):].reshape(len(phi), 3, -1)
        return np.concatenate([-grad.transpose(0, 2, 1), pairs], axis=2)

    def _atom_columns(self, J: DescriptorJacobian, edges) -> np.ndarray:
        """(N, 3, C): for every atom j, the sum of :meth:`_edge_columns` over the ``edges`` of ``J`` into j.

        The same numbers, bit for bit, as scattering the (E, 3, C) edge columns, without forming them:
        compiled, each edge's product-rule terms go straight into its atom's row, in edge order.
        """
        Q = self.quadratic
        iu, ju = np.triu_indices(len(Q))
        pairs = _scatter_pair_columns(np.ascontiguousarray(J.phi[J.centre[edges]][:, Q]),
                                      np.ascontiguousarray(J.grad[edges][:, Q]), J.atom[edges], J.n_atoms, iu, ju)
        return np.concatenate([J.scatter(-J.grad[edges].transpose(0, 2, 1), edges), pairs], axis=2)

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
        X = np.concatenate([self._atom_columns(J, np.flatnonzero(symbols[J.centre] == s)) for s in self.species],
                           axis=2)  # (N, 3, S C)
        return {s: X[symbols == s].reshape(-1, X.shape[2]) for s in self.species}

    def energy_row(self, phi, symbols) -> np.ndarray:
        """(S C,) the row of E = sum_i H_i (shared form): per species s, sum_{i in s} phi_p(i) for A_p and
        sum_{i in s} phi_p(i) phi_q(i) for B_pq on Q x Q (half for p = q), so that E = row . theta."""
        Q = self.quadratic
        iu, ju = np.triu_indices(len(Q))
        symbols = np.asarray(symbols)
        rows = []
        for s in self.species:
            own = phi[symbols == s]
            pairs = own[:, Q[iu]] * own[:, Q[ju]]
            pairs[:, iu == ju] *= 0.5
            rows.append(np.concatenate([own.sum(axis=0), pairs.sum(axis=0)]))
        return np.concatenate(rows)

    def add(self, split, positions, box: float, symbols, forces, energy: float | None = None) -> None:
        """Add one frame's rows to ``split`` (a name, or several: the frame's invariants are computed once
        for all of them): positions (N, 3) angstrom, target forces (N, 3) eV/angstrom, and (shared form)
        optionally the frame's potential energy (eV) as an energy row."""
        names = (split,) if isinstance(split, str) else tuple(split)
        symbols = np.asarray(symbols)
        forces = np.asarray(forces, dtype=float)
        if energy is not None and self.form != "shared":
            raise ValueError("energy targets need the shared form: E = sum_i H_i is a potential energy only there")
        J = descriptor_jacobian(positions, box, symbols, self.descriptors)
        targets = forces
        if self.wall is not None:
            wall_v, wall_forces = self.wall.evaluate(positions, box, symbols)
            targets = forces - wall_forces
        if energy is not None:
            wall_energy = 0.0 if self.wall is None else 0.5 * float(wall_v.sum())
            row, target = self.energy_row(J.phi, symbols), float(energy) - wall_energy
            for name in names:
                if name in self.energy:
                    self.energy[name].add(row, target, float(energy))
                else:
                    self.energy[name] = EnergySums.first(row, target, float(energy), len(symbols))
        design = self.design(J, symbols)
        for name in names:
            equations = self.equations.setdefault(name, {s: NormalEquations.empty(self.n_columns) for s in self.species})
            norms = self.target_norm2.setdefault(name, dict.fromkeys(self.species, 0.0))
            for s, X in design.items():
                sel = symbols == s
                equations[s].add(X, targets[sel].reshape(-1))
                norms[s] += float(np.sum(forces[sel] ** 2))

    def add_frames(self, splits: dict, positions, box: float, symbols, forces, energies=None) -> DescriptorEquations:
        """Add every frame of ``splits`` (``{name: frame indices}``) of a run (F, N, 3), with its
        energy (F,) eV where ``energies`` is given; returns self."""
        for name, frames in splits.items():
            for f in frames:
                self.add(name, positions[f], box, symbols, forces[f], None if energies is None else energies[f])
        return self

    def columns(self, order: str) -> np.ndarray:
        """Indices of the columns of ``order`` (linear: the A columns of every block)."""
        if order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
        per_block = np.arange(self.block) if order == "quadratic" else np.arange(len(self.descriptors))
        blocks = len(self.species) if self.form == "shared" else 1
        return np.concatenate([b * self.block + per_block for b in range(blocks)])

    def column_descriptors(self, order: str) -> np.ndarray:
        """(len(columns(order)), 2): the descriptors each column's parameter involves (A_p: (p, p),
        B_pq: (p, q)); removing a descriptor removes every column that names it."""
        P, Q = len(self.descriptors), self.quadratic
        iu, ju = np.triu_indices(len(Q))
        per_block = np.concatenate([np.stack([np.arange(P)] * 2, axis=1), np.stack([Q[iu], Q[ju]], axis=1)])
        return np.tile(per_block, (self.n_columns // self.block, 1))[self.columns(order)]

    def restrict(self, keep) -> DescriptorEquations:
        """The equations of the descriptors ``keep`` (indices) alone, cut out of these sums: the same
        numbers as accumulating them afresh on that subset, with no pass over the data."""
        keep = np.unique(np.asarray(keep, dtype=np.int64))
        if len(keep) == 0 or keep[0] < 0 or keep[-1] >= len(self.descriptors):
            raise ValueError(f"keep must be descriptor indices in [0, {len(self.descriptors)}), got {keep}")
        kept_q = np.flatnonzero(np.isin(self.quadratic, keep))
        new_index = {int(p): k for k, p in enumerate(keep)}
        sub = DescriptorEquations(DescriptorSet(tuple(self.descriptors.features[p] for p in keep)), self.form,
                                  self.species, [new_index[int(q)] for q in self.quadratic[kept_q]], self.wall)
        Q, P = len(self.quadratic), len(self.descriptors)
        pairs = parameter_columns(Q, kept_q)[len(kept_q):] - Q + P  # B columns of the kept Q x Q pairs
        per_block = np.concatenate([keep, pairs])
        cols = np.concatenate([b * self.block + per_block for b in range(self.n_columns // self.block)])
        for split, equations in self.equations.items():
            sub.equations[split] = {s: NormalEquations(eq.gram[np.ix_(cols, cols)].copy(), eq.moment[cols].copy(),
                                                       eq.yy, eq.rows) for s, eq in equations.items()}
        sub.target_norm2 = {split: dict(norms) for split, norms in self.target_norm2.items()}
        sub.energy = {split: sums.restricted(cols) for split, sums in self.energy.items()}
        return sub

    @property
    def groups(self) -> dict[str, list[str]]:
        """The solves: ``{species: [species]}`` (own) or ``{"joint": species}`` (shared)."""
        return {s: [s] for s in self.species} if self.form == "own" else {"joint": list(self.species)}

    def energy_scale(self, split: str = "train") -> float:
        """w^2 / W: the force targets' sum of squares over the centred energy targets' (module docstring)."""
        if self.form != "shared":
            raise ValueError("energy_weight needs the shared form (E = sum_i H_i); the own form has no energy")
        sums = self.energy.get(split)
        if sums is None or sums.n < 2:
            raise ValueError(f"energy_weight: the {split} frames carry no potential energies (or fewer than 2)")
        return sum(eq.yy for eq in self.equations[split].values()) / sums.centred_yy

    def normal(self, order: str, members, split: str = "train", energy_weight: float = 0.0):
        """X^T X and X^T y of the force rows of the species ``members`` on ``split`` (columns of
        ``order``), plus the weighted centred energy rows when ``energy_weight`` > 0."""
        cols = self.columns(order)
        G = sum(self.equations[split][s].gram[np.ix_(cols, cols)] for s in members)
        b = sum(self.equations[split][s].moment[cols] for s in members)
        if energy_weight:
            if not energy_weight > 0:
                raise ValueError(f"energy_weight must be >= 0, got {energy_weight}")
            w2 = energy_weight * self.energy_scale(split)
            Gc, bc = self.energy[split].centred(cols)
            G, b = G + w2 * Gc, b + w2 * bc
        return G, b

    def solve(self, order: str, ridge: float, split: str = "train",
              energy_weight: float = 0.0) -> dict[str, np.ndarray]:
        """Parameters on ``split``: ``{species: theta}`` (own) or ``{"joint": theta}`` (shared), with
        energy rows of weight ``energy_weight`` (shared form; 0: forces only).

        Raises:
            numpy.linalg.LinAlgError: the ridged normal equations are not positive definite.
        """
        if energy_weight and self.form != "shared":
            raise ValueError("energy_weight needs the shared form (E = sum_i H_i); the own form has no energy")
        theta = {}
        for name, members in self.groups.items():
            G, b = self.normal(order, members, split, energy_weight)
            G = G + ridge * np.mean(np.diag(G)) * np.eye(len(G))
            theta[name] = scipy.linalg.cho_solve(scipy.linalg.cho_factor(G), b)
        return theta

    def energy_rmse(self, order: str, theta: dict, split: str, train: str = "train") -> dict[str, float]:
        """Energy RMSE on ``split`` (shared form), the constant fitted on ``train``: ``eV_per_atom`` and
        ``relative`` (to the standard deviation of E over the split's frames; None where E does not vary
        there, e.g. a split of one frame, so that the loss JSON stays plain JSON)."""
        cols = self.columns(order)
        t = theta["joint"]
        sums = self.energy[split]
        constant = self.energy[train].mean_y - t @ self.energy[train].mean_x(cols)  # E ~ x . theta + constant
        c = constant + t @ sums.x0[cols] - sums.y0  # the same in the split's shifted coordinates
        x, xx = sums.x[cols], sums.xx[np.ix_(cols, cols)]
        sse = t @ xx @ t + 2 * c * (t @ x) - 2 * t @ sums.xy[cols] + sums.n * c * c - 2 * c * sums.y + sums.yy
        rmse = np.sqrt(max(sse, 0.0) / sums.n)
        spread = sums.energy_spread
        return {"eV_per_atom": float(rmse / sums.atoms), "relative": float(rmse / spread) if spread > 0 else None}

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
        validation: str = "validation", energy_weight: float = 0.0) -> DescriptorFit:
    """Solve on ``train`` for every ridge of the grid and keep the best on ``validation``.

    Own form: each species takes its own best lambda; shared (one joint solve): the lambda with the
    lowest mean of the species' validation force RMSEs.  A lambda whose ridged equations are not
    positive definite counts as inf.  ``energy_weight`` W adds the energy rows (shared form, module
    docstring); where the equations hold energies, the provenance records W and the energy RMSE.
    """
    curve, solutions = [], []
    for ridge in ridges:
        try:
            theta = equations.solve(order, ridge, train, energy_weight)
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
    if equations.form == "shared" and train in equations.energy:
        provenance["energy_weight"] = energy_weight
        provenance["energy_rmse"] = {split: equations.energy_rmse(order, theta, split, train)
                                     for split in equations.energy}
    return DescriptorFit(equations.loss(order, theta, provenance), ridge, rmse, curve)


def accumulate(trajectory, descriptors: DescriptorSet, form: str = "shared", order: str = "quadratic",
               wall: bool | None = None, splits=None, energies: bool = True, extra=None,
               progress: bool = False) -> DescriptorEquations:
    """The normal equations of a trajectory on every split (one pass over the data).

    Args:
        trajectory: a :class:`learning.cp2k.reader.Trajectory` (or any with the same fields).
        descriptors: the invariants; their largest cutoff must fit the trajectory's box.
        form: ``'own'`` or ``'shared'``.
        order: ``'linear'`` or ``'quadratic'`` (B on :func:`local_quadratic`); sets the wall's default.
        wall: the repulsive prior (None: on for quadratic losses, sized from the training frames).
        splits: frame splits (default :func:`learning.splits.split_frames`).
        energies: add the frames' potential energies as energy rows (shared form, where all are finite).
        extra: labelled frames added to the training rows (and, alone, to the split ``"extra"`` for their
            own RMSE), e.g. :mod:`learning.contact_probes`; they must come from the same electronic structure
            as ``trajectory`` (their energies share its constant) and are not used to size the wall.
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
    potential = np.asarray(trajectory.potential_energy, dtype=float)
    with_energy = energies and form == "shared" and bool(np.all(np.isfinite(potential)))
    for name, frames in splits.items():
        for f in tqdm(frames, desc=f"{form} equations, {name}", disable=not progress, leave=False):
            equations.add(name, trajectory.positions[f], trajectory.box, trajectory.symbols, forces[f],
                          potential[f] if with_energy else None)
    if extra is not None:
        _add_extra(equations, extra, with_energy, progress)
    return equations


def _add_extra(equations: DescriptorEquations, extra, with_energy: bool, progress: bool) -> None:
    """Every frame of the labelled ``extra`` into the splits ``train`` and ``extra``."""
    from tqdm import tqdm

    if list(dict.fromkeys(extra.symbols)) != list(equations.species) or not len(extra):
        raise ValueError(f"extra data {extra.source}: expected frames of species {list(equations.species)}, got "
                         f"{len(extra)} frames of {list(dict.fromkeys(extra.symbols))}")
    equations.descriptors.check_box(extra.box)
    forces = trajectory_forces(extra)
    potential = np.asarray(extra.potential_energy, dtype=float)
    with_energy = with_energy and bool(np.all(np.isfinite(potential)))
    for f in tqdm(range(len(extra)), desc="extra frames", disable=not progress, leave=False):
        equations.add(("train", "extra"), extra.positions[f], extra.box, extra.symbols, forces[f],
                      potential[f] if with_energy else None)


def with_provenance(trajectory, splits, result: DescriptorFit, **extra) -> DescriptorLoss:
    """The fitted loss of ``result`` with :func:`learning.selection.provenance` of the data and the fit."""
    descriptors = result.loss.descriptors
    metrics = result.rmse.get("test", result.rmse.get("validation"))
    fit_details = {k: v for k, v in result.loss.provenance.items() if k not in ("order", "ridge")}
    result.loss.provenance = provenance(trajectory, splits, result.loss.provenance["order"], result.ridge, metrics,
                                        cutoff_A=descriptors.rc_max, **fit_details, **extra)
    return result.loss


def fit_descriptor_loss(trajectory, descriptors: DescriptorSet, form: str = "shared", order: str = "quadratic",
                        ridges=RIDGES, wall: bool | None = None, splits=None, energy_weight: float = 0.0,
                        extra=None, progress: bool = False, cache: dict | None = None) -> DescriptorLoss:
    """A descriptor loss learned from a trajectory: equations accumulated on every split
    (:func:`accumulate`, arguments as there, ``extra`` frames added to the training rows), the ridge
    chosen on validation (:func:`fit`), energy rows of weight ``energy_weight`` (shared form), the
    provenance recording data, splits, domain, metrics and the extra data.

    ``cache``: a dict (one per ``trajectory``) that keeps the equations of the trajectory's own frames
    for later calls with the same descriptors, form, order, wall and splits, such as fits that differ
    only in their ``extra`` frames: those are added to a copy, in the order :func:`accumulate` adds them,
    so the loss is the same bits as without the cache.
    """
    if energy_weight and form != "shared":
        raise ValueError(f"--energy-weight {energy_weight} needs --form shared: the own form has no energy")
    splits = split_frames(len(trajectory)) if splits is None else splits
    if cache is None:
        equations = accumulate(trajectory, descriptors, form, order, wall, splits, extra=extra, progress=progress)
    else:
        key = (descriptors, form, order, wall, tuple((name, tuple(map(int, f))) for name, f in splits.items()))
        if key not in cache:
            cache[key] = accumulate(trajectory, descriptors, form, order, wall, splits, progress=progress)
        equations = cache[key]
        if extra is not None:
            equations = copy.deepcopy(equations)
            _add_extra(equations, extra, "train" in equations.energy, progress)
    details = {} if extra is None else {"extra_data": {"data": portable_path(extra.source), "frames": len(extra)}}
    return with_provenance(trajectory, splits, fit(equations, order, ridges, energy_weight=energy_weight), **details)
