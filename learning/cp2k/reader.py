"""Reading CP2K molecular-dynamics runs into the project's units (the only place CP2K units appear).

A run is its input file plus the files CP2K prints beside it::

    PROJECT-pos-1.xyz   positions, angstrom          comment line: i = STEP, time = FS, E = HARTREE
    PROJECT-vel-1.xyz   velocities, bohr / a.u. time
    PROJECT-frc-1.xyz   forces, hartree / bohr
    PROJECT-1.ener      step, time [fs], kinetic [Ha], temperature [K], potential [Ha],
                        conserved quantity [Ha], used time [s]

Any of them may be ``.gz`` or ``.xz`` compressed.  Frames are matched across files by the step
index of the comment lines.  A truncated last frame (a killed run, or a compressed file cut short) is
dropped with a warning; anything else malformed (bytes that are not text, a broken number, a missing
field) is a ``ValueError`` naming the file and, where there is one, the line (fuzzed in
``tests/test_fuzz_inputs.py``).  Without a force file the accelerations are finite differences of the
velocities (or positions), with a warning, and :attr:`Trajectory.acceleration_source` says which.
"""

from __future__ import annotations

import gzip
import lzma
import re
import warnings
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from agents.species import species as make_species
from agents.geometry import unwrap
from agents.units import ACCEL_EV_PER_AMU_A
from learning.cp2k.units import FORCE_AU_EV_PER_A, HARTREE_EV, VELOCITY_AU_A_PER_FS

COMPRESSED = ("", ".xz", ".gz")
_STEP = re.compile(r"\bi\s*=\s*(-?\d+)")
_TIME = re.compile(r"\btime\s*=\s*([-+0-9.eE]+)")


#: The project's root (the folder that holds ``learning/``): paths inside it are recorded relative to it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def portable_path(path) -> str:
    """``path`` as provenance and summaries record it: an absolute path inside the project (the data
    shipped in ``learning/data``) relative to :data:`PROJECT_ROOT`, the same on every machine; anything
    else as given."""
    text = str(path)
    if Path(text).is_absolute():
        try:
            return str(Path(text).resolve().relative_to(PROJECT_ROOT))
        except ValueError:
            pass
    return text


def default_data_path() -> Path:
    """The embedded default run: 32 waters, CP2K 2023.1 DFT (see ``learning/data/h2o-32/README.md``)."""
    return Path(__file__).resolve().parents[1] / "data" / "h2o-32" / "h2o-32.inp"


def open_text(path: Path):
    """Open a text file, decompressing ``.xz`` and ``.gz`` transparently."""
    path = Path(path)
    if path.suffix == ".xz":
        return lzma.open(path, "rt")
    if path.suffix == ".gz":
        return gzip.open(path, "rt")
    return path.open("r")


def read_lines(path: Path) -> list[str]:
    """The lines of :func:`read_text`."""
    return read_text(path).splitlines()


def read_text(path: Path) -> str:
    """A text file (``.xz``/``.gz`` decompressed); ``ValueError`` naming the file if it is not text.  A compressed stream that ends early (a file cut while being written) is read up to its
    end with a warning, so that the complete frames in it survive."""
    path = Path(path)
    opener = {".xz": lzma.open, ".gz": gzip.open}.get(path.suffix)
    try:
        if opener is None:
            raw = path.read_bytes()
        else:
            chunks = []
            with opener(path, "rb") as handle:
                try:
                    while chunk := handle.read(1 << 20):
                        chunks.append(chunk)
                except (EOFError, lzma.LZMAError, gzip.BadGzipFile, zlib.error) as err:
                    if not chunks:
                        raise
                    warnings.warn(f"{path}: the compressed stream is damaged or cut short ({err}); "
                                  "reading what it holds", stacklevel=3)
            raw = b"".join(chunks)
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: not text (byte {raw[err.start]:#04x} at offset {err.start})") from None
    except (EOFError, lzma.LZMAError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{path}: not a readable {path.suffix} file ({err})") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, expected a file") from None


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` or its compressed ``.xz``/``.gz`` copy, if any exists."""
    for suffix in COMPRESSED:
        candidate = directory / (name + suffix)
        if candidate.exists():
            return candidate
    return None


# -- the input file --------------------------------------------------------------------------
@dataclass
class RunSettings:
    """What the reader needs from a CP2K input (or ``.restart``) file."""

    project: str
    box: float | None
    timestep: float | None
    elements: dict[str, str]


def read_input(path) -> RunSettings:
    """PROJECT, cubic cell side (angstrom), TIMESTEP (fs) and kind -> element from a CP2K input."""
    path = Path(path)
    sections: list[str] = []
    project, timestep, abc, vectors, elements, kind = None, None, None, {}, {}, None
    for number, raw in enumerate(read_lines(path), 1):
        line = raw.split("!")[0].split("#")[0].strip()
        if not line:
            continue
        words = line.split()
        key = words[0].upper()
        if key.startswith("&END"):
            sections = sections[:-1]
            kind = None
            continue
        if key.startswith("&"):
            sections.append(key[1:])
            if key == "&KIND" and len(words) > 1:
                kind = words[1]
                elements.setdefault(kind, re.sub(r"[^A-Za-z].*$", "", kind).capitalize())
            continue
        where = sections[-1] if sections else ""
        try:
            if where == "GLOBAL" and key in ("PROJECT", "PROJECT_NAME"):
                project = words[1]
            elif where == "MD" and key == "TIMESTEP":
                timestep = float(words[-1])
            elif where == "CELL" and key == "ABC":
                abc = _lengths(words[1:])
            elif where == "CELL" and key in ("A", "B", "C"):
                vectors[key] = _lengths(words[1:])
            elif where == "KIND" and key == "ELEMENT" and kind is not None:
                elements[kind] = words[1].capitalize()
        except (ValueError, IndexError) as err:
            raise ValueError(f"{path}, line {number}: cannot read {line!r} ({err})") from None
    if project is None:
        raise ValueError(f"{path}: no PROJECT in &GLOBAL")
    if abc is None and len(vectors) == 3:
        matrix = np.array([vectors[k] for k in "ABC"])
        if np.any(np.abs(matrix - np.diag(np.diag(matrix))) > 1e-8):
            raise ValueError(f"{path}: the cell is not orthorhombic; only cubic boxes are supported")
        abc = list(np.diag(matrix))
    box = None
    if abc is not None:
        if len(abc) != 3 or max(abc) - min(abc) > 1e-8 * max(abc):
            raise ValueError(f"{path}: the cell {abc} is not cubic; only cubic boxes are supported")
        box = abc[0]
    return RunSettings(project, box, timestep, elements)


def _lengths(words) -> list[float]:
    """Numbers of a CP2K cell keyword in angstrom (its default unit); another unit tag is an error."""
    if words and words[0].startswith("["):
        if words[0].lower() not in ("[angstrom]", "[a]"):
            raise ValueError(f"cell unit {words[0]} is not supported (use angstrom)")
        words = words[1:]
    return [float(w) for w in words]


# -- xyz trajectories ------------------------------------------------------------------------
@dataclass
class XYZFrames:
    """Frames of one CP2K xyz file, keyed by step."""

    path: Path
    symbols: list[str]
    steps: np.ndarray
    times: np.ndarray
    values: np.ndarray  # (F, N, 3) in the file's units
    lines: np.ndarray  # line number of each frame's header


def read_xyz(path) -> XYZFrames:
    """All complete frames of a CP2K ``.xyz`` trajectory; a truncated last frame is dropped."""
    path = Path(path)
    lines = read_lines(path)
    symbols, steps, times, values, starts = None, [], [], [], []
    position = 0
    while position < len(lines):
        header = lines[position].strip()
        if not header:
            position += 1
            continue
        start = position + 1
        try:
            n = int(header)
            if n < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"{path}, line {start}: expected an atom count, found {header!r}") from None
        if position + 2 + n > len(lines):
            warnings.warn(f"{path}: the last frame (line {start}) is incomplete and was dropped", stacklevel=3)
            break
        comment = lines[position + 1]
        step = _STEP.search(comment)
        if step is None:
            raise ValueError(f"{path}, line {start + 1}: no step index 'i = N' in {comment.strip()!r}")
        time = _TIME.search(comment)
        try:
            time = float(time.group(1)) if time else np.nan
        except ValueError:
            raise ValueError(f"{path}, line {start + 1}: cannot read the time in {comment.strip()!r}") from None
        frame_symbols, frame = [], np.empty((n, 3))
        for row in range(n):
            number = position + 3 + row
            words = lines[number - 1].split()
            try:
                if len(words) != 4:
                    raise ValueError
                frame[row] = [float(w) for w in words[1:]]
            except ValueError:
                if number == len(lines) and row < n:
                    warnings.warn(f"{path}: the last frame (line {start}) is incomplete and was dropped", stacklevel=3)
                    break
                raise ValueError(f"{path}, line {number}: expected 'SYMBOL x y z', found {lines[number - 1]!r}") from None
            if not np.all(np.isfinite(frame[row])):
                raise ValueError(f"{path}, line {number}: non-finite number in {lines[number - 1]!r}")
            frame_symbols.append(words[0])
        else:
            if symbols is None:
                symbols = frame_symbols
            elif frame_symbols != symbols:
                raise ValueError(f"{path}, line {start}: the atoms (count or order) differ from the first frame")
            steps.append(int(step.group(1)))
            times.append(time)
            values.append(frame)
            starts.append(start)
            position += 2 + n
            continue
        break
    if not values:
        raise ValueError(f"{path}: no complete frame")
    steps = np.array(steps)
    order = _check_steps(path, steps, np.array(starts))
    return XYZFrames(path, symbols, steps[order], np.array(times)[order], np.array(values)[order],
                     np.array(starts)[order])


def _check_steps(path, steps, lines) -> np.ndarray:
    """Indices keeping the last copy of a repeated step (a restarted run repeats its first step);
    ``ValueError`` at a gap or a step that goes backwards."""
    keep = np.ones(len(steps), bool)
    for i in range(1, len(steps)):
        if steps[i] == steps[i - 1]:
            keep[i - 1] = False
    kept = np.flatnonzero(keep)
    stride = np.diff(steps[kept])
    if len(stride) and (stride.min() <= 0 or np.any(stride != stride[0])):
        bad = kept[1:][np.flatnonzero((stride <= 0) | (stride != stride[0]))[0]]
        raise ValueError(f"{path}, line {lines[bad]}: step {steps[bad]} breaks the sequence of steps "
                         f"(missing or out-of-order frames)")
    return kept


def read_energies(path) -> dict[int, np.ndarray]:
    """Rows of a CP2K ``.ener`` file by step: time, kinetic, temperature, potential, conserved, used time."""
    path = Path(path)
    rows = {}
    text = read_text(path)
    lines = text.splitlines()
    ends_with_newline = not text or text.endswith("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        words = line.split()
        try:
            if len(words) != 7:
                raise ValueError
            rows[int(words[0])] = np.array([float(w) for w in words[1:]])
        except ValueError:
            if number > 1 and number == len(lines) and not ends_with_newline:
                warnings.warn(f"{path}: the incomplete last line {number} was dropped", stacklevel=3)
                continue
            raise ValueError(f"{path}, line {number}: expected 7 numbers, found {line.strip()!r}") from None
    return rows


# -- the trajectory --------------------------------------------------------------------------
@dataclass
class Trajectory:
    """A CP2K MD run in the project's units (angstrom, fs, amu, eV, K); F frames of N atoms.

    Attributes:
        symbols: (N,) chemical elements.
        masses: (N,) amu (CP2K's defaults).
        box: cubic box side (angstrom).
        dt: time between frames (fs).
        steps, times: (F,) MD step index and time (fs).
        positions: (F, N, 3) angstrom.
        velocities: (F, N, 3) angstrom/fs, or None.
        forces: (F, N, 3) eV/angstrom, or None.
        accelerations: (F, N, 3) angstrom/fs^2: forces / mass, else finite differences (with a warning).
        kinetic_energy, potential_energy, conserved: (F,) eV; temperature (F,) K; used_time (F,) s
            (NaN where the ``.ener`` file lacks the step).
        source: where it was read from.
        acceleration_source: where ``accelerations`` come from: ``'forces'`` (the force file), or
            ``'finite differences of velocities'`` / ``'finite differences of positions'`` when the
            force file (and velocity file) is missing.
    """

    symbols: list[str]
    masses: np.ndarray
    box: float
    dt: float
    steps: np.ndarray
    times: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray | None
    forces: np.ndarray | None
    accelerations: np.ndarray
    kinetic_energy: np.ndarray
    potential_energy: np.ndarray
    conserved: np.ndarray
    temperature: np.ndarray
    used_time: np.ndarray
    source: str
    acceleration_source: str = "forces"

    #: The attributes with one entry per frame (``velocities`` and ``forces`` may be None).
    PER_FRAME = ("steps", "times", "positions", "velocities", "forces", "accelerations", "kinetic_energy",
                 "potential_energy", "conserved", "temperature", "used_time")

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def n_atoms(self) -> int:
        return len(self.symbols)

    def frames(self, indices) -> Trajectory:
        """The frames ``indices`` (a slice, a range or an index array) as a new Trajectory."""
        pick = np.arange(len(self))[indices]
        per_frame = {name: getattr(self, name)[pick] if getattr(self, name) is not None else None
                     for name in self.PER_FRAME}
        return replace(self, **per_frame)


def _finite_difference(series, dt):
    """Central differences along axis 0 (one-sided at the ends)."""
    return np.gradient(series, dt, axis=0)


def read_trajectory(path=None) -> Trajectory:
    """Read a CP2K MD run from its directory or input file (``.inp``), converting units here.

    Args:
        path: the run directory (one ``*.inp`` inside) or the input file itself; ``None``: the
            embedded default run (:func:`default_data_path`).

    Returns:
        A :class:`Trajectory` of the frames present in every trajectory file.
    """
    path = default_data_path() if path is None else Path(path)
    if path.is_dir():
        inputs = sorted(p for p in path.iterdir() if p.name.endswith(tuple(".inp" + s for s in COMPRESSED)))
        if len(inputs) != 1:
            raise ValueError(f"{path}: expected one CP2K input file (*.inp) in the directory, found {len(inputs)}")
        path = inputs[0]
    if not path.exists():
        raise ValueError(f"CP2K data {path} does not exist")
    settings = read_input(path)
    directory = path.parent
    project = settings.project
    if settings.box is None:
        restart = find_file(directory, f"{project}-1.restart")
        settings.box = read_input(restart).box if restart else None
        if settings.box is None:
            raise ValueError(f"{path}: no &CELL ABC in the input and no {project}-1.restart beside it")

    position_file = find_file(directory, f"{project}-pos-1.xyz")
    if position_file is None:
        raise ValueError(f"{directory}: no {project}-pos-1.xyz (or .xz/.gz) beside the input")
    files = {"pos": read_xyz(position_file)}
    for name in ("vel", "frc"):
        found = find_file(directory, f"{project}-{name}-1.xyz")
        if found is not None:
            files[name] = read_xyz(found)
    for name, frames in files.items():
        if frames.symbols != files["pos"].symbols:
            raise ValueError(f"{frames.path}, line {frames.lines[0]}: the atoms differ from {position_file.name}")

    steps = files["pos"].steps
    for frames in files.values():
        steps = np.intersect1d(steps, frames.steps)
    if len(steps) == 0:
        names = ", ".join(frames.path.name for frames in files.values())
        raise ValueError(f"{directory}: the trajectory files share no step ({names})")
    for frames in files.values():
        if len(frames.steps) > len(steps):
            warnings.warn(f"{frames.path}: {len(frames.steps) - len(steps)} frames outside steps {steps[0]}-{steps[-1]} "
                          "are missing from another file and were dropped", stacklevel=2)
    pick = {name: np.searchsorted(frames.steps, steps) for name, frames in files.items()}

    symbols = [settings.elements.get(label, re.sub(r"[^A-Za-z].*$", "", label).capitalize())
               for label in files["pos"].symbols]
    try:
        masses = np.array([make_species(s).mass for s in symbols])
    except ValueError as err:
        raise ValueError(f"{position_file}: {err}") from None
    positions = files["pos"].values[pick["pos"]]
    times = files["pos"].times[pick["pos"]]
    steps_between = np.diff(times)
    dt = float(np.median(steps_between)) if len(times) > 1 and np.all(np.isfinite(steps_between)) else np.nan
    if not (np.isfinite(dt) and dt > 0):
        dt = settings.timestep or np.nan
    velocities = files["vel"].values[pick["vel"]] * VELOCITY_AU_A_PER_FS if "vel" in files else None
    forces = files["frc"].values[pick["frc"]] * FORCE_AU_EV_PER_A if "frc" in files else None
    if forces is not None:
        accelerations = forces / masses[None, :, None] * ACCEL_EV_PER_AMU_A
        acceleration_source = "forces"
    else:
        if not np.isfinite(dt):
            raise ValueError(f"{position_file}: no force file and no time step (times or TIMESTEP) to take "
                             "finite differences with")
        if velocities is not None and len(steps) > 1:
            accelerations = _finite_difference(velocities, dt)
            acceleration_source = "finite differences of velocities"
        elif len(steps) > 2:
            accelerations = _finite_difference(_finite_difference(unwrap(positions, settings.box), dt), dt)
            acceleration_source = "finite differences of positions"
        else:
            raise ValueError(f"{directory}: neither forces, velocities nor enough positions to get accelerations")
        warnings.warn(f"{directory}: no {project}-frc-1.xyz, so the accelerations are {acceleration_source} "
                      f"(less accurate than forces; recorded in a fitted loss's provenance)", stacklevel=2)

    energy_file = find_file(directory, f"{project}-1.ener")
    energies = read_energies(energy_file) if energy_file else {}
    table = np.array([energies.get(int(s), np.full(6, np.nan)) for s in steps])
    return Trajectory(
        symbols=symbols, masses=masses, box=float(settings.box), dt=dt, steps=steps, times=times,
        positions=positions, velocities=velocities, forces=forces, accelerations=accelerations,
        kinetic_energy=table[:, 1] * HARTREE_EV, potential_energy=table[:, 3] * HARTREE_EV,
        conserved=table[:, 4] * HARTREE_EV, temperature=table[:, 2], used_time=table[:, 5],
        source=str(path), acceleration_source=acceleration_source,
    )
