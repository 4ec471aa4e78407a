"""Backward elimination over a union of descriptors (learning/descriptor_selection.py) and ``mld select
--invariants``: deletions of the Gram matrix against direct refits, a known answer, the CLI."""

import json

import numpy as np
import pytest
from conftest import embedded_run_slice
from manybody_support import EVERY_KIND, random_config, random_loss

from agents.descriptor_loss import DescriptorLoss
from experiments.cli import main
from learning.descriptor_fit import DescriptorEquations
from learning.descriptor_selection import _Group, backward_elimination, select_descriptors
from learning.selection import chosen

BOX = 8.0
QUADRATIC = [0, 1, 5, 7]
NEEDED = [0, 2, 5]  # O:exp, O:pow, OH:angle: the target's descriptors
RIDGE = 1e-12


def equations(form, seed=3, noise=1e-3):
    """Equations of 7 + 3 frames whose forces come from a loss on NEEDED only (B on 0 and 5), plus noise."""
    rng = np.random.default_rng(seed)
    truth = random_loss(EVERY_KIND, form, rng, quadratic=[0, 5])
    for s in truth.A:
        truth.A[s][np.setdiff1d(np.arange(len(EVERY_KIND)), NEEDED)] = 0.0
    frames = np.array([random_config(24, BOX, rng, min_distance=1.0)[0] for _ in range(10)])
    symbols = ["O" if k % 3 == 0 else "H" for k in range(24)]
    forces = np.array([truth.evaluate(q, BOX, symbols)[1] for q in frames])
    forces += rng.normal(scale=noise * forces.std(), size=forces.shape)
    eq = DescriptorEquations(EVERY_KIND, form, ("O", "H"), QUADRATIC)
    return eq.add_frames({"train": range(7), "validation": range(7, 10)}, frames, BOX, symbols, forces)


def direct(eq, keep, order, mu):
    """Coefficients {group: theta} and validation RMSE of a direct solve on the equations cut to ``keep``
    with the absolute ridges ``mu`` ({group: mu})."""
    sub = eq.restrict(keep)
    theta = {}
    for name, members in sub.groups.items():
        G, b = sub.normal(order, members)
        theta[name] = np.linalg.solve(G + mu[name] * np.eye(len(G)), b)
    return sub, theta, sub.relative_rmse(order, theta, "validation")


@pytest.mark.parametrize("form", ["own", "shared"])
def test_restricted_equations_equal_equations_of_the_subset(form):
    """Cutting the Gram matrix of the union gives the equations accumulated on the subset alone."""
    rng = np.random.default_rng(5)
    truth = random_loss(EVERY_KIND, form, rng, quadratic=QUADRATIC)
    frames = np.array([random_config(24, BOX, rng, min_distance=1.0)[0] for _ in range(3)])
    symbols = random_config(24, BOX, rng)[1]
    forces = np.array([truth.evaluate(q, BOX, symbols)[1] for q in frames])
    energies = np.array([truth.evaluate(q, BOX, symbols)[0].sum() for q in frames]) if form == "shared" else None
    keep = [1, 2, 5, 7]
    full = DescriptorEquations(EVERY_KIND, form, ("O", "H"), QUADRATIC)
    full.add_frames({"train": range(3)}, frames, BOX, symbols, forces, energies)
    subset = EVERY_KIND.__class__(tuple(EVERY_KIND.features[p] for p in keep))
    fresh = DescriptorEquations(subset, form, ("O", "H"), [0, 2, 3])
    fresh.add_frames({"train": range(3)}, frames, BOX, symbols, forces, energies)
    cut = full.restrict(keep)
    assert cut.descriptors == subset and list(cut.quadratic) == [0, 2, 3]
    for s in ("O", "H"):
        a, b = cut.equations["train"][s], fresh.equations["train"][s]
        assert np.allclose(a.gram, b.gram, rtol=1e-12, atol=1e-12 * np.abs(b.gram).max())
        assert np.allclose(a.moment, b.moment, rtol=1e-12, atol=1e-12 * np.abs(b.moment).max())
    if form == "shared":
        assert np.allclose(cut.energy["train"].xx, fresh.energy["train"].xx, rtol=1e-12)


@pytest.mark.parametrize("form", ["own", "shared"])
def test_gram_deletions_equal_direct_refits(form):
    """Every point of the curve (Schur downdates of H) and the coefficients after deletions equal a direct
    solve on the reduced set, to 1e-8; the first removal is the best of all direct refits."""
    eq = equations(form)
    names = EVERY_KIND.names
    curve = backward_elimination(eq, "quadratic", ridge=RIDGE)
    assert [row["n_invariants"] for row in curve] == list(range(len(names), 0, -1))
    mu = {name: RIDGE * np.mean(np.diag(eq.normal("quadratic", members)[0])) for name, members in eq.groups.items()}
    for row in curve:
        keep = [names.index(n) for n in row["invariants"]]
        _, _, rmse = direct(eq, keep, "quadratic", mu)
        for s in ("O", "H"):
            assert row[f"validation_{s}"] == pytest.approx(rmse[s], rel=1e-8)
    first = [np.mean(list(direct(eq, [p for p in range(len(names)) if p != d], "quadratic", mu)[2].values()))
             for d in range(len(names))]
    assert curve[1]["removed"] == names[int(np.argmin(first))]
    assert curve[1]["validation"] == pytest.approx(min(first), rel=1e-8)
    # coefficients after deleting descriptors by downdates (the third deletion refactorises: below half)
    owners = eq.column_descriptors("quadratic")
    for name, members in eq.groups.items():
        group = _Group(eq, "quadratic", members, RIDGE, 0.0)
        deleted = []
        for d in (1, 7, 0, 3):
            group.delete(np.flatnonzero(np.any(owners[group.live] == d, axis=1)))
            deleted.append(d)
            _, theta, _ = direct(eq, [p for p in range(len(names)) if p not in deleted], "quadratic", mu)
            ours = group.theta() / group.scale[group.live]
            assert np.max(np.abs(ours - theta[name])) <= 1e-8 * np.max(np.abs(theta[name]))


@pytest.mark.parametrize("form", ["own", "shared"])
def test_elimination_removes_the_noise_descriptors_first(form):
    """Forces made from three descriptors: the five others go first, then the error jumps."""
    curve = backward_elimination(equations(form), "quadratic", ridge=RIDGE)
    names = EVERY_KIND.names
    removed = [row["removed"] for row in curve[1:]]
    assert sorted(names.index(n) for n in removed[:5]) == sorted(set(range(8)) - set(NEEDED))
    assert max(row["validation"] for row in curve[:6]) < 0.01 < curve[6]["validation"]
    assert chosen(curve, None, 0.5)["n_invariants"] == 3


def test_tolerance_rule_and_refit():
    result = select_descriptors(equations("shared"), "quadratic", ridges=(0.0, 1e-10), tolerance=0.5)
    assert sorted(EVERY_KIND.names.index(n) for n in result["selected"]) == NEEDED
    assert result["fit"].loss.descriptors.names == result["selected"]
    assert max(result["fit"].rmse["validation"].values()) < 0.01
    curve = [{"n_invariants": 3, "validation": 1.0}, {"n_invariants": 2, "validation": 1.05},
             {"n_invariants": 1, "validation": 2.0}]
    assert chosen(curve, None)["n_invariants"] == 3
    assert chosen(curve, None, 0.1)["n_invariants"] == 2
    with pytest.raises(ValueError, match="tolerance"):
        chosen(curve, None, -1.0)


def test_select_descriptors_from_the_command_line(tmp_path, capsys):
    """``mld select --invariants NAMES --form shared`` on 40 frames: curve CSV/PNG/JSON and the chosen loss."""
    (tmp_path / "run").mkdir()
    data = embedded_run_slice(tmp_path / "run", 40)
    names = "O:gauss(s=1,rc=3.5),H:gauss(s=1,rc=3.5),H:exp(a=2,rc=3.5),OH:angle(eta=0.3,zeta=2,lambda=+1,rc=3)"
    out = tmp_path / "selection"
    code = main(["select", "--data", str(data / "h2o-32.inp"), "--invariants", names, "--form", "shared",
                 "--order", "linear", "--tolerance", "0.05", "--out", str(out), "--no-progress"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["candidates"] == 4 and 1 <= printed["selected_count"] <= 4
    summary = json.loads((out / "summary.json").read_text())
    assert [row["n_invariants"] for row in summary["curve"]] == [4, 3, 2, 1]
    assert (out / "elimination.csv").read_text().count("\n") == 5
    assert (out / "elimination.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loss = DescriptorLoss.load(out / "losses.json")
    assert loss.form == "shared" and loss.descriptors.names == summary["selected"]
    assert ",".join(loss.provenance["selection"]["candidates"]) == names
    assert loss.provenance["energy_weight"] == 0.0 and "test" in loss.provenance["energy_rmse"]


def test_select_refuses_a_ridge_for_descriptors(tmp_path, capsys):
    code = main(["select", "--invariants", "many-body", "--ridge", "1e-8", "--out", str(tmp_path), "--no-progress"])
    assert code == 2 and "--ridge" in capsys.readouterr().err
