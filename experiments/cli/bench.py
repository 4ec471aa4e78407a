"""``mld bench``: time the learned-loss simulation, alone (prints JSON) or against OpenMM (prints a table and
JSON); see :mod:`experiments.bench`."""

from __future__ import annotations

import argparse
import json

import pandas as pd

from environment.forces import SERIAL_BELOW_ATOMS
from experiments.bench import COMPARED, MAX_MINIMUM_IMAGE_WATERS, OPENMM_CUTOFF, SETUPS, compare_openmm, \
    run_benchmark, table
from experiments.cli.options import writable_directory
from experiments.outputs import Results, plain
from learning.fitting import PRESETS


def _names(text) -> list[str]:
    return [name.strip() for name in str(text).split(",") if name.strip()]


def _bench(args) -> int:
    sizes = _names(args.waters)
    out = None if args.out is None else writable_directory(args.out)
    if args.compare == "openmm":
        if args.modes is not None or args.invariants is not None or args.form is not None:
            raise ValueError("--modes, --invariants and --form choose the plain benchmark; with --compare use --setups")
        report = compare_openmm(sizes, _names(args.setups or ",".join(COMPARED)), args.steps, args.blocks,
                                args.cutoff, args.engine, args.threads, args.openmm_cutoff,
                                memory=args.memory is not False)
        print(table(report) + "\n")
    else:
        if args.setups is not None:
            raise ValueError("--setups needs --compare openmm (the plain benchmark uses --modes and --invariants)")
        report = run_benchmark(sizes, _names(args.modes or "minimum-image"), args.steps, args.cutoff, args.engine,
                               args.threads, args.invariants or "paper", args.form or "own", args.blocks,
                               memory=bool(args.memory))
    print(json.dumps(plain(report), indent=1))
    if out is not None:
        rows = pd.DataFrame([{k: v for k, v in row.items() if k != "block_ns_per_atom_step"}
                             for row in report["results"]])
        Results(report, {"bench": rows}).save(out, "bench.json")
    return 0


def register(subparsers, common) -> None:
    p = subparsers.add_parser("bench", help="time the learned-loss simulation, alone or against OpenMM")
    p.add_argument("--waters", default="32,128", help="comma-separated numbers of water molecules")
    p.add_argument("--steps", type=int, default=1000,
                   help="timed steps per set-up and size, run exactly (all pairs at 8192 waters: seconds per step)")
    p.add_argument("--blocks", type=int, default=5,
                   help="alternating blocks the steps are split into (the median block is reported)")
    p.add_argument("--modes", default=None,
                   help=f"comma-separated: minimum-image (all pairs, up to {MAX_MINIMUM_IMAGE_WATERS} waters), "
                        "cutoff (default: minimum-image)")
    p.add_argument("--cutoff", type=float, default=6.0, help="cutoff radius (angstrom) of the cutoff mode")
    p.add_argument("--engine", choices=["numba", "numpy"], default="numba")
    p.add_argument("--threads", type=int, default=None,
                   help=f"threads of mld and OpenMM (default: 1 below {SERIAL_BELOW_ATOMS} atoms, else all cores; "
                        "each row says how many it used)")
    p.add_argument("--invariants", choices=["paper", *PRESETS], default=None,
                   help="paper: the paper's 7 weight functions per species (default); many-body: the many-body set of "
                        "--form (shared: many-body-l2, own: many-body-sharp); many-body-l2: zeta <= 2, through moments; "
                        "many-body-sharp: the prototype's zeta up to 16 (each timed beside the paper's model)")
    p.add_argument("--form", choices=["own", "shared"], default=None,
                   help="own (default; the only form of the paper's losses) or shared (many-body only)")
    p.add_argument("--compare", choices=["openmm"], default=None,
                   help="also run flexible TIP3P-FB water in OpenMM (PME and reaction field) on the same box, in "
                        "alternating blocks, and print ratios (needs the bench extra: pip install -e '.[bench]')")
    p.add_argument("--setups", default=None,
                   help=f"with --compare: comma-separated mld set-ups among {', '.join(SETUPS)} "
                        f"(default: {','.join(COMPARED)})")
    p.add_argument("--openmm-cutoff", type=float, default=OPENMM_CUTOFF,
                   help="OpenMM's non-bonded cutoff (angstrom; half the box where that is smaller)")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                   help="peak memory per atom, one fresh process per set-up and size (default: on with --compare)")
    p.add_argument("--out", default=None, help="also write bench.json and bench.csv into this directory")
    p.set_defaults(func=_bench)
