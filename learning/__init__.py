"""Learning the agent losses: weight functions, invariants (4.1), losses (4.5), CP2K data and fits."""

__version__ = "0.1.0"
