"""Least-squares loss fit, eq. (5.1): exact recovery of a known loss, the relative RMSE (5.2), splits."""

import numpy as np
import pytest

from agents.species import CP2K_MASSES
from agents.units import ACCEL_EV_PER_AMU_A
from learning.cp2k.reader import Trajectory
from learning.splits import split_frames
from agents.invariants import InvariantSet, source_index
from agents.loss import SpeciesLoss
from learning.regression import LossRegressor

GENERATING = ("exp(a=1)", "gauss(s=3)", "pow(n=1)")
SOURCES = ("O", "H")


def known_loss(species, functions=GENERATING, order="quadratic", seed=0) -> SpeciesLoss:
    """A random loss (4.5) of ``species`` over ``functions`` of both source species."""
    rng = np.random.default_rng(seed)
    invariants = InvariantSet(functions, SOURCES)
    P = len(SOURCES) * len(invariants.functions)
    B = np.zeros((P, P))
    if order == "quadratic":
        B = 0.1 * rng.normal(size=(P, P))
        B = B + B.T
    return SpeciesLoss(species, invariants, rng.normal(size=P), B.reshape(invariants.shape * 2))


def synthetic_run(losses, n_frames=30, n_waters=8, box=7.0, seed=1) -> Trajectory:
    """Jittered-lattice configurations of n_waters O + 2 n_waters H whose accelerations follow ``losses``."""
    rng = np.random.default_rng(seed)
    symbols = ["O"] * n_waters + ["H"] * (2 * n_waters)
    n = len(symbols)
    side = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    masses = np.array([CP2K_MASSES[s] for s in symbols])
    index = source_index(symbols, SOURCES)
    positions = np.empty((n_frames, n, 3))
    accelerations = np.zeros((n_frames, n, 3))
    for f in range(n_frames):
        sites = grid[rng.permutation(len(grid))[:n]]
        positions[f] = (sites + 0.5 + rng.uniform(-0.3, 0.3, (n, 3))) * box / side
        for species, loss in losses.items():
            sinks = np.flatnonzero(np.array(symbols) == species)
            phi, dphi = loss.invariants.compute(positions[f], box, index, sinks)
            accelerations[f, sinks] = loss.evaluate(phi, dphi)[1] / masses[sinks, None] * ACCEL_EV_PER_AMU_A
    nan = np.full(n_frames, np.nan)
    return Trajectory(symbols=symbols, masses=masses, box=box, dt=0.5, steps=np.arange(n_frames),
                      times=0.5 * np.arange(n_frames), positions=positions, velocities=None, forces=None,
                      accelerations=accelerations, kinetic_energy=nan, potential_energy=nan, conserved=nan,
                      temperature=nan, used_time=nan, source="synthetic")


@pytest.fixture(scope="module")
def run():
    return synthetic_run({"O": known_loss("O", seed=2), "H": known_loss("H", seed=3)})


@pytest.mark.parametrize("species, seed", [("O", 2), ("H", 3)])
def test_quadratic_fit_recovers_the_generating_loss(run, species, seed):
    truth = known_loss(species, seed=seed)
    model = LossRegressor(species, GENERATING, SOURCES, order="quadratic").fit(run)
    assert model.loss_.invariants.names == list(GENERATING) and model.loss_.order == "quadratic"
    np.testing.assert_allclose(model.loss_.A, truth.A, rtol=1e-6, atol=1e-6 * np.abs(truth.A).max())
    np.testing.assert_allclose(model.loss_.B, truth.B, rtol=1e-6, atol=1e-6 * np.abs(truth.B).max())
    assert model.score(run) < 1e-8
    assert np.isfinite(model.condition_number_) and model.condition_number_ >= 1


def test_linear_fit_recovers_a_linear_loss():
    truth = {s: known_loss(s, order="linear", seed=4) for s in SOURCES}
    run = synthetic_run(truth, n_frames=6)
    model = LossRegressor("H", GENERATING, order="linear").fit(run)
    assert model.loss_.order == "linear"
    np.testing.assert_allclose(model.loss_.A, truth["H"].A, rtol=1e-6)
    assert model.score(run) < 1e-8


def test_linear_fit_of_quadratic_data_is_worse_and_scored_by_5_2(run):
    linear = LossRegressor("O", GENERATING, order="linear").fit(run, frames=range(20))
    score = linear.score(run, range(20, 30))
    assert 1e-3 < score < 1
    # (5.2) by hand on the held-out frames.
    sinks = np.flatnonzero(np.array(run.symbols) == "O")
    predicted = np.array([linear.predict(run.positions[f], run.box, run.symbols) for f in range(20, 30)])
    target = run.accelerations[20:30][:, sinks]
    assert score == pytest.approx(np.sqrt(np.mean((predicted - target) ** 2) / np.mean(target**2)), rel=1e-10)


def test_ridge_shrinks_towards_zero(run):
    plain = LossRegressor("O", GENERATING).fit(run)
    shrunk = LossRegressor("O", GENERATING, ridge=10.0).fit(run)
    assert shrunk.score(run) > plain.score(run)
    assert np.linalg.norm(shrunk.loss_.A) < np.linalg.norm(plain.loss_.A)


def test_fit_needs_the_species_and_a_valid_order(run):
    with pytest.raises(ValueError, match="'N'"):
        LossRegressor("N", GENERATING).fit(run)
    with pytest.raises(ValueError, match="order"):
        LossRegressor("O", GENERATING, order="cubic").fit(run)


def test_split_frames_follows_the_paper_and_scales():
    paper = split_frames(1000)
    assert [(idx[0], len(idx)) for idx in paper.values()] == [(200, 600), (800, 100), (900, 100)]
    small = split_frames(341)
    order = np.concatenate(list(small.values()))
    np.testing.assert_array_equal(order, np.arange(order[0], 341))  # consecutive, in time order
    assert order[0] == 68
    custom = split_frames(100, equilibration=0.0, train=0.5, validation=0.25, test=0.25)
    assert [len(idx) for idx in custom.values()] == [50, 25, 25]
    with pytest.raises(ValueError, match="empty"):
        split_frames(5)
    with pytest.raises(ValueError, match="sum"):
        split_frames(100, train=0.8)
