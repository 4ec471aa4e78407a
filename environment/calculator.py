"""An ASE calculator driven by learned agent losses: ``atoms.calc = MLDCalculator("losses.json")``.

The calculator asks a :class:`environment.forces.ForceEvaluator` for every agent's loss H_k (eV)
and loss force G_k (eV/angstrom) and hands ASE the forces.  What it can say about energy depends on
the loss's *form* (its ``form`` attribute; a loss without one is the paper's ``'own'`` form):

* ``'own'`` (eq. 4.6): agent k descends its own loss H_k with respect to its own position only.
  The forces are not the gradient of any function of all positions, so there is no potential
  energy: only ``forces`` is implemented, and asking for an energy raises ASE's
  ``PropertyNotImplementedError`` with :data:`NO_ENERGY`.
* ``'shared'`` (every form in :data:`FORMS_WITH_ENERGY`): every agent descends the same total
  E = sum_k H_k, so the evaluator's forces are -dE/dq and the calculator also reports ``energy`` =
  ``free_energy`` = E and the per-atom ``energies`` H_k.

Caching and ``calculation_required`` are ASE's own (:class:`ase.calculators.calculator.Calculator`):
one evaluation fills every property, and a new one runs only when ASE's ``system_changes`` say
the atoms changed.  The evaluator is rebuilt (and the loss checked against the atoms) only when the
numbers, cell or periodicity change, not when atoms move.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from agents.geometry import wrap
from agents.descriptor_loss import DescriptorLoss
from agents.loss import AgentLosses
from agents.loss_file import load_losses
from environment.forces import ForceEvaluator
from environment.neighbors import DEFAULT_SKIN

#: Loss forms whose agents all descend one total energy E = sum_k H_k (the calculator reports it).
FORMS_WITH_ENERGY = ("shared",)
#: What the calculator says when asked for the energy of a loss without one.
NO_ENERGY = ("this loss has the paper's own form (eq. 4.6): each agent descends its own loss with respect "
             "to its own position, so the forces are not the gradient of any global potential and there "
             "is no total energy to report; only forces are available")
#: Energy-like properties, implemented only for the forms in FORMS_WITH_ENERGY.
ENERGY_PROPERTIES = ("energy", "energies", "free_energy")
#: Cell changes that need a new evaluator (a move of the atoms does not).
REBUILD_CHANGES = ("numbers", "cell", "pbc")


def loss_form(losses) -> str:
    """The form of ``losses``: its ``form`` attribute, ``'own'`` when it has none."""
    return getattr(losses, "form", "own")


def cubic_box(atoms, where: str = "atoms") -> float:
    """The side (angstrom) of the periodic cubic cell of ASE ``atoms``.

    Raises:
        ValueError naming ``where`` when the cell is not periodic in all three directions, or not cubic
        (the agents' invariants use the minimum image of a cubic box).
    """
    if not np.all(atoms.pbc):
        raise ValueError(f"{where}: the agents live in a periodic box; set pbc=True in all three directions "
                         f"(pbc is {atoms.pbc.tolist()})")
    cell = np.asarray(atoms.cell[:], dtype=float)
    side = cell[0, 0]
    if side <= 0 or np.any(np.abs(cell - side * np.eye(3)) > 1e-8 * side):
        raise ValueError(f"{where}: the cell must be cubic (a diagonal cell with equal sides, angstrom), "
                         f"got {cell.tolist()}")
    return float(side)


class MLDCalculator(Calculator):
    """ASE calculator of learned agent losses.

    Args:
        loss: an :class:`agents.loss.AgentLosses` or :class:`agents.descriptor_loss.DescriptorLoss`, or the
            path of its JSON (from ``mld fit``).
        evaluator: builds the evaluator, called as ``evaluator(losses, symbols, box, **options)`` and
            returning a callable ``positions (N, 3) angstrom -> (H (N,) eV, G (N, 3) eV/angstrom)``
            (default :class:`environment.forces.ForceEvaluator`).  For a form with a total energy, G
            must be -dE/dq of E = sum_k H_k.
        engine, cutoff, skin, threads: how forces are computed (see
            :class:`environment.forces.ForceEvaluator`).
        **kwargs: passed to :class:`ase.calculators.calculator.Calculator` (``label``, ``atoms``, ...).

    Attributes:
        losses: the loaded losses.
        form: their form (see :func:`loss_form`).
        implemented_properties: ``['forces']``, plus ``energy``, ``energies`` and ``free_energy`` for
            a form in :data:`FORMS_WITH_ENERGY`.
        evaluations: number of force evaluations so far (ASE's cache saves the others).
    """

    implemented_properties = ["forces"]

    def __init__(self, loss, evaluator=ForceEvaluator, engine: str = "numba", cutoff=None, skin: float = DEFAULT_SKIN,
                 threads: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.losses = load_losses(loss) if isinstance(loss, (str, Path)) else loss
        if not isinstance(self.losses, (AgentLosses, DescriptorLoss)):
            raise ValueError(f"loss must be an agents.loss.AgentLosses, an agents.descriptor_loss.DescriptorLoss "
                             f"or the path of its JSON, got {loss!r}")
        self.form = loss_form(self.losses)
        self.has_energy = self.form in FORMS_WITH_ENERGY
        self.implemented_properties = ["forces", *ENERGY_PROPERTIES] if self.has_energy else ["forces"]
        self._make_evaluator = evaluator
        self._options = {"engine": engine, "cutoff": cutoff, "skin": skin, "threads": threads}
        self._evaluator = None
        self._box = None
        self.evaluations = 0

    def get_property(self, name, atoms=None, allow_calculation=True):
        """ASE's :meth:`~ase.calculators.calculator.Calculator.get_property`; an energy of a loss
        without one raises ``PropertyNotImplementedError`` saying why (:data:`NO_ENERGY`)."""
        if name in ENERGY_PROPERTIES and not self.has_energy:
            raise PropertyNotImplementedError(f"{name}: {NO_ENERGY}")
        return super().get_property(name, atoms, allow_calculation)

    def calculate(self, atoms=None, properties=("forces",), system_changes=all_changes):
        """Evaluate every agent's loss and force at ``atoms``' positions and fill ``self.results``."""
        super().calculate(atoms, properties, system_changes)
        if self._evaluator is None or any(change in REBUILD_CHANGES for change in system_changes):
            self._box = cubic_box(self.atoms, "MLDCalculator")
            self._evaluator = self._make_evaluator(self.losses, self.atoms.get_chemical_symbols(), self._box,
                                                   **self._options)
        H, G = self._evaluator(wrap(self.atoms.positions, self._box))
        self.evaluations += 1
        self.results = {"forces": np.array(G, dtype=float)}
        if self.has_energy:
            energy = float(np.sum(H))
            self.results.update(energy=energy, free_energy=energy, energies=np.array(H, dtype=float))
