"""Write CP2K molecular-dynamics inputs for any configuration the project can build.

The default reproduces the paper's run (Sec. 5.1): Born-Oppenheimer DFT (QS/GPW), TZV2P-GTH, Pade XC,
GTH-PADE pseudopotentials, CUTOFF 280 Ry, REL_CUTOFF 30, OT/DIIS, NVE, 0.5 fs, positions,
velocities, forces, energies and the restart file printed every step.  Cheaper presets change the
electronic structure only: ``dzvp`` (the shared 32-water run), ``szv`` and ``xtb`` (GFN1-xTB).

An input is a tree of :class:`Section` objects rendered as plain CP2K text; any keyword can be
overridden afterwards with ``"SECTION/.../KEY=VALUE"`` strings (:func:`apply_override`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from environment.builders import water_box
from learning.cp2k.units import VELOCITY_AU_A_PER_FS


@dataclass
class Section:
    """One ``&NAME [PARAMETER] ... &END NAME`` block: keywords, subsections and raw data rows.

    Keyword names are stored upper-case; a list value repeats the keyword.  ``rows`` are the
    free-format lines of data sections such as ``&COORD``.  The root of an input has ``name=None``.
    """

    name: str | None
    parameter: str | None = None
    keywords: dict[str, object] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)

    def add(self, name: str, parameter: str | None = None, **keywords) -> Section:
        """Append and return a new subsection ``name`` with ``keywords``."""
        child = Section(name.upper(), parameter, {k.upper(): v for k, v in keywords.items()})
        self.sections.append(child)
        return child

    def find(self, name: str, parameter: str | None = None) -> Section | None:
        """The first subsection ``name`` (with ``parameter`` when given), or ``None``."""
        for child in self.sections:
            if child.name == name.upper() and (
                parameter is None or str(child.parameter).upper() == parameter.upper()
            ):
                return child
        return None

    def section(self, path: str) -> Section:
        """The subsection at ``"A/B/C"`` (a part may be ``"KIND H"``), created where missing."""
        node = self
        for part in filter(None, path.split("/")):
            name, _, parameter = part.strip().partition(" ")
            node = node.find(name, parameter or None) or node.add(name, parameter or None)
        return node

    def render(self, indent: int = 0) -> str:
        """This section as CP2K input text."""
        pad = "  " * indent
        inner = indent if self.name is None else indent + 1
        body = []
        for key, value in self.keywords.items():
            for item in value if isinstance(value, list) else [value]:
                body.append(f"{'  ' * inner}{key} {_format(item)}")
        body += [f"{'  ' * inner}{row}" for row in self.rows]
        body += [child.render(inner).rstrip("\n") for child in self.sections]
        if self.name is None:
            return "\n".join(body) + "\n"
        head = f"{pad}&{self.name}" + (f" {_format(self.parameter)}" if self.parameter is not None else "")
        return "\n".join([head, *body, f"{pad}&END {self.name}"]) + "\n"


def _format(value: object) -> str:
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float):
        return repr(value)
    return str(value)


@dataclass(frozen=True)
class Preset:
    """The electronic-structure method of a named preset."""

    method: str  # "dft" or "xtb"
    basis: str | None = None
    basis_file: str | None = None
    potential_file: str | None = None
    cutoff_Ry: float | None = None
    rel_cutoff_Ry: float | None = None


#: Named presets, most expensive first.  ``paper``: TZV2P-GTH (Debian's GTH_BASIS_SETS has it).
PRESETS = {
    "paper": Preset("dft", "TZV2P-GTH", "GTH_BASIS_SETS", "GTH_POTENTIALS", 280.0, 30.0),
    "dzvp": Preset("dft", "DZVP-MOLOPT-SR-GTH", "BASIS_MOLOPT", "GTH_POTENTIALS", 280.0, 30.0),
    "szv": Preset("dft", "SZV-MOLOPT-SR-GTH", "BASIS_MOLOPT", "GTH_POTENTIALS", 200.0, 30.0),
    "xtb": Preset("xtb"),
}


@dataclass
class MDSettings:
    """Run settings; ``None`` for ``basis``/``cutoff_Ry``/``rel_cutoff_Ry`` takes the preset's.

    ``temperature_K`` is the temperature of the initial velocities (drawn by CP2K with
    ``GLOBAL/SEED`` = ``seed`` when none are given) and the NVT target, held by a Nose-Hoover
    chain of length 3 with time constant ``thermostat_timecon_fs``.  Every ``print_every`` steps CP2K writes
    positions, velocities, forces, energies and the restart file.
    """

    preset: str = "paper"
    project: str = "mld"
    steps: int = 1000
    timestep_fs: float = 0.5
    temperature_K: float = 300.0
    ensemble: str = "NVE"
    thermostat_timecon_fs: float = 100.0
    basis: str | None = None
    cutoff_Ry: float | None = None
    rel_cutoff_Ry: float | None = None
    seed: int | None = None
    print_every: int = 1

    def resolved_preset(self) -> Preset:
        """The preset with this run's basis and cutoffs substituted."""
        if self.preset not in PRESETS:
            raise ValueError(f"unknown CP2K preset {self.preset!r}; choose one of {sorted(PRESETS)}")
        preset = PRESETS[self.preset]
        changes = {
            name: value
            for name, value in (("basis", self.basis), ("cutoff_Ry", self.cutoff_Ry),
                                ("rel_cutoff_Ry", self.rel_cutoff_Ry))
            if value is not None
        }
        if changes and preset.method == "xtb":
            raise ValueError(f"the xtb preset has no basis or grid cutoff to set ({sorted(changes)})")
        return replace(preset, **changes)


def md_input(
    symbols: Sequence[str],
    positions: np.ndarray,
    box: float | Sequence[float],
    velocities: np.ndarray | None = None,
    settings: MDSettings | None = None,
    overrides: Iterable[str] = (),
) -> Section:
    """A complete CP2K MD input for one configuration.

    Args:
        symbols: chemical symbols, length N.
        positions: (N, 3) angstrom.
        box: cubic side or three orthorhombic sides, angstrom (periodic in x, y, z).
        velocities: (N, 3) angstrom/fs, written to ``&VELOCITY`` in bohr/a.u.t.; ``None`` lets
            CP2K draw them at ``settings.temperature_K``.
        settings: run settings (default :class:`MDSettings`, the paper's run).
        overrides: ``"SECTION/.../KEY=VALUE"`` strings applied last (:func:`apply_override`).
    """
    settings = settings or MDSettings()
    preset = settings.resolved_preset()
    positions = _atom_array(positions, len(symbols), "positions")
    sides = np.broadcast_to(np.asarray(box, dtype=float), (3,))
    if not np.all(np.isfinite(sides) & (sides > 0)):
        raise ValueError(f"box must be positive side lengths in angstrom, got {box!r}")
    if settings.steps < 0 or settings.print_every < 1 or not settings.timestep_fs > 0:
        raise ValueError("steps must be >= 0, print_every >= 1 and timestep_fs > 0")

    root = Section(None)
    glob = root.add("GLOBAL", PROJECT=settings.project, RUN_TYPE="MD", PRINT_LEVEL="LOW")
    if settings.seed is not None:
        glob.keywords["SEED"] = int(settings.seed)
    _motion(root.add("MOTION"), settings)
    force_eval = root.add("FORCE_EVAL", METHOD="QS")
    (_dft if preset.method == "dft" else _xtb)(force_eval.add("DFT"), preset)
    subsys = force_eval.add("SUBSYS")
    subsys.add("CELL", ABC=" ".join(repr(float(s)) for s in sides), PERIODIC="XYZ")
    coord = subsys.add("COORD")
    coord.rows = [f"{s:<2} {x:15.8f} {y:15.8f} {z:15.8f}" for s, (x, y, z) in zip(symbols, positions)]
    if velocities is not None:
        velocities = _atom_array(velocities, len(symbols), "velocities") / VELOCITY_AU_A_PER_FS
        subsys.add("VELOCITY").rows = [f"{x:18.10e} {y:18.10e} {z:18.10e}" for x, y, z in velocities]
    for element in dict.fromkeys(symbols):
        kind = subsys.add("KIND", element, ELEMENT=element)
        if preset.method == "dft":
            kind.keywords.update(BASIS_SET=preset.basis, POTENTIAL="GTH-PADE")
    for override in overrides:
        apply_override(root, override)
    return root


def water_input(
    n_molecules: int,
    settings: MDSettings | None = None,
    density_g_cm3: float = 0.997,
    overrides: Iterable[str] = (),
) -> Section:
    """:func:`md_input` for a fresh water box (:func:`environment.builders.water_box`).

    The velocities are drawn at ``settings.temperature_K`` and positions placed with ``settings.seed``.
    """
    settings = settings or MDSettings()
    symbols, positions, velocities, box = water_box(
        n_molecules, density_g_cm3=density_g_cm3, temperature_K=settings.temperature_K, seed=settings.seed
    )
    return md_input(symbols, positions, box, velocities, settings, overrides)


def frame_input(
    trajectory, frame: int = -1, settings: MDSettings | None = None, overrides: Iterable[str] = ()
) -> Section:
    """:func:`md_input` from frame ``frame`` of a :class:`learning.cp2k.reader.Trajectory`, with its velocities."""
    n_frames = len(trajectory.positions)
    if not -n_frames <= frame < n_frames:
        raise ValueError(f"frame {frame} is outside the trajectory's {n_frames} frames")
    velocities = None if trajectory.velocities is None else trajectory.velocities[frame]
    positions = trajectory.positions[frame]
    return md_input(trajectory.symbols, positions, trajectory.box, velocities, settings, overrides)


def _atom_array(values, n_atoms: int, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.shape != (n_atoms, 3) or not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite with shape ({n_atoms}, 3), got shape {values.shape}")
    return values


def _motion(motion: Section, settings: MDSettings) -> None:
    md = motion.add(
        "MD",
        ENSEMBLE=settings.ensemble.upper(),
        STEPS=int(settings.steps),
        TIMESTEP=float(settings.timestep_fs),
        TEMPERATURE=float(settings.temperature_K),
    )
    if md.keywords["ENSEMBLE"] == "NVT":
        md.add("THERMOSTAT", TYPE="NOSE").add("NOSE", LENGTH=3, TIMECON=float(settings.thermostat_timecon_fs))
    md.add("PRINT").add("ENERGY").add("EACH", MD=settings.print_every)
    printed = motion.add("PRINT")
    for name in ("TRAJECTORY", "VELOCITIES", "FORCES", "RESTART"):
        key = printed.add(name)
        if name == "RESTART":  # one backup: a run killed while writing its restart file continues from it
            key.keywords["BACKUP_COPIES"] = 1
        key.add("EACH", MD=settings.print_every)
    printed.add("RESTART_HISTORY", "OFF")


def _scf(dft: Section, eps_scf: float) -> None:
    scf = dft.add("SCF", SCF_GUESS="RESTART", EPS_SCF=eps_scf, MAX_SCF=30)
    scf.add("OT", "ON", MINIMIZER="DIIS", PRECONDITIONER="FULL_SINGLE_INVERSE")
    scf.add("OUTER_SCF", MAX_SCF=5, EPS_SCF=eps_scf)
    scf.add("PRINT").add("RESTART", BACKUP_COPIES=0)


def _dft(dft: Section, preset: Preset) -> None:
    dft.keywords.update(BASIS_SET_FILE_NAME=preset.basis_file, POTENTIAL_FILE_NAME=preset.potential_file)
    dft.add("MGRID", CUTOFF=preset.cutoff_Ry, REL_CUTOFF=preset.rel_cutoff_Ry)
    dft.add("QS", EPS_DEFAULT=1.0e-10, EXTRAPOLATION="ASPC", EXTRAPOLATION_ORDER=3)
    _scf(dft, 1.0e-5)
    dft.add("XC").add("XC_FUNCTIONAL", "PADE")


def _xtb(dft: Section, preset: Preset) -> None:
    qs = dft.add("QS", METHOD="XTB", EPS_DEFAULT=1.0e-10, EXTRAPOLATION="ASPC", EXTRAPOLATION_ORDER=3)
    qs.add("XTB", DO_EWALD=True, CHECK_ATOMIC_CHARGES=False)
    dft.add("POISSON", PERIODIC="XYZ").add("EWALD", EWALD_TYPE="SPME", GMAX=25, O_SPLINE=5)
    _scf(dft, 1.0e-6)


def apply_override(root: Section, override: str) -> None:
    """Set ``"A/B/KEY=VALUE"`` in ``root``; if ``KEY`` names a subsection, set its parameter.

    Missing sections are created, so ``MOTION/MD/THERMOSTAT/NOSE/TIMECON=100`` adds a block.
    """
    path, eq, value = override.partition("=")
    parents, _, key = path.strip().rpartition("/")
    if not eq or not key or not value.strip():
        raise ValueError(f"override must look like SECTION/KEY=VALUE, got {override!r}")
    node = root.section(parents)
    if node is root:
        raise ValueError(f"override {override!r} names no section (use e.g. GLOBAL/{key.upper()}={value})")
    child = node.find(key.strip())
    if child is not None and key.strip().upper() not in node.keywords:
        child.parameter = value.strip()
    else:
        node.keywords[key.strip().upper()] = value.strip()


def write_input(root: Section, path: str | Path) -> Path:
    """Write ``root`` as CP2K input text to ``path`` (parents created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(root.render())
    return path
