"""Linear least-squares fits of descriptor losses (learning/descriptor_fit.py), own and shared form."""

import json

import numpy as np
import pytest
from manybody_support import EVERY_KIND, random_config, random_loss, small_wall

from agents.descriptor_jacobian import descriptor_jacobian
from learning.descriptor_fit import DescriptorEquations, fit

BOX = 8.0
QUADRATIC = [0, 1, 5, 7]  # B on a subset: two radial and two angular descriptors


def run(loss, n_frames, seed=10):
    """Configurations (F, N, 3) and the forces ``loss`` gives them."""
    rng = np.random.default_rng(seed)
    frames, symbols = [], None
    for _ in range(n_frames):
        positions, symbols = random_config(24, BOX, rng, min_distance=1.0)
        frames.append(positions)
    frames = np.array(frames)
    return frames, symbols, np.array([loss.evaluate(q, BOX, symbols)[1] for q in frames])


@pytest.mark.parametrize("form", ["own", "shared"])
@pytest.mark.parametrize("order", ["linear", "quadratic"])
def test_fit_recovers_a_known_loss(form, order):
    """Forces of a loss of the same form (wall included) are fitted exactly: the parameters come back."""
    quadratic = QUADRATIC if order == "quadratic" else []
    truth = random_loss(EVERY_KIND, form, np.random.default_rng(11), quadratic=quadratic, wall=small_wall())
    frames, symbols, forces = run(truth, 8)
    equations = DescriptorEquations(EVERY_KIND, form, ("O", "H"), QUADRATIC, truth.wall)
    equations.add_frames({"train": range(6), "validation": range(6, 8)}, frames, BOX, symbols, forces)
    result = fit(equations, order, ridges=(0.0, 1e-6))
    assert result.ridge == 0.0 or result.ridge == {"O": 0.0, "H": 0.0}
    for s in ("O", "H"):
        scale = np.max(np.abs(truth.A[s]))
        assert np.max(np.abs(result.loss.A[s] - truth.A[s])) <= 1e-8 * scale
        assert np.max(np.abs(result.loss.B[s] - truth.B[s])) <= 1e-8 * scale
    assert result.loss.wall == truth.wall and result.loss.form == form
    assert max(result.rmse["validation"].values()) < 1e-6
    _, predicted = result.loss.evaluate(frames[7], BOX, symbols)
    assert np.max(np.abs(predicted - forces[7])) <= 1e-8 * np.max(np.abs(forces[7]))


def test_design_columns_reproduce_the_forces():
    """X theta = F for both forms: the columns are the forces' derivatives with respect to (A, B)."""
    for form in ("own", "shared"):
        truth = random_loss(EVERY_KIND, form, np.random.default_rng(12), quadratic=QUADRATIC)
        positions, symbols = random_config(24, BOX, np.random.default_rng(13))
        equations = DescriptorEquations(EVERY_KIND, form, ("O", "H"), QUADRATIC)
        X = equations.design(descriptor_jacobian(positions, BOX, symbols, EVERY_KIND), symbols)
        P = len(EVERY_KIND)
        iu, ju = np.triu_indices(len(QUADRATIC))
        Q = np.array(QUADRATIC)
        theta = {s: np.concatenate([truth.A[s], truth.B[s][Q[iu], Q[ju]]]) for s in ("O", "H")}
        _, F = truth.evaluate(positions, BOX, symbols)
        for s in ("O", "H"):
            t = theta[s] if form == "own" else np.concatenate([theta["O"], theta["H"]])
            assert X[s].shape[1] == (1 if form == "own" else 2) * (P + len(iu))
            target = F[np.array(symbols) == s].reshape(-1)
            assert np.max(np.abs(X[s] @ t - target)) <= 1e-11 * np.max(np.abs(target))


def test_ridge_is_chosen_on_validation():
    truth = random_loss(EVERY_KIND, "shared", np.random.default_rng(14), quadratic=QUADRATIC)
    frames, symbols, forces = run(truth, 6, seed=15)
    noisy = forces + np.random.default_rng(16).normal(scale=0.3 * forces.std(), size=forces.shape)
    equations = DescriptorEquations(EVERY_KIND, "shared", ("O", "H"), QUADRATIC)
    equations.add_frames({"train": range(2), "validation": range(2, 6)}, frames, BOX, symbols, noisy)
    ridges = (1e-12, 1e-8, 1e-4, 1e-1)
    result = fit(equations, "quadratic", ridges)
    means = [np.mean(list(scores.values())) for _, scores in result.curve]
    assert result.ridge == ridges[int(np.argmin(means))]
    assert np.mean(list(result.rmse["validation"].values())) == pytest.approx(min(means))


def test_quadratic_subset_must_be_descriptor_indices():
    with pytest.raises(ValueError, match="quadratic"):
        DescriptorEquations(EVERY_KIND, "own", ("O", "H"), [0, 0])
    with pytest.raises(ValueError, match="form"):
        DescriptorEquations(EVERY_KIND, "joint", ("O", "H"))


def energy_run(truth, n_frames, seed):
    """Configurations, forces and total energies sum_i H_i (wall included) of ``truth``."""
    frames, symbols, forces = run(truth, n_frames, seed)
    energies = np.array([truth.evaluate(q, BOX, symbols)[0].sum() for q in frames])
    return frames, symbols, forces, energies


def test_energy_row_is_the_shared_energy():
    """row . theta = sum_i H_i: the energy columns are the integrals of minus the force columns."""
    truth = random_loss(EVERY_KIND, "shared", np.random.default_rng(20), quadratic=QUADRATIC)
    positions, symbols = random_config(24, BOX, np.random.default_rng(21))
    equations = DescriptorEquations(EVERY_KIND, "shared", ("O", "H"), QUADRATIC)
    row = equations.energy_row(descriptor_jacobian(positions, BOX, symbols, EVERY_KIND).phi, symbols)
    iu, ju = np.triu_indices(len(QUADRATIC))
    Q = np.array(QUADRATIC)
    theta = np.concatenate([np.concatenate([truth.A[s], truth.B[s][Q[iu], Q[ju]]]) for s in ("O", "H")])
    energy = truth.evaluate(positions, BOX, symbols)[0].sum()
    assert row @ theta == pytest.approx(energy, rel=1e-12)


def test_energies_alone_recover_a_known_loss():
    """The centred energy rows by themselves (no force rows) give back A and B exactly (the constant is
    eliminated by the centring); the wall's energy is subtracted from the targets."""
    truth = random_loss(EVERY_KIND, "shared", np.random.default_rng(22), quadratic=[0, 5], wall=small_wall())
    frames, symbols, forces, energies = energy_run(truth, 40, seed=23)
    equations = DescriptorEquations(EVERY_KIND, "shared", ("O", "H"), [0, 5], truth.wall)
    equations.add_frames({"train": range(40)}, frames, BOX, symbols, forces, energies + 123.0)
    cols = equations.columns("quadratic")
    G, b = equations.energy["train"].centred(cols)
    theta = np.linalg.solve(G, b)
    loss = equations.loss("quadratic", {"joint": theta})
    for s in ("O", "H"):
        scale = np.max(np.abs(truth.A[s]))
        assert np.max(np.abs(loss.A[s] - truth.A[s])) <= 1e-7 * scale
        assert np.max(np.abs(loss.B[s] - truth.B[s])) <= 1e-7 * scale


def test_energy_weight_zero_is_the_force_fit_and_energies_fit_exactly():
    truth = random_loss(EVERY_KIND, "shared", np.random.default_rng(24), quadratic=QUADRATIC)
    frames, symbols, forces, energies = energy_run(truth, 8, seed=25)
    noisy = forces + np.random.default_rng(26).normal(scale=0.1 * forces.std(), size=forces.shape)
    splits = {"train": range(6), "validation": range(6, 8)}
    plain = DescriptorEquations(EVERY_KIND, "shared", ("O", "H"), QUADRATIC).add_frames(
        splits, frames, BOX, symbols, noisy)
    with_energy = DescriptorEquations(EVERY_KIND, "shared", ("O", "H"), QUADRATIC).add_frames(
        splits, frames, BOX, symbols, noisy, energies)
    before, after = fit(plain, "quadratic"), fit(with_energy, "quadratic", energy_weight=0.0)
    for s in ("O", "H"):
        assert np.array_equal(before.loss.A[s], after.loss.A[s]) and np.array_equal(before.loss.B[s], after.loss.B[s])
    assert "energy_rmse" not in before.loss.provenance and after.loss.provenance["energy_weight"] == 0.0
    weighted = fit(with_energy, "quadratic", energy_weight=10.0)
    energy_error = weighted.loss.provenance["energy_rmse"]
    assert energy_error["validation"]["relative"] < after.loss.provenance["energy_rmse"]["validation"]["relative"]
    exact = DescriptorEquations(EVERY_KIND, "shared", ("O", "H"), QUADRATIC).add_frames(
        splits, frames, BOX, symbols, forces, energies)
    result = fit(exact, "quadratic", ridges=(0.0,), energy_weight=1.0)
    assert result.loss.provenance["energy_rmse"]["validation"]["relative"] < 1e-8
    assert np.max(np.abs(result.loss.A["O"] - truth.A["O"])) <= 1e-8 * np.max(np.abs(truth.A["O"]))


def test_energy_targets_need_the_shared_form(tmp_path, capsys):
    from conftest import embedded_run_slice

    from experiments.cli import main
    from learning.fitting import learn

    positions, symbols = random_config(24, BOX, np.random.default_rng(27))
    with pytest.raises(ValueError, match="shared form"):
        DescriptorEquations(EVERY_KIND, "own", ("O", "H")).add("train", positions, BOX, symbols,
                                                                np.zeros((24, 3)), energy=-1.0)
    with pytest.raises(ValueError, match="energy_weight needs the shared form"):
        fit(DescriptorEquations(EVERY_KIND, "own", ("O", "H")), "linear", energy_weight=1.0)
    with pytest.raises(ValueError, match="--energy-weight 1.0 needs --form shared"):
        learn(None, "own", "many-body", energy_weight=1.0)
    (tmp_path / "run").mkdir()
    data = str(embedded_run_slice(tmp_path / "run", 40) / "h2o-32.inp")
    names = "O:gauss(s=1,rc=3.5),H:gauss(s=1,rc=3.5),OH:angle(eta=0.3,zeta=2,lambda=+1,rc=3)"
    code = main(["fit", "--data", data, "--form", "own", "--invariants", names, "--energy-weight", "1",
                 "--out", str(tmp_path / "own.json"), "--no-progress"])
    assert code == 2 and "--energy-weight 1.0 needs --form shared" in capsys.readouterr().err
    code = main(["fit", "--data", data, "--form", "shared", "--invariants", names, "--order", "linear",
                 "--energy-weight", "1", "--out", str(tmp_path / "shared.json"), "--no-progress"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0 and printed["energy_weight"] == 1.0
    assert 0 < printed["energy_rmse"]["test"]["eV_per_atom"] < 0.1


def test_many_body_means_the_set_the_form_needs():
    """``--invariants many-body``: zeta <= 2 at 4.5 A in the shared form, the prototype's zeta up to 16 (angular
    3.5 A) in the own form; each set is reachable by name in either form."""
    from learning.fitting import MANY_BODY, descriptor_set

    def angular(form, invariants="many-body"):
        return {(f.function.zeta, f.function.rc) for f in descriptor_set(invariants, ("O", "H"), 4.5, form).features
                if f.angular}

    assert MANY_BODY == {"shared": "many-body-l2", "own": "many-body-sharp"}
    assert angular("shared") == {(1, 4.5), (2, 4.5)} == angular("own", "many-body-l2")
    assert angular("own") == {(z, 3.5) for z in (1, 2, 4, 16)} == angular("shared", "many-body-sharp")
    for form, name in MANY_BODY.items():
        assert descriptor_set("many-body", ("O", "H"), 4.5, form).names == descriptor_set(name, ("O", "H"), 4.5,
                                                                                          form).names
