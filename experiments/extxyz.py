"""Extended XYZ output, as ASE, OVITO and VMD read it, with its units in every header.

A frame's comment line holds the cubic cell (``Lattice``, ``pbc="T T T"``), the step and time, and
the units: ``units="length:angstrom time:fs mass:amu energy:eV temperature:K"``.  With velocities,
the columns are ``species pos masses momenta``: ``momenta`` in ASE's unit, amu angstrom per ASE time
unit (``momenta_unit="amu*angstrom/ase_time"``, ``ase_time_fs=10.1805...``), so that
``ase.io.read(path, ":")`` gives every frame's ``get_velocities()`` and ``get_temperature()``.  The
velocity in angstrom/fs is ``momenta / masses * VELOCITY_ASE_A_PER_FS``; :func:`read_frames` does that conversion.

:class:`TrajectoryWriter` appends frames to a file in one ``write`` each (so a killed run leaves whole
frames, except perhaps the very last), optionally gzip-compressed (one gzip member per frame: the
concatenation is a valid ``.gz`` file that ``gzip``, ASE and :func:`read_frames` read).
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

import numpy as np

from agents.species import species as make_species
from learning.labelled import VELOCITY_ASE_A_PER_FS

UNITS = "length:angstrom time:fs mass:amu energy:eV temperature:K"


def format_frame(symbols, positions, box, velocities=None, masses=None, **info) -> str:
    """One extended-XYZ frame as text.

    Args:
        symbols: (N,) element symbols.
        positions: (N, 3) angstrom.
        box: cubic box side, angstrom (written as the ``Lattice`` with ``pbc="T T T"``).
        velocities: optional (N, 3) angstrom/fs, written as ASE's ``masses`` and ``momenta`` columns.
        masses: (N,) amu for the momenta (default: each species' default mass).
        **info: scalars written into the comment line (e.g. ``step=10, time_fs=5.0``).
    """
    positions = np.asarray(positions, dtype=float)
    lattice = f'Lattice="{box:.10g} 0 0 0 {box:.10g} 0 0 0 {box:.10g}"'
    extras = " ".join(f"{key}={value:.10g}" if isinstance(value, float) else f"{key}={value}"
                      for key, value in info.items())
    units = f'units="{UNITS}"'
    if velocities is None:
        properties = "species:S:1:pos:R:3"
        rows = (f"{s:<2s} {x:16.10f} {y:16.10f} {z:16.10f}" for s, (x, y, z) in zip(symbols, positions))
    else:
        properties = "species:S:1:pos:R:3:masses:R:1:momenta:R:3"
        units += ' momenta_unit="amu*angstrom/ase_time" ase_time_fs=' + f"{1.0 / VELOCITY_ASE_A_PER_FS:.12g}"
        if masses is None:
            masses = [make_species(s).mass for s in symbols]
        masses = np.asarray(masses, dtype=float)
        momenta = masses[:, None] * np.asarray(velocities, dtype=float) / VELOCITY_ASE_A_PER_FS
        rows = (f"{s:<2s} {x:16.10f} {y:16.10f} {z:16.10f} {m:.10g} {px:17.10e} {py:17.10e} {pz:17.10e}"
                for s, (x, y, z), m, (px, py, pz) in zip(symbols, positions, masses, momenta))
    header = f'{lattice} Properties={properties} pbc="T T T" {extras} {units}'.replace("  ", " ")
    return "\n".join([str(len(symbols)), header, *rows]) + "\n"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class TrajectoryWriter:
    """Appends frames to ``path``, each in one write (gzip: one member each, ``compress=True``).

    Args:
        path: the file (``.gz`` is not added: name it yourself).
        compress: gzip every frame.
        keep: bytes of an existing file to keep (a resumed run: the size at its checkpoint); None
            starts a new file.
    """

    def __init__(self, path, compress: bool = False, keep: int | None = None):
        self.path = Path(path)
        self.compress = compress
        if keep is None:
            self.path.write_bytes(b"")
        else:
            size = self.path.stat().st_size if self.path.exists() else -1
            if size < keep:
                raise ValueError(f"{self.path} has {max(size, 0)} bytes, fewer than the {keep} its checkpoint "
                                 "recorded: the trajectory was changed or cut")
            os.truncate(self.path, keep)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    @property
    def size(self) -> int:
        """Bytes written so far (the offset a checkpoint records)."""
        return os.fstat(self._fd).st_size

    def write(self, symbols, positions, box, velocities=None, masses=None, **info) -> None:
        data = format_frame(symbols, positions, box, velocities, masses, **info).encode()
        if self.compress:
            data = gzip.compress(data, compresslevel=6, mtime=0)
        _write_all(self._fd, data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_frame(path, symbols, positions, box, velocities=None, append: bool = False, masses=None, **info) -> Path:
    """Write (or append) one frame to ``path`` (plain text)."""
    path = Path(path)
    with path.open("a" if append else "w") as handle:
        handle.write(format_frame(symbols, positions, box, velocities, masses, **info))
    return path


def _text(path) -> str:
    path = Path(path)
    raw = path.read_bytes()
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()


_PAIR = re.compile(r'(\w+)=("[^"]*"|\S+)')


def read_frames(path) -> list[dict]:
    """Every frame of an extended-XYZ file written here (plain or gzip): dicts with ``symbols``,
    ``positions`` (N, 3) angstrom, ``velocities`` (N, 3) angstrom/fs or None, ``box`` and ``info``
    (the other header keys, as strings).  Reads the old ``vel`` column (angstrom/fs) too."""
    lines = _text(path).splitlines()
    frames, i = [], 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        n = int(lines[i])
        header = dict((key, value.strip('"')) for key, value in _PAIR.findall(lines[i + 1]))
        rows = [line.split() for line in lines[i + 2:i + 2 + n]]
        if len(rows) < n:
            raise ValueError(f"{path}: the last frame (line {i + 1}) is incomplete")
        spec = header["Properties"].split(":")
        columns, start = {}, 0
        for name, _, width in zip(spec[::3], spec[1::3], spec[2::3]):
            columns[name] = slice(start, start + int(width))
            start += int(width)
        table = np.array([[float(x) for x in row[1:]] for row in rows]).reshape(n, start - 1)

        def column(name):
            where = columns[name]
            return table[:, where.start - 1:where.stop - 1]

        velocities = None
        if "momenta" in columns:
            velocities = column("momenta") / column("masses") * VELOCITY_ASE_A_PER_FS
        elif "vel" in columns:
            velocities = column("vel")
        box = float(header["Lattice"].split()[0])
        info = {k: v for k, v in header.items() if k not in ("Lattice", "Properties", "pbc")}
        frames.append({"symbols": [row[0] for row in rows], "positions": column("pos"), "velocities": velocities,
                       "box": box, "info": info})
        i += 2 + n
    return frames


def read_positions(path) -> tuple[list[str], np.ndarray]:
    """Symbols and positions (F, N, 3) of an extended-XYZ file written here (plain or gzip)."""
    frames = read_frames(path)
    return frames[0]["symbols"], np.array([frame["positions"] for frame in frames])
