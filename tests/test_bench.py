"""``mld bench``: the OpenMM reference is flexible TIP3P-FB, the comparison runs what it says, and the
benchmark's bookkeeping (steps, blocks, neighbour-list share, memory) is right."""

import json

import numpy as np
import openmm
import pytest
from openmm import unit

from environment.builders import water_box
from experiments.bench import peak_memory, run_benchmark, time_blocks
from experiments.cli import main
from experiments.openmm_reference import OpenMMRun, largest_cutoff, tip3pfb_system, whole_waters

#: TIP3P-FB (Wang, Martinez & Pande 2014): bond (nm, kJ/mol/nm^2), angle (rad, kJ/mol/rad^2), charges, O's LJ.
R0, KB = 0.101181082494, 462750.4
THETA0, KT = 1.88754640288, 836.8
Q_O, SIGMA_O, EPSILON_O = -0.848448690103, 0.317796456355, 0.652143528104


def energy_kJ(system, positions_nm) -> float:
    context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions_nm)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def one_water(r1=R0, r2=R0, theta=THETA0):
    """O at the centre of a 30 A box, H1 along x, H2 in the xy plane (nm)."""
    centre = np.full(3, 1.5)
    return np.array([centre, centre + [r1, 0, 0], centre + r2 * np.array([np.cos(theta), np.sin(theta), 0])])


def test_the_openmm_water_is_flexible_tip3pfb():
    system = tip3pfb_system(1, 30.0, "reaction-field", 9.0)
    assert system.getNumConstraints() == 0
    forces = {type(f).__name__: f for f in system.getForces()}
    bond = forces["HarmonicBondForce"].getBondParameters(0)
    angle = forces["HarmonicAngleForce"].getAngleParameters(0)
    assert bond[2].value_in_unit(unit.nanometer) == pytest.approx(R0) and bond[3]._value == pytest.approx(KB)
    assert angle[3].value_in_unit(unit.radian) == pytest.approx(THETA0) and angle[4]._value == pytest.approx(KT)
    charge, sigma, epsilon = forces["NonbondedForce"].getParticleParameters(0)
    assert (charge._value, sigma._value, epsilon._value) == pytest.approx((Q_O, SIGMA_O, EPSILON_O))
    assert forces["NonbondedForce"].getParticleParameters(1)[2]._value == 0.0  # no LJ on H
    rest = energy_kJ(system, one_water())
    assert abs(rest) < 1e-3  # at the TIP3P-FB geometry: intramolecular pairs excluded, nothing strained
    dx, dt = 0.003, 0.05
    assert energy_kJ(system, one_water(r1=R0 + dx)) - rest == pytest.approx(0.5 * KB * dx**2, rel=1e-6)
    assert energy_kJ(system, one_water(theta=THETA0 + dt)) - rest == pytest.approx(0.5 * KT * dt**2, rel=1e-6)


def test_the_openmm_run_takes_mlds_box_whole_with_mlds_masses_and_velocities():
    symbols, positions, velocities, box = water_box(32, seed=1)
    masses = np.where(np.array(symbols) == "O", 15.9994, 1.00794)
    run = OpenMMRun(symbols, positions, velocities, box, masses, "pme", cutoff=9.0, threads=1)
    assert run.cutoff == largest_cutoff(box, 9.0) <= box / 2 and largest_cutoff(40.0, 9.0) == 9.0
    assert run.temperature() == pytest.approx(300.0, rel=1e-9)  # the same velocities, the same masses
    whole = whole_waters(positions, box).reshape(-1, 3, 3)
    assert np.linalg.norm(whole[:, 1:] - whole[:, :1], axis=-1).max() < 1.0  # no molecule split by the box
    assert np.allclose(np.mod(whole.reshape(-1, 3), box), np.mod(positions, box))  # the same configuration
    run.advance(3)
    assert run.steps == 3 and run.neighbour_list() is None
    with pytest.raises(ValueError, match="symbols"):
        OpenMMRun(["H", "O", "H"], positions[:3], velocities[:3], box, masses[:3])


def test_mld_bench_compare_openmm_prints_both_ratios_and_runs_the_steps_asked(capsys, tmp_path):
    assert main(["bench", "--compare", "openmm", "--waters", "32", "--steps", "5", "--blocks", "2", "--no-memory",
                 "--setups", "paper-all-pairs", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    table, _, document = out.partition("\n{")
    report = json.loads("{" + document)
    rows = {row["setup"]: row for row in report["results"]}
    assert set(rows) == {"paper-all-pairs", "openmm-pme", "openmm-rf"}
    assert all(row["steps"] == 5 and row["blocks"] == 2 and row["threads"] == 1 for row in rows.values())
    mld = rows["paper-all-pairs"]
    assert mld["vs_openmm_pme"] == pytest.approx(mld["ns_per_atom_step"] / rows["openmm-pme"]["ns_per_atom_step"])
    assert mld["vs_openmm_rf"] > 0
    line = next(line for line in table.splitlines() if "mld paper-all-pairs" in line)
    assert f"| {mld['vs_openmm_pme']:.2f} | {mld['vs_openmm_rf']:.2f} |" in line
    assert "load average" in table and "OpenMM PME" in table and "OpenMM reaction field" in table
    assert (tmp_path / "bench.csv").read_text().count("\n") == 4 and (tmp_path / "bench.json").exists()
    assert main(["bench", "--compare", "openmm", "--modes", "cutoff"]) == 2
    assert main(["bench", "--setups", "paper-cutoff"]) == 2
    assert "--setups needs --compare" in capsys.readouterr().err


def test_the_plain_benchmark_runs_exactly_the_steps_asked_in_blocks():
    report = run_benchmark([32], ["minimum-image"], steps=7, threads=1, blocks=3)
    (row,) = report["results"]
    assert row["steps"] == 7 and len(row["block_ns_per_atom_step"]) == 3
    assert row["ns_per_atom_step"] == pytest.approx(np.median(row["block_ns_per_atom_step"]))
    assert row["neighbour_list_builds"] is None and row["rebuild_share"] is None  # all pairs: no list
    with pytest.raises(ValueError, match="--steps .* must be at least --blocks"):
        run_benchmark([32], ["minimum-image"], steps=2, blocks=3)


@pytest.mark.parametrize("preset, form, timed", [("many-body", "shared", "many-body-l2"),
                                                 ("many-body", "own", "many-body-sharp"),
                                                 ("many-body-sharp", "shared", "many-body-sharp")])
def test_a_many_body_preset_is_timed_beside_the_paper_model(preset, form, timed):
    report = run_benchmark([32], ["minimum-image"], steps=4, threads=1, blocks=2, invariants=preset, form=form)
    paper, many_body = report["results"]
    assert (paper["setup"], many_body["setup"]) == ("paper-all-pairs", f"{timed}-{form}")
    assert many_body["steps"] == 4 and many_body["mode"] == f"{timed}, {form} form"
    assert many_body["vs_paper"] == pytest.approx(many_body["ns_per_atom_step"] / paper["ns_per_atom_step"])


class _List:
    n_builds = 0
    build_seconds = 0.0


class _Run:
    """Stands in for a set-up whose neighbour list is rebuilt every other step, each build taking 1 ms."""

    atoms = 3

    def __init__(self, has_list: bool = True):
        self.steps, self.list = 0, _List() if has_list else None

    def advance(self, n):
        for _ in range(n):
            self.steps += 1
            if self.steps % 2 == 0 and self.list is not None:
                self.list.n_builds += 1
                self.list.build_seconds += 1e-3

    def temperature(self):
        return 300.0

    def neighbour_list(self):
        return self.list


def test_the_rebuild_share_counts_the_timed_steps_only():
    timed, no_list = time_blocks([_Run(), _Run(has_list=False)], steps=10, blocks=2)
    assert timed["steps"] == 10 and timed["neighbour_list_builds"] == 5  # steps 2..11 after the warm-up step 1
    assert timed["rebuild_seconds"] == pytest.approx(5e-3)
    assert timed["rebuild_share"] == pytest.approx(5e-3 / timed["timed_seconds"])
    assert no_list["neighbour_list_builds"] is None and no_list["rebuild_share"] is None


def test_memory_per_atom_comes_from_a_fresh_process():
    options = {"cutoff": 6.0, "engine": "numba", "seed": 0, "openmm_cutoff": 9.0}
    probe = peak_memory("openmm-rf", 64, 1, options)
    assert probe["baseline_MiB"] > 20 and probe["peak_above_baseline_MiB"] > 0
    assert probe["KB_per_atom"] == pytest.approx(probe["peak_above_baseline_MiB"] * 1024 / 192)
