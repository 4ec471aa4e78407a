"""Periodic geometry, weight functions (4.2-4.4), invariants (4.1) and the loss force (4.5-4.6)."""

import itertools

import numpy as np
import pytest

from agents.geometry import displacement, minimum_image, wrap
from agents.invariants import InvariantSet, source_index
from agents.loss import AgentLosses, SpeciesLoss
from agents.weights import Exponential, Gaussian, PowerLaw, paper_weight_functions, weight_function, weight_functions

FAMILIES = "exp(a=1/2),gauss(s=2),pow(n=2),exp(a=1),gauss(s=4),pow(n=1)"


def random_system(n=15, box=7.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, box, (n, 3)), np.array([0, 1, 1] * (n // 3)), box


def random_loss(invariants, seed=1, scale=0.1):
    rng = np.random.default_rng(seed)
    S, M = invariants.shape
    B = rng.normal(size=(S * M, S * M)) * scale
    return SpeciesLoss("O", invariants, rng.normal(size=(S, M)), (B + B.T).reshape(S, M, S, M))


def test_minimum_image_matches_brute_force_over_27_images():
    rng = np.random.default_rng(3)
    box = 5.0
    a, b = rng.uniform(-2 * box, 3 * box, (2, 200, 3))
    shifts = box * np.array(list(itertools.product([-1, 0, 1], repeat=3)))
    for x, y in zip(wrap(a, box), wrap(b, box)):
        brute = min(np.linalg.norm(y + s - x) for s in shifts)
        assert np.isclose(np.linalg.norm(displacement(x, y, box)), brute, rtol=1e-12)
    assert np.all(np.abs(minimum_image(b - a, box)) <= box / 2 + 1e-12)


def test_wrap_folds_into_the_primary_cell():
    box = 3.0
    q = np.array([[-1e-17, 3.0, 7.5], [-3.0, 2.9999999, -0.1]])
    w = wrap(q, box)
    assert np.all((w >= 0) & (w < box))
    np.testing.assert_allclose(minimum_image(w - q, box), 0, atol=1e-12)


@pytest.mark.parametrize("w", [Exponential(0.7), Gaussian(1.3), PowerLaw(2.0), PowerLaw(1.0)])
def test_weight_derivatives_match_finite_differences(w):
    r = np.linspace(0.8, 6.0, 40)
    h = 1e-6
    numeric = (w.value(r + h) - w.value(r - h)) / (2 * h)
    np.testing.assert_allclose(w.derivative(r), numeric, rtol=1e-7)


def test_weight_function_names_round_trip():
    functions = paper_weight_functions()
    assert len(functions) == 18
    assert functions[4].name == "exp(a=1/5)" and functions[11].name == "gauss(s=4)"
    assert weight_functions(",".join(f.name for f in functions)) == functions
    with pytest.raises(ValueError, match="unknown weight function"):
        weight_function("cosh(a=1)")
    with pytest.raises(ValueError, match="positive"):
        weight_function("gauss(s=-1)")


def test_batched_invariants_equal_the_per_agent_reference():
    q, species, box = random_system()
    invariants = InvariantSet(paper_weight_functions(), ("O", "H"))
    phi, dphi = invariants.compute(q, box, species)
    for k in range(len(q)):
        p, d = invariants.compute_agent(k, q, box, species)
        np.testing.assert_allclose(phi[k], p, rtol=1e-13)
        np.testing.assert_allclose(dphi[k], d, rtol=1e-12, atol=1e-15)


def central_difference(f, q, k, x, h=1e-6):
    """(f(q + h e_kx) - f(q - h e_kx)) / 2h: the derivative with respect to agent k's own coordinate x."""
    plus, minus = q.copy(), q.copy()
    plus[k, x] += h
    minus[k, x] -= h
    return (f(plus) - f(minus)) / (2 * h)


def test_invariant_gradients_match_finite_differences():
    q, species, box = random_system()
    invariants = InvariantSet(weight_functions(FAMILIES), ("O", "H"))
    _, dphi = invariants.compute(q, box, species)
    for k in (0, 4):
        for x in range(3):
            numeric = central_difference(lambda p: invariants.compute(p, box, species, [k], False)[0], q, k, x)
            np.testing.assert_allclose(dphi[k, :, :, x], numeric, rtol=1e-6, atol=1e-9)


def test_loss_force_is_minus_the_gradient_of_the_agents_own_loss():
    q, species, box = random_system()
    invariants = InvariantSet(weight_functions(FAMILIES), ("O", "H"))
    loss = random_loss(invariants)
    _, force = loss.evaluate(*invariants.compute(q, box, species))
    for k in (1, 6):
        for x in range(3):
            own_loss = lambda p: loss.evaluate(*invariants.compute(p, box, species, [k]))[0][0]  # noqa: E731
            assert force[k, x] == pytest.approx(-central_difference(own_loss, q, k, x), rel=1e-6)


def test_invariants_and_losses_are_translation_rotation_and_permutation_invariant():
    rng = np.random.default_rng(5)
    box = 60.0  # the cluster sits well inside: the minimum image never changes under rotation
    q = 25.0 + rng.uniform(0, 8, (12, 3))
    species = np.array([0, 1, 1] * 4)
    invariants = InvariantSet(weight_functions(FAMILIES), ("O", "H"))
    loss = random_loss(invariants)
    phi, dphi = invariants.compute(q, box, species)
    H, F = loss.evaluate(phi, dphi)

    shifted = wrap(q + np.array([31.0, -17.5, 44.25]), box)
    phi_t, _ = invariants.compute(shifted, box, species)
    np.testing.assert_allclose(phi_t, phi, rtol=1e-12)

    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    centre = q.mean(axis=0)
    rotated = (q - centre) @ rotation.T + centre
    phi_r, dphi_r = invariants.compute(rotated, box, species)
    H_r, F_r = loss.evaluate(phi_r, dphi_r)
    np.testing.assert_allclose(phi_r, phi, rtol=1e-12)
    np.testing.assert_allclose(H_r, H, rtol=1e-10)
    np.testing.assert_allclose(F_r, F @ rotation.T, rtol=1e-8, atol=1e-10)  # forces co-rotate

    order = np.concatenate([[0, 9, 3, 6], [2, 1, 5, 4, 8, 7, 11, 10]])  # O's and H's shuffled
    perm = invariants.compute(q[order], box, species[order])[0]
    np.testing.assert_allclose(perm, phi[order], rtol=1e-12)


def test_source_index_rejects_unknown_species():
    np.testing.assert_array_equal(source_index(["H", "O", "H"], ("O", "H")), [1, 0, 1])
    with pytest.raises(ValueError, match="Na"):
        source_index(["O", "Na"], ("O", "H"))


def test_loss_json_round_trip_is_bit_exact(tmp_path):
    invariants = InvariantSet(paper_weight_functions(), ("O", "H"))
    losses = AgentLosses({"O": random_loss(invariants, seed=7)}, {"note": "test"})
    loaded = AgentLosses.load(losses.save(tmp_path / "loss.json"))
    assert loaded["O"].invariants == invariants
    assert np.array_equal(loaded["O"].A, losses["O"].A) and np.array_equal(loaded["O"].B, losses["O"].B)
    assert loaded.provenance == {"note": "test"}
    losses.provenance["condition_numbers"] = {"O": float("inf")}  # JSON has no infinity: null in the provenance
    assert AgentLosses.load(losses.save(tmp_path / "inf.json")).provenance["condition_numbers"] == {"O": None}
    assert "Infinity" not in (tmp_path / "inf.json").read_text()
    losses["O"].A[0, 0] = np.nan  # and an error, naming the file, in the coefficients: nothing written
    with pytest.raises(ValueError, match="nan.json.*coefficients must be finite"):
        losses.save(tmp_path / "nan.json")
    assert not (tmp_path / "nan.json").exists()


def test_loss_rejects_asymmetric_B_and_bad_files(tmp_path):
    invariants = InvariantSet(weight_functions("exp(a=1),pow(n=2)"), ("O", "H"))
    B = np.arange(16.0).reshape(2, 2, 2, 2)
    with pytest.raises(ValueError, match="symmetric"):
        SpeciesLoss("O", invariants, np.zeros((2, 2)), B)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        AgentLosses.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="does not exist"):
        AgentLosses.load(tmp_path / "missing.json")


def test_nearest_atoms_match_brute_force_in_any_chunking(monkeypatch):
    from agents import geometry

    rng = np.random.default_rng(3)
    box = 7.0
    positions = rng.uniform(0, box, (5, 11, 3))
    members, candidates = np.array([0, 4, 7, 10]), np.array([1, 2, 5, 9])
    nearest, distance = geometry.nearest_atoms(positions, box, members, candidates)
    for f in range(5):
        for m, atom in enumerate(members):
            r = [np.linalg.norm(minimum_image(positions[f, c] - positions[f, atom], box)) for c in candidates]
            assert nearest[f, m] == candidates[int(np.argmin(r))]
            assert distance[f, m] == pytest.approx(min(r), rel=1e-12)
    monkeypatch.setattr(geometry, "PAIR_BUDGET", 16)  # one frame per chunk
    chunked = geometry.nearest_atoms(positions, box, members, candidates)
    np.testing.assert_array_equal(chunked[0], nearest)
    np.testing.assert_array_equal(chunked[1], distance)
    with pytest.raises(ValueError, match="no candidate"):
        geometry.nearest_atoms(positions, box, members, [])
