"""Nucleus agents in the Mesa model: the shared snapshot, the five steps, per-agent data collection."""

import numpy as np
import pytest

from environment.builders import water_box
from environment.integrators import LearningDynamics
from environment.model import MolecularModel
from experiments.bench import benchmark_losses
from agents.invariants import source_index


def learning_model(**kwargs):
    """Four waters, the paper's seven weight functions per species, small random quadratic losses."""
    symbols, positions, velocities, box = water_box(4, seed=8)
    return MolecularModel(symbols, positions, box, benchmark_losses(seed=3, scale=1e-2), velocities=velocities,
                          integrator=LearningDynamics(0.5, 30.0), seed=0, **kwargs)


def test_every_agent_of_a_step_scans_the_snapshot_taken_at_its_start():
    model = learning_model()
    start = model.positions.copy()
    first, second = model.agent_list[0], model.agent_list[1]
    first.step()
    assert not np.allclose(model.positions[0], start[0])  # the first agent has already moved
    second.step()
    sources = source_index(model.symbols, ("O", "H"))
    phi, dphi = model.losses["H"].invariants.compute_agent(1, start, model.box, sources)
    np.testing.assert_array_equal(second.invariants[0], phi)
    np.testing.assert_array_equal(second.invariants[1], dphi)
    H, _ = model.losses["H"].evaluate(phi[None], dphi[None])
    assert second.loss_value == H[0]


def test_agent_reporters_give_one_row_per_agent_and_collected_step():
    model = learning_model(collect_agents=True, collect_every=2)
    model.run(4)
    table = model.datacollector.get_agent_vars_dataframe()
    assert len(table) == 3 * len(model.agent_list)  # steps 0, 2, 4
    last = table.xs(4, level="Step")
    np.testing.assert_allclose(np.array(last["position"].tolist()), model.positions, rtol=1e-15)
    assert list(last["species"]) == model.symbols


def test_a_model_step_waits_for_the_agents_of_an_unfinished_step():
    model = learning_model()
    model.agent_list[3].step()
    with pytest.raises(RuntimeError, match="not yet stepped"):
        model.step()
    assert model.steps == 0 and model.time_fs == 0.0
    for agent in model.agent_list:
        if agent is not model.agent_list[3]:
            agent.step()
    assert model.steps == 1 and model.time_fs == model.dt


def test_the_environment_package_exports_its_main_classes():
    import environment
    from environment.model import MolecularModel as direct

    assert environment.MolecularModel is direct
    with pytest.raises(AttributeError, match="no_such_thing"):
        environment.no_such_thing  # noqa: B018


@pytest.mark.parametrize("reference", [False, True])
def test_removing_an_agent_keeps_the_model_arrays_consistent(reference):
    model = learning_model()
    model.run(2)
    gone = model.agent_list[4]
    keep = [a for a in model.agent_list if a is not gone]
    before = {a: (a.position.copy(), a.velocity) for a in keep}
    gone.remove()
    assert len(model.agent_list) == len(model.space.active_agents) == len(model.symbols) == 11
    assert model.velocities.shape == model.forces.shape == (11, 3) and model.masses.shape == (11,)
    for agent in keep:  # every agent still reads its own row
        np.testing.assert_array_equal(agent.position, before[agent][0])
        np.testing.assert_array_equal(agent.velocity, before[agent][1])
    model.step(reference=reference)
    assert np.all(np.isfinite(model.positions)) and model.steps == 3
    with pytest.raises(ValueError, match="not in this model"):
        model.index_of(gone)


def test_an_agent_cannot_leave_in_the_middle_of_a_step():
    model = learning_model()
    model.agent_list[0].step()
    with pytest.raises(RuntimeError, match="middle"):
        model.agent_list[5].remove()
