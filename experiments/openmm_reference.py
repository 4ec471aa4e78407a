"""The reference engine of ``mld bench --compare openmm``: the same water box as flexible TIP3P-FB in OpenMM.

TIP3P-FB (Wang, Martinez & Pande, J. Phys. Chem. Lett. 5, 1885 (2014)) is taken from OpenMM's own
``tip3pfb.xml`` and made flexible (``rigidWater=False``, no constraints): harmonic O-H bonds
E = 1/2 k_b (r - r_0)^2 (k_b 462750.4 kJ/mol/nm^2, r_0 1.0118 A), a harmonic H-O-H angle
E = 1/2 k_t (t - t_0)^2 (k_t 836.8 kJ/mol/rad^2, t_0 108.15 deg), point charges and Lennard-Jones on O,
intramolecular non-bonded pairs excluded.  Electrostatics either by PME (``'pme'``) or by reaction
field (``'reaction-field'``: OpenMM's ``CutoffPeriodic``, eps_rf = 78.3), with Lennard-Jones cut at the
same r_c and OpenMM's long-range dispersion correction.  NVT by OpenMM's ``NoseHooverIntegrator`` with
chain length 1 and collision frequency 1/tau: velocity Verlet + Nose-Hoover, as in mld's benchmark.
Runs on OpenMM's CPU platform with a given number of threads.

OpenMM works in nm, ps, kJ/mol and amu; the conversions live here and nowhere else.  Needs the
optional ``bench`` extra (``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import math

import numpy as np
import openmm
from openmm import app, unit

from agents.geometry import minimum_image
from agents.validation import count, positive
from environment.kinetics import kinetic_temperature

#: OpenMM's file of the TIP3P-FB water model.
FORCE_FIELD = "tip3pfb.xml"
#: ``method`` -> OpenMM's non-bonded method.
METHODS = {"pme": app.PME, "reaction-field": app.CutoffPeriodic}
#: Length: nm per angstrom; velocity: (nm/ps) per (angstrom/fs).
NM_PER_A = 0.1
NM_PS_PER_A_FS = 100.0


def water_topology(n_waters: int, box: float) -> app.Topology:
    """``n_waters`` HOH residues (atoms O, H1, H2, bonded O-H1, O-H2) in a cubic box of side ``box`` angstrom."""
    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(count("n_waters", n_waters)):
        residue = topology.addResidue("HOH", chain)
        oxygen = topology.addAtom("O", app.element.oxygen, residue)
        for name in ("H1", "H2"):
            topology.addBond(oxygen, topology.addAtom(name, app.element.hydrogen, residue))
    topology.setPeriodicBoxVectors(np.eye(3) * box * NM_PER_A * unit.nanometer)
    return topology


def whole_waters(positions, box: float) -> np.ndarray:
    """(N, 3) positions (angstrom, ordered O, H, H per molecule) with each H moved to the image nearest its O.

    OpenMM's bonded forces do not wrap, so a molecule split by the box edge must be made whole; the
    configuration is the same periodic one."""
    whole = np.array(positions, dtype=float).reshape(-1, 3, 3)
    whole[:, 1:] = whole[:, :1] + minimum_image(whole[:, 1:] - whole[:, :1], box)
    return whole.reshape(-1, 3)


def largest_cutoff(box: float, cutoff: float) -> float:
    """``cutoff`` (angstrom), or half the box (rounded down to 0.01 A) where the box is smaller than 2 ``cutoff``:
    OpenMM refuses a cutoff beyond half the box."""
    return min(positive("cutoff", cutoff), math.floor(50.0 * positive("box", box)) / 100.0)


def tip3pfb_system(n_waters: int, box: float, method: str, cutoff: float, masses=None) -> openmm.System:
    """Flexible TIP3P-FB water in a periodic cubic box (angstrom), non-bonded cutoff ``cutoff`` angstrom.

    Args:
        n_waters: number of molecules (atoms O, H, H each).
        box: box side (angstrom).
        method: ``'pme'`` or ``'reaction-field'``.
        cutoff: non-bonded cutoff (angstrom), at most half the box.
        masses: (3 n_waters,) masses in amu to use instead of the force field's (mld's, for the same dynamics).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    system = app.ForceField(FORCE_FIELD).createSystem(
        water_topology(n_waters, box), nonbondedMethod=METHODS[method],
        nonbondedCutoff=cutoff * NM_PER_A * unit.nanometer, constraints=None, rigidWater=False)
    if masses is not None:
        for i, mass in enumerate(np.asarray(masses, dtype=float)):
            system.setParticleMass(i, mass)
    return system


class OpenMMRun:
    """Flexible TIP3P-FB water on OpenMM's CPU platform, NVT, ready to time like an mld model.

    Args:
        symbols: (N,) ``['O', 'H', 'H'] * n_waters``.
        positions: (N, 3) angstrom (wrapped or not; molecules are made whole).
        velocities: (N, 3) angstrom/fs.
        box: cubic box side (angstrom).
        masses: (N,) amu.
        method: ``'pme'`` or ``'reaction-field'``.
        cutoff: requested non-bonded cutoff (angstrom); ``cutoff`` holds the one used (:func:`largest_cutoff`).
        threads: CPU platform threads.
        dt_fs, temperature_K, tau_fs: time step, thermostat target and Nose-Hoover time constant.

    Attributes:
        context, integrator, system: OpenMM's objects.
    """

    program = "OpenMM"

    def __init__(self, symbols, positions, velocities, box: float, masses, method: str = "pme", cutoff: float = 9.0,
                 threads: int = 1, dt_fs: float = 0.5, temperature_K: float = 300.0, tau_fs: float = 100.0):
        symbols = list(symbols)
        n_waters = len(symbols) // 3
        if symbols != ["O", "H", "H"] * n_waters or n_waters == 0:
            raise ValueError("symbols: OpenMM's TIP3P-FB box needs waters ordered O, H, H")
        self.mode = method
        self.cutoff = largest_cutoff(box, cutoff)
        self.threads = count("threads", threads)
        self.masses = np.asarray(masses, dtype=float)
        self.system = tip3pfb_system(n_waters, box, method, self.cutoff, self.masses)
        self.integrator = openmm.NoseHooverIntegrator(
            temperature_K, 1000.0 / positive("tau_fs", tau_fs), positive("dt_fs", dt_fs) / 1000.0, 1, 1, 1)
        self.context = openmm.Context(self.system, self.integrator, openmm.Platform.getPlatformByName("CPU"),
                                      {"Threads": str(self.threads)})
        self.context.setPositions(whole_waters(positions, box) * NM_PER_A)
        self.context.setVelocities(np.asarray(velocities, dtype=float) * NM_PS_PER_A_FS)
        self.atoms = len(symbols)
        self.label = f"OpenMM {'PME' if method == 'pme' else 'reaction field'}"

    def advance(self, n_steps: int) -> None:
        """Take ``n_steps`` integrator steps."""
        self.integrator.step(int(n_steps))

    @property
    def steps(self) -> int:
        """Steps taken so far."""
        return int(self.context.getStepCount())

    def temperature(self) -> float:
        """Kinetic temperature now (K, N_f = 3N - 3)."""
        velocities = self.context.getState(getVelocities=True).getVelocities(asNumpy=True)
        return kinetic_temperature(velocities.value_in_unit(unit.nanometer / unit.picosecond) / NM_PS_PER_A_FS,
                                   self.masses)

    def neighbour_list(self):
        """OpenMM keeps its neighbour list to itself: no rebuild statistics."""
        return None
