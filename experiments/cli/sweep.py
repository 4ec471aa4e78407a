"""``mld sweep``: ensembles and parameter sweeps of learned-loss water runs on Dask (see :mod:`experiments.sweep`)."""

from __future__ import annotations

import inspect
import json
from collections import Counter

from agents.loss_file import load_losses
from environment.integrators import DYNAMICS
from experiments.cli.options import positive_float, writable_directory
from experiments.inputs import learn_losses
from experiments.outputs import write_json
from experiments.sweep import run_sweep, water_member
from learning.cp2k.reader import portable_path
from learning.labelled import read_labelled

#: Short names accepted by ``--param``.
ALIASES = {"temperature": "temperature_K"}
#: What every member shares, sent to the workers once (not parameters).
SHARED = ("losses", "start")


def sweepable() -> list[str]:
    """The parameters of :func:`experiments.sweep.water_member` a user can sweep."""
    return [name for name in inspect.signature(water_member).parameters if name not in SHARED]


def parse_param(text: str) -> tuple[str, list]:
    """``NAME=V1,V2,...`` -> (name, values); numbers become int or float, anything else stays text."""
    name, separator, values = text.partition("=")
    name = ALIASES.get(name.strip(), name.strip())
    if not separator or not values.strip():
        raise ValueError(f"--param {text!r}: expected NAME=VALUE[,VALUE...]")
    if name not in sweepable():
        raise ValueError(f"--param {text!r}: unknown parameter {name!r}; one of {sweepable()} "
                         f"(or {', '.join(ALIASES)})")
    return name, [_number(v.strip()) for v in values.split(",") if v.strip()]


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def sweep_losses(out, loss_path, trajectory, progress):
    """The sweep's one loss, kept in ``out/losses.json``: the given file, else the one kept by an
    earlier run into ``out`` (a resumed sweep), else learned from ``trajectory`` now."""
    kept = out / "losses.json"
    if loss_path is not None:
        losses = load_losses(loss_path)
        if kept.exists() and load_losses(kept).to_dict() != losses.to_dict():
            raise ValueError(f"--loss {loss_path}: {out} holds a sweep run with another loss ({kept}); "
                             "use a new --out")
    elif kept.exists():
        return load_losses(kept)
    else:
        losses = learn_losses(trajectory, progress=progress)
    losses.save(kept)
    return losses


def _sweep(args) -> int:
    grid = {"mode": args.mode, "steps": args.steps, "dt": args.dt, "every": args.every}
    given = set()
    for text in args.param:
        name, values = parse_param(text)
        if name in given:
            raise ValueError(f"--param {name}: given twice")
        given.add(name)
        grid[name] = values
    out = writable_directory(args.out)
    trajectory = read_labelled(args.data)
    frame = int(round(0.2 * len(trajectory))) if args.frame is None else args.frame
    if not 0 <= frame < len(trajectory):
        raise ValueError(f"--frame {frame}: {trajectory.source} has frames 0-{len(trajectory) - 1}")
    setup = {"data": portable_path(trajectory.source), "frame": frame}
    if (out / "sweep.json").exists() and json.loads((out / "sweep.json").read_text()) != setup:
        raise ValueError(f"--out {out}: holds a sweep from {(out / 'sweep.json').read_text().strip()}, "
                         f"not {setup}; use a new --out")
    losses = sweep_losses(out, args.loss, trajectory, not args.no_progress)
    losses.check_species(trajectory.symbols, "--loss")
    write_json(out / "sweep.json", setup)
    start = {"symbols": trajectory.symbols, "positions": trajectory.positions[frame], "box": trajectory.box}
    records = run_sweep(grid, out=out, shared={"losses": losses, "start": start}, scheduler=args.scheduler,
                        n_workers=args.workers, progress=not args.no_progress)
    failed = [{"member": r["member"], "error": r["error"]} for r in records if r["status"] == "failed"]
    print(json.dumps({"out": str(out), "members": len(records), "status": Counter(r["status"] for r in records),
                      "failed": failed, "table": str(out / "sweep.csv"), "figure": str(out / "sweep.png")}, indent=1))
    return 1 if failed else 0


def register(subparsers, common) -> None:
    p = subparsers.add_parser("sweep", parents=[common],
                              help="run an ensemble / parameter sweep of learned-loss water runs on Dask")
    p.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2,...",
                   help=f"a swept parameter (repeatable; the members are all combinations): {', '.join(sweepable())}; "
                   "'temperature' means temperature_K")
    p.add_argument("--mode", choices=list(DYNAMICS), default="learning",
                   help="learning (finite tau, the default) or newtonian, unless swept with --param mode=...")
    p.add_argument("--steps", type=int, default=200, help="steps per member (default 200)")
    p.add_argument("--dt", type=positive_float, default=0.5, help="time step, fs (default 0.5)")
    p.add_argument("--every", type=int, default=10, help="keep observables every N steps (default 10)")
    p.add_argument("--loss", help="agent-loss JSON; default: learned once from --data (kept in OUT/losses.json)")
    p.add_argument("--data", help="labelled data for the start positions (and the loss); default: the embedded run")
    p.add_argument("--frame", type=int, help="start frame of --data (default: the first after 20%% equilibration)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                   "(default: a local cluster, one worker process per core, on 127.0.0.1)")
    p.add_argument("--workers", type=int, help="local cluster size (default: one per core)")
    p.add_argument("--out", required=True, help="output folder; running into it again resumes the sweep")
    p.set_defaults(func=_sweep)
