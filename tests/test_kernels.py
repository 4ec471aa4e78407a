"""The fused numba kernels (environment/kernels.py) against the numpy and per-agent reference paths."""

import numpy as np
import pytest

from agents.invariants import InvariantSet, source_index
from environment.forces import ForceEvaluator
from environment.kernels import _FAR2, LossForces, fast_exp, fast_inv_sqrt, invariants
from agents.loss import AgentLosses, SpeciesLoss, pair_potential_losses
from agents.cutoff import SmoothCutoff
from agents.weights import PAPER_SELECTED, weight_functions

H_FUNCS = PAPER_SELECTED["H"]
O_FUNCS = PAPER_SELECTED["O"]
ALL_FUNCS = "exp(a=1),exp(a=1/3),gauss(s=1),gauss(s=2.5),pow(n=1),pow(n=2),pow(n=1.5)"


def water_like(n_molecules, box, rng):
    """O on a jittered lattice, two H at 0.96 angstrom and 104.5 degrees, random orientations."""
    side = int(np.ceil(n_molecules ** (1 / 3)))
    grid = np.array(np.meshgrid(*[np.arange(side)] * 3, indexing="ij")).reshape(3, -1).T[:n_molecules]
    O = (grid + 0.5) * box / side + rng.normal(scale=0.1, size=(n_molecules, 3))
    u = rng.normal(size=(n_molecules, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    v = np.cross(u, rng.normal(size=(n_molecules, 3)))
    v /= np.linalg.norm(v, axis=1)[:, None]
    half = np.radians(104.5) / 2
    H1 = O + 0.96 * (np.cos(half) * u + np.sin(half) * v)
    H2 = O + 0.96 * (np.cos(half) * u - np.sin(half) * v)
    positions = np.empty((3 * n_molecules, 3))
    positions[0::3], positions[1::3], positions[2::3] = O, H1, H2
    return positions % box, ["O", "H", "H"] * n_molecules


def random_losses(rng, species=("O", "H"), funcs=(O_FUNCS, H_FUNCS), quadratic=True):
    losses = {}
    for s, f in zip(species, funcs):
        inv = InvariantSet(weight_functions(f), tuple(species) if s == species[0] else tuple(species[::-1]))
        P = inv.shape[0] * inv.shape[1]
        B = rng.normal(scale=0.01, size=(P, P)) if quadratic else np.zeros((P, P))
        losses[s] = SpeciesLoss(s, inv, rng.normal(size=inv.shape), (B + B.T).reshape(inv.shape * 2))
    return AgentLosses(losses)


def reference_forces(losses, positions, box, symbols, cutoff=None):
    symbols_array = np.array(symbols)
    H, F = np.empty(len(positions)), np.empty((len(positions), 3))
    for s in losses.species:
        sinks = np.flatnonzero(symbols_array == s)
        inv = losses[s].invariants
        phi, dphi = inv.compute(positions, box, source_index(symbols, inv.sources), sinks, cutoff=cutoff)
        H[sinks], F[sinks] = losses[s].evaluate(phi, dphi)
    return H, F


def close(a, b, rtol=1e-10):
    """Relative to the array's scale (components of sums of vectors may cancel to ~0)."""
    return np.max(np.abs(a - b)) <= rtol * np.max(np.abs(b))


def kernel_invariants(inv, positions, box, species, sinks=None, gradient=True, cutoff=None):
    """The kernel's phi and dphi, called like ``InvariantSet.compute``."""
    return invariants(inv.functions, positions, box, species, len(inv.sources), sinks, gradient, cutoff=cutoff)


def test_fast_exp_matches_numpy():
    x = -np.concatenate([np.linspace(0, 50, 20001), np.geomspace(1e-12, 700, 2000)])
    assert np.max(np.abs(fast_exp(x) / np.exp(x) - 1)) < 5e-15


def test_fast_inverse_square_root_matches_numpy():
    """Four Newton steps from the bit-level guess reach rounding over every distance a kernel meets, and the
    far-away stand-in of a sink's own place gives weights that vanish."""
    r2 = np.concatenate([np.geomspace(1e-6, 1e6, 20001), np.linspace(0.5, 100.0, 20001), [_FAR2]])
    assert np.max(np.abs(fast_inv_sqrt(r2) * np.sqrt(r2) - 1)) < 5e-16
    far = 1.0 / fast_inv_sqrt(np.array([_FAR2]))[0]
    assert fast_exp(np.array([-far / 7.0]))[0] < 1e-300 and (1.0 / far) ** 2 < 1e-299


def test_a_sinks_own_place_adds_nothing_even_for_extreme_weights():
    """All pairs: a sink meets itself at a far stand-in distance; weights that barely fall off (pow n = 0.001,
    exp a = 1e-6, gauss s = 1000) must still leave it out."""
    rng = np.random.default_rng(0)
    positions, species = rng.uniform(0, 8.0, (20, 3)), rng.integers(0, 2, 20)
    inv = InvariantSet(weight_functions("pow(n=0.001),pow(n=1),exp(a=1e-6),gauss(s=1000)"), ("O", "H"))
    phi, dphi = kernel_invariants(inv, positions, 8.0, species)
    ref_phi, ref_dphi = inv.compute(positions, 8.0, species)
    assert close(phi, ref_phi, 1e-13) and close(dphi, ref_dphi, 1e-13)


@pytest.mark.parametrize("cutoff", [None, SmoothCutoff(6.0, 4.5)])
@pytest.mark.parametrize("layout", ["random", "water"])
@pytest.mark.parametrize("funcs", [H_FUNCS, O_FUNCS, ALL_FUNCS])
def test_invariants_match_reference(cutoff, layout, funcs):
    rng = np.random.default_rng(1)
    box = 13.0
    if layout == "random":
        positions = rng.uniform(-box, 2 * box, (150, 3))  # unwrapped coordinates on purpose
        species = rng.integers(0, 2, 150)
    else:
        positions, symbols = water_like(48, box, rng)
        species = source_index(symbols, ("O", "H"))
    inv = InvariantSet(weight_functions(funcs), ("O", "H"))
    sinks = np.arange(0, len(positions), 3)
    phi, dphi = kernel_invariants(inv, positions, box, species, sinks, cutoff=cutoff)
    phi0, dphi0 = inv.compute(positions, box, species, sinks, cutoff=cutoff)
    assert close(phi, phi0) and close(dphi, dphi0)
    for j, k in enumerate(sinks[:12]):
        p, d = inv.compute_agent(k, positions, box, species, cutoff=cutoff)
        assert close(phi[j], p) and close(dphi[j], d)


@pytest.mark.parametrize("cutoff", [None, 6.0])
@pytest.mark.parametrize("quadratic", [False, True])
def test_loss_forces_match_reference(cutoff, quadratic):
    rng = np.random.default_rng(2)
    box = 15.64
    positions, symbols = water_like(128, box, rng)
    losses = random_losses(rng, quadratic=quadratic)
    fast = LossForces(losses, symbols, box, cutoff=cutoff, skin=0.8)
    H, F = fast(positions)
    H0, F0 = reference_forces(losses, positions, box, symbols, cutoff=cutoff)
    assert close(H, H0) and close(F, F0)
    # after moving (list kept or rebuilt) the result still matches
    moved = positions + rng.normal(scale=0.15, size=positions.shape)
    H, F = fast(moved)
    H0, F0 = reference_forces(losses, moved, box, symbols, cutoff=cutoff)
    assert close(H, H0) and close(F, F0)


def test_cutoff_converges_monotonically_to_minimum_image():
    rng = np.random.default_rng(3)
    box = 20.0
    positions, symbols = water_like(200, box, rng)
    species = source_index(symbols, ("O", "H"))
    inv = InvariantSet(weight_functions("gauss(s=1.5),gauss(s=2),exp(a=1.5)"), ("O", "H"))
    full, dfull = kernel_invariants(inv, positions, box, species)
    errors = []
    for r_c in (4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0):
        phi, dphi = kernel_invariants(inv, positions, box, species, cutoff=SmoothCutoff(r_c, r_c - 1.0))
        assert np.all(phi <= full + 1e-12)  # positive w, S <= 1
        errors.append(np.max(np.abs(phi - full)) / np.max(full))
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-3 * errors[0]


def test_cutoff_gradient_is_the_derivative_of_phi():
    """No global potential in general: check dphi against central differences of phi (cutoff mode)."""
    rng = np.random.default_rng(4)
    box = 12.0
    positions, symbols = water_like(27, box, rng)
    species = source_index(symbols, ("O", "H"))
    inv = InvariantSet(weight_functions(ALL_FUNCS), ("O", "H"))
    cut = SmoothCutoff(5.0, 3.5)  # many pairs inside the switching region
    _, dphi = kernel_invariants(inv, positions, box, species, cutoff=cut)
    h = 1e-5
    for k in range(0, len(positions), 7):
        for x in range(3):
            plus, minus = positions.copy(), positions.copy()
            plus[k, x] += h
            minus[k, x] -= h
            numeric = (kernel_invariants(inv, plus, box, species, [k], False, cutoff=cut)
                       - kernel_invariants(inv, minus, box, species, [k], False, cutoff=cut)) / (2 * h)
            assert np.allclose(dphi[k, ..., x], numeric[0], rtol=1e-6, atol=1e-6 * np.max(np.abs(dphi[k])))


def test_nve_energy_is_conserved_with_a_smooth_cutoff():
    """Symmetric pair loss, cutoff and neighbour list with skin: velocity Verlet conserves KE + 1/2 sum H."""
    rng = np.random.default_rng(5)
    box, n = 14.0, 100
    symbols = ["O"] * 50 + ["H"] * 50
    grid = np.array(np.meshgrid(*[np.arange(5)] * 3, indexing="ij")).reshape(3, -1).T
    positions = ((grid[rng.permutation(125)[:n]] + 0.5) * box / 5 + rng.normal(scale=0.1, size=(n, 3)))
    c = np.zeros((2, 2, 2))
    c[:, :, 0] = [[2.0, 1.5], [1.5, 1.0]]  # soft repulsion gauss(s=1)
    c[:, :, 1] = [[-0.3, -0.2], [-0.2, -0.1]]  # attraction gauss(s=2)
    losses = pair_potential_losses(("O", "H"), ("gauss(s=1)", "gauss(s=2)"), c)
    fast = LossForces(losses, symbols, box, cutoff=SmoothCutoff(6.0, 4.5), skin=0.5)
    mass = np.where(np.array(symbols) == "O", 15.9994, 1.00794)[:, None]
    accel = 9.64853321e-3  # (eV / angstrom / amu) -> angstrom / fs^2
    velocities = rng.normal(size=(n, 3)) * np.sqrt(8.617e-5 * 300 / (mass / accel)) 
    dt = 0.5
    H, F = fast(positions)
    energies = []
    for _ in range(1000):
        velocities += 0.5 * dt * accel * F / mass
        positions = positions + dt * velocities
        H, F = fast(positions)
        velocities += 0.5 * dt * accel * F / mass
        energies.append(0.5 * np.sum(mass * velocities**2) / accel + 0.5 * np.sum(H))
    energies = np.array(energies)
    kinetic_scale = 1.5 * n * 8.617e-5 * 300
    assert fast.neighbors.n_builds > 1  # the list was rebuilt along the way
    assert np.max(np.abs(energies - energies[0])) < 1e-3 * kinetic_scale


def test_shared_exponentials():
    from environment.kernels import EXP_POWER, GAUSS_POWER, encode_functions, plan_powers

    kinds, base, power, order = plan_powers(*encode_functions(weight_functions(H_FUNCS)))
    # exp(a=1/2) = exp(a=1/4)^2, gauss(s=2) = gauss(s=4)^4, gauss(s=3) = gauss(s=6)^4
    assert list(kinds).count(EXP_POWER) == 1 and list(kinds).count(GAUSS_POWER) == 2
    assert sorted(power[base >= 0].tolist()) == [2, 4, 4]
    assert np.all(base[order[: np.sum(base < 0)]] < 0)  # bases are evaluated first
    rng = np.random.default_rng(6)
    positions, symbols = water_like(64, 13.0, rng)
    losses = random_losses(rng)
    H, F = LossForces(losses, symbols, 13.0)(positions)
    H0, F0 = reference_forces(losses, positions, 13.0, symbols)
    assert close(H, H0) and close(F, F0)


def test_the_evaluator_restores_the_thread_count():
    import numba

    rng = np.random.default_rng(7)
    positions, symbols = water_like(32, 10.0, rng)
    losses = random_losses(rng)
    before = numba.get_num_threads()
    one = ForceEvaluator(losses, symbols, 10.0, threads=1)
    H1, F1 = one(positions)
    assert numba.get_num_threads() == before
    H, F = ForceEvaluator(losses, symbols, 10.0)(positions)
    np.testing.assert_array_equal(H1, H)  # each sink is summed by one thread: no dependence on the count
    np.testing.assert_array_equal(F1, F)
    with pytest.raises(ValueError, match="threads"):
        ForceEvaluator(losses, symbols, 10.0, threads=0)


@pytest.mark.parametrize("cutoff", [None, SmoothCutoff(5.0, 4.0)])
@pytest.mark.parametrize("quadratic", [False, True])
def test_species_with_different_numbers_of_functions(cutoff, quadratic):
    """O reads 3 functions, H 5 (two shared with O, one a power of another): both agree with the reference."""
    rng = np.random.default_rng(8)
    box = 12.5
    positions, symbols = water_like(40, box, rng)
    losses = random_losses(rng, funcs=("exp(a=1/2),gauss(s=2),pow(n=2)",
                                       "exp(a=1/4),exp(a=1/2),gauss(s=1),gauss(s=2),pow(n=1.5)"),
                           quadratic=quadratic)
    H, F = LossForces(losses, symbols, box, cutoff=cutoff, skin=0.5)(positions)
    H0, F0 = reference_forces(losses, positions, box, symbols, cutoff=cutoff)
    assert close(H, H0) and close(F, F0)


def test_one_and_two_threads_give_the_same_bits_with_a_neighbour_list():
    rng = np.random.default_rng(9)
    positions, symbols = water_like(200, 19.0, rng)
    losses = random_losses(rng)
    runs = [ForceEvaluator(losses, symbols, 19.0, cutoff=6.0, threads=threads)(positions) for threads in (1, 2)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("cutoff", [None, 4.0])
def test_a_hundred_steps_agree_with_the_reference_engine(cutoff):
    """The paper's loss form (own function sets per species, quadratic): numba and numpy engines, 100 NVT steps."""
    from environment.builders import water_box
    from environment.integrators import VelocityVerlet
    from environment.model import MolecularModel
    from environment.thermostats import NoseHooverChain
    from experiments.bench import benchmark_losses

    symbols, positions, velocities, box = water_box(32, temperature_K=300.0, seed=3)
    states = []
    for engine in ("numba", "numpy"):
        model = MolecularModel(symbols, positions, box, benchmark_losses(0, 1e-3), velocities=velocities,
                               cutoff=cutoff, engine=engine,
                               integrator=VelocityVerlet(0.5, NoseHooverChain(300.0, 25.0, 1), 10.0))
        model.run(100)
        states.append((model.positions.copy(), model.velocities.copy()))
    np.testing.assert_allclose(states[0][0], states[1][0], rtol=0, atol=1e-10 * box)
    np.testing.assert_allclose(states[0][1], states[1][1], rtol=0, atol=1e-10 * np.abs(states[1][1]).max())
