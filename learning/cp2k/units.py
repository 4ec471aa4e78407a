"""CP2K's atomic units in the project's units: CODATA 2006, as CP2K 2023.1 converts (its src/common/physcon.F).

The reader (:mod:`learning.cp2k.reader`) multiplies by these on the way in; the input writer
(:mod:`learning.cp2k.inputs`) divides velocities by :data:`VELOCITY_AU_A_PER_FS` on the way out.
"""

#: 1 hartree in eV.
HARTREE_EV = 27.2113838566
#: 1 hartree/bohr in eV/angstrom.
FORCE_AU_EV_PER_A = 51.4220631857
#: 1 bohr per atomic time unit in angstrom/fs.
VELOCITY_AU_A_PER_FS = 21.8769125415
