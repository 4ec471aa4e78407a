"""The agents' environment: the Mesa model, its forces, integrators, thermostats, builders and ASE calculator.

Importing it sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment already sets it: numba's OpenMP
threads then sleep at the end of a parallel region instead of spinning.  Spinning threads collapsed a
step 10-30 times over when another process held one of the cores (``docs/threads.md``).  OpenMP reads
the variable when numba first starts its threads, which is after this import.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from environment.builders import water_box  # noqa: E402
from environment.calculator import MLDCalculator  # noqa: E402
from environment.integrators import LearningDynamics, VelocityVerlet, make_integrator  # noqa: E402
from environment.model import MolecularModel  # noqa: E402
from environment.thermostats import NoseHooverChain  # noqa: E402

__all__ = ["LearningDynamics", "MLDCalculator", "MolecularModel", "NoseHooverChain", "VelocityVerlet", "make_integrator",
           "water_box"]
