"""``experiments.beyond``: own vs shared, radial vs many-body losses, fitted and run against CP2K, and one loss in
the CP2K box and its tiling (``mld beyond --tile``; tiny settings)."""

import json

import numpy as np
import pandas as pd
import pytest

from agents.descriptor_loss import DescriptorLoss
from agents.units import KB_EV_PER_K
from conftest import embedded_run_slice
from experiments.beyond import FormComparisonExperiment, loss_file_name
from experiments.tiling import TiledBoxExperiment
from learning.cp2k.reader import read_trajectory

FRAMES = 120  # as tests/test_experiments.py: every split of Sec. 5.1 has frames
VARIANTS = ("shared/many-body-l2", "own/radial")


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    trajectory = read_trajectory().frames(slice(0, FRAMES))
    experiment = FormComparisonExperiment(trajectory=trajectory, variants=VARIANTS, stride=8, steps=40, every=2,
                                          nve_steps=40)
    out = tmp_path_factory.mktemp("beyond")
    experiment.save(out)
    return experiment, trajectory, out


def test_every_variant_is_fitted_run_and_compared_with_cp2k(compared):
    experiment, _, out = compared
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["variants"]) == list(VARIANTS)
    for variant, v in summary["variants"].items():
        assert set(v["test_rmse"]) == {"O", "H"} and all(0 < r < 1 for r in v["test_rmse"].values()), variant
        assert v["fit_s"] > 0 and v["nvt_steps"] > 0
    shared = summary["variants"]["shared/many-body-l2"]
    assert shared["blew_up"] is None and shared["nvt_steps"] == 40
    assert abs(shared["observables"]["hoh_angle_mean_deg"]["learned"] - summary["cp2k"]["hoh_angle_mean_deg"]) < 5
    table = pd.read_csv(out / "variants.csv")
    assert list(table["variant"]) == list(VARIANTS)
    assert (out / "variants.png").stat().st_size > 10_000
    for variant in VARIANTS:
        loss = DescriptorLoss.load(out / loss_file_name(variant))
        assert loss.form == variant.split("/")[0]


def test_the_shared_forces_sum_to_zero(compared):
    _, trajectory, out = compared
    loss = DescriptorLoss.load(out / loss_file_name("shared/many-body-l2"))
    _, forces = loss.evaluate(trajectory.positions[60], trajectory.box, trajectory.symbols)[:2]
    assert np.abs(forces).max() > 0.1
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-9)


def test_the_shared_form_conserves_energy_where_the_own_form_heats(compared):
    """NVE from the same frame: the shared loss's E = KE + sum H drifts little; the paper's own form heats."""
    experiment, trajectory, _ = compared
    summary = experiment.results.summary["variants"]
    shared, own = summary["shared/many-body-l2"]["nve"], summary["own/radial"]["nve"]
    own_heating_eV_per_ps = own["temperature_K_per_ps"] * 0.5 * (3 * len(trajectory.symbols) - 3) * KB_EV_PER_K
    assert abs(shared["energy_eV_per_ps"]) < 1.0  # over 20 fs: Verlet's bounded energy error, no trend yet
    assert own_heating_eV_per_ps > 20 * abs(shared["energy_eV_per_ps"])


def test_mld_beyond_names_an_unknown_variant_in_one_line(tmp_path, capsys):
    from experiments.cli import main

    assert main(["beyond", "--variants", "shared/pairs", "--steps", "10", "--out", str(tmp_path)]) == 2
    assert "--variants must name some of own/radial" in capsys.readouterr().err


def test_mld_beyond_tile_runs_one_loss_in_both_boxes_and_compares_them(compared, tmp_path):
    """``mld beyond --tile 2 --loss FILE`` on a slice of the embedded run: both boxes, CP2K beside them."""
    from experiments.cli import main

    _, trajectory, out = compared
    (tmp_path / "run").mkdir()
    data = embedded_run_slice(tmp_path / "run", FRAMES)
    loss = out / loss_file_name("shared/many-body-l2")
    result = tmp_path / "tiled"
    assert main(["beyond", "--tile", "2", "--loss", str(loss), "--data", str(data), "--steps", "40",
                 "--start-frame", "30", "--no-progress", "--out", str(result)]) == 0
    assert sorted(p.name for p in result.iterdir()) == ["summary.json", "tiling.csv", "tiling.png"]
    summary = json.loads((result / "summary.json").read_text())
    assert summary["start_frame"] == 30
    original, tiled = summary["runs"]["original"], summary["runs"]["tiled"]
    assert (original["atoms"], tiled["atoms"]) == (96, 768)
    assert tiled["box_A"] == pytest.approx(2 * original["box_A"]) == pytest.approx(2 * trajectory.box)
    assert original["nvt_steps"] == tiled["nvt_steps"] == 40 and original["blew_up"] is tiled["blew_up"] is None
    # 20 fs from the same frame: the kicked copies have only begun to drift apart, the boxes agree
    assert 0 < summary["copy_divergence_A"]["final"] < 1e-3
    assert summary["agreement"]["fail"] == 0 and summary["agreement"]["judged"] >= 10
    table = pd.read_csv(result / "tiling.csv").set_index("observable")
    angle = table.loc["hoh_angle_mean_deg"]
    assert abs(angle["tiled"] - angle["original"]) < 0.05 and abs(angle["cp2k"] - angle["original"]) < 5
    assert set(table["boxes_agree"]) <= {"pass", "reference too short", "not available"}
    assert (result / "tiling.png").stat().st_size > 10_000


def test_exact_copies_of_a_tiling_move_in_lockstep(compared):
    """Without the kick every copy feels the same forces (to rounding) and the same thermostat: the
    copies stay copies."""
    experiment, trajectory, _ = compared
    tiled = TiledBoxExperiment(trajectory=trajectory, losses=experiment.losses["shared/many-body-l2"], steps=40,
                               symmetry_noise=0.0).run()
    assert tiled.summary["copy_divergence_A"]["max"] < 1e-9


@pytest.mark.parametrize("argv, message", [
    (["--loss", "x.json"], "--loss applies only with --tile"),
    (["--tile", "1"], "--tile must be an integer of at least 2"),
    (["--tile", "2", "--variants", "own/radial"], "--variants does not apply with --tile"),
])
def test_mld_beyond_tile_names_an_option_that_does_not_apply(tmp_path, capsys, argv, message):
    from experiments.cli import main

    assert main(["beyond", *argv, "--steps", "10", "--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
