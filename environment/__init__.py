"""The agents' environment: the Mesa model, its forces, integrators, thermostats, builders and ASE calculator."""

from environment.builders import water_box
from environment.calculator import MLDCalculator
from environment.integrators import LearningDynamics, VelocityVerlet, make_integrator
from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain

__all__ = ["LearningDynamics", "MLDCalculator", "MolecularModel", "NoseHooverChain", "VelocityVerlet", "make_integrator",
           "water_box"]
