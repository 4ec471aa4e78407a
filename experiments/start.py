"""Where a run starts (``mld simulate --from``): a CP2K run, this program's own output, or any file
ASE reads that has a cell.

* a CP2K run: its directory, its input file (``.inp``, also ``.xz``/``.gz``), read by
  :mod:`learning.cp2k.reader` (positions and velocities of one frame);
* anything else is read with ``ase.io.read``: this program's extended XYZ (``trajectory.xyz``,
  ``trajectory.xyz.gz``, ``last_good_frame.xyz``: any frame; or the output folder of ``mld simulate``,
  meaning its trajectory), or any format ASE knows (extxyz, CIF,
  POSCAR, ``.traj``, ...).  The cell must be cubic (orthogonal, equal sides) and periodic.  Velocities
  are taken from the file when it has them (ASE's momenta); otherwise they are drawn from
  Maxwell-Boltzmann at the requested temperature (300 K by default) with the run's seed.

``FRAME`` counts from 0; negative counts from the end; none means the last frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.species import species as make_species
from environment.builders import maxwell_boltzmann, water_box
from environment.calculator import cubic_box
from learning.labelled import VELOCITY_ASE_A_PER_FS, read_images
from learning.cp2k.reader import COMPRESSED, read_trajectory


@dataclass
class Start:
    """The initial configuration of a run (angstrom, angstrom/fs)."""

    symbols: list[str]
    positions: np.ndarray
    velocities: np.ndarray
    box: float
    description: str


def is_cp2k_run(path: Path) -> bool:
    """A CP2K run directory or input file (``*.inp``, possibly compressed)."""
    path = Path(path)
    return path.is_dir() or path.name.endswith(tuple(".inp" + s for s in COMPRESSED))


def read_start(source=None, frame=None, waters=None, temperature_K=None, seed=42) -> Start:
    """The start of a run.

    Args:
        source: a CP2K run, or any file with a cell that ASE reads (None: the embedded CP2K run);
            used unless ``waters`` is given.
        frame: the frame of ``source`` (None: its last).
        waters: build a fresh box of this many waters instead (velocities at ``temperature_K``, or 300 K).
        temperature_K: the temperature of drawn velocities (fresh boxes; files without velocities).
        seed: seeds the drawn positions and velocities.
    """
    if waters is not None:
        symbols, positions, velocities, box = water_box(waters, temperature_K=temperature_K or 300.0, seed=seed)
        return Start(list(symbols), positions, velocities, box, f"{waters} waters")
    if source is not None and Path(source).is_dir():
        for name in ("trajectory.xyz", "trajectory.xyz.gz"):  # an mld simulate output folder
            if (Path(source) / name).exists() and not any(Path(source).glob("*.inp*")):
                return _from_ase(Path(source) / name, frame, temperature_K, seed)
    if source is None or is_cp2k_run(Path(source)):
        return _from_cp2k(source, frame)
    return _from_ase(Path(source), frame, temperature_K, seed)


def _from_cp2k(source, frame) -> Start:
    trajectory = read_trajectory(source)
    frame = len(trajectory) - 1 if frame is None else frame
    if not -len(trajectory) <= frame < len(trajectory):
        raise ValueError(f"--from: frame {frame} is past the end of {trajectory.source} ({len(trajectory)} frames)")
    if trajectory.velocities is None:
        raise ValueError(f"--from {trajectory.source}: the run has no velocity file")
    return Start(list(trajectory.symbols), trajectory.positions[frame], trajectory.velocities[frame], trajectory.box,
                 f"{trajectory.source} frame {frame}")


def _from_ase(path: Path, frame, temperature_K, seed) -> Start:
    (atoms,) = read_images(path, -1 if frame is None else frame, "--from ")
    box = cubic_box(atoms, f"--from {path}")
    symbols = atoms.get_chemical_symbols()
    try:
        masses = np.array([make_species(s).mass for s in symbols])
    except ValueError as err:
        raise ValueError(f"--from {path}: {err}") from None
    description = f"{path} last frame" if frame is None else f"{path} frame {frame}"
    if "momenta" in atoms.arrays:
        velocities = atoms.get_velocities() * VELOCITY_ASE_A_PER_FS
    else:
        target = temperature_K or 300.0
        velocities = maxwell_boltzmann(masses, target, np.random.default_rng(seed))
        description += f" (no velocities in the file: Maxwell-Boltzmann at {target:g} K)"
    return Start(symbols, np.asarray(atoms.positions, dtype=float), np.asarray(velocities, dtype=float), box,
                 description)
