"""Runs the real CP2K: a tiny GFN1-xTB MD of two waters, continued from its restart file; contact probes of
four waters labelled by GFN1-xTB single points (files, resuming, and the physics of pushing two molecules together).

Skipped only where no CP2K executable exists (CI installs it: ``apt-get install cp2k``).
"""

import json
import os
import subprocess
import time
import warnings

import numpy as np
import pytest

from agents.geometry import minimum_image
from agents.units import EV_PER_AMU_A2_FS2, KB_EV_PER_K
from experiments.cli import main
from learning.contact_probes import contact_probes, label_probes, read_probes
from learning.cp2k.reader import read_trajectory
from learning.cp2k.inputs import MDSettings, water_input, write_input
from learning.cp2k.run import CP2KError, find_executable, run_cp2k
from learning.labelled import read_labelled


def _have_cp2k() -> bool:
    try:
        find_executable()
    except CP2KError:
        return False
    return True


pytestmark = [pytest.mark.cp2k, pytest.mark.skipif(not _have_cp2k(), reason="CP2K is not installed")]

SETTINGS = MDSettings(preset="xtb", project="w2", steps=6, seed=7)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The first sitting (steps 0-6), the whole run after continuing by 4 steps (0-10), its folder."""
    run_dir = tmp_path_factory.mktemp("cp2k_xtb")
    write_input(water_input(2, SETTINGS), run_dir / "w2.inp")
    first = run_cp2k(run_dir, threads=1, progress=False)
    continued = run_cp2k(run_dir, restart=True, steps=4, threads=1, progress=False)
    return first, continued, run_dir


def test_frames_steps_and_times(runs):
    first, continued, run_dir = runs
    assert list(first.steps) == list(range(7))
    assert list(continued.steps) == list(range(11))  # continued, no repeated restart frame
    assert continued.dt == pytest.approx(0.5)
    np.testing.assert_allclose(continued.times, 0.5 * np.arange(11), atol=1e-9)
    assert continued.positions.shape == continued.velocities.shape == continued.forces.shape == (11, 6, 3)
    np.testing.assert_array_equal(continued.positions[:7], first.positions)
    assert list(continued.symbols) == ["O", "H", "H"] * 2
    np.testing.assert_array_equal(read_trajectory(run_dir).steps, continued.steps)  # the folder reads too


def test_units_temperature_kinetic_energy_and_work(runs):
    _, run, _ = runs
    # The input's velocities (Å/fs, drawn at exactly 300 K) come back as CP2K's 300 K at step 0
    # (CP2K's CODATA-2006 k_B differs from the project's by 1e-6).
    assert run.temperature[0] == pytest.approx(SETTINGS.temperature_K, rel=1e-5)
    n_dof = 3 * len(run.symbols) - 3
    assert run.kinetic_energy[0] == pytest.approx(0.5 * n_dof * KB_EV_PER_K * 300.0, rel=1e-5)
    kinetic = 0.5 * np.sum(run.masses[None, :, None] * run.velocities**2, axis=(1, 2)) * EV_PER_AMU_A2_FS2
    np.testing.assert_allclose(kinetic, run.kinetic_energy, rtol=1e-5)
    # Forces (eV/Å) against CP2K's own potential energy (eV): the work along the path is -ΔV.
    mean_forces = 0.5 * (run.forces[1:] + run.forces[:-1])
    work = np.cumsum(np.sum(mean_forces * np.diff(run.positions, axis=0), axis=(1, 2)))
    drop = run.potential_energy[0] - run.potential_energy[1:]
    assert np.ptp(run.potential_energy) > 0.01
    assert np.max(np.abs(work - drop)) < 0.02 * np.ptp(run.potential_energy)


def test_conserved_quantity_is_steady_across_the_restart(runs):
    _, run, _ = runs
    exchange = np.ptp(run.kinetic_energy)
    assert exchange > 0.01
    assert np.ptp(run.conserved) < 0.05 * exchange
    assert np.all(run.used_time[1:] > 0)


def test_continuing_a_finished_run_needs_steps(runs):
    with pytest.raises(ValueError, match="give steps"):
        run_cp2k(runs[2], restart=True, progress=False)


def test_a_killed_run_continues_without_repeated_frames(tmp_path):
    settings = MDSettings(preset="xtb", project="k", steps=100000, seed=3)
    write_input(water_input(2, settings), tmp_path / "k.inp")
    process = subprocess.Popen([find_executable(), "-i", "k.inp"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    ener = tmp_path / "k-1.ener"
    deadline = time.time() + 60
    while time.time() < deadline and (not ener.exists() or len(ener.read_text().splitlines()) < 6):
        time.sleep(0.05)
    process.kill()
    process.wait()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = run_cp2k(tmp_path, restart=True, steps=3, threads=1, progress=False)
    # at least 5 steps were written (0-4); the restart file is at the last of them, or, if the kill cut it while
    # it was being written, its backup is one step earlier; then 3 more steps
    from_backup = any("continuing from its backup" in str(w.message) for w in caught)
    assert list(run.steps) == list(range(len(run.steps))) and len(run.steps) >= (7 if from_backup else 8)
    assert len(run.positions) == len(run.velocities) == len(run.forces) == len(run.steps)


def test_a_wavefunction_file_cut_short_is_set_aside_and_the_run_continues(tmp_path):
    write_input(water_input(1, MDSettings(preset="xtb", project="c", steps=2, seed=3)), tmp_path / "c.inp")
    run_cp2k(tmp_path, threads=1, progress=False)
    wavefunction = tmp_path / "c-RESTART.wfn"
    whole = wavefunction.read_bytes()
    wavefunction.write_bytes(whole[: len(whole) // 2])  # CP2K killed while writing it: CP2K itself would stop on it
    with pytest.warns(UserWarning, match="c-RESTART.wfn is cut short.*set aside as c-RESTART.wfn.cut"):
        run = run_cp2k(tmp_path, restart=True, steps=2, threads=1, progress=False)
    assert list(run.steps) == [0, 1, 2, 3, 4] and (tmp_path / "c-RESTART.wfn.cut").stat().st_size == len(whole) // 2
    assert len(wavefunction.read_bytes()) == len(whole)  # written anew, whole


def test_cp2k_abort_is_quoted(tmp_path):
    broken = water_input(1, SETTINGS, overrides=["FORCE_EVAL/DFT/QS/NO_SUCH_KEYWORD=1"])
    write_input(broken, tmp_path / "bad.inp")
    with pytest.raises(CP2KError, match="unknown keyword NO_SUCH_KEYWORD in section QS .at input/"):
        run_cp2k(tmp_path, threads=1, progress=False)


def test_cli_runs_and_reports_aborts(tmp_path, capsys):
    run_input = tmp_path / "cli" / "w1.inp"
    xtb = ["cp2k", "input", "--waters", "1", "--preset", "xtb"]
    assert main([*xtb, "--steps", "2", "--out", str(run_input)]) == 0
    assert main(["cp2k", "run", str(run_input.parent), "--threads", "1"]) == 0
    assert "3 frames, steps 0-2, 3 atoms" in capsys.readouterr().out
    assert main(["cp2k", "run", str(run_input), "--restart", "--steps", "1", "--threads", "1"]) == 0
    assert "4 frames, steps 0-3" in capsys.readouterr().out
    bad = tmp_path / "bad" / "bad.inp"
    main([*xtb, "--set", "MOTION/MD/ENSEMBLE=NOPE", "--out", str(bad)])
    assert main(["cp2k", "run", str(bad), "--threads", "1"]) == 2
    assert "mld: error: CP2K stopped" in capsys.readouterr().err


XTB = MDSettings(preset="xtb", project="w4", steps=2, seed=3)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A 2-step xTB run of four waters, its closest O-O pair pushed to 2.2 and 1.7 angstrom and labelled."""
    folder = tmp_path_factory.mktemp("probes")
    write_input(water_input(4, XTB), folder / "run" / "w4.inp")
    run = run_cp2k(folder / "run", threads=1, progress=False)
    probes = contact_probes(run, [-1], distances=(2.2, 1.7))
    out = folder / "probes"
    trajectory = label_probes(probes, run, out, MDSettings(preset="xtb"), threads=1,
                              source=str(folder / "run"), progress=False)
    return run, probes, trajectory, out


def test_probes_are_labelled_written_and_read_back(labelled):
    run, probes, trajectory, out = labelled
    assert len(trajectory) == 2 and trajectory.forces.shape == (2, 12, 3)
    for probe, positions in zip(probes, trajectory.positions):
        np.testing.assert_allclose(positions, probe.positions, atol=1e-6)
    again, table, source = read_probes(out)
    np.testing.assert_array_equal(again.forces, trajectory.forces)
    np.testing.assert_array_equal(source.positions, run.positions)
    assert list(table["distance_A"]) == [2.2, 1.7]
    assert json.loads((out / "probes.json").read_text())["preset"] == "xtb"


def test_pushing_two_waters_together_costs_energy_and_they_repel(labelled):
    _, probes, trajectory, _ = labelled
    assert trajectory.potential_energy[1] > trajectory.potential_energy[0] + 0.2
    probe = probes[1]
    axis = minimum_image(probe.positions[probe.j] - probe.positions[probe.i], trajectory.box)
    assert np.dot(trajectory.forces[1][probe.j] - trajectory.forces[1][probe.i], axis) > 0


def test_labelled_probes_are_read_not_rerun(labelled):
    run, probes, trajectory, out = labelled
    stamps = [(out / p.name / "probe-frc-1.xyz").stat().st_mtime_ns for p in probes]
    again = label_probes(probes, run, out, MDSettings(preset="xtb"), threads=1, source=run.source, progress=False)
    assert [(out / p.name / "probe-frc-1.xyz").stat().st_mtime_ns for p in probes] == stamps
    np.testing.assert_array_equal(again.forces, trajectory.forces)


def test_label_command_reproduces_the_forces_of_md_frames(labelled, tmp_path, capsys):
    """``mld cp2k label``: a single point of a frame of an MD run gives that frame's forces and energy back
    (to CP2K's SCF tolerance), and a second call reads the labelled frames instead of rerunning them."""
    run, *_ = labelled
    folder = tmp_path / "labels"
    args = ["cp2k", "label", str(run.source), "--frames", "0,-1", "--preset", "xtb", "--threads", "1",
            "--out", str(folder), "--no-progress"]
    assert main(args) == 0
    assert "2 frames" in capsys.readouterr().out
    again = read_labelled(folder / "labelled.extxyz")
    for f, frame in ((0, 0), (1, len(run) - 1)):
        np.testing.assert_allclose(again.forces[f], run.forces[frame], atol=2e-3 * np.abs(run.forces[frame]).max())
        assert again.potential_energy[f] == pytest.approx(run.potential_energy[frame], abs=1e-4)
    stamp = (folder / "frame0" / "probe-frc-1.xyz").stat().st_mtime_ns
    assert main(args) == 0 and (folder / "frame0" / "probe-frc-1.xyz").stat().st_mtime_ns == stamp
    assert main(["cp2k", "label", str(run.source), "--frames", "9", "--out", str(folder)]) == 2
    assert "outside the 3 frames" in capsys.readouterr().err
