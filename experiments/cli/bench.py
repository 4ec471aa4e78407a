"""``mld bench``: time the learned-loss simulation and print JSON (see :mod:`experiments.bench`)."""

from __future__ import annotations

import json

from environment.forces import SERIAL_BELOW_ATOMS
from experiments.bench import run_benchmark


def _bench(args) -> int:
    sizes = [n for n in str(args.waters).split(",") if n.strip()]
    modes = [m.strip() for m in str(args.modes).split(",") if m.strip()]
    print(json.dumps(run_benchmark(sizes, modes, args.steps, args.cutoff, args.engine, args.threads, args.invariants,
                                   args.form), indent=1))
    return 0


def register(subparsers, common) -> None:
    p = subparsers.add_parser("bench", help="time the learned-loss simulation (prints JSON)")
    p.add_argument("--waters", default="32,128", help="comma-separated numbers of water molecules")
    p.add_argument("--steps", type=int, default=1000, help="timed steps per size (fewer for large systems)")
    p.add_argument("--modes", default="minimum-image", help="comma-separated: minimum-image, cutoff")
    p.add_argument("--cutoff", type=float, default=6.0, help="cutoff radius (angstrom) of the cutoff mode")
    p.add_argument("--engine", choices=["numba", "numpy"], default="numba")
    p.add_argument("--threads", type=int, default=None,
                   help=f"numba threads (default: 1 below {SERIAL_BELOW_ATOMS} atoms, else all cores; each row says how many it used)")
    p.add_argument("--invariants", choices=["paper", "many-body"], default="paper",
                   help="paper: the paper's 7 weight functions per species (default); many-body: the many-body preset")
    p.add_argument("--form", choices=["own", "shared"], default="own",
                   help="own (default; the only form of the paper's losses) or shared (many-body only)")
    p.set_defaults(func=_bench)
