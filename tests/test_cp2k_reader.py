"""The CP2K reader: the real run (embedded copy, and the shared one it snapshots), units, and every kind of damaged file."""

import gzip
import lzma
import shutil
import warnings

import numpy as np
import pytest

from agents.geometry import minimum_image
from agents.units import ACCEL_EV_PER_AMU_A
from learning.cp2k.reader import default_data_path, read_trajectory
from learning.cp2k.units import HARTREE_EV

N_ATOMS = 96  # 32 waters


def complete_frames(xyz_path) -> int:
    """Frames of a plain CP2K xyz file counted independently of the reader: whole (N + 2)-line blocks."""
    lines = xyz_path.read_text().splitlines()
    return len(lines) // (int(lines[0]) + 2)


def test_run_frames_units_and_energies(embedded_run_dir):
    run = read_trajectory(embedded_run_dir)
    n = complete_frames(embedded_run_dir / "h2o-32-pos-1.xyz")
    assert len(run) == n and n >= 341
    assert run.n_atoms == N_ATOMS and run.symbols.count("O") == 32 and run.symbols.count("H") == 64
    np.testing.assert_array_equal(run.steps, np.arange(n))
    assert run.box == pytest.approx(9.8528) and run.dt == pytest.approx(0.5)
    np.testing.assert_allclose(run.times, 0.5 * run.steps)
    assert set(run.masses) == {15.9994, 1.00794}
    # CP2K's kinetic energy (Ha in .ener) vs 1/2 sum m v^2 of the converted velocities.
    kinetic = 0.5 * np.sum(run.masses[None, :, None] * run.velocities**2, axis=(1, 2)) / ACCEL_EV_PER_AMU_A
    np.testing.assert_allclose(kinetic, run.kinetic_energy, rtol=1e-6)
    assert run.temperature[0] == pytest.approx(300.0)
    # Work of the converted forces along the path (trapezoid) vs the change of CP2K's potential energy.
    step = minimum_image(np.diff(run.positions, axis=0), run.box)
    work = -np.sum(0.5 * (run.forces[1:] + run.forces[:-1]) * step, axis=(1, 2))
    change = np.diff(run.potential_energy)
    assert np.sqrt(np.mean((work - change) ** 2)) < 0.03 * np.std(change)
    np.testing.assert_allclose(run.accelerations, run.forces / run.masses[None, :, None] * ACCEL_EV_PER_AMU_A)


def test_embedded_copy_matches_the_shared_run(shared_cp2k_dir):
    embedded = read_trajectory(default_data_path())
    shared = read_trajectory(shared_cp2k_dir)
    assert len(embedded) >= 341 and embedded.steps[0] == 0
    common = min(len(embedded), len(shared))  # the shared run grows; the embedded copy is a snapshot
    for name in ("positions", "velocities", "forces", "kinetic_energy", "potential_energy", "used_time"):
        np.testing.assert_array_equal(getattr(embedded, name)[:common], getattr(shared, name)[:common])
    assert embedded.symbols == shared.symbols and embedded.box == shared.box


def test_slicing_keeps_every_per_frame_array():
    run = read_trajectory(default_data_path())
    part = run.frames(slice(10, 20))
    assert len(part) == 10 and part.steps[0] == run.steps[10] and part.positions.shape == (10, N_ATOMS, 3)
    picked = run.frames([3, 5])
    np.testing.assert_array_equal(picked.forces, run.forces[[3, 5]])
    np.testing.assert_array_equal(picked.temperature, run.temperature[[3, 5]])


def test_finite_difference_accelerations_without_forces(tmp_path, embedded_run_dir):
    for name in ("h2o-32.inp", "h2o-32-pos-1.xyz", "h2o-32-vel-1.xyz"):
        shutil.copy(embedded_run_dir / name, tmp_path / name)
    with pytest.warns(UserWarning, match="finite differences of velocities"):
        run = read_trajectory(tmp_path / "h2o-32.inp")
    exact = read_trajectory(embedded_run_dir)
    assert run.forces is None and run.acceleration_source == "finite differences of velocities"
    inner = slice(1, -1)  # central differences inside, one-sided at the ends
    error = np.mean((run.accelerations[inner] - exact.accelerations[inner]) ** 2)
    assert np.sqrt(error / np.mean(exact.accelerations**2)) < 0.05


def test_compressed_files_read_transparently(tmp_path, embedded_run_dir):
    shutil.copy(embedded_run_dir / "h2o-32.inp", tmp_path)
    for name, opener in (("h2o-32-pos-1.xyz", gzip.open), ("h2o-32-vel-1.xyz", lzma.open),
                         ("h2o-32-frc-1.xyz", gzip.open), ("h2o-32-1.ener", lzma.open)):
        suffix = ".gz" if opener is gzip.open else ".xz"
        with opener(tmp_path / (name + suffix), "wb") as handle:
            handle.write((embedded_run_dir / name).read_bytes())
    packed, plain = read_trajectory(tmp_path), read_trajectory(embedded_run_dir)
    for name in ("positions", "velocities", "forces", "potential_energy"):
        np.testing.assert_array_equal(getattr(packed, name), getattr(plain, name))


def test_truncated_run_keeps_complete_frames_and_warns(tmp_path, embedded_run_dir):
    for item in embedded_run_dir.iterdir():
        shutil.copy(item, tmp_path / item.name)
    lines = (tmp_path / "h2o-32-pos-1.xyz").read_text().splitlines(keepends=True)
    keep = 40 * (N_ATOMS + 2) + 2 + 17  # 40 whole frames, then a header and 17 of 96 atoms
    text = "".join(lines[:keep]) + lines[keep][:12]  # ... and half a line, as a killed run leaves it
    (tmp_path / "h2o-32-pos-1.xyz").write_text(text)
    with pytest.warns(UserWarning) as caught:
        run = read_trajectory(tmp_path)
    assert len(run) == 40 and run.steps[-1] == 39
    assert any("h2o-32-pos-1.xyz" in str(w.message) for w in caught)


def test_corrupted_number_names_file_and_line(tmp_path, embedded_run_dir):
    for item in embedded_run_dir.iterdir():
        shutil.copy(item, tmp_path / item.name)
    path = tmp_path / "h2o-32-frc-1.xyz"
    lines = path.read_text().splitlines(keepends=True)
    bad = 5 * (N_ATOMS + 2) + 2 + 10  # 0-based: frame 5, atom 11
    lines[bad] = lines[bad].replace(".", ",", 1)
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match=rf"h2o-32-frc-1\.xyz.*line {bad + 1}\b"):
        read_trajectory(tmp_path)


# -- small hand-written runs for the input-file cases ------------------------------------------
INPUT = """&GLOBAL
  PROJECT tiny   ! a comment
  RUN_TYPE MD
&END GLOBAL
&MOTION
  &MD
    TIMESTEP 0.5
  &END MD
&END MOTION
&FORCE_EVAL
  &SUBSYS
    &CELL
      {cell}
    &END CELL
    &KIND Hw
      ELEMENT H
    &END KIND
    &KIND O1
      ELEMENT O
    &END KIND
  &END SUBSYS
&END FORCE_EVAL
"""


def write_run(directory, steps=(0, 1, 2, 3), labels=("O1", "Hw", "Hw"), cell="ABC 5.0 5.0 5.0"):
    """A CP2K-style run of a few frames with ``labels`` as atom names (positions in angstrom)."""
    (directory / "tiny.inp").write_text(INPUT.format(cell=cell))
    rng = np.random.default_rng(0)
    for kind, scale in (("pos", 1.0), ("vel", 1e-3), ("frc", 1e-2)):
        blocks = []
        for step in steps:
            rows = [f"{label:>2} {x:20.10f} {y:20.10f} {z:20.10f}" for label, (x, y, z)
                    in zip(labels, scale * rng.random((len(labels), 3)))]
            blocks.append(f"{len(labels)}\n i = {step}, time = {0.5 * step:.3f}, E = -17.0\n" + "\n".join(rows) + "\n")
        (directory / f"tiny-{kind}-1.xyz").write_text("".join(blocks))
    header = "#     Step Nr.          Time[fs]        Kin.[a.u.]          Temp[K]            Pot.[a.u.]        Cons Qty[a.u.]        UsedTime[s]\n"
    rows = "".join(f"{s} {0.5 * s} 0.01 300.0 -17.0 -16.99 1.5\n" for s in steps if s != 2)
    (directory / "tiny-1.ener").write_text(header + rows)


def test_kind_element_gives_the_chemistry(tmp_path):
    write_run(tmp_path)
    run = read_trajectory(tmp_path)
    assert run.symbols == ["O", "H", "H"]
    np.testing.assert_array_equal(run.masses, [15.9994, 1.00794, 1.00794])
    assert run.box == 5.0 and run.dt == 0.5 and len(run) == 4
    assert run.kinetic_energy[0] == pytest.approx(0.01 * HARTREE_EV)
    assert np.isnan(run.potential_energy[2]) and np.isnan(run.used_time[2])  # step 2 is not in .ener


def test_frames_are_matched_by_step_not_position(tmp_path):
    write_run(tmp_path)
    reference = read_trajectory(tmp_path)
    frc = tmp_path / "tiny-frc-1.xyz"
    frc.write_text("".join(frc.read_text().splitlines(keepends=True)[5:]))  # forces start at step 1
    with pytest.warns(UserWarning) as caught:
        run = read_trajectory(tmp_path)
    assert {str(w.message).split(": ")[1] for w in caught} == {"1 frames outside steps 1-3 are missing from another file and were dropped"}
    assert list(run.steps) == [1, 2, 3]
    np.testing.assert_array_equal(run.positions, reference.positions[1:])
    np.testing.assert_array_equal(run.forces, reference.forces[1:])


def test_gap_in_steps_is_an_error_naming_the_line(tmp_path):
    write_run(tmp_path, steps=(0, 1, 3, 4))
    with pytest.raises(ValueError, match=r"tiny-pos-1\.xyz, line 11\b"):
        read_trajectory(tmp_path)


def test_changed_atoms_are_an_error(tmp_path):
    write_run(tmp_path)
    path = tmp_path / "tiny-pos-1.xyz"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = lines[2].replace("O1", "Hw")
    path.write_text("".join(lines))
    with pytest.raises(ValueError, match=r"tiny-pos-1\.xyz, line \d+"):
        read_trajectory(tmp_path)


@pytest.mark.parametrize("cell", ["ABC 5.0 5.0 6.0", "A 5 0 0\n      B 1 5 0\n      C 0 0 5"])
def test_non_cubic_cell_is_an_error(tmp_path, cell):
    write_run(tmp_path, cell=cell)
    with pytest.raises(ValueError, match="cubic|orthorhombic"):
        read_trajectory(tmp_path)


def test_missing_run_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist|expected one CP2K input"):
        read_trajectory(tmp_path / "nowhere.inp")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="expected one CP2K input"):
            read_trajectory(tmp_path)


def test_cell_from_the_restart_file(tmp_path):
    write_run(tmp_path, cell="PERIODIC XYZ")  # no ABC in the input: CP2K's restart file has it
    (tmp_path / "tiny-1.restart").write_text(INPUT.format(cell="ABC [angstrom] 6.5 6.5 6.5"))
    assert read_trajectory(tmp_path / "tiny.inp").box == 6.5
    (tmp_path / "tiny-1.restart").unlink()
    with pytest.raises(ValueError, match="no &CELL ABC"):
        read_trajectory(tmp_path / "tiny.inp")
    (tmp_path / "tiny-1.restart").write_text(INPUT.format(cell="ABC [bohr] 12 12 12"))
    with pytest.raises(ValueError, match=r"tiny-1\.restart, line 13: .*\[bohr\]"):
        read_trajectory(tmp_path / "tiny.inp")


def test_provenance_records_the_shipped_data_relative_to_the_project(tmp_path):
    """portable_path: the embedded data as ``learning/data/...`` (the same on every machine); other paths and
    labels as given."""
    from learning.cp2k.reader import portable_path

    assert portable_path(default_data_path()) == "learning/data/h2o-32/h2o-32.inp"
    assert portable_path(str(tmp_path / "run.inp")) == str(tmp_path / "run.inp")
    assert portable_path("runs/h2o.inp") == "runs/h2o.inp"
    assert portable_path("shared/many-body NVT run") == "shared/many-body NVT run"
