"""The agents' environment: periodic geometry, units, the Mesa model, integrators and thermostats."""
