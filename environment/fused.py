"""Whole runs in compiled code: many steps of the fast path without returning to Python.

:meth:`environment.model.MolecularModel.run` hands the steps between two data collections to
:func:`advance`, which runs them in one numba function: the integrator (velocity Verlet, eq. 4.6, with
the Nose-Hoover chain of :func:`environment.thermostats.nose_hoover_half_step` and force clipping; or
the learning dynamics, eqs 3.1-3.2), the force call (the force kernel's ``compiled`` adapter, e.g.
:meth:`environment.kernels.LossForces.compiled`), the removal of the net force, the wrap into the box
and the finite-value guard.  It does the same operations in the same order as the Python step
(:meth:`environment.integrators.VelocityVerlet.step`, :meth:`~environment.integrators.LearningDynamics.step`,
:meth:`~environment.model.MolecularModel.sense`, :func:`agents.geometry.wrap`), so the two give the
same bits (``tests/test_fused.py``).  Scalars that numpy computes (exp(-dt/tau), the mass fractions)
are computed here in Python as the step computes them and passed in.

It returns to Python early when a step ends with non-finite positions or velocities (the caller raises
as the step does), and before a force call whose neighbour list is stale (some atom moved more than
skin / 2 since the list was built: :meth:`environment.neighbors.NeighborList.needs_rebuild`); the list
is then rebuilt in Python and the step resumes where it stopped.

With a :class:`Guard` it also stops after a step that leaves the kinetic temperature above a limit
(or not finite), or two nuclei closer than a minimum distance (:func:`environment.contacts.closest_pair_in_cells`,
every ``check_every`` steps), and keeps the state before that step (the last good one) in the guard:
the checks of :func:`experiments.guarded_run.run_guarded`, without a return to Python per step.
"""

from __future__ import annotations

import weakref

import numba
import numpy as np
from numba import njit, types

from agents.units import ACCEL_EV_PER_AMU_A
from environment.contacts import closest_pair_in_cells, cell_count
from environment.integrators import LearningDynamics, VelocityVerlet
from environment.kinetics import degrees_of_freedom, kinetic_temperature_compiled
from environment.neighbors import stale
from environment.thermostats import _WEIGHTS, NoseHooverChain, nose_hoover_half_step

VERLET, LEARNING = 0, 1
#: How :func:`_advance` stopped: all steps taken, a neighbour list to rebuild, non-finite values, or a
#: :class:`Guard` that tripped (temperature, two nuclei too close).
DONE, REBUILD, NOT_FINITE, TOO_HOT, TOO_CLOSE = 0, 1, 2, 3, 4


class Guard:
    """The blow-up checks of a compiled run (see the module docstring).

    Args:
        max_temperature_K: stop after a step whose kinetic temperature (N_f = 3N - 3) exceeds this, or is
            not finite (None: only not finite).
        min_distance: stop after a step that leaves two nuclei closer than this (angstrom; None or 0: never).
        check_every: the distance check runs after steps whose number is a multiple of this.

    After a stop, ``temperature`` (K) or ``pair`` ((i, j), i < j) and ``distance`` (angstrom) say why, and
    ``last_good`` holds the positions, velocities, forces and losses before the step that tripped it
    (under the keys of ``MolecularModel.state()``).
    """

    def __init__(self, max_temperature_K: float | None = None, min_distance: float | None = None,
                 check_every: int = 1):
        self.max_temperature_K = float(max_temperature_K or 0.0)
        self.min_distance = float(min_distance or 0.0)
        self.check_every = int(check_every)
        self.temperature = self.distance = self.pair = self.last_good = None

    def _arguments(self, model):
        """The guard's part of :func:`_advance`'s arguments, with buffers holding ``model``'s state now."""
        self.temperature = self.distance = self.pair = None
        self.last_good = {"positions": model.positions.copy(), "velocities": model.velocities.copy(),
                          "forces": model.forces.copy(), "losses": model.loss_values.copy()}
        n_cell = cell_count(len(model.positions), model.box, self.min_distance) if self.min_distance else 0
        return (True, self.max_temperature_K, self.min_distance, self.check_every, n_cell,
                degrees_of_freedom(len(model.masses)), self.last_good["positions"], self.last_good["velocities"],
                self.last_good["forces"], self.last_good["losses"], np.zeros(3))

    def _stopped(self, status, info) -> None:
        if status == TOO_HOT:
            self.temperature = float(info[0])
        elif status == TOO_CLOSE:
            self.distance, self.pair = float(info[0]), (int(info[1]), int(info[2]))


#: The guard arguments of an unguarded run.
_NO_GUARD = (False, 0.0, 0.0, 1, 0, 1, np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(3))


@njit(cache=True)
def _wrap_drift(positions, velocities, dt, box):
    """q <- wrap(q + dt v) into [0, box), as :func:`agents.geometry.wrap` (numpy's mod, then >= box folded)."""
    for k in range(positions.shape[0]):
        for x in range(3):
            w = np.mod(positions[k, x] + dt * velocities[k, x], box)
            positions[k, x] = w - box if w >= box else w


@njit(cache=True)
def _kick(velocities, forces, masses, half_dt):
    """v <- v + (dt/2 a / M) F, as :func:`agents.dynamics.kick`."""
    c = half_dt * ACCEL_EV_PER_AMU_A
    for k in range(velocities.shape[0]):
        ck = c / masses[k]
        for x in range(3):
            velocities[k, x] = velocities[k, x] + ck * forces[k, x]


@njit(cache=True)
def _sense(force_call, kernel, force_args, positions, loss_values, loss_forces, fractions, zero_net_force):
    """H and G at ``positions`` less each agent's mass share of the net force, as ``MolecularModel.sense``."""
    force_call(positions, loss_values, loss_forces, kernel, force_args)
    if zero_net_force:
        net = loss_forces[0].copy()
        for k in range(1, loss_forces.shape[0]):
            for x in range(3):
                net[x] += loss_forces[k, x]
        for k in range(loss_forces.shape[0]):
            for x in range(3):
                loss_forces[k, x] -= fractions[k] * net[x]


@njit(cache=True)
def _clip(forces, loss_forces, max_force):
    """F <- G with |F| capped at ``max_force`` (0: no cap), as :func:`agents.dynamics.clip_forces`."""
    tiny = np.finfo(np.float64).tiny
    for k in range(forces.shape[0]):
        factor = 1.0
        if max_force > 0.0:
            s = 0.0
            for x in range(3):
                s += loss_forces[k, x] * loss_forces[k, x]
            factor = min(1.0, max_force / max(np.sqrt(s), tiny))
        for x in range(3):
            forces[k, x] = loss_forces[k, x] * factor if max_force > 0.0 else loss_forces[k, x]


@njit(cache=True)
def _guard(guard, step, positions, velocities, forces, loss_values, masses, box):
    """DONE when the step just taken (number ``step``) passes the :class:`Guard`'s checks, and then keep
    its state as the last good one; else TOO_HOT / TOO_CLOSE, with the reason in the guard's ``info``."""
    (on, max_temperature, min_distance, check_every, n_cell, n_dof, good_positions, good_velocities,
     good_forces, good_losses, info) = guard
    if not on:
        return DONE
    temperature = kinetic_temperature_compiled(velocities, masses, n_dof)
    if not np.isfinite(temperature) or (max_temperature > 0.0 and temperature > max_temperature):
        info[0] = temperature
        return TOO_HOT
    if min_distance > 0.0 and step % check_every == 0:
        d2, i, j = closest_pair_in_cells(positions, box, min_distance, n_cell)
        if i >= 0:
            info[0] = np.sqrt(d2)
            info[1] = i
            info[2] = j
            return TOO_CLOSE
    good_positions[:] = positions
    good_velocities[:] = velocities
    good_forces[:] = forces
    good_losses[:] = loss_values
    return DONE


@njit(cache=True)
def _finite(a):
    for v in a.ravel():
        if not np.isfinite(v):
            return False
    return True


def _advance(n_steps, resume, kind, positions, velocities, forces, loss_forces, loss_values, masses, fractions,
             zero_net_force, box, dt, max_force, decay, tau, thermostat, xi, eta, Q, n_dof, kT, substeps,
             force_call, kernel, force_args, reference, reference_species, half_skin, guard, steps_before):
    """Up to ``n_steps`` steps in place; ``resume``: the first step's force call is next (after a REBUILD).

    Returns (steps completed, DONE / REBUILD / NOT_FINITE / TOO_HOT / TOO_CLOSE); a REBUILD stop leaves its
    step half done; ``guard``: :meth:`Guard._arguments` or ``_NO_GUARD``; ``steps_before``: the model's
    step count before the first of these steps.
    """
    half_dt = 0.5 * dt
    for i in range(n_steps):
        if kind == VERLET and not (resume and i == 0):
            if thermostat:
                nose_hoover_half_step(velocities, masses, xi, eta, Q, n_dof, kT, dt, substeps, _WEIGHTS)
            _kick(velocities, forces, masses, half_dt)
            _wrap_drift(positions, velocities, dt, box)
        if reference.shape[0] > 0:
            if stale(positions, reference, reference_species, reference_species, box, half_skin):
                return i, REBUILD
        _sense(force_call, kernel, force_args, positions, loss_values, loss_forces, fractions, zero_net_force)
        if kind == VERLET:
            _clip(forces, loss_forces, max_force)
            _kick(velocities, forces, masses, half_dt)
            if thermostat:
                nose_hoover_half_step(velocities, masses, xi, eta, Q, n_dof, kT, dt, substeps, _WEIGHTS)
        else:
            scale = tau * ACCEL_EV_PER_AMU_A
            for k in range(forces.shape[0]):
                v_k = scale / masses[k]
                for x in range(3):
                    forces[k, x] = decay * forces[k, x] + (1.0 - decay) * loss_forces[k, x]
                    velocities[k, x] = v_k * forces[k, x]
            _wrap_drift(positions, velocities, dt, box)
        if not (_finite(positions) and _finite(velocities)):
            return i + 1, NOT_FINITE
        status = _guard(guard, steps_before + i + 1, positions, velocities, forces, loss_values, masses, box)
        if status != DONE:
            return i + 1, status
    return n_steps, DONE


#: Where the force call and the force kernel sit in :func:`_advance`'s arguments.
_CALL, _KERNEL, _ARGS = 23, 24, 25
#: :func:`_advance` compiled for each signature of its arguments.
_ADVANCE = {}
#: Per model: (kernel signature, compiled :func:`_advance`) of its last call.
_LAST = weakref.WeakKeyDictionary()


def _compiled(arguments, kernel_signature):
    """:func:`_advance` compiled for ``arguments``, the force call and its kernel typed as function
    pointers (``kernel_signature``: the kernel's), so the kernel runs its own machine code (see
    ``LossForces.compiled``) and :func:`_advance` stays in numba's cache (a dispatcher-typed argument
    would keep it out)."""
    argument_types = [numba.typeof(a) for a in arguments]
    kernel = types.FunctionType(kernel_signature)
    argument_types[_KERNEL] = kernel
    argument_types[_CALL] = types.FunctionType(types.none(argument_types[3], argument_types[7], argument_types[6],
                                                          kernel, argument_types[_ARGS]))
    signature = types.UniTuple(types.int64, 2)(*argument_types)
    if signature not in _ADVANCE:
        _ADVANCE[signature] = njit(signature, cache=True)(_advance)
    return _ADVANCE[signature]


def _call(model, arguments, kernel_signature):
    """:func:`_advance` on ``arguments``; the compiled version found for the model's last call is tried
    first (typing the arguments costs about a millisecond), and replaced if the types changed."""
    last = _LAST.get(model)
    if last is not None and last[0] is kernel_signature:
        try:
            return last[1](*arguments)
        except TypeError:  # other argument types than last time: an explicit signature does not compile
            pass
    function = _compiled(arguments, kernel_signature)
    _LAST[model] = (kernel_signature, function)
    return function(*arguments)


def adapter_call(owner, key, build):
    """What a force kernel's ``compiled`` adapter returns: ``(function, kernel, signature, args)``, from
    ``build() = (function, kernel, kernel_arguments, args)``, built again only when ``key`` changes (the
    arguments change only when the neighbour list is rebuilt); ``signature`` is numba's for calling
    ``kernel`` with ``kernel_arguments`` (typed once per number of atoms: typing costs ~0.5 ms)."""
    last = owner.__dict__.get("_adapter_call")
    if last is not None and last[0] == key:
        return last[1]
    function, kernel, kernel_arguments, args = build()
    n_atoms = key[-1]
    if last is not None and last[2] == n_atoms:
        signature = last[1][2]
    else:
        signature = types.none(*(numba.typeof(a) for a in kernel_arguments))
    owner._adapter_call = (key, (function, kernel, signature, args), n_atoms)
    return owner._adapter_call[1]


def _dynamics(integrator):
    """(kind, max_force, decay, tau, thermostat) of an integrator the fused path knows, else None."""
    if type(integrator) is LearningDynamics:
        return LEARNING, 0.0, float(np.exp(-integrator.dt / integrator.tau)), integrator.tau, None
    if type(integrator) is VelocityVerlet:
        thermostat = integrator.thermostat
        if thermostat is not None and type(thermostat) is not NoseHooverChain:
            return None
        max_force = 0.0 if integrator.max_force is None else integrator.max_force
        return VERLET, max_force, 0.0, 0.0, thermostat
    return None


def supports(model) -> bool:
    """Whether :func:`advance` can run ``model``'s dynamics: a known integrator and thermostat, and a
    force kernel with a ``compiled`` adapter."""
    return _dynamics(model.integrator) is not None and hasattr(getattr(model.evaluator, "_kernel", None), "compiled")


def advance(model, n_steps: int, guard: Guard | None = None) -> tuple[int, int]:
    """Advance ``model``'s arrays (and thermostat, neighbour list) by up to ``n_steps`` fast-path steps
    in compiled code; the caller counts the steps and time.  Returns (steps completed, status): DONE, or
    NOT_FINITE (the last completed step left non-finite positions or velocities, as ``model.step`` would
    raise), or TOO_HOT / TOO_CLOSE (``guard`` tripped after the last completed step; see :class:`Guard`)."""
    kind, max_force, decay, tau, thermostat = _dynamics(model.integrator)
    evaluator = model.evaluator
    kernel = evaluator._kernel
    previous = numba.get_num_threads()
    numba.set_num_threads(evaluator.threads)
    try:
        masses = model.masses
        fractions = masses / masses.sum()
        if thermostat is not None:
            xi, eta, Q, n_dof, kT, substeps = thermostat.xi, thermostat.eta, thermostat.Q, thermostat.n_dof, \
                thermostat.kT, thermostat.substeps
        else:
            xi = eta = Q = np.zeros(1)
            n_dof, kT, substeps = 0, 0.0, 1
        done, resume = 0, False
        guard_arguments = _NO_GUARD if guard is None else guard._arguments(model)
        while True:
            call, kernel_call, signature, args = kernel.compiled(model.positions)
            nl = kernel.neighbors
            reference = nl.reference if nl is not None else np.zeros((0, 3))
            reference_species = nl.reference_species if nl is not None else np.zeros(0, dtype=np.int64)
            skin = nl.skin if nl is not None else 0.0
            arguments = (n_steps - done, resume, kind, model.positions, model.velocities, model.forces,
                         model.loss_forces, model.loss_values, masses, fractions, model.zero_net_force, model.box,
                         model.dt, max_force, decay, tau, thermostat is not None, xi, eta, Q, n_dof, kT, substeps,
                         call, kernel_call, args, reference, reference_species, 0.5 * skin, guard_arguments,
                         model.steps + done)
            taken, status = _call(model, arguments, signature)
            done += taken
            if status != REBUILD:
                if guard is not None:
                    guard._stopped(status, guard_arguments[-1])
                return done, status
            resume = True
    finally:
        numba.set_num_threads(previous)
