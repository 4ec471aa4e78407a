"""``mld simulate``: one learned-loss run from a CP2K frame or a fresh water box."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from agents.loss import AgentLosses
from agents.species import species as make_species
from environment.builders import water_box
from environment.integrators import make_integrator
from environment.kinetics import kinetic_temperature
from environment.model import MolecularModel
from experiments.extxyz import write_frame
from experiments.guarded_run import SimulationBlewUp, run_guarded
from experiments.outputs import publish, write_json
from learning.cp2k.reader import read_trajectory


def start_configuration(source=None, frame=None, waters=None, temperature_K=None, seed=42):
    """Symbols, positions, velocities, box and a description of the start of a run.

    Args:
        source: a CP2K run (None: the embedded default run), used unless ``waters`` is given.
        frame: the frame of ``source`` (None: its last).
        waters: build a fresh box of this many waters instead (velocities at ``temperature_K``, or 300 K).
    """
    if waters is not None:
        symbols, positions, velocities, box = water_box(waters, temperature_K=temperature_K or 300.0, seed=seed)
        return symbols, positions, velocities, box, f"{waters} waters"
    trajectory = read_trajectory(source)
    frame = len(trajectory) - 1 if frame is None else frame
    if not -len(trajectory) <= frame < len(trajectory):
        raise ValueError(f"--from: frame {frame} is past the end of {trajectory.source} ({len(trajectory)} frames)")
    return (trajectory.symbols, trajectory.positions[frame], trajectory.velocities[frame], trajectory.box,
            f"{trajectory.source} frame {frame}")


def simulate(loss_path, source=None, frame=None, waters=None, steps=1000, mode="newtonian", dt=0.5, every=1,
             seed=42, out=".", progress=False, **dynamics) -> dict:
    """One learned-loss run: writes ``trajectory.xyz`` (extended XYZ), ``observables.csv`` and
    ``summary.json`` into ``out``; on a blow-up, ``last_good_frame.xyz``.

    Args:
        loss_path: the agent-loss JSON.
        source, frame, waters: the start (see :func:`start_configuration`).
        steps: number of steps.
        mode: ``'newtonian'`` or ``'learning'`` (see :func:`environment.integrators.make_integrator`).
        dt: time step (fs).
        every: write a frame and collect observables every this many steps.
        **dynamics: the dynamics' options (``tau``; ``thermostat``, ``temperature_K``, ``max_force``),
            None where not given; an option the chosen dynamics does not use is a ``ValueError``.
    """
    out = Path(out)
    losses = AgentLosses.load(loss_path)
    if every < 1:
        raise ValueError(f"--every must be a positive integer, got {every}")
    symbols, positions, velocities, box, start = start_configuration(
        source, frame, waters, dynamics.get("temperature_K"), seed)
    losses.check_species(symbols, "--loss")
    masses = np.array([make_species(s).mass for s in symbols])
    integrator = make_integrator(mode, dt, kinetic_temperature(velocities, masses), **dynamics)
    model = MolecularModel(symbols, positions, box, losses, velocities=velocities, integrator=integrator,
                           seed=seed, collect_every=every)
    thermostat = getattr(integrator, "thermostat", None)
    target = thermostat.temperature_K if thermostat is not None else None
    summary = {"start": start, "steps": steps, **integrator.settings(), "target_temperature_K": target,
               "loss": str(loss_path)}
    staging = Path(tempfile.mkdtemp(dir=out))
    try:
        path = staging / "trajectory.xyz"
        write_frame(path, symbols, model.positions, box, model.velocities, step=0, time_fs=0.0)

        def record(m):
            if m.steps % every == 0:
                write_frame(path, symbols, m.positions, box, m.velocities, append=True, step=m.steps,
                            time_fs=m.time_fs)

        try:
            run_guarded(model, steps, 10 * max(target or model.temperature, 1.0), progress, "simulate", record)
        except SimulationBlewUp as blow_up:
            blow_up.save_last_good(staging / "last_good_frame.xyz")
            summary.update(blew_up=str(blow_up), completed_steps=blow_up.step - 1)
            print(f"mld: {blow_up}; last good frame in {out / 'last_good_frame.xyz'}", file=sys.stderr)
        table = model.datacollector.get_model_vars_dataframe()
        table.to_csv(staging / "observables.csv", index=False)
        summary.update(mean_temperature_K=float(table["temperature"].mean()), final_time_fs=model.time_fs)
        write_json(staging / "summary.json", summary)
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary
