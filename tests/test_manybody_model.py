"""Descriptor losses in the Mesa model: fast and agent-by-agent paths agree, the shared form conserves
energy and momentum, loss files of either kind load by their format."""

import numpy as np
import pytest
from manybody_support import random_loss, small_wall

from agents.descriptors import prototype_descriptors
from agents.loss_file import load_losses
from environment.builders import water_box
from environment.integrators import LearningDynamics, VelocityVerlet
from environment.model import MolecularModel


def waters(n=8, seed=4):
    return water_box(n, temperature_K=300.0, seed=seed)


def descriptor_loss(form, seed=0, wall=True):
    symbols, positions, _, box = waters()
    descriptors = prototype_descriptors(("O", "H"), rc=3.0, weights=("exp(a=1)", "gauss(s=1)"), etas=(0.3,),
                                        zetas=(1, 2), lambdas=(1, -1))
    return random_loss(descriptors, form, np.random.default_rng(seed), wall=small_wall(rc=3.0) if wall else None,
                       scale=0.02)


@pytest.mark.parametrize("form", ["own", "shared"])
@pytest.mark.parametrize("integrator", [lambda: LearningDynamics(0.5, 50.0), lambda: VelocityVerlet(0.5)])
def test_fast_path_equals_agent_by_agent_path(form, integrator):
    symbols, positions, velocities, box = waters()
    loss = descriptor_loss(form)
    fast = MolecularModel(symbols, positions, box, loss, velocities=velocities, integrator=integrator())
    reference = MolecularModel(symbols, positions, box, loss, velocities=velocities, integrator=integrator())
    for _ in range(5):
        fast.step()
        reference.step(reference=True)
    for name in ("positions", "velocities", "forces", "loss_values"):
        np.testing.assert_allclose(getattr(fast, name), getattr(reference, name), rtol=0, atol=1e-12)


def test_the_numpy_engine_and_the_kernel_agree_in_the_model():
    symbols, positions, velocities, box = waters()
    loss = descriptor_loss("shared")
    numba = MolecularModel(symbols, positions, box, loss, velocities=velocities)
    numpy = MolecularModel(symbols, positions, box, loss, velocities=velocities, engine="numpy")
    np.testing.assert_allclose(numba.loss_forces, numpy.loss_forces, rtol=0, atol=1e-10)
    np.testing.assert_allclose(numba.loss_values, numpy.loss_values, rtol=0, atol=1e-10)


def test_shared_form_conserves_energy_and_momentum_in_nve():
    symbols, positions, velocities, box = waters()
    loss = descriptor_loss("shared", seed=3)
    model = MolecularModel(symbols, positions, box, loss, velocities=velocities, integrator=VelocityVerlet(0.25))
    momentum0 = (model.masses[:, None] * model.velocities).sum(0)
    energies = []
    for _ in range(200):
        model.step()
        energies.append(model.kinetic_energy + model.loss_values.sum())
    np.testing.assert_allclose(model.loss_forces.sum(0), 0.0, atol=1e-10)  # third law
    np.testing.assert_allclose((model.masses[:, None] * model.velocities).sum(0), momentum0, atol=1e-10)
    assert np.ptp(energies) < 1e-3 * model.kinetic_energy


def test_a_descriptor_loss_refuses_a_model_cutoff_and_a_small_box(tmp_path):
    symbols, positions, velocities, box = waters()
    loss = descriptor_loss("own")
    with pytest.raises(ValueError, match="carries its own cutoffs"):
        MolecularModel(symbols, positions, box, loss, cutoff=2.0)
    with pytest.raises(ValueError, match="exceeds half the box"):
        MolecularModel(symbols, positions * 0.5, 0.5 * box, loss)
    loss.save(tmp_path / "loss.json")
    again = load_losses(tmp_path / "loss.json")
    assert again.form == "own" and again.descriptors.names == loss.descriptors.names
    (tmp_path / "bad.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="bad.json: unknown format"):
        load_losses(tmp_path / "bad.json")


def test_the_net_force_of_own_form_losses_is_removed_by_default():
    from experiments.bench import benchmark_losses

    symbols, positions, velocities, box = waters()
    losses = benchmark_losses(seed=3, scale=1e-2)  # own form, random quadratic: no third law
    runs = {}
    for zero in (True, False):
        model = MolecularModel(symbols, positions, box, losses, velocities=velocities, zero_net_force=zero)
        model.run(50)
        runs[zero] = (model.masses[:, None] * model.velocities).sum(0)
    start = (MolecularModel(symbols, positions, box, losses).masses[:, None] * velocities).sum(0)
    np.testing.assert_allclose(runs[True], start, atol=1e-12)  # momentum conserved
    assert np.abs(runs[False] - start).max() > 1e-6  # the own form pushes the centre of mass


def test_the_benchmark_times_the_many_body_shared_model():
    from experiments.bench import run_benchmark

    report = run_benchmark([32], ["minimum-image"], steps=3, invariants="many-body", form="shared", threads=1)
    paper, row = report["results"]  # timed beside the paper's model, in one process
    assert paper["setup"] == "paper-all-pairs" and "vs_paper" not in paper
    assert row["mode"] == "many-body-l2, shared form" and row["atoms"] == 96 and row["seconds_per_1000_steps"] > 0
    assert row["vs_paper"] == pytest.approx(row["ns_per_atom_step"] / paper["ns_per_atom_step"])
    with pytest.raises(ValueError, match="--form shared needs a many-body --invariants"):
        run_benchmark([32], ["minimum-image"], steps=3, form="shared")
