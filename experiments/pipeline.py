"""The main job: data in, learned losses, simulations, figures and a report out (``mld reproduce``),
and the single learned-loss run of ``mld simulate``."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from environment.model import MolecularModel
from agents.species import species as make_species
from environment.thermostats import NoseHooverChain, kinetic_temperature
from experiments.base import _plain, publish
from experiments.extxyz import write_frame
from experiments.simulation import SimulationBlewUp, run_guarded
from learning.cp2k import default_data_path, read_trajectory
from learning.loss import AgentLosses


def check_losses_fit(losses: AgentLosses, symbols, where: str = "--loss") -> None:
    """``ValueError`` naming ``where`` unless ``losses`` covers exactly the species of ``symbols``."""
    present = sorted(set(symbols))
    for s in present:
        if s not in losses.losses:
            raise ValueError(f"{where}: the losses are for species {losses.species}, the data has {present}")
        if sorted(losses[s].invariants.sources) != present:
            raise ValueError(f"{where}: the loss of {s} reads species {list(losses[s].invariants.sources)}, "
                             f"the data has {present}")


def load_inputs(data=None, loss_path=None, trajectory=None, losses=None, seed=42, progress=False):
    """The trajectory (given, read from ``data``, or the embedded default) and the losses (given,
    loaded from ``loss_path``, or learned from the trajectory with :func:`learn_losses`)."""
    if trajectory is None:
        trajectory = read_trajectory(data or default_data_path())
    if losses is None:
        losses = AgentLosses.load(loss_path) if loss_path else learn_losses(trajectory, progress=progress)
    check_losses_fit(losses, trajectory.symbols)
    return trajectory, losses


def simulate(loss_path, source=None, frame=None, waters=None, steps=1000, mode="newtonian", tau=None,
             thermostat="nose-hoover", temperature_K=None, dt=0.5, max_force=10.0, every=1, seed=42,
             out=".", progress=False) -> dict:
    """One learned-loss run (``mld simulate``): writes ``trajectory.xyz`` (extended XYZ),
    ``observables.csv`` and ``summary.json`` into ``out``; on a blow-up, ``last_good_frame.xyz``."""
    out = Path(out)
    losses = AgentLosses.load(loss_path)
    if every < 1:
        raise ValueError(f"--every must be a positive integer, got {every}")
    if waters is not None:
        from environment.builders import water_box

        symbols, positions, velocities, box = water_box(waters, temperature_K=temperature_K or 300.0, seed=seed)
        start = f"{waters} waters"
    else:
        trajectory = read_trajectory(source or default_data_path())
        frame = len(trajectory) - 1 if frame is None else frame
        if not -len(trajectory) <= frame < len(trajectory):
            raise ValueError(f"--from: frame {frame} is past the end of {trajectory.source} ({len(trajectory)} frames)")
        symbols, box = trajectory.symbols, trajectory.box
        positions, velocities = trajectory.positions[frame], trajectory.velocities[frame]
        start = f"{trajectory.source} frame {frame}"
    check_losses_fit(losses, symbols)
    masses = np.array([make_species(s).mass for s in symbols])
    target = temperature_K or kinetic_temperature(velocities, masses)
    kwargs = {"tau": tau} if mode == "learning" else {"max_force": max_force}
    if mode == "newtonian" and thermostat == "nose-hoover":
        kwargs["thermostat"] = NoseHooverChain(target, 25.0, chain_length=1)
    model = MolecularModel(symbols, positions, box, losses, velocities=velocities, mode=mode, dt=dt, seed=seed,
                           collect_every=every, **kwargs)

    summary = {"start": start, "mode": mode, "tau_fs": tau, "dt_fs": dt, "steps": steps,
               "thermostat": "Nose-Hoover, tdamp 25 fs" if "thermostat" in kwargs else None,
               "target_temperature_K": target, "loss": str(loss_path)}
    staging = Path(tempfile.mkdtemp(dir=out))
    try:
        path = staging / "trajectory.xyz"
        write_frame(path, symbols, model.positions, box, model.velocities, step=0, time_fs=0.0)

        def record(m):
            if m.steps % every == 0:
                write_frame(path, symbols, m.positions, box, m.velocities, append=True, step=m.steps,
                            time_fs=m.time_fs)

        try:
            run_guarded(model, steps, 10 * max(target, 1.0), progress, "simulate", record)
        except SimulationBlewUp as blow_up:
            blow_up.save_last_good(staging / "last_good_frame.xyz")
            summary.update(blew_up=str(blow_up), completed_steps=blow_up.step - 1)
            print(f"mld: {blow_up}; last good frame in {out / 'last_good_frame.xyz'}", file=sys.stderr)
        table = model.datacollector.get_model_vars_dataframe()
        table.to_csv(staging / "observables.csv", index=False)
        summary.update(mean_temperature_K=float(table["temperature"].mean()), final_time_fs=model.time_fs)
        (staging / "summary.json").write_text(json.dumps(_plain(summary), indent=1) + "\n")
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def learn_losses(trajectory, progress=False, stride=1) -> AgentLosses:
    """The default learned losses: 7 weight functions per species by backward elimination, quadratic
    (Sec. 5.2); ``stride`` > 1 fits on every stride-th frame only (quick runs)."""
    from learning.selection import fit_losses

    return fit_losses(trajectory.frames(slice(None, None, stride)), "auto", "quadratic", progress=progress)


def reproduce(data=None, out="mld-reproduce", quick=False, progress=False) -> dict:
    """Every experiment of the paper on one CP2K run: figures, CSV, ``summary.json`` and ``report.md``.

    ``quick`` fits on every 4th frame and runs shorter simulations (under 2 minutes here).
    """
    from experiments.dataset import DatasetExperiment
    from experiments.learning_experiments import FeatureSelectionExperiment
    from experiments.report import write_report
    from experiments.tau_limit import TauLimitExperiment
    from experiments.timing import TimingExperiment
    from experiments.water import WaterSimulationExperiment

    started = time.perf_counter()
    out = Path(out)
    trajectory = read_trajectory(data or default_data_path())
    stride = 4 if quick else 1
    staging = Path(tempfile.mkdtemp(dir=out))
    try:
        summaries = {}
        dataset = DatasetExperiment(data=str(data) if data else None)
        dataset.save(staging / "dataset")
        summaries["dataset"] = dataset.results.summary

        selection = FeatureSelectionExperiment(trajectory=trajectory.frames(slice(None, None, stride)), progress=progress)
        selection.save(staging / "selection")
        summaries["selection"] = selection.results.summary
        losses = selection.selection["losses"]
        losses.save(staging / "losses.json")

        steps = 400 if quick else max(len(trajectory), 2000)
        experiments = {
            "water": WaterSimulationExperiment(trajectory=trajectory, losses=losses, steps=steps,
                                               nve_steps=100 if quick else 400, progress=progress),
            "tau": TauLimitExperiment(trajectory=trajectory, losses=losses, steps=100, progress=progress),
            "timing": TimingExperiment(trajectory=trajectory, losses=losses, steps=50 if quick else 200),
        }
        for name, experiment in experiments.items():
            experiment.save(staging / name)
            summaries[name] = experiment.results.summary
        summaries["quick"] = quick
        summaries["wall_time_s"] = time.perf_counter() - started
        (staging / "summary.json").write_text(json.dumps(_plain(summaries), indent=1) + "\n")
        write_report(summaries, staging / "report.md")
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summaries
