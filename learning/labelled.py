"""Labelled trajectories (positions with forces) from any file ASE reads, and one reader for all data.

CP2K runs stay the native path (:mod:`learning.cp2k.reader`).  Everything else goes through
``ase.io.read``: extended XYZ with forces, ASE ``.traj`` files, and the outputs of the DFT codes ASE
reads (VASP ``OUTCAR``/``vasprun.xml``, Quantum ESPRESSO, ...).  ASE's units are the project's for
positions (angstrom), forces (eV/angstrom) and energies (eV); its velocities (angstrom per ASE time
unit) are converted here and nowhere else.  Masses are the project's (:mod:`agents.species`), the
same as on the CP2K path, so a frame gives the same accelerations whichever way it was read.

Frame times come from each frame's ``info["time_fs"]`` (written by :func:`write_labelled` and by
``mld simulate``), else from ``dt`` (fs between frames); steps from ``info["step"]``, else the frame
index.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from agents.species import species as make_species
from agents.units import ACCEL_EV_PER_AMU_A
from environment.calculator import cubic_box
from environment.kinetics import kinetic_energy, kinetic_temperature
from learning.cp2k.reader import COMPRESSED, Trajectory, read_trajectory

#: Angstrom/fs per ASE velocity unit (angstrom per ASE time unit).
VELOCITY_ASE_A_PER_FS = units.fs
#: File suffixes written as lossless extended XYZ by :func:`write_labelled`.
EXTXYZ_SUFFIXES = (".xyz", ".extxyz")


def is_cp2k(path) -> bool:
    """Whether ``path`` is a CP2K run: a directory, or an input file ``*.inp`` (maybe compressed)."""
    path = Path(path)
    return path.is_dir() or path.name.endswith(tuple(".inp" + suffix for suffix in COMPRESSED))


def read_labelled(path=None, dt: float | None = None) -> Trajectory:
    """Any labelled trajectory: a CP2K run (directory or ``.inp``) or any file ASE reads.

    Args:
        path: the data; ``None``: the embedded CP2K run.
        dt: time between frames (fs) of an ASE-read file whose frames carry no ``time_fs``; a CP2K
            run has its own times, so ``dt`` is an error there.

    Returns:
        A :class:`learning.cp2k.reader.Trajectory` in angstrom, fs, amu, eV.
    """
    if path is None or is_cp2k(path):
        if dt is not None:
            raise ValueError(f"--dt: a CP2K run ({path or 'the embedded run'}) has its own frame times")
        return read_trajectory(path)
    return read_ase_trajectory(path, dt)


def read_images(path, index=":", name: str = "") -> list[Atoms]:
    """The frames ``index`` (ASE's index syntax) of a file ASE reads, as a list of ``Atoms``: the one place
    the project calls ``ase.io.read``.  ``ValueError`` reading ``"{name}{path}: ..."`` when the file is
    missing, ASE cannot read it, ``index`` is past its end, or it holds no frames."""
    path = Path(path)
    where = f"{name}{path}"
    if not path.exists():
        raise ValueError(f"{where} does not exist")
    try:
        images = ase.io.read(path, index=index)
    except Exception as err:  # ASE's readers raise many types; all mean "not readable", but for a frame past the
        #                       end (IndexError, or StopIteration from the extxyz reader)
        if isinstance(index, int) and isinstance(err, (IndexError, StopIteration)):
            raise ValueError(f"{where}: frame {index} is past the end of the file") from None
        raise ValueError(f"{where}: ASE cannot read it ({type(err).__name__}: {err})") from None
    images = [images] if isinstance(images, Atoms) else list(images)
    if not images:
        raise ValueError(f"{where}: no frames")
    return images


def read_ase_trajectory(path, dt: float | None = None, index=":") -> Trajectory:
    """A labelled trajectory from a file ASE reads, in the project's units.

    Args:
        path: any trajectory ASE reads whose frames carry forces (eV/angstrom), in a periodic cubic
            cell that is the same in every frame, with the same atoms in the same order.
        dt: time between frames (fs) when the frames carry no ``info["time_fs"]`` (None: times are NaN).
        index: which frames (ASE's index syntax, default all).

    Raises:
        ValueError naming the file (and frame) when it cannot be read, a frame lacks forces, or the
        atoms or the cell change.
    """
    path = Path(path)
    images = read_images(path, index, "labelled data ")
    symbols = images[0].get_chemical_symbols()
    box = cubic_box(images[0], f"{path}, frame 0")
    for i, atoms in enumerate(images):
        where = f"{path}, frame {i}"
        if atoms.get_chemical_symbols() != symbols:
            raise ValueError(f"{where}: the atoms (count or order) differ from frame 0")
        if abs(cubic_box(atoms, where) - box) > 1e-8 * box:
            raise ValueError(f"{where}: the cell differs from frame 0 (the project needs one fixed box)")
        if atoms.calc is None or "forces" not in atoms.calc.results:
            raise ValueError(f"{where}: no forces; training data needs forces (eV/angstrom) on every frame")

    masses = np.array([make_species(s).mass for s in symbols])
    positions = np.array([atoms.positions for atoms in images])
    forces = np.array([atoms.get_forces(apply_constraint=False) for atoms in images])
    has_velocities = all("momenta" in atoms.arrays for atoms in images)
    velocities = (np.array([atoms.get_velocities() for atoms in images]) * VELOCITY_ASE_A_PER_FS
                  if has_velocities else None)
    potential = np.array([atoms.calc.results.get("energy", np.nan) for atoms in images], dtype=float)
    steps = _info(images, "step", np.arange(len(images)))
    times = _info(images, "time_fs", np.arange(len(images)) * (np.nan if dt is None else float(dt)))
    frame_dt = float(np.median(np.diff(times))) if len(times) > 1 else (np.nan if dt is None else float(dt))
    frames = velocities if velocities is not None else [np.full((len(symbols), 3), np.nan)] * len(images)
    kinetic = np.array([kinetic_energy(v, masses) for v in frames])
    temperature = np.array([kinetic_temperature(v, masses) for v in frames])
    return Trajectory(
        symbols=symbols, masses=masses, box=box, dt=frame_dt, steps=np.asarray(steps, dtype=int),
        times=np.asarray(times, dtype=float), positions=positions, velocities=velocities, forces=forces,
        accelerations=forces / masses[None, :, None] * ACCEL_EV_PER_AMU_A,
        kinetic_energy=kinetic, potential_energy=potential, conserved=kinetic + potential,
        temperature=temperature, used_time=np.full(len(images), np.nan), source=str(path),
    )


def same_system(a: Trajectory, b: Trajectory) -> bool:
    """Whether two labelled trajectories hold the same atoms, in the same order, in the same cubic box."""
    return list(a.symbols) == list(b.symbols) and abs(a.box - b.box) <= 1e-8 * a.box


def concatenate(trajectories, source: str) -> Trajectory:
    """The frames of several labelled trajectories of the same atoms in the same box, in order, as one
    (steps renumbered 0, 1, ...; times NaN: the frames need not follow each other in time)."""
    trajectories = list(trajectories)
    if not trajectories:
        raise ValueError(f"{source}: no labelled frames to join")
    first = trajectories[0]
    for other in trajectories[1:]:
        if not same_system(first, other):
            raise ValueError(f"{other.source}: its atoms or box differ from {first.source}'s; labelled frames "
                             "join only for the same atoms in the same box")
    per_frame = {name: np.concatenate([getattr(t, name) for t in trajectories])
                 if all(getattr(t, name) is not None for t in trajectories) else None
                 for name in Trajectory.PER_FRAME}
    frames = len(per_frame["positions"])
    per_frame.update(steps=np.arange(frames), times=np.full(frames, np.nan))
    return replace(first, dt=np.nan, source=source, **per_frame)


def _info(images, key, default) -> np.ndarray:
    """``info[key]`` of every frame when all frames have it, else ``default``."""
    if all(key in atoms.info for atoms in images):
        return np.array([atoms.info[key] for atoms in images])
    return np.asarray(default)


def to_atoms(trajectory: Trajectory) -> list[Atoms]:
    """The frames of ``trajectory`` as ASE ``Atoms``: periodic cubic cell, the project's masses,
    momenta (when there are velocities), forces and energy on a ``SinglePointCalculator``, and
    ``info`` ``step`` and ``time_fs``."""
    frames = []
    for f in range(len(trajectory)):
        atoms = Atoms(trajectory.symbols, positions=trajectory.positions[f], cell=[trajectory.box] * 3, pbc=True,
                      masses=trajectory.masses)
        if trajectory.velocities is not None:
            atoms.set_velocities(trajectory.velocities[f] / VELOCITY_ASE_A_PER_FS)
        atoms.info.update(step=int(trajectory.steps[f]), time_fs=float(trajectory.times[f]))
        results = {"forces": trajectory.forces[f]}
        if np.isfinite(trajectory.potential_energy[f]):
            results["energy"] = float(trajectory.potential_energy[f])
        atoms.calc = SinglePointCalculator(atoms, **results)
        frames.append(atoms)
    return frames


def write_labelled(trajectory: Trajectory, path) -> Path:
    """Write a labelled trajectory (it must have forces) for ASE and other tools.

    ``.xyz``/``.extxyz``: extended XYZ at full double precision (ASE's own writer rounds to 8
    decimals), so reading it back with :func:`read_labelled` gives the same numbers to the last bit
    (velocities to rounding).  Any other suffix: ``ase.io.write`` of :func:`to_atoms` (``.traj`` is
    lossless too).
    """
    path = Path(path)
    if trajectory.forces is None:
        raise ValueError(f"{trajectory.source}: no forces to write to {path}")
    if not path.parent.is_dir():
        raise ValueError(f"--out {path}: the directory {path.parent} does not exist")
    if path.suffix not in EXTXYZ_SUFFIXES:
        ase.io.write(path, to_atoms(trajectory))
        return path
    with path.open("w") as handle:
        for atoms in to_atoms(trajectory):
            handle.write(_extxyz_frame(atoms))
    return path


def _extxyz_frame(atoms: Atoms) -> str:
    """One extended XYZ frame with every float written by ``repr`` (17 significant digits)."""
    columns = [atoms.positions, atoms.get_masses()[:, None]]
    properties = "species:S:1:pos:R:3:masses:R:1"
    if "momenta" in atoms.arrays:
        columns.append(atoms.get_momenta())
        properties += ":momenta:R:3"
    columns.append(atoms.calc.results["forces"])
    properties += ":forces:R:3"
    side = repr(float(atoms.cell[0, 0]))
    info = dict(atoms.info)
    if "energy" in atoms.calc.results:
        info["energy"] = atoms.calc.results["energy"]
    info = " ".join(f"{key}={value!r}" for key, value in info.items())
    header = f'Lattice="{side} 0 0 0 {side} 0 0 0 {side}" Properties={properties} {info} pbc="T T T"'
    rows = [f"{s} " + " ".join(repr(float(x)) for x in row)
            for s, row in zip(atoms.get_chemical_symbols(), np.hstack(columns))]
    return "\n".join([str(len(atoms)), header, *rows]) + "\n"
