"""Species losses over a descriptor set, in the paper's own form or the shared (energy) form.

Every sink species s has a loss over the descriptors phi(i) (length P) of its agents, eq. (4.5)::

    H_s(phi) = A_s . phi + 1/2 phi . B_s phi,     c_i = dH/dphi(i) = A_s + B_s phi(i)

and the agents move in one of two forms (DESIGN.md, "Beyond the paper"):

* ``own`` (the paper, eq. 4.6): agent k descends its own loss,  F_k = -c_k . d phi(k) / d q_k;
* ``shared``: every agent descends E = sum_i H_i,  F_k = -sum_i c_i . d phi(i) / d q_k.  The
  shared forces are -grad E: they sum to zero (third law) and E is conserved in NVE.

An optional :class:`agents.pair_wall.PairWall` (repulsive prior) is added to both: its per-atom sum
v_i enters H_i whole in the own form and halved in the shared form (so E includes the pair energy
once); its forces are the same in both.  Both forms are linear in (A, B) (see
:mod:`learning.descriptor_fit`).  Losses save to plain JSON with their descriptor set, bit-exact.
Units: eV, angstrom, eV/angstrom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agents.descriptor_jacobian import DescriptorJacobian, agent_descriptors, descriptor_jacobian, neighbor_pairs
from agents.descriptors import DescriptorSet
from agents.json_file import read_json, write_json
from agents.pair_wall import PairWall

FORMS = ("own", "shared")
FORMAT = "mld-descriptor-loss/1"
UNITS = {"length": "angstrom", "energy": "eV", "force": "eV/angstrom"}


@dataclass(eq=False)
class DescriptorLoss:
    """Quadratic losses (4.5) of every sink species over one descriptor set, in one form.

    Attributes:
        descriptors: the invariants phi (length P) every agent computes.
        form: ``"own"`` or ``"shared"``.
        A: ``{species: (P,) eV per unit phi}``; atoms of other species carry no loss.
        B: ``{species: (P, P) symmetric}``; missing species: zero (a linear loss).
        wall: the repulsive prior, or None.
        provenance: how the loss was learned (free-form, JSON-able).
    """

    descriptors: DescriptorSet
    form: str
    A: dict
    B: dict = field(default_factory=dict)
    wall: PairWall | None = None
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {self.form!r}")
        P = len(self.descriptors)
        unknown = set(self.B) - set(self.A)
        if unknown:
            raise ValueError(f"B given for species {sorted(unknown)} without A")
        self.A = {s: np.array(a, dtype=float) for s, a in self.A.items()}
        self.B = {s: np.zeros((P, P)) if self.B.get(s) is None else np.array(self.B[s], dtype=float) for s in self.A}
        for s in self.A:
            if self.A[s].shape != (P,) or self.B[s].shape != (P, P):
                raise ValueError(f"loss of {s}: A must have shape ({P},) and B ({P}, {P}) for {P} descriptors, "
                                 f"got {self.A[s].shape} and {self.B[s].shape}")
            if not np.array_equal(self.B[s], self.B[s].T):
                raise ValueError(f"loss of {s}: B must be symmetric")
            if not (np.all(np.isfinite(self.A[s])) and np.all(np.isfinite(self.B[s]))):
                raise ValueError(f"loss of {s}: A and B must be finite")

    @property
    def species(self) -> list[str]:
        """The sink species (those with a loss)."""
        return list(self.A)

    def check_species(self, symbols, where: str = "losses") -> None:
        """``ValueError`` naming ``where`` unless the descriptors read exactly the atoms' species and every
        species present has a loss."""
        present = list(dict.fromkeys(str(s) for s in symbols))
        if set(self.descriptors.species) != set(present):
            raise ValueError(f"{where}: the descriptors read source species {list(self.descriptors.species)}, "
                             f"the atoms are {present}")
        missing = [s for s in present if s not in self.A]
        if missing:
            raise ValueError(f"{where}: the losses are for species {self.species}, the atoms are {present}")

    @property
    def domain(self) -> dict:
        """Where the loss applies: any cubic box of side >= 2 ``cutoff_A`` (its largest cutoff), the
        ``species``, and what the provenance records of the training run (``box_A``, ``temperature_K``)."""
        recorded = {key: self.provenance[key] for key in ("box_A", "temperature_K") if key in self.provenance}
        return {**recorded, "cutoff_A": self.descriptors.rc_max, "species": self.descriptors.species}

    def check_domain(self, box: float, cutoff=None, allow_other_box: bool = False, where: str = "losses") -> None:
        """``ValueError`` unless the box is at least twice every cutoff the loss carries.  The loss
        carries its own cutoffs, so a model ``cutoff`` is refused; ``allow_other_box`` does not apply
        (the invariants mean the same in every box of side >= 2 r_c)."""
        if cutoff is not None:
            raise ValueError(f"{where}: a descriptor loss carries its own cutoffs "
                             f"(largest {self.descriptors.rc_max:g} angstrom); give no model cutoff")
        self.descriptors.check_box(box)
        if self.wall is not None:
            self.wall.check_box(box)

    def agent_loss(self, k: int, positions, box: float, symbols):
        """Agent k's loss H_k (eV) and force (3,) eV/angstrom from per-agent descriptors (the
        reference path; equal to row k of :meth:`evaluate`)."""
        phi, _ = agent_descriptors(k, positions, box, list(symbols), self.descriptors)
        H, _ = self.losses(phi[None], [symbols[k]])
        value = float(H[0])
        if self.wall is not None:
            v = self.wall.evaluate(positions, box, symbols)[0][k]
            value += v if self.form == "own" else 0.5 * v
        return value, self.agent_force(k, positions, box, symbols)

    def losses(self, phi, symbols):
        """Loss values H_i (N,) eV and coefficients c_i = A + B phi(i) (N, P) of every centre (0 without a loss)."""
        H, c = np.zeros(len(phi)), np.zeros_like(phi)
        symbols = np.asarray(symbols)
        for s in self.A:
            sel = symbols == s
            Bphi = phi[sel] @ self.B[s]
            c[sel] = self.A[s] + Bphi
            H[sel] = phi[sel] @ self.A[s] + 0.5 * np.einsum("kp,kp->k", phi[sel], Bphi)
        return H, c

    def evaluate(self, positions, box: float, symbols, jacobian: DescriptorJacobian | None = None):
        """Loss values and forces of all agents at once (the vectorized path).

        Args:
            positions: (N, 3) angstrom.  box: cubic side, angstrom.  symbols: (N,) species.
            jacobian: a precomputed :func:`descriptor_jacobian` of these positions (optional).

        Returns:
            H (N,) in eV (own: each agent's loss; shared: its share, E = H.sum()) and F (N, 3) eV/angstrom.
        """
        J = descriptor_jacobian(positions, box, symbols, self.descriptors) if jacobian is None else jacobian
        H, c = self.losses(J.phi, symbols)
        if self.form == "own":
            F = -np.einsum("kp,kpx->kx", c, J.own)
        else:
            F = -J.scatter(np.einsum("ep,epx->ex", c[J.centre], J.grad))
        if self.wall is not None:
            v, F_wall = self.wall.evaluate(positions, box, symbols)
            H = H + (v if self.form == "own" else 0.5 * v)
            F = F + F_wall
        return H, F

    def agent_force(self, k: int, positions, box: float, symbols) -> np.ndarray:
        """Force (3,) eV/angstrom on agent k alone, from per-agent descriptors (the reference path).

        Own: agent k's descriptors only.  Shared: every agent i within r_c of k (and k itself)
        reports c_i . d phi(i) / d q_k.
        """
        symbols = list(symbols)
        if self.form == "own":
            centres = [k]
        else:
            i, j, _, _ = neighbor_pairs(positions, box, self.descriptors.rc_max)
            centres = [k] + list(j[i == k])
        force = np.zeros(3)
        for i in centres:
            if symbols[i] in self.A:
                phi, jac = agent_descriptors(i, positions, box, symbols, self.descriptors)
                force -= (self.A[symbols[i]] + self.B[symbols[i]] @ phi) @ jac[:, k]
        if self.wall is not None:
            force += self.wall.evaluate(positions, box, symbols)[1][k]
        return force

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "units": UNITS,
            "form": self.form,
            "descriptors": self.descriptors.to_dict(),
            "losses": {s: {"A": self.A[s].tolist(), "B": self.B[s].tolist()} for s in self.A},
            "wall": None if self.wall is None else self.wall.to_dict(),
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "loss") -> DescriptorLoss:
        if data.get("format") != FORMAT:
            raise ValueError(f"{where}: not a descriptor loss (format {data.get('format')!r}, expected {FORMAT!r})")
        try:
            return cls(DescriptorSet.from_dict(data["descriptors"], where), data["form"],
                       {s: d["A"] for s, d in data["losses"].items()},
                       {s: d["B"] for s, d in data["losses"].items()},
                       None if data["wall"] is None else PairWall.from_dict(data["wall"]),
                       data.get("provenance", {}))
        except KeyError as missing:
            raise ValueError(f"{where}: descriptor loss lacks the field {missing}") from None

    def save(self, path) -> Path:
        """Plain JSON, bit-exact on :meth:`load`."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> DescriptorLoss:
        """The loss saved at ``path`` (see :func:`agents.loss_file.load_losses` for either kind)."""
        return cls.from_dict(read_json(path), f"loss file {path}")
