"""The agents' environment: periodic geometry, units, the Mesa model, integrators and thermostats.

The main classes are importable from here; they load on first use, because the model imports the
agents, which import the integrators of this package.
"""

from importlib import import_module

_EXPORTS = {
    "MolecularModel": "environment.model",
    "LearningDynamics": "environment.integrators",
    "VelocityVerlet": "environment.integrators",
    "NoseHooverChain": "environment.thermostats",
    "water_box": "environment.builders",
}

__all__ = ["LearningDynamics", "MolecularModel", "NoseHooverChain", "VelocityVerlet", "water_box"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'environment' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
