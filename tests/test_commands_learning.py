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
