"""The agents: nuclei that learn (species and the Mesa nucleus agent)."""

from agents.nucleus import NucleusAgent
from agents.species import HYDROGEN, OXYGEN, Species, species

__all__ = ["HYDROGEN", "OXYGEN", "NucleusAgent", "Species", "species"]
