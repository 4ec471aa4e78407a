"""``mld beyond``: own vs shared losses and radial vs many-body invariants against CP2K (see :mod:`experiments.beyond`);
``mld beyond --tile N``: one loss in the CP2K box and in its N^3 tiling (see :mod:`experiments.tiling`)."""

from __future__ import annotations

import json
import tempfile

from experiments.beyond import VARIANTS, FormComparisonConfig, FormComparisonExperiment
from experiments.cli.options import writable_directory
from experiments.outputs import publish
from experiments.tiling import DEFAULT_VARIANT, TiledBoxExperiment


def _experiment(args):
    """The comparison of variants, or with ``--tile`` the tiled-box experiment; options that do not apply are errors."""
    common = {"data": args.data, "steps": args.steps, "stride": args.stride, "every": args.every,
              "start_frame": args.start_frame, "progress": not args.no_progress}
    if args.tile is None:
        if args.loss is not None:
            raise ValueError("--loss applies only with --tile (the variants are fitted)")
        variants = None if args.variants is None else tuple(v.strip() for v in args.variants.split(",") if v.strip())
        nve_steps = FormComparisonConfig.nve_steps if args.nve_steps is None else args.nve_steps
        return FormComparisonExperiment(variants=variants, nve_steps=nve_steps, **common), "variants"
    for option, value in (("--variants", args.variants), ("--nve-steps", args.nve_steps)):
        if value is not None:
            raise ValueError(f"{option} does not apply with --tile (one loss, NVT only)")
    return TiledBoxExperiment(tile=args.tile, loss=args.loss, **common), "tiling"


def _beyond(args) -> int:
    out = writable_directory(args.out)
    experiment, table = _experiment(args)
    with tempfile.TemporaryDirectory(dir=out) as staging:
        experiment.save(staging)
        publish(staging, out)
    print(json.dumps({"out": str(out), "table": experiment.results.tables[table].to_dict("records")}, indent=1))
    return 0


def register(subparsers, common) -> None:
    defaults = FormComparisonConfig()
    p = subparsers.add_parser("beyond", parents=[common],
                              help="own vs shared, radial vs many-body losses: fit, NVT/NVE runs, water observables vs CP2K")
    p.add_argument("--data", default=None, help="CP2K run (directory or input file; default: the embedded run)")
    p.add_argument("--variants", default=None, help=f"comma-separated, of: {', '.join(VARIANTS)} (default: all that apply; the +probes and +active "
                        "ones only to the embedded run's system)")
    p.add_argument("--steps", type=int, default=defaults.steps, help="NVT steps of 0.5 fs per variant (or per box)")
    p.add_argument("--stride", type=int, default=defaults.stride, help="fit on every STRIDE-th frame")
    p.add_argument("--every", type=int, default=defaults.every, help="collect the NVT run every EVERY steps")
    p.add_argument("--start-frame", type=int, default=None, metavar="F",
                   help=f"the CP2K frame the runs start from (default: the first after {defaults.equilibration:.0%}% "
                        "equilibration)")
    p.add_argument("--nve-steps", type=int, default=None,
                   help=f"NVE steps for the drift / heating rate (default: {defaults.nve_steps})")
    p.add_argument("--tile", type=int, default=None, metavar="N",
                   help="instead of the variants: run one loss in the CP2K box and in its N x N x N tiling "
                        "(N^3 times the atoms) and compare the observables (experiments/tiling.py)")
    p.add_argument("--loss", default=None, metavar="FILE",
                   help=f"with --tile: the loss file to run (default: fit {DEFAULT_VARIANT} as the variants are)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=_beyond)
