"""The project's one unit system: angstrom, fs, amu, eV, K.

Every array inside the project is in these units.  CP2K's atomic units are converted once, in
:mod:`learning.cp2k.reader`, with the constants defined there.
"""

#: Acceleration of 1 eV/angstrom acting on 1 amu, in angstrom/fs^2.
ACCEL_EV_PER_AMU_A = 9.64853321e-3
#: Kinetic energy of 1 amu moving at 1 angstrom/fs, in eV (1 / ACCEL_EV_PER_AMU_A).
EV_PER_AMU_A2_FS2 = 1.0 / ACCEL_EV_PER_AMU_A
#: Boltzmann constant in eV/K.
KB_EV_PER_K = 8.617333262e-5
#: Avogadro's number (for densities in g/cm^3).
AVOGADRO = 6.02214076e23
