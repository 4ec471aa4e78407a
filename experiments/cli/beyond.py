"""``mld beyond``: own vs shared losses and radial vs many-body invariants against CP2K (see :mod:`experiments.beyond`)."""

from __future__ import annotations

import json
import tempfile

from experiments.beyond import VARIANTS, FormComparisonConfig, FormComparisonExperiment
from experiments.cli.options import writable_directory
from experiments.outputs import publish


def _beyond(args) -> int:
    out = writable_directory(args.out)
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    experiment = FormComparisonExperiment(data=args.data, variants=variants, steps=args.steps, stride=args.stride,
                                          every=args.every, nve_steps=args.nve_steps, progress=not args.no_progress)
    with tempfile.TemporaryDirectory(dir=out) as staging:
        experiment.save(staging)
        publish(staging, out)
    print(json.dumps({"out": str(out), "table": experiment.results.tables["variants"].to_dict("records")}, indent=1))
    return 0


def register(subparsers, common) -> None:
    defaults = FormComparisonConfig()
    p = subparsers.add_parser("beyond", parents=[common],
                              help="own vs shared, radial vs many-body losses: fit, NVT/NVE runs, water observables vs CP2K")
    p.add_argument("--data", default=None, help="CP2K run (directory or input file; default: the embedded run)")
    p.add_argument("--variants", default=",".join(defaults.variants), help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--steps", type=int, default=defaults.steps, help="NVT steps of 0.5 fs per variant")
    p.add_argument("--stride", type=int, default=defaults.stride, help="fit on every STRIDE-th frame")
    p.add_argument("--every", type=int, default=defaults.every, help="collect the NVT run every EVERY steps")
    p.add_argument("--nve-steps", type=int, default=defaults.nve_steps, help="NVE steps for the drift / heating rate")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_beyond)
