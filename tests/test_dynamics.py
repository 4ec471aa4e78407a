"""Finite-tau learning dynamics (3.1)-(3.2) in a constant field (closed form); time reversibility
of velocity Verlet with a Nosé–Hoover chain (4.6)."""

import numpy as np
import pytest

from environment.builders import water_box
from environment.integrators import LearningDynamics, VelocityVerlet
from environment.model import MolecularModel
from agents.geometry import minimum_image
from environment.thermostats import NoseHooverChain
from agents.units import ACCEL_EV_PER_AMU_A
from agents.invariants import InvariantSet
from agents.loss import AgentLosses, SpeciesLoss, pair_potential_losses
from agents.weights import weight_functions

FIELD = np.array([0.3, -0.2, 0.1])  # eV/angstrom, the same on every agent
START = np.array([[20.0, 20.0, 20.0], [60.0, 60.0, 60.0]])
BOX = 100.0


class ConstantField(MolecularModel):
    """Two free oxygens whose loss gradient G is ``FIELD`` wherever they are."""

    def sense(self):
        self.loss_values[:] = 0.0
        self.loss_forces[:] = FIELD


def constant_field_model(dt, tau):
    silent = InvariantSet(weight_functions("exp(a=1)"), ("O",))
    losses = AgentLosses({"O": SpeciesLoss("O", silent, np.zeros((1, 1)))})
    return ConstantField(["O", "O"], START, BOX, losses, integrator=LearningDynamics(dt, tau))


def closed_form(t, tau, acceleration):
    """Start from rest: tau dv/dt = tau a - v gives x(t) = x0 + v_term (t - tau (1 - e^{-t/tau})),
    with terminal velocity v_term = tau a (a = G / M)."""
    return START + tau * acceleration * (t - tau * (1.0 - np.exp(-t / tau)))


def displacement_error(dt, tau=20.0, t=100.0):
    model = constant_field_model(dt, tau)
    model.run(round(t / dt))
    acceleration = FIELD * ACCEL_EV_PER_AMU_A / model.masses[0]
    return np.abs(model.positions - closed_form(model.time_fs, tau, acceleration)).max(), acceleration


def test_finite_tau_update_follows_the_closed_form_motion_in_a_constant_field():
    tau, t = 20.0, 100.0
    (error, acceleration), (half_dt_error, _) = displacement_error(0.5), displacement_error(0.25)
    moved = np.abs(closed_form(t, tau, acceleration) - START).max()
    assert moved > 0.2  # angstrom: a real test, far from the start
    # The discrete update (exact relaxation of F, half-step start) is second order in dt: its
    # displacement differs from the closed form by dt^2 a (1 - e^{-t/tau}) / 6 + O(dt^3).
    expected = 0.5**2 * np.abs(acceleration).max() * (1.0 - np.exp(-t / tau)) / 6.0
    assert error == pytest.approx(expected, rel=1e-2)
    assert error / half_dt_error == pytest.approx(4.0, rel=1e-2)


def test_agent_velocity_is_tau_over_mass_times_its_force():
    model = constant_field_model(dt=0.5, tau=20.0)
    model.run(10)
    agent = model.agent_list[0]
    np.testing.assert_allclose(agent.velocity, 20.0 * ACCEL_EV_PER_AMU_A / agent.mass * agent.force, rtol=1e-14)


@pytest.mark.parametrize("chain_length", [1, 2, 3, 5])
def test_nose_hoover_chain_half_steps_are_time_reversible(chain_length):
    rng = np.random.default_rng(chain_length)
    masses, velocities = rng.uniform(1.0, 16.0, 20), rng.normal(0.0, 0.01, (20, 3))
    thermostat = NoseHooverChain(300.0, tdamp_fs=50.0, chain_length=chain_length).attach(57)
    thermostat.xi[:] = rng.normal(0.0, 0.01, chain_length)
    start = velocities.copy(), thermostat.xi.copy(), thermostat.eta.copy()
    for dt in (1.0, -1.0):
        for _ in range(5):
            thermostat.half_step(velocities, masses, dt)
        if dt > 0:
            assert np.abs(velocities - start[0]).max() > 1e-6  # the chain did act
    for after, before in zip((velocities, thermostat.xi, thermostat.eta), start):
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-15)


@pytest.mark.parametrize("chain_length", [1, 3])
def test_thermostatted_verlet_retraces_its_path_when_velocities_are_reversed(chain_length):
    symbols, positions, velocities, box = water_box(4, temperature_K=300.0, seed=6)
    c = np.zeros((2, 2, 2))
    c[:, :, 0] = [[40.0, 6.0], [6.0, 2.0]]  # exp(a=3) repulsion
    c[:, :, 1] = [[0.0, -0.8], [-0.8, 0.0]]  # exp(a=3/2) O-H attraction
    losses = pair_potential_losses(("O", "H"), weight_functions("exp(a=3),exp(a=3/2)"), c)
    thermostat = NoseHooverChain(500.0, tdamp_fs=20.0, chain_length=chain_length)
    model = MolecularModel(symbols, positions, box, losses, velocities=velocities,
                           integrator=VelocityVerlet(0.5, thermostat))
    start = model.positions.copy()
    model.run(100)
    assert np.abs(minimum_image(model.positions - start, box)).max() > 0.1
    model.velocities *= -1
    thermostat.xi *= -1
    model.run(100)
    np.testing.assert_allclose(minimum_image(model.positions - start, box), 0.0, atol=1e-9)
    np.testing.assert_allclose(model.velocities, -velocities, atol=1e-11)
