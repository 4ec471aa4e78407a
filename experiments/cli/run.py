"""``mld reproduce``, ``mld simulate`` and ``mld tau``: the experiments from the command line."""

from __future__ import annotations

import json
import tempfile

from environment.integrators import DYNAMICS, THERMOSTATS
from experiments.cli.options import path_and_frame, positive_float, writable_directory
from experiments.inputs import load_inputs
from experiments.outputs import publish
from experiments.reproduce import reproduce
from experiments.simulate import simulate
from experiments.tau_limit import TauLimitExperiment


def _reproduce(args) -> int:
    out = writable_directory(args.out)
    summary = reproduce(args.data, out, quick=args.quick, progress=not args.no_progress)
    print(json.dumps({"out": str(out), "report": str(out / "report.md"), "wall_time_s": summary["wall_time_s"]}))
    return 0


def _simulate(args) -> int:
    if args.steps < 0:
        raise ValueError(f"--steps must be non-negative, got {args.steps}")
    out = writable_directory(args.out)
    source, frame = path_and_frame(args.source)
    summary = simulate(
        loss_path=args.loss, source=source, frame=frame, waters=args.waters, steps=args.steps, mode=args.mode,
        dt=args.dt, every=args.every, seed=args.seed, out=out, progress=not args.no_progress,
        tau=args.tau, thermostat=args.thermostat, temperature_K=args.temperature, max_force=args.max_force,
    )
    print(json.dumps(summary, indent=1))
    return 0 if not summary.get("blew_up") else 1


def _tau(args) -> int:
    out = writable_directory(args.out)
    trajectory, losses = load_inputs(args.data, args.loss, seed=args.seed, progress=not args.no_progress)
    experiment = TauLimitExperiment(trajectory=trajectory, losses=losses, taus=tuple(args.taus),
                                    steps=args.steps, dt=args.dt, seed=args.seed, progress=not args.no_progress)
    with tempfile.TemporaryDirectory(dir=out) as staging:
        experiment.save(staging)
        publish(staging, out)
    print(json.dumps(experiment.results.summary, indent=1, default=float))
    return 0


def register(subparsers, common) -> None:
    p = subparsers.add_parser("reproduce", parents=[common], help="run every experiment of the paper and write a report")
    p.add_argument("--data", help="CP2K run (directory or input file); default: the embedded h2o-32 run")
    p.add_argument("--out", default="mld-reproduce", help="output directory (default: mld-reproduce)")
    p.add_argument("--quick", action="store_true", help="a reduced run that finishes in under 2 minutes")
    p.set_defaults(func=_reproduce)

    p = subparsers.add_parser("simulate", parents=[common], help="run learned losses and write the trajectory")
    p.add_argument("--loss", required=True, help="agent-loss JSON from `mld fit`")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from", dest="source", metavar="PATH[:FRAME]",
                       help="start from a CP2K frame (default: the embedded run's last frame)")
    start.add_argument("--waters", type=int, help="start from a new box of N water molecules")
    p.add_argument("--steps", type=int, default=1000, help="steps to run (default 1000)")
    p.add_argument("--mode", choices=list(DYNAMICS), default="newtonian",
                   help="newtonian: velocity Verlet (eq. 4.6); learning: finite tau (eqs 3.1-3.2)")
    p.add_argument("--dt", type=positive_float, default=0.5, help="time step, fs (default 0.5)")
    p.add_argument("--tau", type=positive_float, help="learning time constant tau, fs (learning mode only; required there)")
    p.add_argument("--thermostat", choices=list(THERMOSTATS),
                   help="newtonian mode only (default: nose-hoover, tdamp 25 fs)")
    p.add_argument("--temperature", type=positive_float,
                   help="thermostat target, K (newtonian mode only; default: the start's temperature)")
    p.add_argument("--max-force", type=positive_float, help="force clipping, eV/Å (newtonian mode only; default 10)")
    p.add_argument("--every", type=int, default=1, help="write a frame every N steps (default 1)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_simulate)

    p = subparsers.add_parser("tau", parents=[common], help="finite-tau learning dynamics against the Newtonian limit")
    p.add_argument("--data", help="CP2K run; default: the embedded h2o-32 run")
    p.add_argument("--loss", help="agent-loss JSON; default: learned from the data")
    p.add_argument("--taus", type=positive_float, nargs="+", default=[10.0, 100.0, 1000.0, 10000.0])
    p.add_argument("--steps", type=int, default=100, help="steps per run (a short horizon: MD is chaotic)")
    p.add_argument("--dt", type=positive_float, default=0.5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default="mld-tau")
    p.set_defaults(func=_tau)
