"""The agents' environment: the Mesa model, its forces, integrators, thermostats and builders."""

from environment.builders import water_box
from environment.integrators import LearningDynamics, VelocityVerlet, make_integrator
from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain

__all__ = ["LearningDynamics", "MolecularModel", "NoseHooverChain", "VelocityVerlet", "make_integrator", "water_box"]
