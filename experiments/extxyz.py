"""Extended XYZ output (readable by ASE, OVITO and VMD): angstrom, and velocities in angstrom/fs."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def format_frame(symbols, positions, box, velocities=None, **info) -> str:
    """One extended-XYZ frame as text.

    Args:
        symbols: (N,) element symbols.
        positions: (N, 3) angstrom.
        box: cubic box side, angstrom (written as the ``Lattice`` with ``pbc="T T T"``).
        velocities: optional (N, 3) angstrom/fs, written as a ``vel`` column.
        **info: scalars written into the comment line (e.g. ``step=10, time_fs=5.0``).
    """
    properties = "species:S:1:pos:R:3" + (":vel:R:3" if velocities is not None else "")
    lattice = f'Lattice="{box:.10g} 0 0 0 {box:.10g} 0 0 0 {box:.10g}"'
    extras = " ".join(f"{key}={value:.10g}" if isinstance(value, float) else f"{key}={value}" for key, value in info.items())
    lines = [str(len(symbols)), f'{lattice} Properties={properties} pbc="T T T" {extras}'.rstrip()]
    columns = positions if velocities is None else np.hstack([positions, velocities])
    lines += [f"{s:<2s} " + " ".join(f"{x:16.10f}" for x in row) for s, row in zip(symbols, columns)]
    return "\n".join(lines) + "\n"


def write_frame(path, symbols, positions, box, velocities=None, append: bool = False, **info) -> Path:
    """Write (or append) one frame to ``path``."""
    path = Path(path)
    with path.open("a" if append else "w") as handle:
        handle.write(format_frame(symbols, positions, box, velocities, **info))
    return path


def read_positions(path) -> tuple[list[str], np.ndarray]:
    """Symbols and positions (F, N, 3) of an extended-XYZ file written by :func:`write_frame`."""
    lines = Path(path).read_text().splitlines()
    n = int(lines[0])
    frames = [lines[i + 2 : i + 2 + n] for i in range(0, len(lines), n + 2)]
    symbols = [row.split()[0] for row in frames[0]]
    positions = np.array([[[float(x) for x in row.split()[1:4]] for row in frame] for frame in frames])
    return symbols, positions
