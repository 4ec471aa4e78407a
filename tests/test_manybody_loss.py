"""Own and shared descriptor losses (agents/descriptor_loss.py) and the pair wall (agents/pair_wall.py)."""

import numpy as np
import pytest
from manybody_support import EVERY_KIND, random_config, random_loss, small_wall

from agents.descriptor_loss import DescriptorLoss
from agents.pair_wall import PairWall
from agents.species import CP2K_MASSES
from agents.dynamics import kick

BOX = 8.0


@pytest.fixture(scope="module")
def config():
    return random_config(24, BOX, np.random.default_rng(3))


def energy(loss, positions, symbols):
    return loss.evaluate(positions, BOX, symbols)[0].sum()


@pytest.mark.parametrize("form", ["own", "shared"])
def test_vectorized_and_agent_by_agent_agree(config, form):
    positions, symbols = config
    loss = random_loss(EVERY_KIND, form, np.random.default_rng(4), wall=small_wall())
    _, F = loss.evaluate(positions, BOX, symbols)
    agents = np.array([loss.agent_force(k, positions, BOX, symbols) for k in range(len(positions))])
    assert np.max(np.abs(agents - F)) <= 1e-12 * np.max(np.abs(F))


def test_shared_forces_are_minus_the_gradient_of_the_total_loss(config):
    positions, symbols = config
    loss = random_loss(EVERY_KIND, "shared", np.random.default_rng(5), wall=small_wall())
    _, F = loss.evaluate(positions, BOX, symbols)
    h = 1e-6
    numeric = np.zeros_like(F)
    for k in range(len(positions)):
        for x in range(3):
            plus, minus = positions.copy(), positions.copy()
            plus[k, x] += h
            minus[k, x] -= h
            numeric[k, x] = -(energy(loss, plus, symbols) - energy(loss, minus, symbols)) / (2 * h)
    assert np.max(np.abs(numeric - F)) <= 1e-7 * np.max(np.abs(F))
    assert np.max(np.abs(F.sum(axis=0))) <= 1e-12 * np.max(np.abs(F))  # third law


def test_own_forces_are_each_agents_own_gradient_and_break_the_third_law(config):
    positions, symbols = config
    loss = random_loss(EVERY_KIND, "own", np.random.default_rng(6))
    H, F = loss.evaluate(positions, BOX, symbols)
    h = 1e-6
    for k in range(0, len(positions), 5):
        for x in range(3):
            plus, minus = positions.copy(), positions.copy()
            plus[k, x] += h
            minus[k, x] -= h
            dH = (loss.evaluate(plus, BOX, symbols)[0][k] - loss.evaluate(minus, BOX, symbols)[0][k]) / (2 * h)
            assert abs(-dH - F[k, x]) <= 1e-7 * np.max(np.abs(F))
    assert np.max(np.abs(F.sum(axis=0))) > 1e-3 * np.max(np.abs(F))


def test_shared_form_conserves_energy_in_nve():
    """Velocity Verlet with the shared loss: E = sum_i H_i + kinetic stays put; the own form's does not."""
    rng = np.random.default_rng(7)
    positions, symbols = random_config(24, BOX, rng, min_distance=1.2)
    masses = np.array([CP2K_MASSES[s] for s in symbols])[:, None]
    velocities = rng.normal(scale=0.01, size=positions.shape)  # angstrom/fs, a few hundred K
    drift = {}
    for form in ("shared", "own"):
        loss = random_loss(EVERY_KIND, form, np.random.default_rng(8), wall=small_wall(), scale=0.05)
        q, v = positions.copy(), velocities.copy()
        H, F = loss.evaluate(q, BOX, symbols)
        totals = []
        for _ in range(150):
            v = kick(v, F, masses, 0.5 * 0.2)
            q = q + 0.2 * v
            H, F = loss.evaluate(q, BOX, symbols)
            v = kick(v, F, masses, 0.5 * 0.2)
            kinetic = 0.5 * np.sum(masses * v**2) / 9.64853321e-3
            totals.append(H.sum() + kinetic)
        drift[form] = np.ptp(totals) / kinetic
    assert drift["shared"] < 1e-3, drift
    assert drift["own"] > 10 * drift["shared"], drift


def test_loss_json_round_trip_is_bit_exact(tmp_path, config):
    positions, symbols = config
    loss = random_loss(EVERY_KIND, "shared", np.random.default_rng(9), quadratic=[0, 4, 5], wall=small_wall())
    again = DescriptorLoss.load(loss.save(tmp_path / "loss.json"))
    assert again.descriptors == loss.descriptors and again.form == "shared"
    assert all(np.array_equal(again.B[s], loss.B[s]) for s in ("O", "H"))
    assert np.array_equal(again.evaluate(positions, BOX, symbols)[1], loss.evaluate(positions, BOX, symbols)[1])


def test_loss_checks_its_coefficients():
    P = len(EVERY_KIND)
    with pytest.raises(ValueError, match="form must be"):
        DescriptorLoss(EVERY_KIND, "mine", {"O": np.zeros(P)})
    with pytest.raises(ValueError, match="shape"):
        DescriptorLoss(EVERY_KIND, "own", {"O": np.zeros(P + 1)})
    with pytest.raises(ValueError, match="symmetric"):
        DescriptorLoss(EVERY_KIND, "own", {"O": np.zeros(P)}, {"O": np.triu(np.ones((P, P)))})


def test_wall_sits_below_the_closest_contacts_and_is_a_pair_potential(config):
    positions, symbols = config
    frames = np.stack([positions, positions + 0.01])
    wall = PairWall.from_contacts(frames, BOX, symbols, rc=3.9, factor=0.8)
    oxygens = positions[np.array(symbols) == "O"]
    d = oxygens[:, None] - oxygens[None]
    r = np.linalg.norm(d - BOX * np.round(d / BOX), axis=-1)
    assert wall.sigma["OO"] == pytest.approx(0.8 * np.min(r[r > 0]), rel=1e-12)
    assert set(wall.sigma) == {"OO", "HO", "HH"}
    v, F = wall.evaluate(positions, BOX, symbols)
    h = 1e-6
    for k in range(0, len(positions), 4):
        plus, minus = positions.copy(), positions.copy()
        plus[k, 1] += h
        minus[k, 1] -= h
        dU = 0.5 * (wall.evaluate(plus, BOX, symbols)[0].sum() - wall.evaluate(minus, BOX, symbols)[0].sum())
        assert abs(-dU / (2 * h) - F[k, 1]) <= 1e-7 * np.max(np.abs(F))
    assert np.max(np.abs(F.sum(axis=0))) <= 1e-12 * np.max(np.abs(F))
    with pytest.raises(ValueError, match="wall sigma"):
        PairWall({"OHH": 1.0})
