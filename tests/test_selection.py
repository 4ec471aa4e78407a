"""Backward elimination (Sec. 5.2, Fig. 2) and Table 1: synthetic recovery and the real CP2K run."""

import numpy as np
import pytest
from test_regression import GENERATING, known_loss, synthetic_run

from learning.cp2k.reader import default_data_path, read_trajectory
from learning.selection import select_and_fit

DISTRACTORS = ("exp(a=1/4)", "gauss(s=1)", "gauss(s=6)", "pow(n=2)")


def test_elimination_keeps_the_generating_invariants():
    run = synthetic_run({"O": known_loss("O", seed=5), "H": known_loss("H", seed=6)}, n_frames=24)
    result = select_and_fit(run, n_keep=3, functions=DISTRACTORS[:2] + GENERATING + DISTRACTORS[2:])
    for species in ("O", "H"):
        assert sorted(result["selected"][species]) == sorted(GENERATING)
        curve = result["curves"][species]
        assert [row["n_invariants"] for row in curve] == list(range(7, 0, -1))
        assert {row["removed"] for row in curve[1:5]} == set(DISTRACTORS)
        assert curve[4]["validation"] < 1e-8 < curve[5]["validation"]  # exact until a generator goes
    assert result["losses"].species == ["O", "H"]
    assert result["losses"]["H"].invariants.names == list(GENERATING)


@pytest.fixture(scope="module")
def real():
    return select_and_fit(read_trajectory(default_data_path()))


def test_real_run_gives_fig2_curves_and_table1(real):
    for species in ("O", "H"):
        curve = real["curves"][species]
        assert [row["n_invariants"] for row in curve] == list(range(18, 0, -1))
        assert len(real["selected"][species]) == 7
        removed = [row["removed"] for row in curve[1:]] + curve[-1]["invariants"]
        assert len(set(removed)) == 18  # every function removed once, the last one kept
        for row in curve:
            assert 0 < row["train"] < 1 and 0 < row["validation"] < 1.05 and 0 < row["test"] < 1.05
        assert curve[0]["train"] <= curve[-1]["train"]  # more invariants fit the training set better
    table = {(row["species"], row["order"]): row for row in real["table1"]}
    assert set(table) == {(s, o) for s in ("O", "H") for o in ("linear", "quadratic")}
    for species in ("O", "H"):
        linear, quadratic = table[species, "linear"], table[species, "quadratic"]
        assert quadratic["train"] <= linear["train"]
        assert quadratic["validation"] <= linear["validation"]
        assert 0.2 < quadratic["test"] < 0.6  # the paper: 0.31 (O), 0.33 (H)
    provenance = real["losses"].provenance
    assert provenance["selected"] == real["selected"] and provenance["data"].endswith("h2o-32.inp")
    assert set(provenance["metrics"]) == {"O", "H"}


def test_keep_the_best_validation_size():
    run = synthetic_run({"O": known_loss("O", seed=7), "H": known_loss("H", seed=8)}, n_frames=10)
    result = select_and_fit(run, n_keep=None, functions=GENERATING + ("gauss(s=1)",))
    for species in ("O", "H"):
        best = min(row["validation"] for row in result["curves"][species])
        chosen = next(r for r in result["curves"][species] if r["invariants"] == result["selected"][species])
        assert chosen["validation"] == best
        assert result["best_size"][species] == len(result["selected"][species])
    with pytest.raises(ValueError, match="n_keep"):
        select_and_fit(run, n_keep=9, functions=GENERATING)
    assert np.isfinite(result["wall_time_s"])
