"""Finite-tau learning dynamics against their Newtonian limit (Sec. 3, eqs 3.1-3.4).

The same start is run in ``learning`` mode for a sweep of tau and in ``newtonian`` NVE mode (no
thermostat, no clipping, so both integrate the same forces).  Per tau: the RMS minimum-image
deviation of positions from the Newtonian run over time, the kinetic-energy history, and the
effective damping rate gamma, fitted from ln(KE_tau / KE_newton) ~ -gamma t (eq. 3.4 has
friction 1/tau: gamma tau ~ 1 for vibrations, 2 for free flight).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from environment.integrators import LearningDynamics, VelocityVerlet
from environment.model import MolecularModel
from agents.geometry import minimum_image
from experiments.base import LearnedLossExperiment
from experiments.outputs import Results
from experiments.guarded_run import run_guarded


@dataclass
class TauLimitConfig:
    """Sweep settings: tau values (fs), steps per run, time step (fs) and the CP2K start frame.

    The horizon is short (100 steps, 50 fs): water trajectories separate chaotically within ~100 fs,
    after which deviations and kinetic-energy ratios measure chaos, not the tau limit."""

    data: str | None = None
    losses: str | None = None
    taus: tuple[float, ...] = (10.0, 100.0, 1000.0, 10000.0)
    steps: int = 100
    dt: float = 0.5
    start_frame: int | None = None
    equilibration: float = 0.2
    seed: int = 42
    progress: bool = False


class TauLimitExperiment(LearnedLossExperiment):
    """Deviation of finite-tau learning dynamics from Newton's, shrinking as tau grows."""

    Config = TauLimitConfig
    name = "tau_limit"

    def _run(self, integrator):
        traj, cfg = self.trajectory, self.config
        frame = self.start
        model = MolecularModel(traj.symbols, traj.positions[frame], traj.box, self.losses,
                               velocities=traj.velocities[frame], integrator=integrator,
                               seed=cfg.seed, zero_net_force=False, collect_positions=True)
        label = integrator.name + (f" tau={integrator.tau:g}" if isinstance(integrator, LearningDynamics) else "")
        run_guarded(model, cfg.steps, progress=cfg.progress, label=label)
        table = model.datacollector.get_model_vars_dataframe()
        return table, np.stack(table["positions"].to_list())

    def run(self) -> Results:
        cfg = self.config
        if not cfg.taus or min(cfg.taus) <= 0:
            raise ValueError(f"taus must be positive, got {cfg.taus}")
        self.load_inputs()
        traj = self.trajectory
        self.start = self.start_frame()
        newton, q_newton = self._run(VelocityVerlet(cfg.dt))
        time = newton["time_fs"].to_numpy()
        columns = {"time_fs": time, "ke_newtonian_eV": newton["kinetic_energy"].to_numpy()}
        rows = []
        for tau in sorted(cfg.taus):
            table, q = self._run(LearningDynamics(cfg.dt, tau))
            deviation = np.sqrt(np.mean(np.sum(minimum_image(q - q_newton, traj.box) ** 2, -1), -1))
            ratio = np.log(table["kinetic_energy"].to_numpy() / columns["ke_newtonian_eV"])
            gamma = -float(np.polyfit(time, ratio, 1)[0])
            columns[f"deviation_tau{tau:g}_A"] = deviation
            columns[f"ke_tau{tau:g}_eV"] = table["kinetic_energy"].to_numpy()
            rows.append({"tau_fs": tau, "final_deviation_A": float(deviation[-1]),
                         "mean_deviation_A": float(deviation.mean()),
                         "damping_rate_per_fs": gamma, "damping_rate_times_tau": gamma * tau})
        sweep = pd.DataFrame(rows)
        deviations = sweep["mean_deviation_A"].to_numpy()
        summary = {
            "start_frame": self.start,
            "steps": cfg.steps,
            "sweep": rows,
            "deviation_shrinks_with_tau": bool(np.all(np.diff(deviations) < 0)),
        }
        return Results(summary, {"tau_sweep": sweep, "tau_series": pd.DataFrame(columns)},
                       {"tau_limit": self._plot(columns, sweep)})

    @staticmethod
    def _plot(columns, sweep):
        figure, (left, middle, right) = plt.subplots(1, 3, figsize=(14, 3.8))
        time = columns["time_fs"]
        for tau in sweep["tau_fs"]:
            left.semilogy(time[1:], columns[f"deviation_tau{tau:g}_A"][1:], label=f"τ = {tau:g} fs")
            middle.plot(time, columns[f"ke_tau{tau:g}_eV"], label=f"τ = {tau:g} fs")
        middle.plot(time, columns["ke_newtonian_eV"], "k--", label="Newtonian")
        left.set_xlabel("time (fs)")
        left.set_ylabel("RMS deviation from Newton (Å)")
        left.legend(fontsize=8)
        middle.set_xlabel("time (fs)")
        middle.set_ylabel("kinetic energy (eV)")
        middle.legend(fontsize=8)
        right.loglog(sweep["tau_fs"], sweep["mean_deviation_A"], "o-")
        right.set_xlabel("τ (fs)")
        right.set_ylabel("mean deviation over the run (Å)")
        right.set_title("→ Newton as τ → ∞")
        figure.tight_layout()
        return figure
