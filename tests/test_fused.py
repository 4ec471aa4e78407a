"""Whole runs in compiled code (:mod:`environment.fused`) against the Python step loop: the same bytes."""

import numpy as np
import pandas as pd
import pytest

from agents.loss import pair_potential_losses
from environment import LearningDynamics, MolecularModel, NoseHooverChain, VelocityVerlet, water_box
from environment.fused import supports
from environment.kinetics import kinetic_temperature, kinetic_temperature_compiled
from experiments.bench import benchmark_descriptor_loss, benchmark_losses
from experiments.fused_timing import compare
from experiments.guarded_run import SimulationBlewUp, run_guarded

ARRAYS = ("positions", "velocities", "forces", "loss_forces", "loss_values")
INTEGRATORS = {
    "nve": lambda: VelocityVerlet(0.5),
    "nvt-chain-clipped": lambda: VelocityVerlet(0.5, NoseHooverChain(300.0, 25.0, chain_length=3, substeps=2), 0.05),
    "learning": lambda: LearningDynamics(0.5, 50.0),
}


def water(integrator, cutoff=None, zero_net_force=True, collect_every=10, n_waters=32):
    """32 hot waters (random loss coefficients; skin 0.3 angstrom: the list is rebuilt every few steps)."""
    return MolecularModel.water_box(n_waters, benchmark_losses(0, 1e-3), seed=3, integrator=INTEGRATORS[integrator](),
                                    cutoff=cutoff, skin=0.3, zero_net_force=zero_net_force,
                                    collect_every=collect_every, collect_positions=True)


def assert_same_run(fused, loop):
    """Every array, the thermostat, the neighbour list, the step count, the time and the collected rows
    are identical (bytes, hence also within 1e-10)."""
    for name in ARRAYS:
        a, b = getattr(fused, name), getattr(loop, name)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10, err_msg=name)
        assert a.tobytes() == b.tobytes(), name
    thermostat = getattr(loop.integrator, "thermostat", None)
    if thermostat is not None:
        for name in ("xi", "eta"):
            assert getattr(fused.integrator.thermostat, name).tobytes() == getattr(thermostat, name).tobytes()
    if loop.evaluator.neighbors is not None:
        assert fused.evaluator.neighbors.n_builds == loop.evaluator.neighbors.n_builds > 1
    assert fused.steps == loop.steps and fused.time_fs == loop.time_fs
    frames = [m.datacollector.get_model_vars_dataframe() for m in (fused, loop)]
    pd.testing.assert_frame_equal(frames[0].drop(columns="positions"), frames[1].drop(columns="positions"))
    for a, b in zip(frames[0]["positions"], frames[1]["positions"]):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("zero_net_force", [True, False], ids=["zero-net-force", "net-force"])
@pytest.mark.parametrize("cutoff", [None, 4.0], ids=["all-pairs", "cutoff"])
@pytest.mark.parametrize("integrator", list(INTEGRATORS))
def test_fused_run_gives_the_bytes_of_the_step_loop(integrator, cutoff, zero_net_force):
    loop, fused = water(integrator, cutoff, zero_net_force), water(integrator, cutoff, zero_net_force)
    assert fused.fusable()
    loop.run(100, fused=False)
    fused.run(100)
    assert_same_run(fused, loop)


@pytest.mark.parametrize("form", ["shared", "own"])
@pytest.mark.parametrize("integrator", ["nvt-chain-clipped", "learning"])
def test_fused_many_body_run_gives_the_bytes_of_the_step_loop(integrator, form):
    """The many-body preset (cut radial and angular invariants, pair wall) through DescriptorForces."""
    symbols, positions, velocities, box = water_box(32, temperature_K=300.0, seed=0)

    def make():
        return MolecularModel(symbols, positions, box, benchmark_descriptor_loss(form, 0, 1e-3), velocities=velocities,
                              seed=0, integrator=INTEGRATORS[integrator](), skin=0.3, collect_every=10,
                              collect_positions=True)

    loop, fused = make(), make()
    assert fused.fusable()
    loop.run(60, fused=False)
    fused.run(60)
    assert_same_run(fused, loop)


def test_runs_that_stop_between_collections_and_a_step_in_between():
    """run(7), step(), run(23) with collection every 5 steps: the chunks end at 5, 10, ... and at the ends."""
    loop, fused = water("nvt-chain-clipped", 4.0, collect_every=5), water("nvt-chain-clipped", 4.0, collect_every=5)
    loop.run(31, fused=False)
    fused.run(7)
    fused.step()
    fused.run(23)
    assert_same_run(fused, loop)
    assert len(fused.datacollector.model_vars["time_fs"]) == 1 + 31 // 5


def test_checkpoint_of_a_fused_run_resumes_bit_for_bit(tmp_path):
    whole = water("nvt-chain-clipped", 4.0, collect_every=4)
    whole.run(40, fused=False)
    first = water("nvt-chain-clipped", 4.0, collect_every=4)
    first.run(18)
    first.save_checkpoint(tmp_path / "c.npz")
    resumed = MolecularModel.load_checkpoint(tmp_path / "c.npz")
    resumed.run(22)
    for name in ARRAYS:
        assert getattr(resumed, name).tobytes() == getattr(whole, name).tobytes(), name
    assert resumed.steps == whole.steps and resumed.time_fs == whole.time_fs
    pd.testing.assert_frame_equal(resumed.datacollector.get_model_vars_dataframe().drop(columns="positions"),
                                  whole.datacollector.get_model_vars_dataframe().drop(columns="positions"))


@pytest.mark.parametrize("integrator", ["nve", "learning"])
def test_a_blow_up_stops_the_fused_run_at_the_same_step(integrator):
    """Three hydrogens under a huge attraction: forces overflow, positions turn NaN after some steps."""
    losses = pair_potential_losses(("H",), ["pow(n=2)"], [[[-1e200]]])
    positions = np.array([[3.0, 3.0, 3.0], [5.0, 3.0, 3.0], [3.0, 6.0, 3.3]])
    stops = []
    for fused in (False, True):
        model = MolecularModel(["H"] * 3, positions, 10.0, losses, integrator=INTEGRATORS[integrator](), collect_every=4)
        with np.errstate(all="ignore"), pytest.raises(FloatingPointError, match=r"^step \d+: positions or velocities"):
            model.run(300, fused=fused)
        stops.append((model.steps, model.time_fs, len(model.datacollector.model_vars["time_fs"])))
    assert stops[0] == stops[1] and stops[0][0] > 1


def guarded_stop(model, fused, **options):
    """The :class:`SimulationBlewUp` of a guarded run of ``model`` (it must blow up)."""
    with np.errstate(all="ignore"), pytest.raises(SimulationBlewUp) as caught:
        run_guarded(model, 2000, fused=fused, **options)
    return caught.value


def assert_same_stop(fused, loop):
    """The same step, message, pair and last good state (bytes)."""
    assert (fused.step, str(fused), fused.pair) == (loop.step, str(loop), loop.pair)
    for name, value in loop.last_good.items():
        other = fused.last_good[name]
        assert (other.tobytes() == value.tobytes()) if isinstance(value, np.ndarray) else other == value, name


@pytest.mark.parametrize("cause", ["fusion", "heat", "not-finite"])
def test_a_guarded_run_stops_in_compiled_code_where_the_step_loop_stops(cause):
    """Fusion (two nuclei under an attraction with no wall), a temperature limit, NaN (two nuclei on one
    spot): the compiled guard (:class:`environment.fused.Guard`) stops at the step the step-by-step guard
    stops at, with its state."""
    if cause == "not-finite":
        losses = pair_potential_losses(("H",), ["pow(n=2)"], [[[-1.0]]])
        symbols, positions = ["H"] * 3, np.array([[3.0, 3.0, 3.0], [3.0, 3.0, 3.0], [3.0, 6.0, 3.3]])
    else:
        losses = pair_potential_losses(("H",), ["exp(a=1)"], [[[-2.0]]])
        symbols, positions = ["H"] * 2, np.array([[3.0, 3.0, 3.0], [5.0, 3.0, 3.0]])
    options = {"max_temperature_K": 3000.0, "min_distance": 0.0} if cause == "heat" else {"max_temperature_K": None}
    stops = []
    for fused in (False, True):
        model = MolecularModel(symbols, positions, 10.0, losses, integrator=VelocityVerlet(0.5), collect_every=7)
        assert model.fusable()
        stops.append(guarded_stop(model, fused, **options))
        stops[-1].rows = len(model.datacollector.model_vars["time_fs"])
    loop, fused = stops
    assert_same_stop(fused, loop)
    assert fused.rows == loop.rows and loop.step > (0 if cause == "not-finite" else 10)
    expected = {"fusion": "nuclei fusing", "heat": "temperature", "not-finite": "no longer finite"}[cause]
    assert expected in str(fused)


def test_a_guarded_compiled_run_calls_back_and_stops_as_the_step_loop():
    """``on_step`` every 6 steps and an interrupt after step 24: the same calls, the same bytes."""
    runs = []
    for fused in (False, True):
        model = water("nvt-chain-clipped", 4.0, collect_every=5)
        seen = []
        taken = run_guarded(model, 100, on_step=lambda m: seen.append((m.steps, m.positions.tobytes())),
                            on_step_every=6, should_stop=lambda: model.steps >= 24, fused=fused)
        runs.append((model, seen, taken))
    (loop, loop_seen, loop_taken), (fused, fused_seen, fused_taken) = runs
    assert fused_seen == loop_seen and [s for s, _ in loop_seen] == [6, 12, 18, 24]
    assert fused_taken == loop_taken == 24
    assert_same_run(fused, loop)


def test_the_loop_is_kept_where_the_fused_path_cannot_follow():
    model = water("nve")
    assert model.fusable() and supports(model)
    model.step_agent(model.agent_list[0])  # an agent-by-agent step under way
    assert not model.fusable()

    class Observed(MolecularModel):
        def step(self, reference=False):
            super().step(reference)

    observed = Observed.water_box(8, benchmark_losses(), seed=1, collect_every=5)
    assert not observed.fusable()
    observed.run(6)
    assert observed.steps == 6 and len(observed.datacollector.model_vars["time_fs"]) == 2


def test_two_threads_give_the_bytes_of_one():
    loop = water("nvt-chain-clipped")
    symbols, positions, velocities = loop.symbols, loop.positions.copy(), loop.velocities.copy()
    fused = MolecularModel(symbols, positions, loop.box, benchmark_losses(0, 1e-3), velocities=velocities, seed=3,
                           integrator=INTEGRATORS["nvt-chain-clipped"](), skin=0.3, threads=2, collect_every=10,
                           collect_positions=True)
    loop.evaluator.threads = 1
    loop.run(50, fused=False)
    fused.run(50)
    assert_same_run(fused, loop)


def test_the_timing_command_times_both_paths():
    row = compare(8, None, 5, steps=5, blocks=2, threads=1)
    assert row["loop_s_per_1000"] > 0 and row["fused_s_per_1000"] > 0 and row["threads"] == 1


def test_the_guard_measures_the_temperature_of_the_kinetics_module():
    """The compiled kinetic temperature (the guard's) against :func:`environment.kinetics.kinetic_temperature`."""
    model = water("nve")
    velocities = model.velocities * np.linspace(0.5, 2.0, len(model.masses))[:, None]
    assert kinetic_temperature_compiled(velocities, model.masses, 3 * len(model.masses) - 3) == pytest.approx(
        kinetic_temperature(velocities, model.masses), rel=1e-13)
