"""``mld fit``, ``mld select`` and ``mld evaluate`` end to end on the embedded CP2K run."""

import json

import pytest

from experiments.cli import main
from agents.loss import AgentLosses, pair_potential_losses

INVARIANTS = "exp(a=1),gauss(s=3),pow(n=1)"


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    path = tmp_path_factory.mktemp("fit") / "loss.json"
    assert main(["fit", "--invariants", INVARIANTS, "--order", "linear", "--out", str(path), "--no-progress"]) == 0
    return path


def test_fit_writes_a_loss_with_provenance(fitted):
    losses = AgentLosses.load(fitted)
    assert losses.species == ["O", "H"]
    for species in ("O", "H"):
        assert losses[species].invariants.names == INVARIANTS.split(",")
        assert losses[species].order == "linear"
    provenance = losses.provenance
    assert provenance["order"] == "linear" and provenance["ridge"] == 0.0
    assert provenance["data"].endswith("h2o-32.inp") and provenance["steps"][0] == 0
    assert set(provenance["splits"]) == {"train", "validation", "test"}
    for species in ("O", "H"):
        assert 0 < provenance["metrics"][species]["validation"] < 1


def test_evaluate_reports_every_species(fitted, capsys):
    code, out, _ = run_cli(capsys, "evaluate", "--loss", str(fitted))
    assert code == 0
    scores = json.loads(out)["relative_rmse"]
    assert set(scores) == {"O", "H"} and all(0 < v < 1 for v in scores.values())


def test_evaluate_rejects_a_loss_for_other_species(tmp_path, capsys):
    path = pair_potential_losses(("O", "N"), ["gauss(s=2)"], [[[1.0], [0.5]], [[0.5], [2.0]]]).save(tmp_path / "on.json")
    code, _, err = run_cli(capsys, "evaluate", "--loss", str(path))
    assert code == 2 and err.startswith("mld: error:") and "species" in err


def test_fit_rejects_unknown_invariants(tmp_path, capsys):
    code, _, err = run_cli(capsys, "fit", "--invariants", "cos(a=1)", "--out", str(tmp_path / "x.json"))
    assert code == 2 and "cos(a=1)" in err


def test_select_writes_fig2_and_table1(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "select", "--out", str(tmp_path), "--no-progress")
    assert code == 0
    printed = json.loads(out)
    assert printed["wall_time_s"] > 0 and set(printed["selected"]) == {"O", "H"}
    assert all(len(names) == 7 for names in printed["selected"].values())
    assert (tmp_path / "table1.csv").read_text().count("\n") == 5  # header + O/H x linear/quadratic
    png = next(tmp_path.glob("*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


DESCRIPTORS = "O:gauss(s=1,rc=3.5),H:gauss(s=1,rc=3.5),H:exp(a=2,rc=3.5),OH:angle(eta=0.3,zeta=2,lambda=+1,rc=3)"


@pytest.mark.parametrize("form", ["own", "shared"])
def test_fit_a_descriptor_loss_evaluate_and_simulate_it(form, tmp_path, capsys):
    from agents.descriptor_loss import DescriptorLoss
    from learning.cp2k.reader import read_trajectory
    from learning.labelled import write_labelled

    data = write_labelled(read_trajectory().frames(slice(0, None, 16)), tmp_path / "every16.xyz")
    loss_path = tmp_path / f"{form}.json"
    code, out, _ = run_cli(capsys, "fit", "--data", str(data), "--form", form, "--invariants", DESCRIPTORS,
                           "--order", "linear", "--out", str(loss_path), "--no-progress")
    assert code == 0
    loss = DescriptorLoss.load(loss_path)
    assert loss.form == form and ",".join(loss.descriptors.names) == DESCRIPTORS and loss.wall is None
    assert loss.provenance["cutoff_A"] == 3.5 and loss.provenance["box_A"] == pytest.approx(9.8528)
    assert all(0 < loss.provenance["metrics"][s] < 1 for s in ("O", "H"))
    code, out, _ = run_cli(capsys, "evaluate", "--loss", str(loss_path), "--data", str(data))
    assert code == 0 and all(0 < v < 1 for v in json.loads(out)["relative_rmse"].values())
    code, out, _ = run_cli(capsys, "simulate", "--loss", str(loss_path), "--from", str(data), "--steps", "10",
                           "--out", str(tmp_path / "run"), "--no-progress")
    assert code == 0 and json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"


def test_auto_selection_is_for_the_papers_losses(capsys):
    code, _, err = run_cli(capsys, "fit", "--form", "shared", "--out", "unused.json", "--no-progress")
    assert code == 2 and "--invariants auto" in err


def test_fit_a_named_variant_as_mld_beyond_does(tmp_path, capsys):
    import numpy as np

    from agents.descriptor_loss import DescriptorLoss
    from experiments.beyond import fit_variant
    from learning.cp2k.reader import read_trajectory
    from learning.labelled import read_labelled, write_labelled

    data = write_labelled(read_trajectory().frames(slice(0, None, 16)), tmp_path / "every16.xyz")
    path = tmp_path / "variant.json"
    code, _, _ = run_cli(capsys, "fit", "--data", str(data), "--variant", "shared/radial", "--stride", "3",
                         "--out", str(path), "--no-progress")
    assert code == 0
    loss = DescriptorLoss.load(path)
    expected = fit_variant(read_labelled(data), "shared/radial", stride=3)
    assert loss.form == "shared" and loss.descriptors.names == expected.descriptors.names
    steps = read_labelled(data).steps
    assert loss.provenance["steps"] == [int(steps[0]), int(steps[::3][-1])] and steps[::3][-1] != steps[-1]
    for s in ("O", "H"):
        np.testing.assert_array_equal(loss.A[s], expected.A[s])
        np.testing.assert_array_equal(loss.B[s], expected.B[s])
    code, _, err = run_cli(capsys, "fit", "--variant", "shared/radial", "--cutoff", "4", "--ridge", "0", "--out", str(path))
    assert code == 2 and "leave out --cutoff, --ridge" in err
    code, _, err = run_cli(capsys, "fit", "--variant", "shared/radial", "--stride", "0", "--out", str(path))
    assert code == 2 and "--stride must be an integer >= 1" in err


def test_a_split_of_one_frame_has_no_relative_energy_error_and_the_loss_stays_plain_json(tmp_path, capsys):
    from learning.cp2k.reader import read_trajectory
    from learning.labelled import write_labelled

    data = write_labelled(read_trajectory().frames(slice(0, None, 80)), tmp_path / "every80.xyz")
    path = tmp_path / "shared.json"
    code, out, _ = run_cli(capsys, "fit", "--data", str(data), "--form", "shared", "--invariants", DESCRIPTORS,
                           "--order", "linear", "--out", str(path), "--no-progress")
    assert code == 0
    energy = json.loads(out)["energy_rmse"]
    assert energy["test"]["relative"] is None and energy["test"]["eV_per_atom"] > 0  # one test frame: no spread
    json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the loss JSON"))
