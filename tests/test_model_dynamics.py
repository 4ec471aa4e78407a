"""The Mesa model and both dynamics: paths agree, exact relaxation, the Newtonian limit, energy, NVT."""

import numpy as np
import pytest

from agents.dynamics import relax_force
from agents.geometry import minimum_image
from agents.invariants import InvariantSet
from agents.loss import AgentLosses, SpeciesLoss, pair_potential_losses
from agents.weights import weight_functions
from environment.builders import water_box
from environment.integrators import LearningDynamics, VelocityVerlet
from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain

SPECIES = ("O", "H")


def soft_water_losses(quadratic=0.0):
    """A stable toy loss for water boxes: O-H bonding well, repulsion at short range (+ optional B)."""
    c = np.zeros((2, 2, 3))
    c[:, :, 0] = [[400.0, 60.0], [60.0, 20.0]]  # exp(a=3) repulsion
    c[:, :, 1] = [[0.0, -8.0], [-8.0, 0.0]]  # exp(a=3/2) O-H attraction
    c[:, :, 2] = [[0.5, 0.0], [0.0, 0.2]]  # gauss(s=2) soft like-like repulsion
    losses = pair_potential_losses(SPECIES, weight_functions("exp(a=3),exp(a=3/2),gauss(s=2)"), c)
    if quadratic:
        rng = np.random.default_rng(11)
        for loss in losses.losses.values():
            B = rng.normal(size=(6, 6)) * quadratic
            loss.B = (B + B.T).reshape(2, 3, 2, 3)
    return losses


def lennard_jones_losses():
    """Lennard-Jones between all pairs, eps = 0.01 eV, sigma_ab in angstrom, as a linear agent loss."""
    sigma = np.array([[3.0, 2.6], [2.6, 2.2]])
    c = np.stack([4 * 0.01 * sigma**12, -4 * 0.01 * sigma**6], axis=-1)
    return pair_potential_losses(SPECIES, weight_functions("pow(n=12),pow(n=6)"), c)


def lattice_gas(n_side=3, spacing=3.6, temperature_K=60.0, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    positions = (grid + 0.5) * spacing + rng.normal(0, 0.05, grid.shape)
    symbols = ["O" if i % 3 == 0 else "H" for i in range(len(grid))]
    from environment.builders import maxwell_boltzmann
    from agents.species import CP2K_MASSES

    velocities = maxwell_boltzmann([CP2K_MASSES[s] for s in symbols], temperature_K, rng)
    return symbols, positions, velocities, n_side * spacing


def drift(energy, window=200):
    """Relative change of the mean energy from the first to the last window (fluctuations average out)."""
    return abs(energy[-window:].mean() - energy[:window].mean()) / abs(energy[0])


def small_water(n=6, seed=3, temperature_K=300.0):
    return water_box(n, temperature_K=temperature_K, seed=seed)


def models(mode, thermostat_K=None, tau=None, max_force=None, **kwargs):
    """Two identical models (each with its own integrator and thermostat, if any)."""
    symbols, positions, velocities, box = small_water()
    def make():
        if mode == "learning":
            integrator = LearningDynamics(0.5, tau)
        else:
            thermostat = NoseHooverChain(thermostat_K, 20.0) if thermostat_K else None
            integrator = VelocityVerlet(0.5, thermostat, max_force)
        return MolecularModel(symbols, positions, box, soft_water_losses(quadratic=1e-3),
                              velocities=velocities, integrator=integrator, seed=1, **kwargs)
    return make(), make()


@pytest.mark.parametrize("mode,kwargs", [
    ("learning", {"tau": 50.0}),
    ("learning", {"tau": 50.0, "engine": "numpy"}),
    ("newtonian", {"max_force": 3.0}),
    ("newtonian", {"thermostat_K": 250.0, "engine": "numpy"}),
    ("newtonian", {"cutoff": 2.8}),
    ("learning", {"tau": 50.0, "cutoff": 2.8, "engine": "numpy"}),
])
def test_batched_path_equals_agent_by_agent_path(mode, kwargs):
    fast, reference = models(mode, **kwargs)
    for _ in range(20):
        fast.step()
        reference.step(reference=True)
    assert fast.steps == reference.steps == 20
    for name in ("positions", "velocities", "forces"):
        np.testing.assert_allclose(getattr(fast, name), getattr(reference, name), rtol=0, atol=1e-12)
    np.testing.assert_allclose(fast.loss_values, reference.loss_values, rtol=1e-12)


@pytest.mark.parametrize("mode,kwargs", [("learning", {"tau": 50.0}), ("newtonian", {"thermostat_K": 300.0})])
def test_one_agent_at_a_time_in_random_order_ends_in_the_same_state(mode, kwargs):
    fast, stepped = models(mode, **kwargs)
    rng = np.random.default_rng(0)
    for _ in range(5):
        fast.step()
        for i in rng.permutation(len(stepped.agent_list)):
            stepped.agent_list[i].step()
    assert stepped.steps == 5
    np.testing.assert_allclose(stepped.positions, fast.positions, atol=1e-12)
    np.testing.assert_allclose(stepped.velocities, fast.velocities, atol=1e-12)
    with pytest.raises(ValueError, match="already stepped"):
        stepped.agent_list[0].step()
        stepped.agent_list[0].step()


def test_an_agent_exposes_its_invariants_loss_and_force():
    model, _ = models("learning", tau=100.0)
    agent = model.agent_list[1]
    agent.step()
    phi, dphi = agent.invariants
    assert phi.shape == (2, 3) and dphi.shape == (2, 3, 3)
    assert agent.species.symbol == "H" and agent.mass == pytest.approx(1.00794)
    assert np.isfinite(agent.loss_value) and agent.force.shape == (3,) and agent.velocity.shape == (3,)


def test_relaxation_is_exact_for_a_constant_gradient():
    tau, dt, G, F0 = 40.0, 0.7, np.array([0.3, -1.2, 2.0]), np.array([1.0, 0.5, -0.25])
    F = F0.copy()
    for n in range(1, 200):
        F = relax_force(F, G, dt, tau)
        exact = G + (F0 - G) * np.exp(-n * dt / tau)  # solution of tau dF/dt = G - F
        np.testing.assert_allclose(F, exact, rtol=1e-12)


def test_free_particles_lose_kinetic_energy_as_exp_minus_2t_over_tau():
    invariants = InvariantSet(weight_functions("exp(a=1)"), ("O",))
    silent = AgentLosses({"O": SpeciesLoss("O", invariants, np.zeros((1, 1)))})  # H = 0: no gradient
    velocities = np.array([[0.01, -0.02, 0.005], [0.0, 0.01, 0.02]])
    model = MolecularModel(["O", "O"], [[1, 1, 1], [4, 4, 4]], 10.0, silent, velocities=velocities,
                           integrator=LearningDynamics(0.5, 25.0))
    ke0 = model.kinetic_energy
    model.run(100)
    assert model.kinetic_energy == pytest.approx(ke0 * np.exp(-2 * 50.0 / 25.0), rel=1e-12)


def test_learning_dynamics_approach_newton_as_tau_grows():
    symbols, positions, velocities, box = small_water(n=4, seed=5)
    losses = soft_water_losses()
    def run(integrator):
        # dt small enough that the tau -> infinity limit of the learning update (symplectic Euler)
        # and velocity Verlet agree; 10 fs is a short horizon, before chaos separates trajectories.
        model = MolecularModel(symbols, positions, box, losses, velocities=velocities, integrator=integrator)
        model.run(500)
        return model.positions.copy()
    newton = run(VelocityVerlet(0.02))
    errors = [np.abs(minimum_image(run(LearningDynamics(0.02, tau)) - newton, box)).max()
              for tau in (10.0, 100.0, 1000.0, 10000.0)]
    assert np.all(np.diff(errors) < 0), errors
    assert errors[-1] < 1e-2 * errors[0]


def test_nve_energy_is_conserved_for_a_symmetric_pair_potential():
    symbols, positions, velocities, box = lattice_gas()
    model = MolecularModel(symbols, positions, box, lennard_jones_losses(), velocities=velocities, integrator=VelocityVerlet(0.5))
    model.run(2000)
    table = model.datacollector.get_model_vars_dataframe()
    energy = (table["kinetic_energy"] + table["potential_half_sum"]).to_numpy()
    assert table["kinetic_energy"].std() > 0.05 * table["kinetic_energy"].mean()  # energy does flow
    assert drift(energy) < 1e-4
    assert np.max(np.abs(energy - energy[0])) / abs(energy[0]) < 1e-3  # Verlet's bounded fluctuation


def test_nve_energy_is_conserved_with_a_smooth_cutoff():
    symbols, positions, velocities, box = lattice_gas()
    model = MolecularModel(symbols, positions, box, lennard_jones_losses(), velocities=velocities, integrator=VelocityVerlet(0.5),
                           cutoff=5.0)
    model.run(2000)
    table = model.datacollector.get_model_vars_dataframe()
    assert drift((table["kinetic_energy"] + table["potential_half_sum"]).to_numpy()) < 1e-4


def test_engines_agree_on_losses_and_forces():
    symbols, positions, velocities, box = small_water()
    losses = soft_water_losses(quadratic=1e-3)
    for cutoff in (None, 2.5):
        numba = MolecularModel(symbols, positions, box, losses, cutoff=cutoff)
        numpy = MolecularModel(symbols, positions, box, losses, cutoff=cutoff, engine="numpy")
        H1, G1 = numba.evaluator(numba.positions)
        H2, G2 = numpy.evaluator(numpy.positions)
        np.testing.assert_allclose(H1, H2, rtol=1e-10)
        np.testing.assert_allclose(G1, G2, rtol=1e-10, atol=1e-12 * np.abs(G2).max())
    with pytest.raises(ValueError, match="engine"):
        MolecularModel(symbols, positions, box, losses, engine="fortran")
    with pytest.raises(ValueError, match="half the box|box"):
        MolecularModel(symbols, positions, box, losses, cutoff=box)


def test_nose_hoover_chain_conserves_its_extended_energy():
    symbols, positions, velocities, box = lattice_gas()
    model = MolecularModel(symbols, positions, box, lennard_jones_losses(), velocities=velocities,
                           integrator=VelocityVerlet(0.5, NoseHooverChain(120.0, tdamp_fs=50.0, chain_length=3)))
    model.run(2000)
    table = model.datacollector.get_model_vars_dataframe()
    assert drift(table["conserved"].to_numpy()) < 1e-4
    assert table["temperature"].iloc[-1000:].mean() > 90.0  # it did heat the gas towards 120 K


def test_nose_hoover_holds_the_mean_temperature_of_a_water_box():
    symbols, positions, velocities, box = water_box(16, temperature_K=200.0, seed=2)
    model = MolecularModel(symbols, positions, box, soft_water_losses(), velocities=velocities,
                           integrator=VelocityVerlet(0.5, NoseHooverChain(300.0, tdamp_fs=20.0)))
    model.run(3000)
    temperature = model.datacollector.get_model_vars_dataframe()["temperature"].iloc[1000:]
    assert temperature.mean() == pytest.approx(300.0, rel=0.05)


def test_datacollector_has_one_row_per_collected_step():
    model, _ = models("newtonian")
    model.collect_every = 5
    model.run(20)
    table = model.datacollector.get_model_vars_dataframe()
    assert len(table) == 5  # steps 0, 5, 10, 15, 20
    np.testing.assert_allclose(table["time_fs"], [0, 2.5, 5, 7.5, 10])
    assert {"kinetic_energy", "temperature", "loss_O", "loss_H", "conserved"} <= set(table.columns)


def test_positions_outside_the_box_are_wrapped():
    symbols, positions, velocities, box = small_water()
    model = MolecularModel(symbols, positions + 3 * box, box, soft_water_losses())
    np.testing.assert_allclose(model.positions, positions % box, atol=1e-10)


@pytest.mark.parametrize("change,message", [
    (dict(symbols=["Xx"] * 18), "Xx"),
    (dict(symbols=["Na"] * 18, masses={"Na": 22.99}), "losses are for species"),
    (dict(masses={"O": -1.0}), "mass must be positive"),
    (dict(box=-2.0), "box"),
    (dict(integrator="quantum"), "integrator"),
    (dict(collect_every=0), "collect_every"),
    (dict(velocities=np.zeros((3, 3))), "velocities"),
])
def test_bad_input_is_a_value_error_naming_the_parameter(change, message):
    symbols, positions, velocities, box = small_water()
    arguments = dict(symbols=symbols, positions=positions, box=box, losses=soft_water_losses())
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        MolecularModel(**arguments)


def test_nan_positions_and_mismatched_losses_are_rejected():
    symbols, positions, velocities, box = small_water()
    bad = positions.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="positions"):
        MolecularModel(symbols, bad, box, soft_water_losses())
    only_oxygen_sources = InvariantSet(weight_functions("exp(a=1)"), ("O",))
    losses = AgentLosses({s: SpeciesLoss(s, only_oxygen_sources, np.zeros((1, 1))) for s in SPECIES})
    with pytest.raises(ValueError, match="source species"):
        MolecularModel(symbols, positions, box, losses)
