"""Long runs that lose nothing: interrupt, checkpoint, resume, reproduce; guards; loss validity; output.

The subprocess tests run the real ``mld simulate`` (``python -m experiments``) and compare its bytes
with an uninterrupted run of the same command made in this process.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import embedded_run_slice

from agents.loss import AgentLosses, pair_potential_losses
from environment import LearningDynamics, MolecularModel, NoseHooverChain, VelocityVerlet, water_box
from environment.checkpoint import read_checkpoint
from environment.contacts import closest_pair_within
from experiments.bench import benchmark_losses
from experiments.cli import main
from experiments.extxyz import read_frames, write_frame
from experiments.guarded_run import SimulationBlewUp, run_guarded
from learning.cp2k.reader import read_trajectory
from learning.selection import fit_losses

ROOT = Path(__file__).resolve().parents[1]
NAMES = "exp(a=1),exp(a=1/3),exp(a=1/4),gauss(s=1),gauss(s=2),gauss(s=4),pow(n=2)".split(",")
STEPS = 3000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A loss learned on the embedded run (7 fixed functions, a quick fit) and its frame 68 as extended XYZ."""
    folder = tmp_path_factory.mktemp("inputs")
    trajectory = read_trajectory()
    losses = fit_losses(trajectory.frames(slice(68, None, 6)), NAMES, "quadratic")
    losses.save(folder / "loss.json")
    write_frame(folder / "start.xyz", trajectory.symbols, trajectory.positions[68], trajectory.box,
                trajectory.velocities[68], step=68)
    return folder


def run_args(inputs, *more):
    return ["simulate", "--loss", str(inputs / "loss.json"), "--from", str(inputs / "start.xyz"), "--steps", str(STEPS),
            "--every", "10", "--checkpoint-every", "500", "--no-progress", *more]


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """The uninterrupted run, in this process."""
    out = tmp_path_factory.mktemp("reference")
    assert main(run_args(inputs, "--out", str(out))) == 0
    return out


def mld(*args, env=None):
    """``mld ARGS`` as a subprocess of this worktree's code."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "experiments", *args], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(process, condition, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(f"mld ended early ({process.returncode}): {process.communicate()[1]}")
        time.sleep(0.005)
    process.kill()
    raise AssertionError("timed out")


def test_sigint_stops_after_the_step_and_the_resumed_run_is_bit_identical(inputs, reference, tmp_path):
    out = tmp_path / "run"
    process = mld(*run_args(inputs, "--out", str(out)))
    wait_for(process, lambda: (out / "trajectory.xyz").exists() and (out / "trajectory.xyz").stat().st_size > 0)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and f"resume with: mld simulate --resume {out}" in err
    summary = json.loads((out / "summary.json").read_text())
    step = summary["interrupted"]["step"]
    assert summary["status"] == "interrupted" and 0 < step < STEPS and summary["completed_steps"] == step
    assert len(pd.read_csv(out / "observables.csv")) == step // 10 + 1
    assert read_checkpoint(out / "checkpoint.npz")[0]["steps"] == step
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 0
    for name in ("trajectory.xyz", "observables.csv"):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    resumed = json.loads((out / "summary.json").read_text())
    assert resumed["status"] == "completed" and resumed["resumed_from_step"] == step


def test_sigterm_in_process_exits_143_and_resumes_to_the_same_bytes(inputs, reference, tmp_path):
    out = tmp_path / "run"
    trajectory = out / "trajectory.xyz"

    def terminate_once_started():
        end = time.monotonic() + 60
        while time.monotonic() < end and not (trajectory.exists() and trajectory.stat().st_size > 0):
            time.sleep(0.002)
        os.kill(os.getpid(), signal.SIGTERM)

    def absorb(signum, frame):  # a late signal (a very slow machine) must not end pytest
        pass

    previous = signal.signal(signal.SIGTERM, absorb)
    try:
        sender = threading.Thread(target=terminate_once_started)
        sender.start()
        code = main(run_args(inputs, "--out", str(out)))
        sender.join()
        assert signal.getsignal(signal.SIGTERM) is absorb  # the run put back the handler it found
    finally:
        signal.signal(signal.SIGTERM, previous)
    summary = json.loads((out / "summary.json").read_text())
    assert code == 143 and summary["interrupted"]["signal"] == "SIGTERM" and summary["status"] == "interrupted"
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 0
    assert trajectory.read_bytes() == (reference / "trajectory.xyz").read_bytes()


def test_sigkill_leaves_readable_files_and_the_checkpoint_resumes(inputs, reference, tmp_path):
    ase_io = pytest.importorskip("ase.io")
    out = tmp_path / "run"
    process = mld(*run_args(inputs, "--out", str(out)))

    def checkpointed():
        try:
            return json.loads((out / "summary.json").read_text())["completed_steps"] >= 500
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return False

    wait_for(process, checkpointed)
    process.kill()
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    frames = ase_io.read(out / "trajectory.xyz", ":")
    assert len(frames) >= 51 and len(frames[-1]) == 96
    table = pd.read_csv(out / "observables.csv")
    summary = json.loads((out / "summary.json").read_text())
    meta, _ = read_checkpoint(out / "checkpoint.npz")
    assert summary["status"] == "running" and len(table) == meta["steps"] // 10 + 1 >= 51
    assert main(["simulate", "--resume", str(out), "--no-progress"]) == 0
    assert (out / "trajectory.xyz").read_bytes() == (reference / "trajectory.xyz").read_bytes()


def test_same_numbers_with_a_cold_or_warm_numba_cache_and_one_or_two_threads(inputs, tmp_path):
    cache = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    runs = []
    for name, threads in (("cold", "1"), ("warm", "2")):
        out = tmp_path / name
        process = mld("simulate", "--loss", str(inputs / "loss.json"), "--from", str(inputs / "start.xyz"),
                      "--steps", "100", "--every", "10", "--threads", threads, "--no-progress", "--out", str(out),
                      env=cache)
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert json.loads((out / "summary.json").read_text())["threads"] == min(int(threads), os.cpu_count())
        runs.append((out / "trajectory.xyz").read_bytes())
    assert any((tmp_path / "numba-cache").rglob("*.nbi"))  # the first run compiled into the fresh cache
    assert runs[0] == runs[1]


def test_results_do_not_depend_on_the_thread_count():
    symbols, positions, velocities, box = water_box(32, temperature_K=350.0, seed=1)
    states = []
    for threads in (1, 2):
        model = MolecularModel(symbols, positions, box, benchmark_losses(0, 1e-2), velocities=velocities,
                               integrator=VelocityVerlet(0.5, NoseHooverChain(350.0, 25.0, 1), 10.0), threads=threads)
        model.run(100)
        states.append(np.concatenate([model.positions.ravel(), model.velocities.ravel()]))
    np.testing.assert_allclose(states[0], states[1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("integrator", [lambda: VelocityVerlet(0.5, NoseHooverChain(300.0, 25.0, 2), 10.0),
                                        lambda: LearningDynamics(0.5, 100.0)], ids=["newtonian-nvt", "learning"])
def test_model_checkpoint_resumes_bit_for_bit_with_a_cutoff(integrator, tmp_path):
    """128 waters with a neighbour list (3 cells a side, skin 1 angstrom: rebuilt only now and then, so
    the resumed run must rebuild it where the original did) and a data collector."""
    symbols, positions, velocities, box = water_box(128, temperature_K=400.0, seed=3)

    def make():
        return MolecularModel(symbols, positions, box, benchmark_losses(0, 1e-2), velocities=velocities, seed=5,
                              integrator=integrator(), cutoff=4.0, skin=1.0, collect_every=3)

    whole = make()
    whole.run(40)
    first = make()
    first.run(15)
    first.save_checkpoint(tmp_path / "c.npz", {"note": "mine"})
    resumed = MolecularModel.load_checkpoint(tmp_path / "c.npz", threads=1)
    assert resumed.checkpoint_extra == {"note": "mine"} and resumed.steps == 15
    resumed.run(25)
    for name in ("positions", "velocities", "forces", "loss_values"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(whole, name), err_msg=name)
    assert resumed.time_fs == whole.time_fs and resumed.steps == whole.steps == 40
    pd.testing.assert_frame_equal(resumed.datacollector.get_model_vars_dataframe(),
                                  whole.datacollector.get_model_vars_dataframe())
    assert resumed.rng.random() == whole.rng.random() and resumed.random.random() == whole.random.random()
    if isinstance(whole.integrator, VelocityVerlet):
        np.testing.assert_array_equal(resumed.integrator.thermostat.xi, whole.integrator.thermostat.xi)


def test_ase_reads_the_velocities_the_simulation_had(reference, tmp_path):
    ase_io = pytest.importorskip("ase.io")
    from ase import units

    frames = ase_io.read(reference / "trajectory.xyz", ":")
    assert len(frames) == STEPS // 10 + 1
    model = MolecularModel.load_checkpoint(reference / "checkpoint.npz")  # the final state
    assert model.steps == STEPS and frames[-1].info["step"] == STEPS
    np.testing.assert_allclose(frames[-1].get_velocities() * units.fs, model.velocities, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(frames[-1].positions, model.positions, atol=1e-9)
    n = len(model.agent_list)
    assert frames[-1].get_temperature() == pytest.approx(model.temperature * (3 * n - 3) / (3 * n), rel=1e-5)  # ASE: 3N dof, CODATA 2014
    header = (reference / "trajectory.xyz").read_text().splitlines()[1]
    assert 'units="length:angstrom time:fs mass:amu energy:eV temperature:K"' in header
    ours = read_frames(reference / "trajectory.xyz")[-1]
    np.testing.assert_allclose(ours["velocities"], model.velocities, rtol=1e-9, atol=1e-12)


def test_compressed_output_and_starting_from_our_own_last_frame(inputs, reference, tmp_path):
    ase_io = pytest.importorskip("ase.io")
    out = tmp_path / "gz"
    assert main(["simulate", "--loss", str(inputs / "loss.json"), "--from", f"{reference / 'trajectory.xyz'}:2",
                 "--steps", "20", "--compress", "--no-progress", "--out", str(out)]) == 0
    assert not (out / "trajectory.xyz").exists()
    frames = ase_io.read(out / "trajectory.xyz.gz", ":")
    assert len(frames) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["start"].endswith("trajectory.xyz frame 2") and summary["status"] == "completed"
    third = ase_io.read(reference / "trajectory.xyz", 2)
    np.testing.assert_allclose(frames[0].positions, third.positions, atol=1e-9)
    np.testing.assert_allclose(frames[0].get_velocities(), third.get_velocities(), rtol=1e-9)


def test_cli_defaults_version_and_resume_refusing_other_settings(reference, capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "every N steps (default: 10)" in text and "(default: 0.5)" in text and "--resume DIR" in text
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("mld ")
    assert main(["simulate", "--resume", str(reference), "--dt", "0.25"]) == 2
    assert "--dt cannot be given" in capsys.readouterr().err


def collapsing_pair(separation=2.0):
    """Two hydrogens bound by an attractive exp(-r) 'loss' (no repulsion): they fall into each other."""
    losses = pair_potential_losses(("H",), ["exp(a=1)"], [[[-2.0]]])
    positions = np.array([[3.0, 3.0, 3.0], [3.0 + separation, 3.0, 3.0]])
    return losses, positions


def test_the_fusion_guard_stops_two_collapsing_nuclei():
    losses, positions = collapsing_pair()
    model = MolecularModel(["H", "H"], positions, 10.0, losses, integrator=VelocityVerlet(0.5))
    with pytest.raises(SimulationBlewUp, match=r"atoms 0 \(H\) and 1 \(H\) are 0\.\d+ angstrom apart") as caught:
        run_guarded(model, 1000, max_temperature_K=None)
    assert caught.value.pair == (0, 1) and 10 < caught.value.step < 1000
    good = caught.value.last_good
    assert good["step"] == caught.value.step - 1
    assert np.linalg.norm(good["positions"][0] - good["positions"][1]) >= 0.5
    assert np.all(np.isfinite(model.positions))  # NaN would never have stopped it
    free = MolecularModel(["H", "H"], positions, 10.0, losses, integrator=VelocityVerlet(0.5))
    assert run_guarded(free, 300, max_temperature_K=None, min_distance=0) == 300


def test_simulate_reports_fusion_with_the_step_and_the_last_good_frame(tmp_path, capsys):
    losses, positions = collapsing_pair()
    losses.save(tmp_path / "collapse.json")
    write_frame(tmp_path / "pair.xyz", ["H", "H"], positions, 10.0, velocities=np.zeros((2, 3)))
    out = tmp_path / "out"
    argv = ["simulate", "--loss", str(tmp_path / "collapse.json"), "--from", str(tmp_path / "pair.xyz"),
            "--steps", "400", "--temperature", "2000", "--no-progress", "--out", str(out)]
    assert main(argv) == 1
    summary = json.loads((out / "summary.json").read_text())
    assert "closer than the minimum distance 0.5 angstrom" in summary["blew_up"] and summary["status"] == "blew up"
    frame = read_frames(out / "last_good_frame.xyz")[0]
    assert closest_pair_within(frame["positions"], 10.0, 0.5)[1] == -1
    assert "blew up at step" in capsys.readouterr().err
    assert main(argv[:-2] + ["--min-distance", "0.1", "--out", str(tmp_path / "tight")]) == 1
    assert "0.1 angstrom" in json.loads((tmp_path / "tight" / "summary.json").read_text())["blew_up"]


def test_closest_pair_matches_all_pairs():
    rng = np.random.default_rng(7)
    for n, box in ((2, 4.0), (50, 6.0), (600, 18.0)):
        positions = rng.uniform(-box, 2 * box, size=(n, 3))
        d = positions[:, None] - positions[None]
        d = np.linalg.norm(d - box * np.round(d / box), axis=-1) + np.diag(np.full(n, np.inf))
        distance, i, j = closest_pair_within(positions, box, 1.5)
        if d.min() < 1.5:
            assert distance == pytest.approx(d.min(), rel=1e-12) and d[i, j] == pytest.approx(distance) and i < j
        else:
            assert (i, j) == (-1, -1)


def test_a_loss_applies_only_in_its_own_box(inputs, tmp_path, capsys):
    losses = AgentLosses.load(inputs / "loss.json")
    domain = losses.domain
    assert domain["box_A"] == pytest.approx(9.8528) and domain["cutoff_A"] is None
    assert domain["species"] == ["O", "H"] and 300 < domain["temperature_K"][0] < domain["temperature_K"][1] < 600
    assert losses.provenance["accelerations"] == "forces"
    argv = ["simulate", "--loss", str(inputs / "loss.json"), "--waters", "64", "--steps", "3", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err
    assert "9.8528 angstrom box" in error and "--allow-other-box" in error and "\n" not in error.strip()
    assert main(argv + ["--allow-other-box", "--out", str(tmp_path / "b")]) in (0, 1)
    assert "used anyway" in capsys.readouterr().err
    symbols, positions, velocities, box = water_box(32, seed=1)
    with pytest.raises(ValueError, match="fits only that box"):
        MolecularModel(symbols, positions, box, losses)
    with pytest.raises(ValueError, match="minimum-image sums"):
        MolecularModel(symbols, positions, 9.8528, losses, cutoff=4.5)
    old = AgentLosses(losses.losses, {"data": "somewhere"})
    with pytest.warns(UserWarning, match="records no training box"):
        MolecularModel(symbols, positions, box, old)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """20 frames of the embedded CP2K run as a run directory of its own (no energy file needed, kept)."""
    return embedded_run_slice(tmp_path_factory.mktemp("h2o-32-short"), 20)


def test_evaluate_warns_when_the_score_is_meaningless(inputs, short_run, tmp_path, capsys):
    losses = AgentLosses.load(inputs / "loss.json")
    for loss in losses.losses.values():
        loss.A, loss.B = loss.A * 50, loss.B * 50
    losses.provenance["box_A"] = 6.2
    losses.save(tmp_path / "bad.json")
    assert main(["evaluate", "--loss", str(tmp_path / "bad.json"), "--data", str(short_run)]) == 0
    captured = capsys.readouterr()
    assert "mld: warning: the relative RMSE of O is" in captured.err and "6.2 angstrom box" in captured.err
    assert json.loads(captured.out)["warnings"]


def test_a_missing_force_file_is_a_warning_and_the_provenance_says_so(short_run, tmp_path):
    run = tmp_path / "no-forces"
    run.mkdir()
    for item in short_run.iterdir():
        if "-frc-" not in item.name:
            (run / item.name).write_bytes(item.read_bytes())
    with pytest.warns(UserWarning, match="no h2o-32-frc-1.xyz, so the accelerations are finite differences of velocities"):
        trajectory = read_trajectory(run)
    assert trajectory.acceleration_source == "finite differences of velocities"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        losses = fit_losses(trajectory, NAMES[:3], "linear")
    assert losses.provenance["accelerations"] == "finite differences of velocities"
