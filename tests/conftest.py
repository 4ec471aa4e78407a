"""Shared fixtures.

``embedded_run_dir`` is the embedded CP2K run decompressed into a folder (always present: the reader
tests run in any fresh clone).  ``shared_cp2k_dir`` is the real CP2K run beside the checkout (present
in CI); only the test that compares the embedded copy with it needs it.
"""

import lzma
import shutil
from pathlib import Path

import pytest

from learning.cp2k.reader import default_data_path

SHARED_CP2K = Path(__file__).resolve().parents[2] / "shared" / "data" / "cp2k" / "h2o-32"


@pytest.fixture
def shared_cp2k_dir():
    if not (SHARED_CP2K / "h2o-32.inp").exists():
        pytest.skip(f"the shared CP2K run is not at {SHARED_CP2K}")
    return SHARED_CP2K


@pytest.fixture(scope="session")
def embedded_run_dir(tmp_path_factory) -> Path:
    """The embedded run as CP2K writes it (plain text files), in a session-wide folder (read-only use)."""
    folder = tmp_path_factory.mktemp("h2o-32")
    for item in default_data_path().parent.iterdir():
        if item.suffix == ".xz":
            with lzma.open(item) as packed:
                (folder / item.stem).write_bytes(packed.read())
        elif item.name.endswith(".inp"):
            shutil.copy(item, folder / item.name)
    return folder


def embedded_run_slice(folder: Path, n_frames: int) -> Path:
    """The first ``n_frames`` frames of the embedded CP2K run (positions, velocities, forces, energies)
    written into ``folder`` as a run directory of its own; returns ``folder``."""
    source = default_data_path().parent
    shutil.copy(source / "h2o-32.inp", folder / "h2o-32.inp")
    for name in ("pos", "vel", "frc"):
        with lzma.open(source / f"h2o-32-{name}-1.xyz.xz", "rt") as handle:
            n_atoms = int(handle.readline())
            handle.seek(0)
            lines = [handle.readline() for _ in range(n_frames * (n_atoms + 2))]
        (folder / f"h2o-32-{name}-1.xyz").write_text("".join(lines))
    with lzma.open(source / "h2o-32-1.ener.xz", "rt") as handle:
        (folder / "h2o-32-1.ener").write_text("".join(handle.readline() for _ in range(n_frames + 1)))
    return folder
