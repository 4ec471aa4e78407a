"""Experiments that reproduce the paper, benchmarks and the ``mld`` command line."""
