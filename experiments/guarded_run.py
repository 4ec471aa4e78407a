"""Running a model safely: stop a run that blows up with its step number and keep its last good frame.

A run is stopped (:class:`SimulationBlewUp`) when positions or velocities stop being finite, when the
temperature runs away, or when two nuclei come closer than a minimum distance (0.5 angstrom by
default: nuclei fusing, which no learned loss prevents and which NaN shows only much later).  The
closest pair is found by :func:`environment.contacts.closest_pair_within`, an O(N) cell-grid
minimum-image search: after every step below :data:`EVERY_STEP_BELOW_ATOMS` atoms, and every
``atoms // EVERY_STEP_BELOW_ATOMS`` steps (at most :data:`MAX_CHECK_INTERVAL`) above, where a check
costs a few percent of a step.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from environment.contacts import closest_pair_within
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
                should_stop=None) -> int:
    """Take ``n_steps`` steps of ``model``; raise :class:`SimulationBlewUp` on NaN, runaway heat or fusion.

    Args:
        model: a :class:`environment.model.MolecularModel`.
        n_steps: number of steps (non-negative).
        max_temperature_K: stop when the kinetic temperature exceeds this (None: no limit).
        progress: show a progress bar with steps per second on stderr.
        label: the progress bar's description.
        on_step: called as ``on_step(model)`` after every good step.
        min_distance: stop when two nuclei come closer than this (angstrom; None or 0: never).
        should_stop: called after every good step (after ``on_step``); when it returns True the run
            stops there (an interrupt).

    Returns:
        The number of steps taken (fewer than ``n_steps`` when ``should_stop`` stopped the run).
    """
    if int(n_steps) < 0:
        raise ValueError(f"steps must be non-negative, got {n_steps}")
    if min_distance is not None and not min_distance >= 0:
        raise ValueError(f"min_distance must be a non-negative distance in angstrom, got {min_distance!r}")
    interval = check_interval(len(model.agent_list))
    last_good = model.state()
    taken = 0
    for _ in tqdm(range(int(n_steps)), disable=not progress, desc=label, unit="step", leave=False):
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
                symbols = model.symbols
                raise SimulationBlewUp(
                    model.steps, f"atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are {distance:.3g} angstrom apart, "
                    f"closer than the minimum distance {min_distance:g} angstrom (nuclei fusing)", last_good, (i, j))
        last_good = model.state()
        taken += 1
        if on_step is not None:
            on_step(model)
        if should_stop is not None and should_stop():
            break
    return taken
