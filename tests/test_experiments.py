"""The main job and the run commands end to end: ``mld reproduce --quick``, ``mld simulate``, ``mld tau``."""

import json

import numpy as np
import pandas as pd
import pytest

from conftest import embedded_run_slice

from experiments.cli import main
from experiments.extxyz import read_positions
from agents.loss import AgentLosses

FRAMES = 120  # a slice of the embedded run: small enough for the suite, long enough for every split


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The first FRAMES frames of the embedded CP2K run, as a run directory of its own."""
    return embedded_run_slice(tmp_path_factory.mktemp("h2o-32-slice"), FRAMES)


@pytest.fixture(scope="module")
def reproduced(small_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    assert main(["reproduce", "--quick", "--data", str(small_run), "--out", str(out), "--no-progress"]) == 0
    return out


def test_reproduce_quick_writes_every_figure_table_and_the_report(reproduced):
    """Figs 1-7, Table 1, the tau sweep and the water observables beside CP2K's."""
    for name in ("dataset/fig1_kinetic_energy", "selection/fig2_selection", "water/fig3_kinetic_energy",
                 "water/fig4_oh_bond", "water/fig5_oh_four_hydrogens", "water/fig6_spectrum",
                 "water/fig7_hoh_angle", "tau/tau_limit"):
        assert (reproduced / f"{name}.png").stat().st_size > 10_000, name
    for name in ("selection/table1", "selection/fig2_selection", "water/fig6_spectrum", "tau/tau_sweep", "timing/timing"):
        assert len(pd.read_csv(reproduced / f"{name}.csv")) > 0, name
    summary = json.loads((reproduced / "summary.json").read_text())
    assert summary["dataset"]["frames"] == FRAMES
    assert {r["order"] for r in summary["selection"]["table1"]} == {"linear", "quadratic"}
    assert all(len(v) == 7 for v in summary["selection"]["selected"].values())
    water = summary["water"]
    assert water["steps"] == 400 and np.isfinite(water["mean_temperature_K"])
    assert 0.9 < water["oh_mean_A"] < 1.2 and water["thermostat"].startswith("Nose-Hoover")
    assert summary["tau"]["deviation_shrinks_with_tau"] is True
    rows = {row["observable"]: row for row in summary["observables"]["comparison"]}
    assert rows["oh_bond_mean_A"]["status"] in ("pass", "fail") and rows["oh_bond_mean_A"]["reference"] > 0.9
    assert rows["bend_cm1"]["status"] == "reference too short"  # 120 CP2K frames: 550 cm^-1 resolution
    for name in ("rdf", "angles", "vdos", "temperatures"):
        assert (reproduced / "observables" / f"{name}.png").stat().st_size > 10_000, name
    report = (reproduced / "report.md").read_text()
    assert "Water as a physicist checks it" in report and "| pass |" in report
    assert "Table 1" in report and "| O | quadratic |" in report and "0.31" in report
    assert "## Beyond the paper" in report and "| shared/many-body-l2 |" in report and "| own/radial |" in report
    assert (reproduced / "beyond" / "variants.png").stat().st_size > 10_000
    assert set(summary["beyond"]["variants"]) == {"shared/many-body-l2", "own/radial"}
    AgentLosses.load(reproduced / "losses.json")


def test_simulate_writes_an_extended_xyz_trajectory(reproduced, small_run, tmp_path, capsys):
    out = tmp_path / "sim"
    code = main(["simulate", "--loss", str(reproduced / "losses.json"), "--from", f"{small_run}:50",
                 "--steps", "20", "--every", "5", "--out", str(out), "--no-progress"])
    assert code == 0
    symbols, frames = read_positions(out / "trajectory.xyz")
    assert len(frames) == 5 and len(symbols) == 96  # steps 0, 5, 10, 15, 20
    assert len(pd.read_csv(out / "observables.csv")) == 5
    summary = json.loads((out / "summary.json").read_text())
    assert summary["start"].endswith("frame 50") and "blew_up" not in summary
    header = (out / "trajectory.xyz").read_text().splitlines()[1]
    assert 'Lattice="9.8528 0 0 0 9.8528 0 0 0 9.8528"' in header and "masses:R:1:momenta:R:3" in header


def test_simulate_learning_mode(reproduced, small_run, tmp_path):
    out = tmp_path / "learning"
    assert main(["simulate", "--loss", str(reproduced / "losses.json"), "--from", str(small_run), "--steps", "10",
                 "--mode", "learning", "--tau", "200", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "learning" and summary["tau_fs"] == 200 and "blew_up" not in summary


def test_a_run_that_blows_up_stops_with_its_step_and_keeps_its_last_good_frame(reproduced, small_run, tmp_path, capsys):
    losses = AgentLosses.load(reproduced / "losses.json")
    for loss in losses.losses.values():
        loss.A = loss.A * 1e6
        loss.B = loss.B * 1e6
    losses.save(tmp_path / "explosive.json")
    out = tmp_path / "boom"
    code = main(["simulate", "--loss", str(tmp_path / "explosive.json"), "--from", str(small_run), "--steps", "50",
                 "--thermostat", "none", "--max-force", "1e9", "--out", str(out), "--no-progress"])
    assert code == 1
    summary = json.loads((out / "summary.json").read_text())
    assert "blew up at step" in summary["blew_up"]
    symbols, frames = read_positions(out / "last_good_frame.xyz")
    assert np.all(np.isfinite(frames)) and len(symbols) == 96
    assert "blew up at step" in capsys.readouterr().err


@pytest.mark.parametrize("arguments,message", [
    (["--from", "DATA:9999"], "past the end"),
    (["--steps", "-3"], "--steps"),
    (["--out", "/proc/forbidden"], "--out"),
    (["--loss", "OTHER"], "species"),
    (["--tau", "100"], "tau: only for the learning dynamics"),
    (["--mode", "learning", "--tau", "100", "--max-force", "5"], "max_force: only for the newtonian"),
    (["--mode", "learning", "--tau", "100", "--thermostat", "nose-hoover"], "thermostat: only for the newtonian"),
    (["--mode", "learning", "--tau", "100", "--temperature", "300"], "temperature_K: only for the newtonian"),
    (["--mode", "learning"], "tau"),
    (["--thermostat", "none", "--temperature", "300"], "needs a thermostat"),
])
def test_bad_simulate_input_is_one_line_exit_2_and_leaves_nothing(arguments, message, reproduced, small_run, tmp_path, capsys):
    other = tmp_path / "other.json"
    losses = AgentLosses.load(reproduced / "losses.json")
    AgentLosses({"O": losses["O"]}).save(other)
    out = tmp_path / "out"
    base = {"--loss": str(reproduced / "losses.json"), "--from": str(small_run), "--steps": "5", "--out": str(out)}
    for key, value in zip(arguments[::2], arguments[1::2]):
        base[key] = value.replace("DATA", str(small_run)).replace("OTHER", str(other))
    argv = ["simulate", "--no-progress"] + [x for pair in base.items() for x in pair]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("mld: error:") and message in error and "\n" not in error
    assert not out.exists() or not any(out.iterdir())


def test_the_water_experiment_reports_a_blow_up_as_a_result(reproduced, small_run):
    from environment.integrators import VelocityVerlet
    from environment.model import MolecularModel
    from experiments.water import WaterSimulationExperiment, run_or_stop
    from learning.cp2k.reader import read_trajectory

    trajectory = read_trajectory(small_run)
    losses = AgentLosses.load(reproduced / "losses.json")
    for loss in losses.losses.values():
        loss.A, loss.B = loss.A * 1e6, loss.B * 1e6
    experiment = WaterSimulationExperiment(trajectory=trajectory, losses=losses, steps=30, nve_steps=30,
                                           max_force=1e9)
    model = MolecularModel(trajectory.symbols, trajectory.positions[50], trajectory.box, losses,
                           velocities=trajectory.velocities[50], integrator=VelocityVerlet(0.5, None, 1e9))
    assert "blew up at step" in run_or_stop(model, 30, 4000.0, False, "NVE")  # recorded, not raised
    with pytest.raises(ValueError, match="too short to compare with CP2K .*blew up at step"):
        experiment.run()


def test_analyze_compares_a_simulated_trajectory_with_the_cp2k_run(reproduced, small_run, tmp_path):
    sim = tmp_path / "sim"
    assert main(["simulate", "--loss", str(reproduced / "losses.json"), "--from", f"{small_run}:60",
                 "--steps", "40", "--every", "2", "--out", str(sim), "--no-progress"]) == 0
    out = tmp_path / "analysis"
    assert main(["analyze", str(sim / "trajectory.xyz"), "--reference", str(small_run), "--out", str(out),
                 "--no-progress"]) == 0
    summary = json.loads((out / "observables.json").read_text())
    assert summary["trajectory"]["frames"] == 21 and summary["reference"]["frames"] == FRAMES
    assert {row["status"] for row in summary["comparison"]} <= {"pass", "fail", "reference too short",
                                                               "learned run too short", "not available"}
    assert len(pd.read_csv(out / "comparison.csv")) == len(summary["comparison"])
    assert (out / "rdf.png").exists() and (out / "temperatures.png").exists()
