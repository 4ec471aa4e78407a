"""The agents: nuclei that learn (species and the Mesa nucleus agent)."""
