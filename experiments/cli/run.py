"""``mld reproduce``, ``mld simulate`` and ``mld tau``: the experiments from the command line."""

from __future__ import annotations

import json
import signal
import tempfile

from environment.forces import SERIAL_BELOW_ATOMS
from environment.integrators import DYNAMICS, THERMOSTATS
from experiments.cli.options import path_and_frame, positive_float, writable_directory
from experiments.inputs import load_inputs
from experiments.outputs import publish
from experiments.reproduce import reproduce
from experiments.simulate import (DEFAULT_CHECKPOINT_EVERY, DEFAULT_EVERY, DEFAULT_STEPS, EXIT_CODES, MIN_DISTANCE,
                                  resume, simulate)
from experiments.tau_limit import TauLimitExperiment


def _reproduce(args) -> int:
    out = writable_directory(args.out)
    summary = reproduce(args.data, out, quick=args.quick, progress=not args.no_progress)
    print(json.dumps({"out": str(out), "report": str(out / "report.md"), "wall_time_s": summary["wall_time_s"]}))
    return 0


#: The options ``mld simulate --resume`` accepts; the run keeps every other setting of its own.
RESUME_OPTIONS = {"resume", "steps", "threads", "checkpoint_every", "no_progress", "out"}


def _simulate(args) -> int:
    if args.steps is not None and args.steps < 0:
        raise ValueError(f"--steps must be non-negative, got {args.steps}")
    if args.resume is not None:
        given = sorted(f"--{name.replace('_', '-')}" for name, default in args.simulate_defaults.items()
                       if name not in RESUME_OPTIONS and getattr(args, name) != default)
        if given:
            raise ValueError(f"--resume continues a run with its own settings; {', '.join(given)} cannot be given "
                             "(only --steps, --threads, --checkpoint-every)")
        if args.out is not None and args.out != args.resume:
            raise ValueError(f"--resume {args.resume} writes into that folder; --out {args.out} cannot differ")
        summary = resume(args.resume, args.steps, not args.no_progress, args.threads, args.checkpoint_every)
    else:
        if args.loss is None or args.out is None:
            raise ValueError("--loss and --out are required (unless --resume DIR)")
        out = writable_directory(args.out)
        source, frame = path_and_frame(args.source)
        summary = simulate(
            loss_path=args.loss, source=source, frame=frame, waters=args.waters,
            steps=DEFAULT_STEPS if args.steps is None else args.steps, mode=args.mode, dt=args.dt,
            every=args.every, seed=args.seed, out=out, progress=not args.no_progress, threads=args.threads,
            checkpoint_every=args.checkpoint_every or DEFAULT_CHECKPOINT_EVERY, compress=args.compress,
            min_distance=args.min_distance, allow_other_box=args.allow_other_box,
            zero_net_force=not args.keep_net_force, tau=args.tau, thermostat=args.thermostat, temperature_K=args.temperature, max_force=args.max_force,
        )
    print(json.dumps(summary, indent=1))
    if summary.get("interrupted"):
        return EXIT_CODES[getattr(signal.Signals, summary["interrupted"]["signal"])]
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

    p = subparsers.add_parser(
        "simulate", parents=[common], help="run learned losses and write the trajectory (interruptible, resumable)",
        description="Run learned losses from a start and write trajectory.xyz, observables.csv, summary.json and "
                    "checkpoint.npz into --out as the run goes.  Ctrl-C (or SIGTERM) stops at the next frame "
                    "(within --every steps) with everything written; `mld simulate --resume OUT` continues bit-for-bit.")
    p.add_argument("--loss", help="agent-loss JSON from `mld fit` (required unless --resume)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from", dest="source", metavar="PATH[:FRAME]",
                       help="start from a CP2K run (directory or .inp), this program's trajectory.xyz or "
                            "last_good_frame.xyz, or any file ASE reads that has a cubic cell; FRAME counts from 0 "
                            "(default: the last frame of the embedded CP2K run)")
    start.add_argument("--waters", type=int, help="start from a new box of N water molecules")
    start.add_argument("--resume", metavar="DIR",
                       help="continue the run in DIR from its checkpoint, with its own settings "
                            "(--steps N extends it to N steps)")
    p.add_argument("--steps", type=int, default=None, help=f"steps to run (default: {DEFAULT_STEPS}; with --resume: "
                                                           "the run's own number)")
    p.add_argument("--mode", choices=list(DYNAMICS), default="newtonian",
                   help="newtonian: velocity Verlet (eq. 4.6); learning: finite tau (eqs 3.1-3.2)")
    p.add_argument("--dt", type=positive_float, default=0.5, help="time step, fs")
    p.add_argument("--tau", type=positive_float, help="learning time constant tau, fs (learning mode only; required there)")
    p.add_argument("--thermostat", choices=list(THERMOSTATS),
                   help="newtonian mode only (default: nose-hoover, tdamp 25 fs)")
    p.add_argument("--temperature", type=positive_float,
                   help="thermostat target, K (newtonian mode only; default: the start's temperature); also the "
                        "temperature of drawn velocities (--waters, files without velocities; default 300 K)")
    p.add_argument("--max-force", type=positive_float, help="force clipping, eV/Å (newtonian mode only; default 10)")
    p.add_argument("--every", type=int, default=DEFAULT_EVERY, help="write a frame and observables every N steps")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help=f"write a checkpoint (and observables, summary) every N steps (default: {DEFAULT_CHECKPOINT_EVERY}; "
                        "also at an interrupt and at the end)")
    p.add_argument("--compress", action="store_true", help="write trajectory.xyz.gz (gzip) instead of trajectory.xyz")
    p.add_argument("--threads", type=int, default=None,
                   help=f"numba threads (default: 1 below {SERIAL_BELOW_ATOMS} atoms, else all cores; results do not depend on it)")
    p.add_argument("--min-distance", type=float, default=MIN_DISTANCE,
                   help="stop when two nuclei come closer than this, Å (0: never)")
    p.add_argument("--keep-net-force", action="store_true",
                   help="keep the net force of own-form losses (the paper's protocol); by default each agent's "
                        "mass share of it is removed every step, so the centre of mass does not accelerate")
    p.add_argument("--allow-other-box", action="store_true",
                   help="use a loss in a box (or cutoff) other than the one it was learned in (experts: its "
                        "invariants mean something else there)")
    p.add_argument("--seed", type=int, default=42, help="random seed (the model's, and a new box's)")
    p.add_argument("--out", help="output directory (required unless --resume)")
    p.set_defaults(func=_simulate)
    p.set_defaults(simulate_defaults={action.dest: action.default for action in p._actions
                                      if action.dest not in ("help", "func")})

    p = subparsers.add_parser("tau", parents=[common], help="finite-tau learning dynamics against the Newtonian limit")
    p.add_argument("--data", help="CP2K run; default: the embedded h2o-32 run")
    p.add_argument("--loss", help="agent-loss JSON; default: learned from the data")
    p.add_argument("--taus", type=positive_float, nargs="+", default=[10.0, 100.0, 1000.0, 10000.0])
    p.add_argument("--steps", type=int, default=100, help="steps per run (a short horizon: MD is chaotic)")
    p.add_argument("--dt", type=positive_float, default=0.5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", default="mld-tau")
    p.set_defaults(func=_tau)
