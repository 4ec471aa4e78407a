"""Speed of the learning-based simulation against CP2K's own cost per MD step (end of Sec. 5.3)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from environment.integrators import VelocityVerlet
from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain
from experiments.base import LearnedLossExperiment
from experiments.outputs import Results

#: The paper's numbers for 128 waters: CP2K ~10 h / 1000 steps, learning-based 20 s / 1000 steps.
PAPER_CP2K_S_PER_STEP = 36.0
PAPER_LEARNED_S_PER_STEP = 0.020


@dataclass
class TimingConfig:
    """Steps to time per system, and the water-box sizes (molecules) to time besides the data's."""

    data: str | None = None
    losses: str | None = None
    steps: int = 200
    waters: tuple[int, ...] = (128,)
    seed: int = 42


def seconds_per_step(model, steps: int) -> float:
    """Wall-clock seconds per fast-path step of ``model`` (one warm-up step excluded)."""
    model.step()
    start = time.perf_counter()
    for _ in range(steps):
        model.step()
    return (time.perf_counter() - start) / steps


class TimingExperiment(LearnedLossExperiment):
    """Wall time per step of the learned NVT simulation against CP2K's used time per step."""

    Config = TimingConfig
    name = "timing"

    def run(self) -> Results:
        cfg = self.config
        self.load_inputs()
        traj = self.trajectory
        used = traj.used_time[1:]  # CP2K's first step includes its set-up
        cp2k = float(np.nanmedian(used))
        target = float(np.mean(traj.temperature))
        integrator = lambda: VelocityVerlet(0.5, NoseHooverChain(target, 25.0, chain_length=1), 10.0)  # noqa: E731
        data_model = MolecularModel(traj.symbols, traj.positions[0], traj.box, self.losses,
                                    velocities=traj.velocities[0], integrator=integrator(), seed=cfg.seed,
                                    zero_net_force=False)
        rows = [{"system": f"CP2K data ({traj.n_atoms} atoms)", "atoms": traj.n_atoms,
                 "learned_s_per_step": seconds_per_step(data_model, cfg.steps), "cp2k_s_per_step": cp2k}]
        for n in cfg.waters:
            with warnings.catch_warnings():  # only the cost is timed: the loss need not fit the other box
                warnings.simplefilter("ignore")
                model = MolecularModel.water_box(n, self.losses, temperature_K=300.0, integrator=integrator(),
                                                 seed=cfg.seed, allow_other_box=True)
            rows.append({"system": f"{n} waters", "atoms": 3 * n,
                         "learned_s_per_step": seconds_per_step(model, cfg.steps),
                         "cp2k_s_per_step": PAPER_CP2K_S_PER_STEP if n == 128 else np.nan})
        table = pd.DataFrame(rows)
        table["speedup"] = table["cp2k_s_per_step"] / table["learned_s_per_step"]
        table["s_per_1000_steps"] = 1000 * table["learned_s_per_step"]
        summary = {
            "rows": table.to_dict("records"),
            "cp2k_median_s_per_step": cp2k,
            "paper_cp2k_s_per_step_128": PAPER_CP2K_S_PER_STEP,
            "paper_learned_s_per_step_128": PAPER_LEARNED_S_PER_STEP,
            "note": "CP2K time is the median of the .ener UsedTime column of the data run (this machine); "
                    "for 128 waters the CP2K figure is the paper's (10 h / 1000 steps on 16 cores).",
        }
        return Results(summary, {"timing": table}, {})
