"""Backward elimination over a union of descriptors (``mld select --invariants many-body``): the curve of
validation force RMSE against the number of descriptors, and the loss of the chosen set."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd

from experiments.feature_selection import FeatureSelectionExperiment
from experiments.outputs import Results
from learning.descriptor_selection import DEFAULT_TOLERANCE, select_descriptor_loss
from learning.fitting import DEFAULT_CUTOFF, descriptor_set
from learning.labelled import read_labelled


@dataclass
class DescriptorSelectionConfig:
    """Data (None: embedded), candidates (``--invariants`` of :func:`learning.fitting.descriptor_set`),
    form, cutoff (None: :data:`learning.fitting.DEFAULT_CUTOFF`), order, selection rule (``n_keep``
    descriptors, else the smallest set within ``tolerance`` of the best) and energy weight."""

    data: str | None = None
    invariants: str = "many-body"
    form: str = "shared"
    cutoff: float | None = None
    order: str = "quadratic"
    n_keep: int | None = None
    tolerance: float = DEFAULT_TOLERANCE
    energy_weight: float = 0.0
    progress: bool = False


class DescriptorSelectionExperiment(FeatureSelectionExperiment):
    """Backward elimination over the union of descriptors (radial + angular), own or shared form; saves
    the chosen set's loss as ``losses.json`` beside the curve."""

    Config = DescriptorSelectionConfig
    name = "descriptor-selection"

    def run(self) -> Results:
        cfg = self.config
        trajectory = self.trajectory or read_labelled(cfg.data)
        species = tuple(dict.fromkeys(trajectory.symbols))
        descriptors = descriptor_set(cfg.invariants, species, DEFAULT_CUTOFF if cfg.cutoff is None else cfg.cutoff,
                                     cfg.form)
        self.selection = result = select_descriptor_loss(
            trajectory, descriptors, cfg.form, cfg.order, n_keep=cfg.n_keep, tolerance=cfg.tolerance,
            energy_weight=cfg.energy_weight, progress=cfg.progress)
        curve = pd.DataFrame(result["curve"])
        curve["invariants"] = curve["invariants"].map(";".join)
        figure, axis = plt.subplots(figsize=(6.5, 4))
        for s in species:
            for split, style in (("train", ":"), ("validation", "-"), ("test", "--")):
                if f"{split}_{s}" in curve:
                    axis.plot(curve["n_invariants"], curve[f"{split}_{s}"], style, label=f"{s} {split}")
        axis.axvline(len(result["selected"]), color="grey", lw=1)
        axis.set_xlabel("number of descriptors")
        axis.set_ylabel("relative force RMSE (5.2)")
        axis.set_title(f"backward elimination, {cfg.form} form, {cfg.order}")
        axis.invert_xaxis()
        axis.legend(fontsize=7, ncol=2)
        full, chosen = result["full"], result["fit"]
        summary = {
            "form": cfg.form, "order": cfg.order, "candidates": len(descriptors),
            "selected_count": len(result["selected"]),
            "selected": result["selected"], "relative_rmse": {"full": full.rmse, "selected": chosen.rmse},
            "ridge": {"full": full.ridge, "selected": chosen.ridge},
            "energy_rmse": {"full": full.loss.provenance.get("energy_rmse"),
                            "selected": chosen.loss.provenance.get("energy_rmse")},
            "accumulate_s": result["accumulate_s"], "select_s": result["wall_time_s"],
            "curve": result["curve"],
        }
        return Results(summary, {"elimination": curve}, {"elimination": figure})
