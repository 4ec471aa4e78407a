"""``mld analyze``: the water observables of any trajectory, beside a reference run's."""

from __future__ import annotations

import json

from experiments.cli.options import positive_float, writable_directory
from experiments.observables import analyze


def _analyze(args) -> int:
    out = writable_directory(args.out)
    summary = analyze(args.trajectory, args.reference, out, progress=not args.no_progress, dt_fs=args.dt)
    rows = summary["comparison"]
    print(json.dumps({"out": str(out), "observables": summary["trajectory"]["summary"],
                      "comparison": {row["observable"]: row["status"] for row in rows}}, indent=1))
    return 0


def register(subparsers, common) -> None:
    p = subparsers.add_parser(
        "analyze", parents=[common],
        help="g(r), angles, bonds, VDOS, MSD, temperatures per species, drift, closest pair of a trajectory",
    )
    p.add_argument("trajectory", metavar="TRAJ",
                   help="a CP2K run (folder or .inp), mld's trajectory.xyz, or any ASE-readable file with a cell")
    p.add_argument("--reference", metavar="RUN", help="a run to compare with (e.g. the CP2K run), same formats")
    p.add_argument("--dt", type=positive_float, help="fs between frames, for files that do not say (default: the file's)")
    p.add_argument("--out", default="mld-analyze", help="output directory (default: mld-analyze)")
    p.set_defaults(func=_analyze)
