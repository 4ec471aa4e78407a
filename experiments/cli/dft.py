"""``mld cp2k input`` (write a CP2K MD input), ``mld cp2k run`` (run it, continue it), ``mld cp2k probes``
(single points of molecules pushed together) and ``mld cp2k label`` (single points of any frames): DFT
training data."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from agents.descriptors import species_symbols
from experiments.cli.options import path_and_frame
from experiments.observables import read_any_trajectory
from learning.contact_probes import DISTANCES, contact_probes, label_frames, label_probes
from learning.cp2k.reader import read_trajectory
from learning.cp2k.inputs import PRESETS, MDSettings, frame_input, water_input, write_input
from learning.cp2k.run import CP2KError, run_cp2k
from learning.labelled import write_labelled


def register(subparsers, common) -> None:
    parser = subparsers.add_parser("cp2k", help="write and run CP2K ab initio MD (training data)")
    commands = parser.add_subparsers(dest="cp2k_command", required=True)

    make = commands.add_parser("input", help="write a CP2K MD input file")
    start = make.add_mutually_exclusive_group(required=True)
    start.add_argument("--waters", type=int, metavar="N", help="a fresh box of N water molecules")
    start.add_argument("--from", dest="source", metavar="PATH[:FRAME]",
                       help="frame FRAME (an index, default -1: the last) of a CP2K run (folder or .inp), "
                       "with its velocities")
    make.add_argument("--density", type=float, default=0.997, help="water density, g/cm^3 (--waters)")
    make.add_argument("--preset", choices=list(PRESETS), default="paper",
                      help="electronic structure: paper (TZV2P-GTH, 280 Ry), dzvp, szv, xtb (GFN1-xTB)")
    defaults = MDSettings()
    make.add_argument("--steps", type=int, default=defaults.steps, help=f"MD steps (default {defaults.steps})")
    make.add_argument("--timestep", type=float, default=defaults.timestep_fs, help="fs")
    make.add_argument("--temperature", type=float, default=defaults.temperature_K,
                      help="K: initial velocities of --waters; target of NVT")
    make.add_argument("--ensemble", default=defaults.ensemble, help="CP2K MD ensemble (NVE, NVT, ...)")
    make.add_argument("--basis", help="basis set name (default: the preset's)")
    make.add_argument("--cutoff", type=float, help="plane-wave CUTOFF, Ry (default: the preset's)")
    make.add_argument("--rel-cutoff", type=float, help="REL_CUTOFF, Ry (default: the preset's)")
    make.add_argument("--project", default=defaults.project, help="CP2K project name (output file prefix)")
    make.add_argument("--seed", type=int, help="seed of the water box and of CP2K")
    make.add_argument("--print-every", type=int, default=defaults.print_every, help="output every N steps")
    make.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION/KEY=VALUE",
                      help="set any CP2K keyword, e.g. FORCE_EVAL/DFT/SCF/EPS_SCF=1e-6 (repeatable)")
    make.add_argument("--out", required=True, help="the input file to write (its folder is the run folder)")
    make.set_defaults(func=write_command)

    run = commands.add_parser("run", help="run CP2K on an input (or its folder) and read the trajectory")
    run.add_argument("path", metavar="INPUT_OR_DIR")
    run.add_argument("--restart", action="store_true", help="continue from the run's .restart file")
    run.add_argument("--steps", type=int,
                     help="steps to add when continuing (default: up to the input's STEPS)")
    run.add_argument("--exe", help="CP2K executable (default: cp2k.psmp or cp2k on PATH)")
    run.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS (default 2)")
    run.set_defaults(func=run_command)

    probes = commands.add_parser(
        "probes", parents=[common], help="contact probes: frames of a CP2K run with two molecules pushed together, "
                                         "labelled by CP2K single points (extra training data for `mld fit --extra`)")
    probes.add_argument("--from", dest="source", metavar="PATH", help="the CP2K run (folder or .inp; default: the "
                        "embedded h2o-32 run)")
    probes.add_argument("--frames", required=True, metavar="F,F,...", help="frame indices of the run to start from")
    probes.add_argument("--distances", default=",".join(f"{d:g}" for d in DISTANCES), metavar="R,R,...",
                        help="pair distances to push to, angstrom (default %(default)s)")
    probes.add_argument("--pair", default="OO", help="species of the pushed pair, e.g. OO or OH (default OO)")
    probes.add_argument("--per-frame", type=int, default=1, help="closest pairs probed per frame (default 1)")
    _single_point_options(probes)
    probes.add_argument("--out", required=True, help="folder of the runs, probes.extxyz and probes.csv; probes "
                        "already labelled there are read, not rerun")
    probes.set_defaults(func=probes_command)

    label = commands.add_parser(
        "label", parents=[common], help="CP2K single points of frames of any trajectory (e.g. the frames before a "
                                        "learned run failed), as extra training data for `mld fit --extra`")
    label.add_argument("trajectory", metavar="TRAJ", help="mld's trajectory.xyz or last_good_frame.xyz, a CP2K run, "
                       "or any ASE-readable file with a cubic cell")
    label.add_argument("--frames", default="-1", metavar="F,F,...",
                       help="frame indices (default -1: the last; negative ones count from the end: --frames=-3,-2,-1)")
    _single_point_options(label)
    label.add_argument("--out", required=True, help="folder of the runs and of labelled.extxyz; frames already "
                       "labelled there are read, not rerun")
    label.set_defaults(func=label_command)


def _single_point_options(parser) -> None:
    """``--preset``, ``--set``, ``--exe``, ``--threads``: how CP2K computes single points."""
    parser.add_argument("--preset", choices=list(PRESETS), default="dzvp",
                        help="electronic structure, the training run's (default dzvp: the embedded run's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION/KEY=VALUE",
                        help="set any CP2K keyword of the single points (repeatable)")
    parser.add_argument("--exe", help="CP2K executable (default: cp2k.psmp or cp2k on PATH)")
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS (default 2)")


def write_command(args: argparse.Namespace) -> int:
    settings = MDSettings(
        preset=args.preset, project=args.project, steps=args.steps, timestep_fs=args.timestep,
        temperature_K=args.temperature, ensemble=args.ensemble, basis=args.basis, cutoff_Ry=args.cutoff,
        rel_cutoff_Ry=args.rel_cutoff, seed=args.seed, print_every=args.print_every,
    )
    if args.waters is not None:
        section = water_input(args.waters, settings, args.density, args.overrides)
    else:
        path, frame = path_and_frame(args.source)
        section = frame_input(read_trajectory(path), -1 if frame is None else frame, settings, args.overrides)
    print(f"wrote {write_input(section, args.out)}")
    return 0


def run_command(args: argparse.Namespace) -> int:
    try:
        trajectory = run_cp2k(
            args.path, restart=args.restart, steps=args.steps, exe=args.exe, threads=args.threads
        )
    except CP2KError as err:
        raise ValueError(str(err)) from err
    steps = trajectory.steps
    print(
        f"{trajectory.source}: {len(steps)} frames, steps {steps[0]}-{steps[-1]}, {trajectory.n_atoms} atoms, "
        f"{np.nanmean(trajectory.used_time[1:]):.3g} s per step"
    )
    return 0


def _numbers(text: str, kind, option: str) -> list:
    try:
        values = [kind(word) for word in text.split(",") if word.strip()]
    except ValueError:
        raise ValueError(f"{option}: expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise ValueError(f"{option}: expected comma-separated numbers, got {text!r}")
    return values


def probes_command(args: argparse.Namespace) -> int:
    trajectory = read_trajectory(args.source)
    pair = species_symbols(args.pair)
    if len(pair) != 2:
        raise ValueError(f"--pair: expected two species such as OO or OH, got {args.pair!r}")
    probes = contact_probes(trajectory, _numbers(args.frames, int, "--frames"),
                            _numbers(args.distances, float, "--distances"), tuple(pair), args.per_frame)
    try:
        labelled = label_probes(probes, trajectory, args.out, MDSettings(preset=args.preset), args.overrides,
                                threads=args.threads, exe=args.exe,
                                source=None if args.source is None else str(Path(args.source).resolve()),
                                progress=not args.no_progress)
    except CP2KError as err:
        raise ValueError(str(err)) from err
    print(f"{args.out}: {len(labelled)} probes labelled by CP2K (probes.extxyz, probes.csv)")
    return 0


def label_command(args: argparse.Namespace) -> int:
    data = read_any_trajectory(args.trajectory)
    frames = []
    for index in _numbers(args.frames, int, "--frames"):
        if not -data.n_frames <= index < data.n_frames:
            raise ValueError(f"--frames: {index} is outside the {data.n_frames} frames of {args.trajectory}")
        frames.append((f"frame{index % data.n_frames}", data.positions[index]))
    try:
        labelled = label_frames(frames, data.symbols, data.box, args.out, MDSettings(preset=args.preset),
                                args.overrides, threads=args.threads, exe=args.exe, progress=not args.no_progress)
    except CP2KError as err:
        raise ValueError(str(err)) from err
    path = write_labelled(labelled, Path(args.out) / "labelled.extxyz")
    print(f"{path}: {len(labelled)} frames of {args.trajectory} labelled by CP2K")
    return 0
