"""Training data from any labelled trajectory ASE reads: the same numbers, the same fit, clear errors."""

import json

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from agents.loss import AgentLosses
from experiments.cli import main
from learning.cp2k.reader import read_trajectory
from learning.labelled import read_labelled, to_atoms, write_labelled
from learning.selection import fit_losses

INVARIANTS = "exp(a=1),gauss(s=2),pow(n=2)"
EVERY = 8


@pytest.fixture(scope="module")
def cp2k():
    """Every 8th frame of the embedded CP2K run, read by the CP2K reader."""
    return read_trajectory().frames(slice(None, None, EVERY))


@pytest.fixture(scope="module")
def cp2k_losses(cp2k):
    return fit_losses(cp2k, invariants=INVARIANTS, order="quadratic")


def assert_same_losses(a, b, rtol):
    assert a.species == b.species
    for s in a.species:
        assert a[s].invariants.names == b[s].invariants.names
        for name in ("A", "B"):
            x, y = getattr(a[s], name), getattr(b[s], name)
            assert np.max(np.abs(x - y)) <= rtol * np.max(np.abs(x)), (s, name)


def test_the_embedded_run_as_extended_xyz_fits_to_the_same_loss(cp2k, cp2k_losses, tmp_path, capsys):
    xyz, loss = tmp_path / "h2o-32.xyz", tmp_path / "loss.json"
    assert main(["convert", "--every", str(EVERY), "--out", str(xyz)]) == 0
    assert json.loads(capsys.readouterr().out)["data"] == "learning/data/h2o-32/h2o-32.inp"  # the same on every machine
    assert main(["fit", "--data", str(xyz), "--invariants", INVARIANTS, "--order", "quadratic",
                 "--out", str(loss), "--no-progress"]) == 0
    assert_same_losses(cp2k_losses, AgentLosses.load(loss), rtol=1e-10)
    frames = ase.io.read(xyz, ":")  # a standard extended XYZ file: ASE reads forces and cell itself
    assert len(frames) == len(cp2k) and frames[0].info["step"] == cp2k.steps[0]
    np.testing.assert_array_equal(np.array([a.get_forces() for a in frames]), cp2k.forces)
    np.testing.assert_array_equal(frames[3].cell.lengths(), [cp2k.box] * 3)


def test_ase_read_frames_carry_the_project_units(cp2k, tmp_path):
    back = read_labelled(write_labelled(cp2k, tmp_path / "run.extxyz"))
    for name in ("positions", "forces", "accelerations", "masses", "steps", "times", "potential_energy"):
        np.testing.assert_array_equal(getattr(back, name), getattr(cp2k, name), err_msg=name)
    np.testing.assert_allclose(back.velocities, cp2k.velocities, rtol=1e-14, atol=1e-18)  # angstrom/fs
    assert back.symbols == cp2k.symbols and back.box == cp2k.box and back.dt == EVERY * 0.5
    np.testing.assert_allclose(back.temperature, cp2k.temperature, rtol=1e-5)  # from the velocities


def test_ase_formats_fit_the_same(cp2k, cp2k_losses, tmp_path):
    """ASE's .traj is lossless; ASE's own extended XYZ writer keeps 8 decimals (about 1e-7 on the fit)."""
    frames = to_atoms(cp2k)
    ase.io.write(tmp_path / "run.traj", frames)
    assert_same_losses(cp2k_losses, fit_losses(read_labelled(tmp_path / "run.traj"), INVARIANTS), rtol=1e-10)
    ase.io.write(tmp_path / "rounded.xyz", frames, format="extxyz")
    assert_same_losses(cp2k_losses, fit_losses(read_labelled(tmp_path / "rounded.xyz"), INVARIANTS), rtol=1e-5)


def test_cp2k_runs_go_to_the_cp2k_reader(embedded_run_dir):
    run = read_labelled(embedded_run_dir)
    assert run.source.endswith("h2o-32.inp") and len(run) == len(read_labelled())
    with pytest.raises(ValueError, match="--dt: a CP2K run"):
        read_labelled(embedded_run_dir, dt=0.5)


def labelled_atoms(n_frames=3, forces=True, **changes):
    frames = []
    for f in range(n_frames):
        atoms = Atoms("OH2", positions=[[1.0, 1.0, 1.0], [1.9, 1.1, 1.0], [0.8, 1.9, 1.0 + 0.01 * f]],
                      cell=[6.0] * 3, pbc=True)
        for name, change in changes.items():
            if int(name[-1]) == f:
                change(atoms)
        if forces:
            atoms.calc = SinglePointCalculator(atoms, forces=np.full((3, 3), 0.1 * f), energy=-1.0 - f)
        frames.append(atoms)
    return frames


def test_frames_without_times_take_dt_and_have_no_velocities(tmp_path):
    path = tmp_path / "plain.traj"
    ase.io.write(path, labelled_atoms())
    run = read_labelled(path, dt=2.0)
    np.testing.assert_array_equal(run.times, [0.0, 2.0, 4.0])
    np.testing.assert_array_equal(run.steps, [0, 1, 2])
    np.testing.assert_array_equal(run.potential_energy, [-1.0, -2.0, -3.0])
    assert run.dt == 2.0 and run.velocities is None and np.all(np.isnan(run.temperature))
    assert np.all(np.isnan(read_labelled(path).times))


@pytest.mark.parametrize("frames,message", [
    (lambda: labelled_atoms(forces=False), "frame 0: no forces"),
    (lambda: labelled_atoms(frame1=lambda a: a.set_pbc([True, True, False])), "frame 1: the agents live in a periodic"),
    (lambda: labelled_atoms(frame0=lambda a: a.set_cell([6.0, 6.0, 7.0])), "frame 0: the cell must be cubic"),
    (lambda: labelled_atoms(frame2=lambda a: a.set_cell([7.0] * 3)), "frame 2: the cell differs"),
    (lambda: labelled_atoms(frame1=lambda a: a.set_chemical_symbols("HOH")), "frame 1: the atoms"),
])
def test_bad_labelled_data_is_an_error_naming_file_and_frame(frames, message, tmp_path):
    path = tmp_path / "bad.traj"
    ase.io.write(path, frames())
    with pytest.raises(ValueError, match=message) as error:
        read_labelled(path)
    assert str(path) in str(error.value)


def test_missing_or_unreadable_files_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a trajectory\n")
    for path, message in ((tmp_path / "absent.xyz", "does not exist"), (tmp_path / "notes.txt", "ASE cannot read")):
        assert main(["fit", "--data", str(path), "--out", str(tmp_path / "x.json"), "--no-progress"]) == 2
        error = capsys.readouterr().err
        assert error.startswith("mld: error:") and message in error and error.count("\n") == 1


def test_a_start_from_an_ase_file_names_the_file_and_frame_and_needs_a_cubic_periodic_cell(tmp_path):
    from experiments.start import read_start

    atoms = Atoms("OH2", positions=[[1.0, 1.0, 1.0], [1.9, 1.0, 1.0], [1.0, 1.9, 1.0]], cell=[6.0] * 3, pbc=True)
    path = tmp_path / "two.extxyz"
    ase.io.write(path, [atoms, atoms])
    start = read_start(path, frame=1)
    assert start.box == 6.0 and start.description == f"{path} frame 1 (no velocities in the file: Maxwell-Boltzmann at 300 K)"
    with pytest.raises(ValueError, match=f"--from {path}: frame 2 is past the end"):
        read_start(path, frame=2)
    atoms.set_cell([6.0, 6.0, 7.0])
    ase.io.write(tmp_path / "box.extxyz", atoms)
    with pytest.raises(ValueError, match="--from .*box.extxyz: the cell must be cubic"):
        read_start(tmp_path / "box.extxyz")
    (tmp_path / "notes.txt").write_text("not a structure\n")
    with pytest.raises(ValueError, match="--from .*notes.txt: ASE cannot read it"):
        read_start(tmp_path / "notes.txt")
