"""Nosé–Hoover chain thermostat (Martyna, Tuckerman & Klein), as its own object with its own state.

The thermostat acts on velocities only, by a Trotter half-step before and after each velocity-Verlet
step.  Its contribution to the conserved quantity is :meth:`NoseHooverChain.energy`.
"""

from __future__ import annotations

import numpy as np

from agents.units import KB_EV_PER_K
from agents.validation import count, positive
from environment.kinetics import kinetic_energy

# Fourth-order Suzuki–Yoshida weights for the thermostat sub-steps.
_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
SUZUKI_YOSHIDA = (_W1, 1.0 - 2.0 * _W1, _W1)


class NoseHooverChain:
    """A Nosé–Hoover chain of ``chain_length`` thermostats at ``temperature_K``.

    Args:
        temperature_K: target temperature (K).
        tdamp_fs: the thermostat's time constant (fs); Q_1 = N_f k T tdamp^2, Q_j = k T tdamp^2.
        chain_length: number of thermostats in the chain (1 is plain Nosé–Hoover).
        substeps: Trotter sub-steps of each half-step.
    """

    def __init__(self, temperature_K: float, tdamp_fs: float = 100.0, chain_length: int = 3, substeps: int = 1):
        self.temperature_K = positive("thermostat temperature_K", temperature_K)
        self.tdamp_fs = positive("thermostat tdamp_fs", tdamp_fs)
        self.chain_length = count("thermostat chain_length", chain_length)
        self.substeps = count("thermostat substeps", substeps)
        self.n_dof = None
        self.eta = np.zeros(self.chain_length)  # thermostat positions (dimensionless)
        self.xi = np.zeros(self.chain_length)  # thermostat velocities (1/fs)

    def settings(self) -> dict:
        """The thermostat's parameters as plain data."""
        return {"kind": "nose-hoover-chain", "temperature_K": self.temperature_K, "tdamp_fs": self.tdamp_fs,
                "chain_length": self.chain_length, "substeps": self.substeps}

    @classmethod
    def from_settings(cls, settings: dict) -> NoseHooverChain:
        """The thermostat of :meth:`settings` (its state starts at zero: see :meth:`restore`)."""
        return cls(settings["temperature_K"], settings["tdamp_fs"], settings["chain_length"],
                   settings.get("substeps", 1))

    def state(self) -> dict:
        """The chain's positions ``eta`` and velocities ``xi`` (copies), for checkpoints."""
        return {"eta": self.eta.copy(), "xi": self.xi.copy()}

    def restore(self, state: dict) -> None:
        """Set ``eta`` and ``xi`` from :meth:`state` (bit-exact)."""
        for name in ("eta", "xi"):
            value = np.asarray(state[name], dtype=float)
            if value.shape != (self.chain_length,):
                raise ValueError(f"thermostat {name} has shape {value.shape}, expected ({self.chain_length},)")
            getattr(self, name)[:] = value

    @property
    def kT(self) -> float:
        return KB_EV_PER_K * self.temperature_K

    def attach(self, n_dof: int) -> NoseHooverChain:
        """Set the number of degrees of freedom it thermostats and the chain masses."""
        self.n_dof = int(n_dof)
        self.Q = np.full(self.chain_length, self.kT * self.tdamp_fs**2)  # eV fs^2
        self.Q[0] *= self.n_dof
        return self

    def _force(self, j: int, twice_ke: float) -> float:
        if j == 0:
            return (twice_ke - self.n_dof * self.kT) / self.Q[0]
        return (self.Q[j - 1] * self.xi[j - 1] ** 2 - self.kT) / self.Q[j]

    def _update_xi(self, j: int, twice_ke: float, delta: float) -> None:
        last = j == self.chain_length - 1
        damping = 1.0 if last else np.exp(-0.25 * delta * self.xi[j + 1])
        self.xi[j] = (self.xi[j] * damping + 0.5 * delta * self._force(j, twice_ke)) * damping

    def half_step(self, velocities, masses, dt: float) -> None:
        """Advance the chain by dt/2 and scale ``velocities`` (N, 3) in place."""
        if self.n_dof is None:
            raise RuntimeError("attach the thermostat to a system (n_dof) before stepping it")
        twice_ke = 2.0 * kinetic_energy(velocities, masses)
        scale = 1.0
        for weight in SUZUKI_YOSHIDA:
            delta = weight * 0.5 * dt / self.substeps
            for _ in range(self.substeps):
                for j in reversed(range(self.chain_length)):
                    self._update_xi(j, twice_ke * scale**2, delta)
                factor = np.exp(-delta * self.xi[0])
                scale *= factor
                self.eta += delta * self.xi
                for j in range(self.chain_length):
                    self._update_xi(j, twice_ke * scale**2, delta)
        velocities *= scale

    def energy(self) -> float:
        """The chain's share of the conserved quantity (eV)."""
        if self.n_dof is None:
            return 0.0
        kinetic = 0.5 * np.sum(self.Q * self.xi**2)
        return float(kinetic + self.n_dof * self.kT * self.eta[0] + self.kT * np.sum(self.eta[1:]))
