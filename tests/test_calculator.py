"""The ASE calculator: the model's forces, no energy for the own form, ASE's cache, and energy-conserving
ASE dynamics for a loss with a total energy."""

import re
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.calculator import PropertyNotImplementedError
from ase.md.verlet import VelocityVerlet

from agents.descriptor_loss import DescriptorLoss
from agents.descriptors import CutRadial, DescriptorSet, Feature
from agents.species import CP2K_MASSES
from agents.weights import weight_functions
from environment import MLDCalculator, MolecularModel
from environment.calculator import NO_ENERGY
from learning.cp2k.reader import read_trajectory
from learning.labelled import to_atoms
from learning.selection import fit_losses

README = Path(__file__).resolve().parents[1] / "README.md"
FRAME = 40


@pytest.fixture(scope="module")
def data():
    return read_trajectory().frames(slice(None, None, 8))


@pytest.fixture(scope="module")
def learned(data):
    return fit_losses(data, invariants="exp(a=1),gauss(s=2),pow(n=2)", order="quadratic")


@pytest.fixture
def water(data, learned):
    """A CP2K frame as ASE atoms driven by the learned (own-form) loss."""
    atoms = to_atoms(data.frames([FRAME]))[0]
    atoms.calc = MLDCalculator(learned, threads=1)
    return atoms


@pytest.mark.parametrize("engine", ["numba", "numpy"])
def test_forces_are_the_models_loss_forces(data, learned, engine):
    model = MolecularModel(data.symbols, data.positions[FRAME], data.box, learned, engine=engine,
                           zero_net_force=False)  # the calculator gives the loss forces as they are
    atoms = to_atoms(data.frames([FRAME]))[0]
    atoms.positions += data.box * np.array([1.0, -2.0, 0.0])  # outside the box: wrapped, same forces
    atoms.calc = MLDCalculator(learned, engine=engine, threads=1)
    forces = atoms.get_forces()
    assert np.max(np.abs(forces - model.loss_forces)) <= 1e-10 * np.max(np.abs(model.loss_forces))
    assert atoms.calc.implemented_properties == ["forces"] and atoms.calc.form == "own"


def test_a_loss_file_path_works_like_the_loss(water, learned, tmp_path):
    other = water.copy()
    other.calc = MLDCalculator(learned.save(tmp_path / "losses.json"), threads=1)
    np.testing.assert_array_equal(other.get_forces(), water.get_forces())


@pytest.mark.parametrize("ask", [
    lambda atoms: atoms.get_potential_energy(),
    lambda atoms: atoms.get_potential_energy(force_consistent=True),
    lambda atoms: atoms.get_potential_energies(),
    lambda atoms: atoms.get_total_energy(),
])
def test_the_own_form_has_no_energy_and_says_why(water, ask):
    with pytest.raises(PropertyNotImplementedError, match="no total energy") as error:
        ask(water)
    assert NO_ENERGY in str(error.value) and "own form" in str(error.value)
    assert water.calc.evaluations == 0  # refused before any evaluation


def test_ase_cache_and_calculation_required(water):
    calc = water.calc
    assert calc.calculation_required(water, ["forces"])
    first = water.get_forces()
    assert calc.evaluations == 1 and not calc.calculation_required(water, ["forces"])
    np.testing.assert_array_equal(water.get_forces(), first)
    same = water.copy()  # another Atoms object in the same state: still cached
    assert not calc.calculation_required(same, ["forces"])
    assert calc.evaluations == 1
    water.positions[5, 0] += 0.01
    assert calc.calculation_required(water, ["forces"])
    moved = water.get_forces()
    assert calc.evaluations == 2 and not np.allclose(moved, first)
    water.get_forces()
    assert calc.evaluations == 2


@pytest.mark.parametrize("change,message", [
    (lambda atoms: atoms.set_pbc([True, True, False]), "periodic"),
    (lambda atoms: atoms.set_cell(atoms.cell.lengths() * [1.0, 1.0, 1.1]), "cubic"),
    (lambda atoms: atoms.set_cell([[10, 0, 0], [1, 10, 0], [0, 0, 10]]), "cubic"),
    (lambda atoms: atoms.set_chemical_symbols(["N"] * len(atoms)), "species"),
])
def test_an_invalid_cell_or_species_is_a_clear_error(water, change, message):
    water.get_forces()
    change(water)
    with pytest.raises(ValueError, match=message):
        water.get_forces()


def test_a_loss_must_be_a_loss_or_its_file():
    with pytest.raises(ValueError, match="AgentLosses, an agents.descriptor_loss.DescriptorLoss"):
        MLDCalculator(42)


# -- a loss with a total energy ------------------------------------------------------------
#: Lennard-Jones between all pairs (eps = 0.01 eV, sigma_ab in angstrom): V_ab(r) = c12/r^12 + c6/r^6.
SIGMA = np.array([[3.0, 2.6], [2.6, 2.2]])
LJ = np.stack([4 * 0.01 * SIGMA**12, -4 * 0.01 * SIGMA**6], axis=-1)
FUNCTIONS = weight_functions("pow(n=12),pow(n=6)")


#: The shared form's cutoff here (angstrom): fits the 10.8 A box of the lattice gas.
RC = 5.0


def shared_lj():
    """A real shared-form loss equal to the cut Lennard-Jones potential: every agent's loss is
    H_i = 1/2 sum_j V(r_ij) f_c(r_ij) (linear in cut radial invariants), so E = sum_i H_i counts each
    pair once and the shared forces -dE/dq are the pair forces."""
    sources = ("O", "H")
    features = tuple(Feature((a,), CutRadial(w, RC)) for a in sources for w in FUNCTIONS)
    A = {s: np.array([LJ[i, j, m] / 2 for j in range(2) for m in range(2)]) for i, s in enumerate(sources)}
    return DescriptorLoss(DescriptorSet(features), "shared", A)


def lattice_gas(n_side=3, spacing=3.6, temperature_K=60.0, seed=0):
    """A loose cubic lattice of O and H (1:2) with Maxwell-Boltzmann velocities, as ASE atoms."""
    from environment.builders import maxwell_boltzmann

    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    symbols = ["O" if i % 3 == 0 else "H" for i in range(len(grid))]
    masses = [CP2K_MASSES[s] for s in symbols]
    atoms = Atoms(symbols, positions=(grid + 0.5) * spacing + rng.normal(0, 0.05, grid.shape),
                  cell=[n_side * spacing] * 3, pbc=True, masses=masses)
    atoms.set_velocities(maxwell_boltzmann(masses, temperature_K, rng) / units.fs)
    return atoms


def test_the_shared_form_gives_the_models_forces_and_its_total_energy():
    atoms = lattice_gas()
    loss = shared_lj()
    atoms.calc = MLDCalculator(loss, threads=1)
    assert set(atoms.calc.implemented_properties) == {"forces", "energy", "energies", "free_energy"}
    model = MolecularModel(atoms.get_chemical_symbols(), atoms.positions, atoms.cell[0, 0], loss)
    forces = atoms.get_forces()
    assert np.max(np.abs(forces - model.loss_forces)) <= 1e-10 * np.max(np.abs(model.loss_forces))
    energy = atoms.get_potential_energy()
    assert energy == pytest.approx(model.loss_values.sum(), rel=1e-10)
    np.testing.assert_allclose(forces.sum(axis=0), 0.0, atol=1e-10)  # the third law
    assert atoms.get_potential_energies().sum() == pytest.approx(energy, rel=1e-12)
    assert atoms.get_potential_energy(force_consistent=True) == energy
    assert atoms.calc.evaluations == 1  # one evaluation filled every property
    h = 1e-5
    for k, x in [(0, 0), (4, 2), (13, 1)]:
        shifted = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.calc = atoms.calc
            moved.positions[k, x] += sign * h
            shifted.append(moved.get_potential_energy())
        assert -(shifted[0] - shifted[1]) / (2 * h) == pytest.approx(forces[k, x], rel=1e-6, abs=1e-9)


def test_ase_velocity_verlet_conserves_the_total_energy():
    """ASE's own VelocityVerlet, 2000 steps of 0.5 fs (1 ps) of the Lennard-Jones lattice gas, shared form."""
    atoms = lattice_gas()
    atoms.calc = MLDCalculator(shared_lj(), threads=1)
    dynamics = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    kinetic, total = [], []
    dynamics.attach(lambda: (kinetic.append(atoms.get_kinetic_energy()), total.append(atoms.get_total_energy())))
    dynamics.run(2000)
    kinetic, total = np.array(kinetic), np.array(total)
    assert kinetic.std() > 0.05 * kinetic.mean()  # energy does flow between kinetic and potential
    drift = abs(total[-200:].mean() - total[:200].mean()) / abs(total[0])
    fluctuation = np.ptp(total) / abs(total[0])
    print(f"ASE VelocityVerlet, shared-form LJ, 1 ps: drift {drift:.2e}, max-min {fluctuation:.2e} of |E| = "
          f"{abs(total[0]):.4f} eV")
    assert drift < 1e-4 and fluctuation < 1e-3


def test_readme_ase_example_runs(capsys):
    text = README.read_text()
    code = re.search(r"## ASE\n.*?```python\n(.*?)```", text, re.S).group(1)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["dyn"].nsteps == 20
    assert re.search(r"\d+\.\d fs +\d+\.\d K", capsys.readouterr().out)
