"""``mld fit``, ``mld select``, ``mld evaluate``, ``mld contacts`` and ``mld convert``: learning the agent losses from labelled
data (a CP2K run, the native path, or any trajectory with forces that ASE reads)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from agents.loss_file import load_losses
from agents.validation import count
from experiments.beyond import VARIANTS, fit_variant
from experiments.cli.options import non_negative_float, positive_float, writable_directory
from experiments.contact_check import contact_check
from experiments.descriptor_selection import DescriptorSelectionExperiment
from experiments.feature_selection import FeatureSelectionExperiment
from experiments.outputs import plain
from learning.contact_probes import EMBEDDED_HELD_OUT
from learning.cp2k.reader import portable_path
from learning.labelled import concatenate, read_labelled, write_labelled
from learning.fitting import DEFAULT_CUTOFF, INVARIANTS, PRESETS, learn
from learning.regression import ORDERS
from learning.scoring import relative_force_rmse
from learning.descriptor_selection import DEFAULT_TOLERANCE
from learning.selection import DEFAULT_RIDGE

#: Weight functions kept per species by the paper's selection (Sec. 5.2).
PAPER_KEEP = 7


def evaluate_losses(losses, trajectory) -> dict:
    """Relative RMSE (5.2) of the forces predicted by ``losses`` (either kind) on every frame, per species."""
    losses.check_species(trajectory.symbols, "--loss")
    return relative_force_rmse(losses, trajectory)


def _fit(args) -> int:
    out = Path(args.out)
    if not out.parent.exists():
        raise ValueError(f"--out {out}: the directory {out.parent} does not exist")
    stride = count("--stride", args.stride)
    trajectory = read_labelled(args.data, args.dt)
    if args.variant is not None:
        given = [name for name, value in (("--form", args.form), ("--invariants", args.invariants),
                                          ("--cutoff", args.cutoff), ("--order", args.order),
                                          ("--ridge", args.ridge), ("--extra", args.extra)) if value not in (None, [])]
        if given or args.energy_weight:
            raise ValueError(f"--variant {args.variant} sets the form, invariants, cutoff and extra data of the "
                             f"fit itself; leave out {', '.join(given) or '--energy-weight'}")
        losses = fit_variant(trajectory, args.variant, stride, progress=not args.no_progress)
    else:
        extra = None if not args.extra else concatenate([read_labelled(path) for path in args.extra],
                                                        ",".join(portable_path(path) for path in args.extra))
        losses = learn(trajectory.frames(slice(None, None, stride)), args.form or "own", args.invariants or "auto",
                       args.order or "quadratic", args.cutoff, args.ridge, args.energy_weight, extra,
                       progress=not args.no_progress)
    losses.save(out)
    printed = {"out": str(out), "metrics": losses.provenance["metrics"]}
    if "energy_rmse" in losses.provenance:
        printed.update({k: losses.provenance[k] for k in ("energy_weight", "energy_rmse")})
    print(json.dumps(printed, indent=1))
    return 0


def _select(args) -> int:
    descriptors = args.invariants is not None or args.form == "shared" or args.cutoff is not None
    if descriptors:
        return _select_descriptors(args)
    if args.tolerance is not None or args.energy_weight:
        raise ValueError("--tolerance and --energy-weight apply to descriptor selection (give --invariants)")
    experiment = FeatureSelectionExperiment(trajectory=read_labelled(args.data, args.dt), data=args.data,
                                            n_keep=PAPER_KEEP if args.keep is None else args.keep,
                                            order=args.order, ridge=DEFAULT_RIDGE if args.ridge is None else args.ridge,
                                            progress=not args.no_progress)
    experiment.save(args.out)
    summary = experiment.results.summary
    print(json.dumps(plain({k: summary[k] for k in ("selected", "table1", "wall_time_s")}), indent=1))
    return 0


def _select_descriptors(args) -> int:
    if args.invariants is None or args.invariants == "auto":
        raise ValueError(f"descriptor selection (--form shared or --cutoff) needs --invariants: {', '.join(PRESETS)}, "
                         "paper or names of descriptors")
    if args.ridge is not None:
        raise ValueError("--ridge: descriptor selection chooses the ridge on the validation split")
    if args.energy_weight and args.form != "shared":
        raise ValueError(f"--energy-weight {args.energy_weight} needs --form shared: only the shared loss "
                         "E = sum_i H_i is a potential energy")
    out = writable_directory(args.out)
    experiment = DescriptorSelectionExperiment(
        trajectory=read_labelled(args.data, args.dt), data=args.data, invariants=args.invariants,
        form=args.form or "own", cutoff=args.cutoff, order=args.order, n_keep=args.keep,
        tolerance=DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance,
        energy_weight=args.energy_weight, progress=not args.no_progress)
    experiment.save(out)
    summary = experiment.results.summary
    print(json.dumps(plain({k: summary[k] for k in ("candidates", "selected_count", "relative_rmse", "select_s")}),
                     indent=1))
    return 0


def evaluation_warnings(losses, trajectory, rmse: dict) -> list[str]:
    """Why a score cannot be trusted: a relative RMSE above 1 (worse than predicting zero force), and a
    loss used outside the box it was learned in."""
    notes = []
    box = None if losses.domain.get("cutoff_A") is not None else losses.domain.get("box_A")
    other_box = box is not None and abs(float(box) - trajectory.box) > 1e-6 * float(box)
    where = (f"; the loss was learned in a {float(box):.6g} angstrom box, this run's box is {trajectory.box:.6g} "
             "angstrom, where its invariants mean something else") if other_box else ""
    for s, value in rmse.items():
        if value > 1:
            notes.append(f"the relative RMSE of {s} is {value:.4g} (> 1: worse than predicting zero force){where}")
    if other_box and not notes:
        notes.append(where[2:])
    return notes


def _evaluate(args) -> int:
    losses = load_losses(args.loss)
    trajectory = read_labelled(args.data, args.dt)
    rmse = evaluate_losses(losses, trajectory)
    notes = evaluation_warnings(losses, trajectory, rmse)
    for note in notes:
        warnings.warn(note, stacklevel=1)
    print(json.dumps({"data": str(args.data), "relative_rmse": rmse, "warnings": notes}, indent=1))
    return 0


def _contacts(args) -> int:
    losses = {}
    for text in args.loss:
        name, eq, path = text.rpartition("=")
        if not eq or not name:
            name, path = Path(text).stem, text
        if name in losses:
            raise ValueError(f"--loss {text}: the name {name!r} is given twice (use NAME=PATH)")
        losses[name] = load_losses(path)
    out = writable_directory(args.out)
    results = contact_check(losses, args.probes or EMBEDDED_HELD_OUT)
    results.save(out)
    print(json.dumps(plain(results.summary), indent=1))
    return 0


def _convert(args) -> int:
    if args.every < 1:
        raise ValueError(f"--every must be a positive integer, got {args.every}")
    trajectory = read_labelled(args.data, args.dt).frames(slice(None, None, args.every))
    path = write_labelled(trajectory, args.out)
    print(json.dumps({"data": portable_path(trajectory.source), "out": str(path), "frames": len(trajectory)}))
    return 0


def _data_options(parser) -> None:
    """``--data`` and ``--dt``: where the labelled trajectory comes from."""
    parser.add_argument("--data", help="labelled data: a CP2K run (directory or input file), or any trajectory "
                        "with forces that ASE reads (extended XYZ, .traj, other DFT codes' outputs); "
                        "default: the embedded h2o-32 CP2K run")
    parser.add_argument("--dt", type=positive_float,
                        help="fs between frames of ASE-read data whose frames have no time_fs (not for CP2K runs)")


def _energy_option(parser) -> None:
    """``--energy-weight``: CP2K's potential energies as extra targets of the shared loss."""
    parser.add_argument("--energy-weight", type=non_negative_float, default=0.0,
                        help="shared form: weight W of the potential-energy rows (one per frame, centred over the "
                             "training frames; W = 1 weighs them as much as all force rows together); default 0: "
                             "forces only")


def register(subparsers, common) -> None:
    p = subparsers.add_parser("fit", parents=[common], help="learn the agent losses (eq. 5.1) and save them as JSON")
    _data_options(p)
    p.add_argument("--variant", choices=list(VARIANTS),
                   help="fit a named variant of `mld beyond` (form, invariants, cutoff and embedded extra data), "
                        "e.g. shared/many-body-l2+active, the default loss of large boxes; `mld beyond` fits them "
                        "with --stride 4")
    p.add_argument("--stride", type=int, default=1,
                   help="learn from every N-th frame of the data (default 1: all; the splits are taken after it)")
    p.add_argument("--form", choices=["own", "shared"], default=None,
                   help="own: each agent descends its own loss (the paper, the default); shared: every agent "
                        "descends the sum of all losses (conservative: Newton's third law, energy)")
    p.add_argument("--invariants", default=None,
                   help=f"one of {', '.join(INVARIANTS)}, or NAME,NAME,... (weight functions, or descriptors such "
                        "as O:gauss(s=2,rc=4.5) and OH:angle(eta=0.3,zeta=2,lambda=+1,rc=3.5)); default auto: "
                        "backward elimination to 7 per species (own form, no cutoff)")
    p.add_argument("--cutoff", type=positive_float,
                   help=f"cutoff r_c (angstrom) of the invariants: makes a descriptor loss valid in any box >= 2 r_c "
                        f"(default: none for the paper's own form, {DEFAULT_CUTOFF} otherwise)")
    p.add_argument("--order", choices=ORDERS, default=None, help="default: quadratic")
    p.add_argument("--ridge", type=float, default=None,
                   help=f"ridge penalty (default: {DEFAULT_RIDGE} for the paper's losses on the column-scaled "
                        "problem; for descriptor losses chosen on the validation split)")
    _energy_option(p)
    p.add_argument("--extra", metavar="PATH", action="append", default=[],
                   help="labelled frames added to the training rows, e.g. the probes.extxyz of `mld cp2k probes` "
                        "(same electronic structure as --data; descriptor losses; repeatable)")
    p.add_argument("--out", required=True, help="the loss JSON to write")
    p.set_defaults(func=_fit)

    p = subparsers.add_parser("select", parents=[common],
                              help="backward elimination: over the 18 weight functions per species (Fig. 2, "
                                   "Table 1), or with --invariants over a union of descriptors (own or shared form)")
    _data_options(p)
    p.add_argument("--invariants", default=None,
                   help="candidates for descriptor selection: many-body (radial + angular: many-body-l2 in the shared "
                        "form, many-body-sharp in the own form), many-body-l2 (zeta <= 2), many-body-sharp (zeta up to "
                        "16), paper (the 18 cut at --cutoff) or NAME,NAME,...; default: the paper's selection (own form, minimum image)")
    p.add_argument("--form", choices=["own", "shared"], default=None,
                   help="form of the descriptor losses (default own; shared implies descriptor selection)")
    p.add_argument("--cutoff", type=positive_float,
                   help=f"cutoff r_c (angstrom) of the descriptors (default {DEFAULT_CUTOFF})")
    p.add_argument("--keep", type=int, default=None,
                   help=f"invariants kept (the paper's selection: per species, default {PAPER_KEEP}; descriptor "
                        "selection: in all, default the --tolerance rule)")
    p.add_argument("--tolerance", type=non_negative_float, default=None,
                   help="descriptor selection: keep the smallest set whose validation RMSE (mean over species) is "
                        f"within this fraction of the best (default {DEFAULT_TOLERANCE})")
    p.add_argument("--order", choices=ORDERS, default="quadratic", help="default: quadratic")
    p.add_argument("--ridge", type=float, default=None,
                   help=f"the paper's selection: ridge on the column-scaled problem (default {DEFAULT_RIDGE}); "
                        "descriptor selection chooses it on validation")
    _energy_option(p)
    p.add_argument("--out", required=True, help="output directory")
    p.set_defaults(func=_select)

    p = subparsers.add_parser("evaluate", help="relative RMSE (5.2) of a loss file on every frame of labelled data")
    p.add_argument("--loss", required=True)
    _data_options(p)
    p.set_defaults(func=_evaluate)

    p = subparsers.add_parser("contacts", help="learned losses against CP2K contact probes (two molecules pushed "
                              "together): energies relative to the unmoved frame, force RMSE, a figure")
    p.add_argument("--loss", action="append", required=True, metavar="[NAME=]PATH",
                   help="a loss JSON, optionally named (repeatable)")
    p.add_argument("--probes", metavar="DIR", help="a folder of `mld cp2k probes` (default: the embedded held-out probes, "
                   "learning/data/h2o-32/probes-held-out)")
    p.add_argument("--out", default="mld-contacts", help="output directory: contacts.csv, contacts.png, summary.json")
    p.set_defaults(func=_contacts)

    p = subparsers.add_parser("convert", help="write labelled data as extended XYZ with forces (full precision), "
                              "or any format ASE writes (by the suffix of --out)")
    _data_options(p)
    p.add_argument("--every", type=int, default=1, help="keep every N-th frame (default 1)")
    p.add_argument("--out", required=True, help="the file to write (.xyz/.extxyz, .traj, ...)")
    p.set_defaults(func=_convert)
