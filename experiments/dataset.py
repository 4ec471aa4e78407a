"""Fig. 1: kinetic energy and temperature of the CP2K run over time."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from experiments.base import Experiment
from experiments.outputs import Results
from learning.cp2k.reader import portable_path, read_trajectory


@dataclass
class DatasetConfig:
    """Which CP2K run to show (``None``: the embedded default) and the equilibration fraction."""

    data: str | None = None
    equilibration: float = 0.2


class DatasetExperiment(Experiment):
    """The physics-based run: kinetic energy and temperature against time (Fig. 1)."""

    Config = DatasetConfig
    name = "dataset"

    def run(self) -> Results:
        trajectory = read_trajectory(self.config.data)
        start = int(round(self.config.equilibration * len(trajectory)))
        table = pd.DataFrame(
            {
                "step": trajectory.steps,
                "time_fs": trajectory.times,
                "kinetic_energy_eV": trajectory.kinetic_energy,
                "temperature_K": trajectory.temperature,
                "potential_energy_eV": trajectory.potential_energy,
                "used_time_s": trajectory.used_time,
            }
        )
        figure, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(7, 5))
        top.plot(trajectory.times, trajectory.kinetic_energy, color="tab:blue")
        top.set_ylabel("kinetic energy (eV)")
        bottom.plot(trajectory.times, trajectory.temperature, color="tab:blue")
        bottom.set_ylabel("temperature (K)")
        bottom.set_xlabel("time (fs)")
        for axis in (top, bottom):
            axis.axvline(trajectory.times[start], color="grey", ls="--", lw=1)
        top.set_title(f"CP2K run: {len(trajectory)} frames, {trajectory.n_atoms} atoms (dashed: end of equilibration)")
        summary = {
            "data": portable_path(trajectory.source),
            "frames": len(trajectory),
            "atoms": trajectory.n_atoms,
            "box_A": trajectory.box,
            "dt_fs": trajectory.dt,
            "equilibrated_from_step": int(trajectory.steps[start]),
            "mean_temperature_K": float(np.mean(trajectory.temperature[start:])),
            "mean_kinetic_energy_eV": float(np.mean(trajectory.kinetic_energy[start:])),
        }
        return Results(summary, {"fig1_kinetic_energy": table}, {"fig1_kinetic_energy": figure})
