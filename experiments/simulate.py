"""``mld simulate``: one learned-loss run from a CP2K frame, a file with a cell or a fresh water box;
interruptible, checkpointed and resumable.

Everything is written in place into the output folder as the run goes:

* ``trajectory.xyz`` (or ``trajectory.xyz.gz``): extended XYZ (:mod:`experiments.extxyz`), one frame
  every ``every`` steps, appended in one write each;
* ``observables.csv``, ``summary.json`` (``status``: running, completed, interrupted, blew up) and
  ``checkpoint.npz`` (:mod:`environment.checkpoint`): rewritten every ``checkpoint_every`` steps, at
  an interrupt and at the end, each atomically (a temporary file renamed over the old one), so a kill
  at any instant leaves readable files;
* ``last_good_frame.xyz`` on a blow-up.

SIGINT (Ctrl-C) and SIGTERM stop the run at the next frame (within ``every`` steps: the steps between
two frames run in compiled code, :func:`experiments.guarded_run.run_guarded`), write all of that, and the command exits with
130 or 143 and a line saying how to resume: ``mld simulate --resume OUT``, which truncates the
trajectory to the checkpoint's step and continues bit-for-bit as if never stopped.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import warnings
from pathlib import Path

import numpy as np

from agents.loss_file import load_losses
from agents.species import species as make_species
from environment.integrators import make_integrator
from environment.kinetics import kinetic_temperature
from environment.model import MolecularModel
from experiments.extxyz import TrajectoryWriter
from experiments.guarded_run import MIN_DISTANCE, SimulationBlewUp, run_guarded
from experiments.outputs import write_json
from experiments.start import read_start

#: Defaults of the run options (the CLI shows them).
DEFAULT_STEPS = 1000
DEFAULT_EVERY = 10
DEFAULT_CHECKPOINT_EVERY = 1000
CHECKPOINT = "checkpoint.npz"
#: Exit codes of an interrupted run (128 + the signal number, as a shell reports it).
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class Interrupts:
    """While active (``with``), SIGINT and SIGTERM only set :attr:`signal`: the run stops after the
    step it is taking.  A second signal raises ``KeyboardInterrupt`` (stop now)."""

    def __init__(self):
        self.signal = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum)

    def __call__(self) -> bool:
        return self.signal is not None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in EXIT_CODES:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}


def _check_count(name, value, minimum=1) -> int:
    if value is None or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def simulate(loss_path, source=None, frame=None, waters=None, steps=DEFAULT_STEPS, mode="newtonian", dt=0.5,
             every=DEFAULT_EVERY, seed=42, out=".", progress=False, threads=None,
             checkpoint_every=DEFAULT_CHECKPOINT_EVERY, compress=False, min_distance=MIN_DISTANCE,
             allow_other_box=False, zero_net_force=True, **dynamics) -> dict:
    """One learned-loss run into ``out`` (see the module docstring for what is written).

    Args:
        loss_path: the agent-loss JSON.
        source, frame, waters: the start (see :func:`experiments.start.read_start`).
        steps: number of steps.
        mode: ``'newtonian'`` or ``'learning'`` (see :func:`environment.integrators.make_integrator`).
        dt: time step (fs).
        every: write a frame and collect observables every this many steps.
        seed: the model's random seed (and of a fresh box).
        threads: numba threads (None: :func:`environment.forces.default_threads`); results do not depend on it.
        checkpoint_every: write a checkpoint (and the observables and summary) every this many steps.
        compress: write ``trajectory.xyz.gz`` instead of ``trajectory.xyz``.
        min_distance: stop when two nuclei come closer (angstrom; 0: never).
        allow_other_box: use a loss outside the box it was learned in (a warning instead of an error).
        zero_net_force: remove the net force every step (see :class:`environment.model.MolecularModel`).
        **dynamics: the dynamics' options (``tau``; ``thermostat``, ``temperature_K``, ``max_force``),
            None where not given; an option the chosen dynamics does not use is a ``ValueError``.

    Returns:
        The summary (also in ``summary.json``); ``status`` says how the run ended.
    """
    out = Path(out)
    steps = _check_count("--steps", steps, 0)
    every = _check_count("--every", every)
    checkpoint_every = _check_count("--checkpoint-every", checkpoint_every)
    if min_distance is None or not min_distance >= 0:
        raise ValueError(f"--min-distance must be a non-negative distance in angstrom, got {min_distance}")
    losses = load_losses(loss_path)
    start = read_start(source, frame, waters, dynamics.get("temperature_K"), seed)
    losses.check_species(start.symbols, "--loss")
    masses = np.array([make_species(s).mass for s in start.symbols])
    integrator = make_integrator(mode, dt, kinetic_temperature(start.velocities, masses), **dynamics)
    model = MolecularModel(start.symbols, start.positions, start.box, losses, velocities=start.velocities,
                           integrator=integrator, seed=seed, collect_every=every, threads=threads,
                           allow_other_box=allow_other_box, zero_net_force=zero_net_force)
    thermostat = getattr(integrator, "thermostat", None)
    target = thermostat.temperature_K if thermostat is not None else None
    _warn_outside_training_temperatures(losses, target)
    settings = {
        "start": start.description, "steps": steps, **integrator.settings(), "target_temperature_K": target,
        "loss": str(loss_path), "every": every, "checkpoint_every": checkpoint_every, "seed": seed,
        "trajectory": "trajectory.xyz.gz" if compress else "trajectory.xyz", "min_distance_A": min_distance,
        "max_temperature_K": 10 * max(target or model.temperature, 1.0), "allow_other_box": allow_other_box,
        "loss_domain": losses.domain, "form": losses.form,
        "net_force": "removed (each agent's mass share)" if zero_net_force else "kept",
    }
    return _run(model, settings, out, progress)


def resume(out, steps=None, progress=False, threads=None, checkpoint_every=None) -> dict:
    """Continue the run in ``out`` from its checkpoint, to its own number of steps or to ``steps``."""
    out = Path(out)
    path = out / CHECKPOINT
    if not path.exists():
        raise ValueError(f"--resume {out}: no {CHECKPOINT} there (a run writes one every --checkpoint-every "
                         "steps, when interrupted and at its end)")
    model = MolecularModel.load_checkpoint(path, threads)
    extra = model.checkpoint_extra
    if "run" not in extra or "trajectory_bytes" not in extra:
        raise ValueError(f"--resume {out}: {path} was not written by mld simulate")
    settings = dict(extra["run"])
    if steps is not None:
        if steps < model.steps:
            raise ValueError(f"--steps {steps}: the run in {out} is already at step {model.steps}")
        settings["steps"] = steps
    if checkpoint_every is not None:
        settings["checkpoint_every"] = _check_count("--checkpoint-every", checkpoint_every)
    return _run(model, settings, out, progress, int(extra["trajectory_bytes"]))


def _warn_outside_training_temperatures(losses, target) -> None:
    trained = losses.domain.get("temperature_K")
    if target is None or not trained:
        return
    low, high = trained
    if not 0.9 * low <= target <= 1.1 * high:
        warnings.warn(f"the thermostat's {target:g} K is outside the temperatures the loss was learned at "
                      f"({low:.0f}-{high:.0f} K)", stacklevel=3)


def _run(model, settings, out: Path, progress, trajectory_bytes=None) -> dict:
    """Run ``model`` to ``settings['steps']`` writing into ``out``; ``trajectory_bytes`` (a resume) keeps
    that much of the trajectory already there."""
    resumed = trajectory_bytes is not None
    every, checkpoint_every, total = settings["every"], settings["checkpoint_every"], settings["steps"]
    if not resumed:
        for stale in (CHECKPOINT, "last_good_frame.xyz", "trajectory.xyz", "trajectory.xyz.gz"):
            (out / stale).unlink(missing_ok=True)
    summary = {**settings, "threads": model.evaluator.threads, "status": "running", "completed_steps": model.steps}
    if resumed:
        summary["resumed_from_step"] = model.steps
    trajectory = out / settings["trajectory"]
    writer = TrajectoryWriter(trajectory, compress=trajectory.suffix == ".gz", keep=trajectory_bytes)

    def write_frame(m):
        writer.write(m.symbols, m.positions, m.box, m.velocities, m.masses, step=m.steps, time_fs=m.time_fs)

    def flush(status=None):
        """Observables, summary and checkpoint as of now (each replaced atomically)."""
        table = model.datacollector.get_model_vars_dataframe()
        partial = out / ".observables.csv.partial"
        table.to_csv(partial, index=False)
        partial.replace(out / "observables.csv")
        summary.update(completed_steps=model.steps, final_time_fs=model.time_fs,
                       mean_temperature_K=float(table["temperature"].mean()))
        if status is not None:
            summary["status"] = status
        model.save_checkpoint(out / CHECKPOINT, {"run": settings, "trajectory_bytes": writer.size})
        write_json(out / "summary.json", summary)

    def on_step(m):
        if m.steps % every == 0:
            write_frame(m)
        if m.steps % checkpoint_every == 0 and m.steps < total:
            flush()

    try:
        with Interrupts() as interrupts:
            if not resumed:
                write_frame(model)
            flush()
            try:
                run_guarded(model, total - model.steps, settings["max_temperature_K"], progress, "simulate", on_step,
                            settings["min_distance_A"], interrupts, math.gcd(every, checkpoint_every))
            except SimulationBlewUp as blow_up:
                blow_up.save_last_good(out / "last_good_frame.xyz")
                table = model.datacollector.get_model_vars_dataframe()
                table.to_csv(out / ".observables.csv.partial", index=False)
                (out / ".observables.csv.partial").replace(out / "observables.csv")
                summary.update(status="blew up", blew_up=str(blow_up), completed_steps=blow_up.step - 1,
                               final_time_fs=model.time_fs, mean_temperature_K=float(table["temperature"].mean()))
                write_json(out / "summary.json", summary)
                print(f"mld: {blow_up}; last good frame in {out / 'last_good_frame.xyz'}", file=sys.stderr)
                return summary
            if interrupts.signal is not None:
                summary["interrupted"] = {"signal": interrupts.signal.name, "step": model.steps}
                flush("interrupted")
                print(f"mld: interrupted by {interrupts.signal.name} at step {model.steps} of {total}; everything so "
                      f"far is in {out}; resume with: mld simulate --resume {out}", file=sys.stderr)
                return summary
            flush("completed")
            return summary
    finally:
        writer.close()
