"""Descriptor values phi(k) and their full Jacobian d phi(k) / d q_j, in numpy.

For a :class:`agents.descriptors.DescriptorSet`, every centre k has phi(k) (length P) that depends on
the positions of k and of its neighbours within r_c.  With d_ki = q_i - q_k (minimum image),
r = |d|, u = d / r and c = u_ki . u_kj (DESIGN.md, "Beyond the paper")::

    cutoff radial term w f_c(r_ki):  d/dq_i = (w f_c)'(r_ki) u_ki
    angular term T(r_ki, r_kj, c):   d/dq_i = dT/dr_ki u_ki + dT/dc (u_kj - c u_ki) / r_ki  (j likewise)
    every term:                      d/dq_k = -(sum of its d/dq_i over the atoms i != k it touches)

Two paths give the same numbers: :func:`agent_descriptors`, the readable reference for one agent
(loops over its neighbours and neighbour pairs, a dense (P, N, 3) Jacobian), and
:func:`descriptor_jacobian`, all centres at once (vectorized, the Jacobian as sparse edges).
Units: positions in angstrom; phi is dimensionless for exp/gauss/angle features (pow: angstrom^-n);
gradients per angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from agents.descriptors import DescriptorSet
from agents.geometry import minimum_image


def agent_descriptors(k: int, positions, box: float, symbols, descriptors: DescriptorSet):
    """phi(k) and d phi(k) / d q_j for every atom j, straight from the definitions (the reference).

    Args:
        k: the centre agent.
        positions: (N, 3) angstrom.
        box: cubic box side, angstrom (every r_c <= box / 2).
        symbols: (N,) species symbols.
        descriptors: the features.

    Returns:
        phi (P,) and jac (P, N, 3) with jac[p, j] = d phi_p(k) / d q_j.
    """
    descriptors.check_box(box)
    positions = np.asarray(positions, dtype=float)
    N = len(positions)
    d = minimum_image(positions - positions[k], box)  # d[i] = q_i - q_k
    r = np.linalg.norm(d, axis=1)
    phi = np.zeros(len(descriptors))
    jac = np.zeros((len(descriptors), N, 3))
    for p, feature in enumerate(descriptors.features):
        f = feature.function
        near = [i for i in range(N) if i != k and r[i] < f.rc]
        if not feature.angular:
            for i in near:
                if symbols[i] == feature.sources[0]:
                    phi[p] += f.value(r[i])
                    g = f.derivative(r[i]) * d[i] / r[i]
                    jac[p, i] += g
                    jac[p, k] -= g
            continue
        pair = sorted(feature.sources)
        for n, i in enumerate(near):
            for j in near[n + 1:]:
                if sorted((symbols[i], symbols[j])) != pair:
                    continue
                ui, uj = d[i] / r[i], d[j] / r[j]
                c = ui @ uj
                T, dT_dri, dT_drj, dT_dc = f.term(f.leg(r[i]), f.leg(r[j]), c)
                gi = dT_dri * ui + dT_dc * (uj - c * ui) / r[i]
                gj = dT_drj * uj + dT_dc * (ui - c * uj) / r[j]
                phi[p] += T
                jac[p, i] += gi
                jac[p, j] += gj
                jac[p, k] -= gi + gj
    return phi, jac


@dataclass(eq=False)
class DescriptorJacobian:
    """phi of all centres and the nonzero blocks of d phi(i) / d q_j, as edges (i, j).

    Attributes:
        phi: (N, P) descriptors of every centre.
        centre: (E,) centre i of each edge; the first N edges are the diagonal (i, i).
        atom: (E,) atom j of each edge (j == i for the first N).
        grad: (E, P, 3) d phi(centre) / d q_atom, 1/angstrom (per unit phi).
    """

    phi: np.ndarray
    centre: np.ndarray
    atom: np.ndarray
    grad: np.ndarray

    @property
    def n_atoms(self) -> int:
        return len(self.phi)

    @property
    def own(self) -> np.ndarray:
        """(N, P, 3) d phi(k) / d q_k, the gradient of the own form (4.6)."""
        return self.grad[: self.n_atoms]

    def dense(self, k: int) -> np.ndarray:
        """(P, N, 3) d phi(k) / d q_j for every atom j (zeros off the neighbourhood)."""
        out = np.zeros((self.phi.shape[1], self.n_atoms, 3))
        for e in np.flatnonzero(self.centre == k):
            out[:, self.atom[e]] += self.grad[e]
        return out

    def scatter(self, edge_values, edges=None) -> np.ndarray:
        """Sum edge rows into their atoms: out[j] = sum over edges e with atom j of values[e].

        Args:
            edge_values: (E, ...) one row per edge, or (len(edges), ...) rows of the edges ``edges``.
            edges: indices of the edges the rows belong to (default: all, in order).

        Returns:
            (N, ...) per-atom sums.
        """
        atom = self.atom if edges is None else self.atom[edges]
        flat = np.asarray(edge_values).reshape(len(atom), -1)
        return (_incidence(atom, self.n_atoms) @ flat).reshape((self.n_atoms,) + np.shape(edge_values)[1:])


def _incidence(rows, n_rows) -> scipy.sparse.csr_matrix:
    """(n_rows, len(rows)) sparse matrix with a 1 at (rows[e], e): sums items into their rows."""
    return scipy.sparse.csr_matrix((np.ones(len(rows)), (rows, np.arange(len(rows)))), shape=(n_rows, len(rows)))


def neighbor_pairs(positions, box: float, radius: float):
    """All ordered pairs (i, j), i != j, closer than ``radius`` (minimum image), sorted by i.

    Returns:
        i (n,), j (n,), d (n, 3) = q_j - q_i folded to the minimum image, r (n,) angstrom.
    """
    positions = np.asarray(positions, dtype=float)
    d = minimum_image(positions[None, :, :] - positions[:, None, :], box)
    r2 = np.einsum("ijx,ijx->ij", d, d)
    np.fill_diagonal(r2, np.inf)
    i, j = np.nonzero(r2 < radius * radius)
    return i, j, d[i, j], np.sqrt(r2[i, j])


def _neighbor_triplets(i, n_atoms):
    """Each unordered pair of edges (e1 < e2) sharing a centre, from edges sorted by centre."""
    counts = np.bincount(i, minlength=n_atoms)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    first, second = [], []
    for start, count in zip(starts, counts):
        a, b = np.triu_indices(count, 1)
        first.append(start + a)
        second.append(start + b)
    return np.concatenate(first).astype(np.int64), np.concatenate(second).astype(np.int64)


def descriptor_jacobian(positions, box: float, symbols, descriptors: DescriptorSet) -> DescriptorJacobian:
    """phi (N, P) and the sparse Jacobian of every centre at once (vectorized over pairs and triplets).

    Args:
        positions: (N, 3) angstrom.
        box: cubic box side, angstrom (every r_c <= box / 2).
        symbols: (N,) species symbols.
        descriptors: the features.
    """
    descriptors.check_box(box)
    positions = np.asarray(positions, dtype=float)
    N, P = len(positions), len(descriptors)
    species = np.asarray(symbols)
    i, j, d, r = neighbor_pairs(positions, box, descriptors.rc_max)
    u = d / r[:, None]
    pairs = len(i)
    phi = np.zeros((N, P))
    grad_pairs = np.zeros((pairs, P, 3))
    for p, feature in enumerate(descriptors.features):
        if feature.angular:
            continue
        sel = np.flatnonzero(species[j] == feature.sources[0])
        phi[:, p] = np.bincount(i[sel], feature.function.value(r[sel]), minlength=N)
        grad_pairs[sel, p] = feature.function.derivative(r[sel])[:, None] * u[sel]

    e1, e2 = _neighbor_triplets(i, N)
    index = descriptors.species_index(symbols)
    s1, s2 = index[j[e1]], index[j[e2]]
    lo, hi = np.minimum(s1, s2), np.maximum(s1, s2)
    pair_of = {p: tuple(sorted(descriptors.species.index(s) for s in f.sources))
               for p, f in enumerate(descriptors.features) if f.angular}
    legs = {}  # (eta, rc) -> G(r), G'(r) of every pair (edge), shared by the features and triplets
    for pair in set(pair_of.values()):
        sel = np.flatnonzero((lo == pair[0]) & (hi == pair[1]))
        a, b = e1[sel], e2[sel]
        r1, r2, u1, u2 = r[a], r[b], u[a], u[b]
        c = np.einsum("tx,tx->t", u1, u2)
        to_a = _incidence(a, pairs)
        to_b = _incidence(b, pairs)
        for p in (p for p, key in pair_of.items() if key == pair):
            f = descriptors.features[p].function
            if (f.eta, f.rc) not in legs:
                legs[f.eta, f.rc] = f.leg(r)
            g, dg = legs[f.eta, f.rc]
            T, dT_dr1, dT_dr2, dT_dc = f.term((g[a], dg[a]), (g[b], dg[b]), c)
            g1 = dT_dr1[:, None] * u1 + (dT_dc / r1)[:, None] * (u2 - c[:, None] * u1)
            g2 = dT_dr2[:, None] * u2 + (dT_dc / r2)[:, None] * (u1 - c[:, None] * u2)
            phi[:, p] = np.bincount(i[a], T, minlength=N)
            grad_pairs[:, p] = to_a @ g1 + to_b @ g2

    own = -(_incidence(i, N) @ grad_pairs.reshape(pairs, 3 * P)).reshape(N, P, 3)
    return DescriptorJacobian(
        phi=phi,
        centre=np.concatenate([np.arange(N), i]),
        atom=np.concatenate([np.arange(N), j]),
        grad=np.concatenate([own, grad_pairs]),
    )
