"""``mld reproduce``, ``mld simulate`` and ``mld tau``: the experiments from the command line."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from experiments.base import publish


def writable_directory(path) -> Path:
    """``path`` created if needed, or ``ValueError`` naming it when it cannot be written."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            pass
    except OSError as err:
        raise ValueError(f"--out {path}: cannot write there ({err.strerror})") from None
    return path


def _reproduce(args) -> int:
    from experiments.pipeline import reproduce

    out = writable_directory(args.out)
    summary = reproduce(args.data, out, quick=args.quick, progress=not args.no_progress)
    print(json.dumps({"out": str(out), "report": str(out / "report.md"), "wall_time_s": summary["wall_time_s"]}))
    return 0


def _frame_argument(text: str | None):
    """``PATH[:FRAME]`` -> (path, frame or None)."""
    if text is None:
        return None, None
    path, separator, frame = text.rpartition(":")
    if separator and frame.lstrip("-").isdigit():
        return path, int(frame)
    return text, None


def _simulate(args) -> int:
    from experiments.pipeline import simulate

    if args.steps < 0:
        raise ValueError(f"--steps must be non-negative, got {args.steps}")
    out = writable_directory(args.out)
    source, frame = _frame_argument(args.source)
    summary = simulate(
        loss_path=args.loss, source=source, frame=frame, waters=args.waters, steps=args.steps,
        mode=args.mode, tau=args.tau, thermostat=args.thermostat, temperature_K=args.temperature,
        dt=args.dt, max_force=args.max_force, every=args.every, seed=args.seed, out=out,
        progress=not args.no_progress,
    )
    print(json.dumps(summary, indent=1))
    return 0 if not summary.get("blew_up") else 1


def _tau(args) -> int:
    from experiments.pipeline import load_inputs
    from experiments.tau_limit import TauLimitExperiment

    out = writable_directory(args.out)
    trajectory, losses = load_inputs(args.data, args.loss, seed=args.seed, progress=not args.no_progress)
    experiment = TauLimitExperiment(trajectory=trajectory, losses=losses, taus=tuple(args.taus),
                                    steps=args.steps, dt=args.dt, seed=args.seed, progress=not args.no_progress)
    with tempfile.TemporaryDirectory(dir=out) as staging:
        experiment.save(staging)
        publish(staging, out)
    print(json.dumps(experiment.results.summary, indent=1, default=float))
    return 0


def _positive_float(text):
    value = float(text)
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def register(subparsers) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = subparsers.add_parser("reproduce", parents=[common], help="run every experiment of the paper and write a report")
    p.add_argument("--data", help="CP2K run (directory or input file); default: the embedded h2o-32 run")
    p.add_argument("--out", default="mld-reproduce", help="output directory (default: mld-reproduce)")
    p.add_argument("--quick", action="store_true", help="a reduced run that finishes in under 2 minutes")
    p.set_defaults(func=_reproduce)

    p = subparsers.add_parser("simulate", parents=[common], help="run learned losses and write the trajectory")
    p.add_argument("--loss", required=True, help="agent-loss JSON from `mld fit`")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from", dest="source", metavar="PATH[:FRAME]", help="start from a CP2K frame (default: its last)")
    start.add_argument("--waters", type=int, help="start from a new box of N water molecules")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--mode", choices=["newtonian", "learning"], default="newtonian")
    p.add_argument("--tau", type=_positive_float, help="learning time constant tau (fs), learning mode")
    p.add_argument("--thermostat", choices=["nose-hoover", "none"], default="nose-hoover")
    p.add_argument("--temperature", type=_positive_float, default=None, help="target temperature (K); default: the start's")
    p.add_argument("--dt", type=_positive_float, default=0.5, help="time step (fs)")
    p.add_argument("--max-force", type=_positive_float, default=10.0, help="force clipping (eV/Å), newtonian mode")
    p.add_argument("--every", type=int, default=1, help="write a frame every N steps")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_simulate)

    p = subparsers.add_parser("tau", parents=[common], help="finite-tau learning dynamics against the Newtonian limit")
    p.add_argument("--data", help="CP2K run; default: the embedded h2o-32 run")
    p.add_argument("--loss", help="agent-loss JSON; default: learned from the data")
    p.add_argument("--taus", type=_positive_float, nargs="+", default=[10.0, 100.0, 1000.0, 10000.0])
    p.add_argument("--steps", type=int, default=100, help="steps per run (a short horizon: MD is chaotic)")
    p.add_argument("--dt", type=_positive_float, default=0.5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default="mld-tau")
    p.set_defaults(func=_tau)
