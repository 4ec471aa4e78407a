"""Which fit a user asks for: the paper's losses or descriptor losses, own or shared form.

``mld fit --form own|shared --invariants paper|auto|many-body|many-body-l2|many-body-sharp|NAMES --cutoff R``
maps here:

* own form, no cutoff, the paper's weight functions (``auto``: backward elimination to 7 per species,
  Sec. 5.2; ``paper``: all 18; or weight-function names): the paper's losses
  (:class:`agents.loss.AgentLosses`, minimum-image sums), by :func:`learning.selection.fit_losses`;
* anything else: a :class:`agents.descriptor_loss.DescriptorLoss` whose invariants carry the cutoff r_c
  (default :data:`DEFAULT_CUTOFF`): ``many-body-sharp`` is the prototype set (cut radial functions plus the
  angular grid of eqs 2.11-2.13, zeta up to 16, angular cutoff :data:`ANGULAR_CUTOFF`), ``many-body-l2`` the
  same with zeta 1 and 2 only (:data:`agents.descriptors.L2_ZETAS`) and every invariant cut at r_c, ``many-body``
  the one of the two that the form needs (:data:`MANY_BODY`), ``paper`` the 18 weight
  functions cut at r_c, or names of weight functions (cut at r_c) or of descriptors
  (``O:gauss(s=2,rc=4.5)``, ``OH:angle(eta=0.3,zeta=2,lambda=+1,rc=3.5)``); by
  :func:`learning.descriptor_fit.fit_descriptor_loss`, the ridge chosen on validation.
"""

from __future__ import annotations

import re

from agents.descriptor_loss import FORMS
from agents.validation import non_negative
from agents.descriptors import L2_ZETAS, CutRadial, DescriptorSet, Feature, parse_feature, prototype_descriptors
from agents.weights import paper_weight_functions, weight_functions
from learning.descriptor_fit import RIDGES, fit_descriptor_loss
from learning.selection import DEFAULT_RIDGE, fit_losses

#: Cutoff of descriptor losses when none is given (angstrom): fits the 9.85 A box of the CP2K run.
DEFAULT_CUTOFF = 4.5
#: Cutoff of ``many-body-sharp``'s angular invariants (angstrom): half the force time of 4.5 A for
#: a test RMSE 0.103 / 0.111 instead of 0.098 / 0.102 (O / H, shared quadratic, CP2K water run).
ANGULAR_CUTOFF = 3.5
#: The many-body descriptor sets by name: ``many-body-l2`` (zeta <= 2, summed through moments) and ``many-body-sharp``
#: (the prototype's grid, zeta up to 16, pair by pair).
MANY_BODY_SETS = ("many-body-l2", "many-body-sharp")
#: What ``--invariants many-body`` means in each form: the cheaper set that fits the form within the
#: targets (test relative RMSE O / H <= 0.13 shared, <= 0.22 / 0.27 own) on the CP2K water run.  The
#: shared form fits as well with zeta <= 2 (test RMSE O / H 0.103 / 0.114 against 0.103 / 0.113) at 1.7x the
#: paper model's time per step instead of 2.8x; the own form needs the sharp angles (0.206 / 0.264 against
#: 0.230 / 0.344 with zeta <= 2; zeta 1, 2, 4 at 4.5 A: 0.210 / 0.302).
MANY_BODY = {"shared": "many-body-l2", "own": "many-body-sharp"}
#: The descriptor presets of ``--invariants`` (:func:`descriptor_set`).
PRESETS = ("many-body",) + MANY_BODY_SETS
INVARIANTS = ("auto", "paper") + PRESETS


def many_body_set(invariants: str, form: str) -> str:
    """``invariants`` with ``many-body`` resolved to the set of ``form`` (:data:`MANY_BODY`)."""
    return MANY_BODY[form] if invariants == "many-body" else invariants


def descriptor_set(invariants: str, species, cutoff: float, form: str) -> DescriptorSet:
    """The descriptors named by ``--invariants`` for the source ``species`` and ``form``, cut at ``cutoff``."""
    invariants = many_body_set(invariants, form)
    if invariants == "many-body-sharp":
        return prototype_descriptors(tuple(species), cutoff, angular_rc=min(ANGULAR_CUTOFF, cutoff))
    if invariants == "many-body-l2":
        return prototype_descriptors(tuple(species), cutoff, zetas=L2_ZETAS)
    if invariants == "auto":
        raise ValueError("--invariants auto (backward elimination) selects the paper's weight functions for the "
                         "own form without a cutoff; for descriptor losses name them, or use paper or "
                         f"{', '.join(PRESETS)}")
    names = [n.strip() for n in re.split(r",(?![^(]*\))", invariants) if n.strip()]
    if invariants == "paper" or all(":" not in n for n in names):
        functions = paper_weight_functions() if invariants == "paper" else weight_functions(names)
        return DescriptorSet(tuple(Feature((a,), CutRadial(w, cutoff)) for a in species for w in functions))
    return DescriptorSet(tuple(parse_feature(n) for n in names))


def learn(trajectory, form: str = "own", invariants: str = "auto", order: str = "quadratic",
          cutoff: float | None = None, ridge: float | None = None, energy_weight: float = 0.0,
          extra=None, progress: bool = False, cache: dict | None = None):
    """The loss asked for (see the module docstring), learned from ``trajectory``.

    Args:
        form: ``'own'`` (the paper) or ``'shared'`` (every agent descends sum_i H_i).
        invariants: ``auto``, ``paper``, one of :data:`PRESETS` or comma-separated names.
        cutoff: r_c (angstrom) of descriptor losses; None: the paper's minimum image where that applies.
        ridge: the ridge (paper losses: on the column-scaled problem, default 0; descriptor losses: relative
            to the mean diagonal, default chosen on validation from :data:`learning.descriptor_fit.RIDGES`).
        energy_weight: weight W of the potential-energy rows (shared form only; 0: forces only; see
            :mod:`learning.descriptor_fit`).
        extra: labelled frames (a trajectory, e.g. :mod:`learning.contact_probes`) added to the training
            rows of a descriptor loss.
        cache: descriptor losses: a dict that keeps ``trajectory``'s accumulated equations for later calls on
            the same trajectory (see :func:`learning.descriptor_fit.fit_descriptor_loss`).
    """
    if form not in FORMS:
        raise ValueError(f"--form must be one of {FORMS}, got {form!r}")
    if non_negative("--energy-weight", energy_weight) and form != "shared":
        raise ValueError(f"--energy-weight {energy_weight} needs --form shared: only the shared loss "
                         "E = sum_i H_i is a potential energy")
    paper_kind = form == "own" and cutoff is None and invariants not in PRESETS and ":" not in invariants
    if paper_kind:
        if extra is not None:
            raise ValueError("--extra data needs a descriptor loss (--form shared, --cutoff or a many-body --invariants); "
                             "the paper's losses are fitted on the run's training split alone")
        chosen = "auto" if invariants == "auto" else (
            [f.name for f in paper_weight_functions()] if invariants == "paper" else invariants)
        return fit_losses(trajectory, chosen, order, DEFAULT_RIDGE if ridge is None else ridge, progress=progress)
    species = tuple(dict.fromkeys(trajectory.symbols))
    descriptors = descriptor_set(invariants, species, DEFAULT_CUTOFF if cutoff is None else cutoff, form)
    return fit_descriptor_loss(trajectory, descriptors, form, order, RIDGES if ridge is None else (ridge,),
                               energy_weight=energy_weight, extra=extra, progress=progress, cache=cache)
