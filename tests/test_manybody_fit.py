"""Linear least-squares fits of descriptor losses (learning/descriptor_fit.py), own and shared form."""

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
