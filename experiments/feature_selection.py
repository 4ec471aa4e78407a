"""Fig. 2 (relative RMSE against the number of invariants) and Table 1 (linear vs quadratic loss)."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd

from experiments.base import Experiment
from experiments.outputs import Results
from learning.cp2k.reader import read_trajectory
from learning.selection import select_and_fit

#: Table 1 of the paper (relative RMSE, eq. 5.2).
PAPER_TABLE1 = {("O", "linear"): 0.32, ("H", "linear"): 0.38, ("O", "quadratic"): 0.31, ("H", "quadratic"): 0.33}


@dataclass
class SelectionConfig:
    """Data (None: embedded), invariants kept per species, loss order and ridge of every fit."""

    data: str | None = None
    n_keep: int | None = 7
    order: str = "quadratic"
    ridge: float = 0.0
    progress: bool = False


class FeatureSelectionExperiment(Experiment):
    """Backward elimination over the paper's 18 weight functions per species (Fig. 2) and Table 1."""

    Config = SelectionConfig
    name = "selection"

    def __init__(self, config=None, trajectory=None, **overrides):
        super().__init__(config, **overrides)
        self.trajectory = trajectory
        self.selection = None

    def run(self) -> Results:
        cfg = self.config
        trajectory = self.trajectory or read_trajectory(cfg.data)
        self.selection = select_and_fit(trajectory, cfg.n_keep, cfg.order, cfg.ridge, progress=cfg.progress)
        curves = pd.concat(
            [pd.DataFrame(curve).assign(species=s) for s, curve in self.selection["curves"].items()]
        )
        curves["invariants"] = curves["invariants"].map(",".join)
        table = table1(self.selection["table1"])
        figure, axes = plt.subplots(1, len(self.selection["curves"]), figsize=(11, 3.8), sharey=True)
        for axis, (s, curve) in zip(axes, self.selection["curves"].items()):
            frame = pd.DataFrame(curve)
            for split, style in (("train", ":"), ("validation", "-"), ("test", "--")):
                axis.plot(frame["n_invariants"], frame[split], style, marker="o", ms=3, label=split)
            axis.axvline(len(self.selection["selected"][s]), color="grey", lw=1)
            axis.set_title({"O": "oxygen", "H": "hydrogen"}.get(s, s))
            axis.set_xlabel("number of invariants (weight functions)")
            axis.invert_xaxis()
        axes[0].set_ylabel("relative RMSE (5.2)")
        axes[0].legend()
        summary = {"selected": self.selection["selected"], "table1": table.to_dict("records"),
                   "wall_time_s": self.selection["wall_time_s"], "order": cfg.order, "ridge": cfg.ridge}
        return Results(summary, {"fig2_selection": curves, "table1": table}, {"fig2_selection": figure})

    def save(self, out_dir):
        written = super().save(out_dir)
        self.selection["losses"].save(f"{out_dir}/losses.json")
        return written


def table1(rows) -> pd.DataFrame:
    """Table 1 as a frame: species, order, train/validation/test RMSE and the paper's value."""
    table = pd.DataFrame(rows)
    table["paper"] = [PAPER_TABLE1.get((s, o)) for s, o in zip(table["species"], table["order"])]
    return table
