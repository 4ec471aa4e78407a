"""Running a model safely: stop a run that blows up with its step number and keep its last good frame.

A run is stopped (:class:`SimulationBlewUp`) when positions or velocities stop being finite, when the
temperature runs away, or when two nuclei come closer than a minimum distance (0.5 angstrom by
default: nuclei fusing, which no learned loss prevents and which NaN shows only much later).  The
closest pair is found by :func:`environment.contacts.closest_pair_within`, an O(N) cell-grid
minimum-image search: after every step below :data:`EVERY_STEP_BELOW_ATOMS` atoms, and every
``atoms // EVERY_STEP_BELOW_ATOMS`` steps (at most :data:`MAX_CHECK_INTERVAL`) above, where a check
costs a few percent of a step.

Where the model's fast path runs in compiled code (``model.fusable()``), the checks run there too
(:class:`environment.fused.Guard`), and the run returns to Python only for data collection, ``on_step``
(every ``on_step_every`` steps) and ``should_stop``; it stops at the same step with the same state as the
step-by-step loop (``tests/test_fused.py``).
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from environment.contacts import closest_pair_within
from environment.fused import Guard
from experiments.extxyz import write_frame

#: Default minimum distance between two nuclei (angstrom).
MIN_DISTANCE = 0.5
#: Below this many atoms the distance guard checks every step.
EVERY_STEP_BELOW_ATOMS = 100_000
#: The largest number of steps between two distance checks.
MAX_CHECK_INTERVAL = 10


class SimulationBlewUp(RuntimeError):
    """A run stopped at ``step`` (NaN, runaway temperature, or two nuclei too close); ``last_good`` is
    the state before, ``pair`` the two atoms (indices) that came too close, if that was the reason."""

    def __init__(self, step: int, reason: str, last_good: dict, pair: tuple[int, int] | None = None):
        super().__init__(f"simulation blew up at step {step}: {reason}")
        self.step = step
        self.last_good = last_good
        self.pair = pair

    def save_last_good(self, path) -> None:
        """Write the last good frame as extended XYZ."""
        state = self.last_good
        write_frame(path, state["symbols"], state["positions"], state["box"], state["velocities"],
                    step=state["step"], time_fs=float(state["time_fs"]))


def check_interval(n_atoms: int) -> int:
    """Steps between two distance checks for ``n_atoms`` atoms."""
    return int(min(MAX_CHECK_INTERVAL, max(1, n_atoms // EVERY_STEP_BELOW_ATOMS)))


def run_guarded(model, n_steps: int, max_temperature_K: float | None = None, progress: bool = False,
                label: str = "steps", on_step=None, min_distance: float | None = MIN_DISTANCE,
                should_stop=None, on_step_every: int = 1, fused: bool = True) -> int:
    """Take ``n_steps`` steps of ``model``; raise :class:`SimulationBlewUp` on NaN, runaway heat or fusion.

    Args:
        model: a :class:`environment.model.MolecularModel`.
        n_steps: number of steps (non-negative).
        max_temperature_K: stop when the kinetic temperature exceeds this (None: no limit).
        progress: show a progress bar with steps per second on stderr.
        label: the progress bar's description.
        on_step: called as ``on_step(model)`` after every good step whose number is a multiple of
            ``on_step_every``.
        min_distance: stop when two nuclei come closer than this (angstrom; None or 0: never).
        should_stop: called after every good step in the step-by-step loop, and whenever the compiled run
            returns to Python (after ``on_step``; at least at every data collection and every
            ``on_step_every`` steps); when it returns True the run stops there (an interrupt).
        fused: run the steps and the checks in compiled code where the model allows it (``model.fusable()``).

    Returns:
        The number of steps taken (fewer than ``n_steps`` when ``should_stop`` stopped the run).
    """
    if int(n_steps) < 0:
        raise ValueError(f"steps must be non-negative, got {n_steps}")
    if min_distance is not None and not min_distance >= 0:
        raise ValueError(f"min_distance must be a non-negative distance in angstrom, got {min_distance!r}")
    if int(on_step_every) < 1:
        raise ValueError(f"on_step_every must be a positive number of steps, got {on_step_every}")
    interval = check_interval(len(model.agent_list))
    run = _run_compiled if fused and model.fusable() else _run_stepwise
    with tqdm(total=int(n_steps), disable=not progress, desc=label, unit="step", leave=False) as bar:
        return run(model, int(n_steps), max_temperature_K, min_distance, interval, bar, on_step, int(on_step_every),
                   should_stop)


def _too_close(model, step, distance, i, j, min_distance, last_good) -> SimulationBlewUp:
    symbols = model.symbols
    return SimulationBlewUp(step, f"atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are {distance:.3g} angstrom apart, "
                            f"closer than the minimum distance {min_distance:g} angstrom (nuclei fusing)", last_good,
                            (i, j))


def _run_stepwise(model, n_steps, max_temperature_K, min_distance, interval, bar, on_step, on_step_every, should_stop):
    """:func:`run_guarded` one :meth:`~environment.model.MolecularModel.step` at a time."""
    last_good = model.state()
    taken = 0
    for _ in range(n_steps):
        try:
            model.step()
        except FloatingPointError as err:
            raise SimulationBlewUp(model.steps, str(err), last_good) from None
        temperature = model.temperature
        if not np.isfinite(temperature) or (max_temperature_K and temperature > max_temperature_K):
            raise SimulationBlewUp(model.steps, f"temperature {temperature:.4g} K", last_good)
        if min_distance and model.steps % interval == 0:
            distance, i, j = closest_pair_within(model.positions, model.box, min_distance)
            if i >= 0:
                raise _too_close(model, model.steps, distance, i, j, min_distance, last_good)
        last_good = model.state()
        taken += 1
        bar.update(1)
        if on_step is not None and model.steps % on_step_every == 0:
            on_step(model)
        if should_stop is not None and should_stop():
            break
    return taken


def _run_compiled(model, n_steps, max_temperature_K, min_distance, interval, bar, on_step, on_step_every, should_stop):
    """:func:`run_guarded` in compiled code (:meth:`~environment.model.MolecularModel.run_compiled` with a
    :class:`~environment.fused.Guard`), back in Python at collections, ``on_step`` and ``should_stop``."""
    guard = Guard(max_temperature_K, min_distance, interval)
    taken = 0
    while taken < n_steps:
        chunk = n_steps - taken
        if on_step is not None:
            chunk = min(chunk, on_step_every - model.steps % on_step_every)
        step, time_fs = model.steps, model.time_fs
        try:
            done = model.run_compiled(chunk, guard)
        except FloatingPointError as err:
            raise SimulationBlewUp(model.steps, str(err), _last_good(model, guard, model.steps - 1 - step, time_fs)) \
                from None
        if guard.temperature is not None or guard.pair is not None:
            last_good = _last_good(model, guard, done - 1, time_fs)
            if guard.pair is None:
                raise SimulationBlewUp(model.steps, f"temperature {guard.temperature:.4g} K", last_good)
            raise _too_close(model, model.steps, guard.distance, *guard.pair, min_distance, last_good)
        taken += done
        bar.update(done)
        if on_step is not None and model.steps % on_step_every == 0:
            on_step(model)
        if should_stop is not None and should_stop():
            break
    return taken


def _last_good(model, guard, good_steps, time_fs) -> dict:
    """``model.state()`` as it was ``good_steps`` steps into the last compiled chunk, which began at
    ``time_fs``: the guard's copy of the arrays, the step count and the time (added up as the model does)."""
    for _ in range(good_steps):
        time_fs += model.dt
    return {**model.state(), "step": model.steps - 1, "time_fs": time_fs, **guard.last_good}
