"""Nosé–Hoover chain thermostat (Martyna, Tuckerman & Klein), as its own object with its own state.

The thermostat acts on velocities only, by a Trotter half-step before and after each velocity-Verlet
step.  Its contribution to the conserved quantity is :meth:`NoseHooverChain.energy`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from agents.units import EV_PER_AMU_A2_FS2, KB_EV_PER_K
from agents.validation import count, positive

# Fourth-order Suzuki–Yoshida weights for the thermostat sub-steps.
_W1 = 1.0 / (2.0 - 2.0 ** (1.0 / 3.0))
SUZUKI_YOSHIDA = (_W1, 1.0 - 2.0 * _W1, _W1)
_WEIGHTS = np.array(SUZUKI_YOSHIDA)


@njit(cache=True)
def _chain_force(j, twice_ke, xi, Q, n_dof, kT):
    """G_j: the force on thermostat j (1/fs^2), from the kinetic energy (j = 0) or thermostat j - 1."""
    if j == 0:
        return (twice_ke - n_dof * kT) / Q[0]
    return (Q[j - 1] * xi[j - 1] ** 2 - kT) / Q[j]


@njit(cache=True)
def _update_xi(j, twice_ke, delta, xi, Q, n_dof, kT):
    """xi_j over ``delta``, damped by thermostat j + 1 on both sides (the Trotter splitting)."""
    last = j == xi.size - 1
    damping = 1.0 if last else np.exp(-0.25 * delta * xi[j + 1])
    xi[j] = (xi[j] * damping + 0.5 * delta * _chain_force(j, twice_ke, xi, Q, n_dof, kT)) * damping


@njit(cache=True)
def nose_hoover_half_step(velocities, masses, xi, eta, Q, n_dof, kT, dt, substeps, weights):
    """One Trotter half-step dt/2 of the chain (positions ``eta``, velocities ``xi``, masses ``Q``, all
    updated in place) with ``substeps`` Suzuki-Yoshida sub-steps of ``weights``; scales ``velocities``
    (N, 3) in place.  Compiled, so that :meth:`NoseHooverChain.half_step` and the fused runs of
    :mod:`environment.fused` do the same arithmetic (bit for bit)."""
    sum_mv2 = 0.0
    for k in range(velocities.shape[0]):
        for x in range(3):
            sum_mv2 += masses[k] * velocities[k, x] * velocities[k, x]
    twice_ke = 2.0 * (0.5 * sum_mv2 * EV_PER_AMU_A2_FS2)
    L = xi.size
    scale = 1.0
    for weight in weights:
        delta = weight * 0.5 * dt / substeps
        for _ in range(substeps):
            for j in range(L - 1, -1, -1):
                _update_xi(j, twice_ke * scale**2, delta, xi, Q, n_dof, kT)
            factor = np.exp(-delta * xi[0])
            scale *= factor
            for j in range(L):
                eta[j] += delta * xi[j]
            for j in range(L):
                _update_xi(j, twice_ke * scale**2, delta, xi, Q, n_dof, kT)
    for k in range(velocities.shape[0]):
        for x in range(3):
            velocities[k, x] *= scale


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

    def half_step(self, velocities, masses, dt: float) -> None:
        """Advance the chain by dt/2 and scale ``velocities`` (N, 3) in place (:func:`nose_hoover_half_step`)."""
        if self.n_dof is None:
            raise RuntimeError("attach the thermostat to a system (n_dof) before stepping it")
        nose_hoover_half_step(velocities, masses, self.xi, self.eta, self.Q, self.n_dof, self.kT, float(dt),
                              self.substeps, _WEIGHTS)

    def energy(self) -> float:
        """The chain's share of the conserved quantity (eV)."""
        if self.n_dof is None:
            return 0.0
        kinetic = 0.5 * np.sum(self.Q * self.xi**2)
        return float(kinetic + self.n_dof * self.kT * self.eta[0] + self.kT * np.sum(self.eta[1:]))
