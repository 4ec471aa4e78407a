"""Contact probes: DFT labels where the training run never goes, two molecules pushed together; and
CP2K single points of any configurations (:func:`label_frames`), e.g. the frames before a run failed.

A loss fitted to a liquid trajectory knows nothing below the closest contacts the trajectory visits,
and a quadratic loss (4.5) can fall without bound there (README, "Beyond the paper": the shared
many-body loss's O-O well).  A contact probe is a frame of the training run in which one molecule is
translated rigidly along the axis of an intermolecular a-b pair (atoms ``i``, ``j``) until the pair is
``distance`` apart; every other atom stays.  CP2K labels the probes (forces, energy) with the
training run's electronic structure, and the fit (``mld fit --extra``) adds them to the training rows.

Molecules are found geometrically: every hydrogen belongs to the nearest other atom (for water, its
oxygen).  Units: angstrom, eV, eV/angstrom.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from agents.geometry import displacement, minimum_image, nearest_atoms
from learning.cp2k.inputs import MDSettings, md_input, write_input
from learning.cp2k.reader import Trajectory, default_data_path, read_trajectory
from learning.cp2k.run import run_cp2k
from learning.labelled import concatenate, read_labelled, write_labelled

#: The probes shipped with the project, single points of the embedded h2o-32 run (README, "Contact probes"):
#: 16 for training (the closest O-O pair of frames 150-450 pushed to 2.25-1.6 angstrom) ...
EMBEDDED = default_data_path().parent / "probes"
#: ... and 16 held out (two pairs each of frames 200 and 400, pushed to 2.1-1.5 angstrom).
EMBEDDED_HELD_OUT = default_data_path().parent / "probes-held-out"
#: Round 1 of active learning on the embedded run: the training pairs pushed on to 1.45 angstrom
#: (``probes-1.45``) and CP2K labels of the last frames of a learned run that failed (``failure-frames``).
EMBEDDED_ACTIVE_LEARNING = default_data_path().parent / "active-learning"
#: The project name of every probe's CP2K run; its wavefunction file seeds the next probe's SCF.
PROJECT = "probe"
#: Default probe distances (angstrom): from just below the closest O-O contact of liquid water
#: (about 2.4) to where the learned losses' well is deepest in the 100 ps runs (1.6).
DISTANCES = (2.25, 2.0, 1.8, 1.6)


def molecule_of(positions, box: float, symbols) -> np.ndarray:
    """(N,) the molecule of every atom: the index of its heavy atom (every H joins the nearest non-H atom)."""
    symbols = np.asarray(symbols)
    heavy, hydrogens = np.flatnonzero(symbols != "H"), np.flatnonzero(symbols == "H")
    if len(heavy) == 0:
        raise ValueError("molecules need at least one atom that is not H")
    owner = np.arange(len(symbols))
    owner[hydrogens] = nearest_atoms(np.asarray(positions, dtype=float)[None], box, hydrogens, heavy)[0][0]
    return owner


def closest_pairs(positions, box: float, symbols, pair=("O", "O"), count: int = 1) -> list[tuple[int, int, float]]:
    """The ``count`` closest intermolecular pairs (i, j, r) of species ``pair``, closest first, each
    molecule pair once (i < j for a like pair)."""
    positions = np.asarray(positions, dtype=float)
    symbols = np.asarray(symbols)
    owner = molecule_of(positions, box, symbols)
    a, b = (np.flatnonzero(symbols == s) for s in pair)
    if len(a) == 0 or len(b) == 0:
        raise ValueError(f"pair {''.join(pair)}: the frame has no {pair[0] if len(a) == 0 else pair[1]} atom")
    r = np.linalg.norm(minimum_image(positions[b][None] - positions[a][:, None], box), axis=2)
    r[owner[a][:, None] == owner[b][None]] = np.inf
    if pair[0] == pair[1]:
        r[a[:, None] >= b[None]] = np.inf  # each like pair once, as (lower index, higher index)
    found, seen = [], set()
    for flat in np.argsort(r, axis=None):
        i, j = a[flat // len(b)], b[flat % len(b)]
        key = frozenset((owner[i], owner[j]))
        if not np.isfinite(r.flat[flat]) or len(found) == count:
            break
        if key not in seen:
            seen.add(key)
            found.append((int(i), int(j), float(r.flat[flat])))
    return found


def push_together(positions, box: float, symbols, i: int, j: int, distance: float) -> np.ndarray:
    """The frame with atom ``j``'s molecule translated rigidly along the i -> j axis (minimum image)
    so that r_ij = ``distance``; every other atom unchanged."""
    positions = np.asarray(positions, dtype=float)
    if not distance > 0:
        raise ValueError(f"probe distance must be positive (angstrom), got {distance}")
    owner = molecule_of(positions, box, symbols)
    if owner[i] == owner[j]:
        raise ValueError(f"atoms {i} and {j} are in the same molecule; a probe pushes two molecules together")
    axis = displacement(positions[i], positions[j], box)
    r = np.linalg.norm(axis)
    moved = positions.copy()
    moved[owner == owner[j]] += (distance - r) * axis / r
    return moved


@dataclass(frozen=True)
class ContactProbe:
    """One probe: frame ``frame`` of the source run with atoms ``i``, ``j`` (r0 apart there) pushed to
    ``distance``; ``positions`` (N, 3) angstrom."""

    frame: int
    i: int
    j: int
    r0: float
    distance: float
    positions: np.ndarray

    @property
    def name(self) -> str:
        return f"frame{self.frame}-{self.i}-{self.j}-{self.distance:.3f}"


def contact_probes(trajectory: Trajectory, frames, distances=DISTANCES, pair=("O", "O"),
                   per_frame: int = 1) -> list[ContactProbe]:
    """Probes of the ``per_frame`` closest ``pair`` contacts of each of ``frames``, at every distance."""
    probes = []
    for frame in frames:
        if not -len(trajectory) <= frame < len(trajectory):
            raise ValueError(f"probe frame {frame} is outside {trajectory.source}'s {len(trajectory)} frames")
        positions = trajectory.positions[frame]
        for i, j, r0 in closest_pairs(positions, trajectory.box, trajectory.symbols, pair, per_frame):
            for d in distances:
                moved = push_together(positions, trajectory.box, trajectory.symbols, i, j, d)
                probes.append(ContactProbe(int(frame) % len(trajectory), i, j, r0, float(d), moved))
    return probes


def label_frames(frames, symbols, box: float, out, settings: MDSettings | None = None, overrides=(),
                 threads: int = 2, exe: str | None = None, progress: bool = True) -> Trajectory:
    """Forces and energies of any configurations from CP2K, one single point (an MD run of 0 steps) each.

    Args:
        frames: ``(name, positions (N, 3) angstrom)`` pairs; configuration ``name`` runs in ``out/<name>/``.
        symbols, box: the atoms and the cubic box side (angstrom) of every configuration.
        settings: the electronic structure, which must be the training run's (default: the ``dzvp`` preset
            of the embedded h2o-32 run); steps, project and ensemble are set here.

    A configuration whose folder already holds its frame is read, not rerun, so an interrupted
    labelling continues where it stopped (a folder holding anything else, such as a single point cut
    off mid-SCF, is cleared and run again).  Each run starts its SCF from the previous one's wavefunction.

    Returns:
        the configurations as one labelled :class:`Trajectory` (frame f = configuration f; steps are
        indices, times NaN).
    """
    settings = replace(settings or MDSettings(preset="dzvp"), project=PROJECT, steps=0, ensemble="NVE")
    out = Path(out)
    labelled, previous = [], None
    for name, positions in tqdm(list(frames), desc="CP2K single points", disable=not progress):
        run_dir = out / name
        if not _finished(run_dir, positions):
            if run_dir.exists():
                shutil.rmtree(run_dir)
            write_input(md_input(symbols, positions, box, np.zeros_like(positions), settings, overrides),
                        run_dir / f"{PROJECT}.inp")
            if previous is not None and (previous / f"{PROJECT}-RESTART.wfn").exists():
                shutil.copy(previous / f"{PROJECT}-RESTART.wfn", run_dir)
            run_cp2k(run_dir, threads=threads, exe=exe, progress=False)
        labelled.append(read_trajectory(run_dir))
        previous = run_dir
    return concatenate(labelled, str(out))


def label_probes(probes, run: Trajectory, out, settings: MDSettings | None = None, overrides=(),
                 threads: int = 2, exe: str | None = None, source: str | None = None,
                 progress: bool = True) -> Trajectory:
    """:func:`label_frames` of contact probes of ``run``, each in ``out/<probe name>/``.

    ``source`` is the path of ``run`` as :func:`read_probes` will find it again (None: the embedded run).

    Returns:
        the labelled probes (frame f = probe f), also written to ``out/probes.extxyz``, with the table of
        the probes (``out/probes.csv``) and the source run and settings (``out/probes.json``).
    """
    settings = settings or MDSettings(preset="dzvp")
    trajectory = label_frames([(p.name, p.positions) for p in probes], run.symbols, run.box, out, settings,
                              overrides, threads, exe, progress)
    out = Path(out)
    write_labelled(trajectory, out / "probes.extxyz")
    _write_table(probes, trajectory, out / "probes.csv")
    (out / "probes.json").write_text(json.dumps(
        {"source": source, "preset": settings.preset, "overrides": list(overrides), "count": len(probes)}, indent=1))
    return trajectory


def read_probes(folder) -> tuple[Trajectory, pd.DataFrame, Trajectory]:
    """The labelled probes (``probes.extxyz``, or ``.extxyz.xz``), their table and their source run, from
    a folder that :func:`label_probes` wrote (or the embedded :data:`EMBEDDED`)."""
    folder = Path(folder)
    found = [folder / name for name in ("probes.extxyz", "probes.extxyz.xz") if (folder / name).exists()]
    for needed in ("probes.csv", "probes.json"):
        if not (folder / needed).exists():
            raise ValueError(f"{folder}: no {needed}; write the probes with `mld cp2k probes --out {folder}`")
    if not found:
        raise ValueError(f"{folder}: no probes.extxyz (or .xz)")
    table = pd.read_csv(folder / "probes.csv")
    source = json.loads((folder / "probes.json").read_text())["source"]
    probes = read_labelled(found[0])
    if len(probes) != len(table):
        raise ValueError(f"{found[0]}: {len(probes)} frames, but {folder / 'probes.csv'} lists {len(table)} probes")
    return probes, table, read_trajectory(source)


def _finished(run_dir: Path, positions) -> bool:
    """Whether ``run_dir`` holds the single point of ``positions`` (CP2K prints 10 decimals)."""
    try:
        done = read_trajectory(run_dir)
    except (ValueError, OSError):
        return False
    return len(done) == 1 and bool(np.allclose(done.positions[0], positions, rtol=0, atol=1e-6))


def _write_table(probes, trajectory: Trajectory, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["probe", "frame", "i", "j", "r0_A", "distance_A", "energy_eV", "max_force_eV_per_A"])
        for n, probe in enumerate(probes):
            writer.writerow([n, probe.frame, probe.i, probe.j, f"{probe.r0:.6f}", f"{probe.distance:.6f}",
                             repr(float(trajectory.potential_energy[n])),
                             f"{np.abs(trajectory.forces[n]).max():.6f}"])
