"""The agent loss of eq. (4.5) and the agent force of eq. (4.6).

For an agent of species s with flattened invariants ``phi`` (length P = S * M, index p = a * M + m)::

    H = A . phi + 1/2 phi . B phi                       (4.5), B symmetric, eV
    F = -(A + B phi) . d phi / d q_k                    (4.6), eV/angstrom

A linear loss is the quadratic one with B = 0.  :class:`AgentLosses` holds one loss per species and
saves to plain JSON (species, invariant names, A, B, units, provenance) and back, bit-exact.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agents.invariants import InvariantSet
from agents.json_file import read_json, write_json

UNITS = {"length": "angstrom", "energy": "eV", "force": "eV/angstrom", "time": "fs", "mass": "amu"}
FORMAT = "mld-agent-losses/1"


@dataclass(eq=False)
class SpeciesLoss:
    """Quadratic loss H_s(phi) of one species, eq. (4.5).

    Attributes:
        species: symbol of the sink species (the agents that use this loss).
        invariants: the invariant set (source species and weight functions) it reads.
        A: (S, M) linear coefficients, eV per unit invariant.
        B: (S, M, S, M) quadratic coefficients, symmetric under (a, m) <-> (b, n).
    """

    species: str
    invariants: InvariantSet
    A: np.ndarray
    B: np.ndarray | None = None

    def __post_init__(self):
        shape = self.invariants.shape
        self.A = np.array(self.A, dtype=float)
        if self.A.size != shape[0] * shape[1]:
            raise ValueError(f"loss {self.species}: A has {self.A.size} values, expected {shape[0] * shape[1]} "
                             f"({shape[0]} source species x {shape[1]} weight functions)")
        self.A = self.A.reshape(shape)
        self.B = np.zeros(shape + shape) if self.B is None else np.array(self.B, dtype=float)
        if self.B.shape != shape + shape:
            raise ValueError(f"loss {self.species}: B has shape {self.B.shape}, expected {shape + shape}")
        P = self.A.size
        if not np.array_equal(self.B.reshape(P, P), self.B.reshape(P, P).T):
            raise ValueError(f"loss {self.species}: B must be symmetric under (a,m) <-> (b,n)")
        if not (np.all(np.isfinite(self.A)) and np.all(np.isfinite(self.B))):
            raise ValueError(f"loss {self.species}: A and B must be finite")

    @property
    def order(self) -> str:
        """``'linear'`` when B = 0, else ``'quadratic'``."""
        return "linear" if not np.any(self.B) else "quadratic"

    def evaluate(self, phi, dphi):
        """Loss values and agent forces for many agents of this species.

        Args:
            phi: (n, S, M) invariants.
            dphi: (n, S, M, 3) their gradients with respect to each agent's own position.

        Returns:
            H of shape (n,) in eV and F = -dH/dq of shape (n, 3) in eV/angstrom.
        """
        n = len(phi)
        P = self.A.size
        phi = phi.reshape(n, P)
        A, B = self.A.reshape(P), self.B.reshape(P, P)
        Bphi = phi @ B
        H = phi @ A + 0.5 * np.einsum("kp,kp->k", phi, Bphi)
        F = -np.einsum("kp,kpx->kx", A + Bphi, dphi.reshape(n, P, 3))
        return H, F

    def to_dict(self) -> dict:
        return {
            "species": self.species,
            "sources": list(self.invariants.sources),
            "invariants": self.invariants.names,
            "order": self.order,
            "A": self.A.tolist(),
            "B": self.B.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "loss") -> "SpeciesLoss":
        try:
            invariants = InvariantSet(tuple(data["invariants"]), tuple(data["sources"]))
            return cls(data["species"], invariants, data["A"], data["B"])
        except KeyError as missing:
            raise ValueError(f"{where}: species loss lacks the field {missing}") from None


@dataclass(eq=False)
class AgentLosses:
    """One :class:`SpeciesLoss` per species, with the provenance of how it was learned."""

    losses: dict[str, SpeciesLoss]
    provenance: dict = field(default_factory=dict)

    #: The paper's form: each agent descends its own loss (eq. 4.6); there is no total energy.
    form = "own"

    def __post_init__(self):
        for symbol, loss in self.losses.items():
            if loss.species != symbol:
                raise ValueError(f"loss stored under {symbol!r} is for species {loss.species!r}")

    def __getitem__(self, species: str) -> SpeciesLoss:
        return self.losses[species]

    @property
    def species(self) -> list[str]:
        return list(self.losses)

    def check_species(self, symbols, where: str = "losses") -> None:
        """``ValueError`` naming ``where`` unless these losses cover exactly the species of ``symbols``
        (one loss per species present, each reading exactly those species as sources)."""
        present = list(dict.fromkeys(str(s) for s in symbols))
        for s in present:
            if s not in self.losses:
                raise ValueError(f"{where}: the losses are for species {self.species}, the atoms are {present}")
            sources = self.losses[s].invariants.sources
            if set(sources) != set(present):
                raise ValueError(f"{where}: the loss of {s} reads source species {list(sources)} "
                                 f"({self.losses[s].A.size} invariants), the atoms are {present}")

    @property
    def domain(self) -> dict:
        """Where the losses were learned, from the provenance: ``box_A`` (cubic box side), ``cutoff_A``
        (None: minimum-image sums over the whole cell), ``species`` and ``temperature_K`` ([min, max] of
        the training frames); absent keys are missing (losses learned by an older ``mld``, or made by hand)."""
        return {key: self.provenance[key] for key in ("box_A", "cutoff_A", "species", "temperature_K")
                if key in self.provenance}

    def check_domain(self, box: float, cutoff=None, allow_other_box: bool = False, where: str = "losses") -> None:
        """``ValueError`` when these losses are used where their invariants mean something else.

        A loss learned with minimum-image sums (``cutoff_A`` None) sums over the whole periodic cell of its
        training box: in a box of another size (or with a cutoff) the same invariants take other values,
        so only the training box fits.  A loss learned with a cutoff r_c fits any box with r_c <= L/2, used
        with the same r_c.  ``allow_other_box`` turns the error into a warning (for experts).  Losses that
        record no box warn when they were learned from data (an older loss file) and pass silently when
        made by hand (no provenance).

        Args:
            box: the cubic box side where the losses are used (angstrom).
            cutoff: the r_c used there (angstrom; None for minimum-image sums).
        """
        box = float(box)
        cutoff = None if cutoff is None else float(cutoff)
        if "box_A" not in self.provenance:
            if "data" in self.provenance:
                warnings.warn(f"{where}: the loss records no training box (learned by an older mld), so it cannot "
                              f"be checked against the {box:.6g} angstrom box; refit it to record one", stacklevel=3)
            return
        trained_box = float(self.provenance["box_A"])
        trained_cutoff = self.provenance.get("cutoff_A")
        used = f"a {box:.6g} angstrom box" + ("" if cutoff is None else f" with cutoff {cutoff:.6g} angstrom")
        if trained_cutoff is None:
            if cutoff is None and abs(box - trained_box) <= 1e-6 * trained_box:
                return
            problem = (f"the loss was learned with minimum-image sums in a {trained_box:.6g} angstrom box and fits "
                       f"only that box: its invariants sum over the whole periodic cell, so in {used} they mean "
                       f"something else")
        else:
            trained_cutoff = float(trained_cutoff)
            if cutoff is not None and abs(cutoff - trained_cutoff) <= 1e-9 * trained_cutoff:
                return
            problem = (f"the loss was learned with cutoff r_c = {trained_cutoff:.6g} angstrom and fits any box with "
                       f"r_c <= L/2 at that cutoff, not {used}")
        if allow_other_box:
            warnings.warn(f"{where}: {problem} (used anyway: allow_other_box)", stacklevel=3)
            return
        raise ValueError(f"{where}: {problem}; learn a loss from a run of this box, or pass --allow-other-box "
                         "(allow_other_box=True) to use it anyway")

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "units": UNITS,
            "species": [loss.to_dict() for loss in self.losses.values()],
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "loss") -> "AgentLosses":
        """Losses from :meth:`to_dict`'s data; anything malformed is a ``ValueError`` that starts with ``where``."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: not an agent-loss file (a JSON {type(data).__name__}, expected an object)")
        if data.get("format") != FORMAT:
            raise ValueError(f"{where}: not an agent-loss file (format {data.get('format')!r}, expected {FORMAT!r})")
        try:
            species = data["species"]
            if not isinstance(species, list) or not species:
                raise ValueError(f"'species' must be a non-empty list, got {type(species).__name__}")
            losses = [SpeciesLoss.from_dict(d, where) for d in species]
            provenance = data.get("provenance", {})
            if not isinstance(provenance, dict):
                raise ValueError(f"'provenance' must be an object, got {type(provenance).__name__}")
            _check_domain_fields(provenance)
            result = cls({loss.species: loss for loss in losses}, provenance)
            if len(result.losses) != len(losses):
                raise ValueError("two losses for the same species")
            return result
        except KeyError as missing:
            raise ValueError(f"{where}: the field {missing} is missing") from None
        except ValueError as err:
            message = str(err)
            raise ValueError(message if message.startswith(where) else f"{where}: {message}") from None
        except (TypeError, AttributeError, IndexError, OverflowError) as err:
            raise ValueError(f"{where}: malformed agent-loss file ({type(err).__name__}: {err})") from None

    def save(self, path) -> Path:
        """Plain JSON, bit-exact on :meth:`load`."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> "AgentLosses":
        """The losses saved at ``path`` (see :func:`agents.loss_file.load_losses` for either kind)."""
        return cls.from_dict(read_json(path), f"loss file {path}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)


def _check_domain_fields(provenance: dict) -> None:
    """``ValueError`` unless the recorded domain (box_A, cutoff_A, temperature_K) has the right types."""
    if "box_A" in provenance and not (_number(provenance["box_A"]) and provenance["box_A"] > 0):
        raise ValueError(f"provenance box_A must be a positive number (angstrom), got {provenance['box_A']!r}")
    cutoff = provenance.get("cutoff_A")
    if cutoff is not None and not (_number(cutoff) and cutoff > 0):
        raise ValueError(f"provenance cutoff_A must be null or a positive number (angstrom), got {cutoff!r}")
    temperature = provenance.get("temperature_K")
    if temperature is not None and not (isinstance(temperature, list) and len(temperature) == 2
                                        and all(_number(t) for t in temperature)):
        raise ValueError(f"provenance temperature_K must be null or [low, high] in K, got {temperature!r}")


def pair_potential_losses(species, functions, coefficients) -> AgentLosses:
    """Linear losses equivalent to a symmetric pair potential V_ab(r) = sum_m c[a][b][m] w_m(r).

    With A^s_{a,m} = c[s][a][m] the agent forces are -dU/dq_k of U = sum_{i<j} V(r_ij) = 1/2 sum_k H_k,
    so the dynamics conserve energy (the test case for the integrators).

    Args:
        species: the species symbols, e.g. ``("O", "H")``.
        functions: the weight functions (objects or names).
        coefficients: (S, S, M) array, symmetric in its first two indices (eV per unit w).
    """
    c = np.asarray(coefficients, dtype=float)
    invariants = InvariantSet(tuple(functions), tuple(species))
    if c.shape != (len(species),) * 2 + (len(invariants.functions),):
        raise ValueError(f"coefficients must have shape (S, S, M), got {c.shape}")
    if not np.array_equal(c, c.transpose(1, 0, 2)):
        raise ValueError("coefficients must be symmetric: c[a][b] == c[b][a]")
    return AgentLosses({s: SpeciesLoss(s, invariants, c[i]) for i, s in enumerate(species)})
