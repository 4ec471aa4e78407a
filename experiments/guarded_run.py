"""Running a model safely: stop a run that blows up with its step number and keep its last good frame."""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from experiments.extxyz import write_frame


class SimulationBlewUp(RuntimeError):
    """A run stopped at ``step`` (NaN, or runaway temperature); ``last_good`` is the state before."""

    def __init__(self, step: int, reason: str, last_good: dict):
        super().__init__(f"simulation blew up at step {step}: {reason}")
        self.step = step
        self.last_good = last_good

    def save_last_good(self, path) -> None:
        """Write the last good frame as extended XYZ."""
        state = self.last_good
        write_frame(path, state["symbols"], state["positions"], state["box"], state["velocities"],
                    step=state["step"], time_fs=float(state["time_fs"]))


def run_guarded(model, n_steps: int, max_temperature_K: float | None = None, progress: bool = False,
                label: str = "steps", on_step=None) -> None:
    """Take ``n_steps`` steps of ``model``; raise :class:`SimulationBlewUp` on NaN or runaway heat.

    Args:
        model: a :class:`environment.model.MolecularModel`.
        n_steps: number of steps (non-negative).
        max_temperature_K: stop when the kinetic temperature exceeds this (None: no limit).
        progress: show a progress bar with steps per second on stderr.
        label: the progress bar's description.
        on_step: called as ``on_step(model)`` after every good step.
    """
    if int(n_steps) < 0:
        raise ValueError(f"steps must be non-negative, got {n_steps}")
    last_good = model.state()
    for _ in tqdm(range(int(n_steps)), disable=not progress, desc=label, unit="step", leave=False):
        try:
            model.step()
        except FloatingPointError as err:
            raise SimulationBlewUp(model.steps, str(err), last_good) from None
        temperature = model.temperature
        if not np.isfinite(temperature) or (max_temperature_K and temperature > max_temperature_K):
            raise SimulationBlewUp(model.steps, f"temperature {temperature:.4g} K", last_good)
        last_good = model.state()
        if on_step is not None:
            on_step(model)
