"""What experiments read: the CP2K run (given or the embedded default) and the losses (given, loaded or learned)."""

from __future__ import annotations

from agents.loss import AgentLosses
from agents.loss_file import load_losses
from learning.cp2k.reader import read_trajectory
from learning.selection import fit_losses


def learn_losses(trajectory, progress=False, stride=1) -> AgentLosses:
    """The default learned losses: 7 weight functions per species by backward elimination, quadratic
    (Sec. 5.2); ``stride`` > 1 fits on every stride-th frame only (quick runs)."""
    return fit_losses(trajectory.frames(slice(None, None, stride)), "auto", "quadratic", progress=progress)


def load_inputs(data=None, loss_path=None, trajectory=None, losses=None, seed=42, progress=False):
    """The trajectory (given, read from ``data``, or the embedded default) and the losses (given,
    loaded from ``loss_path``, or learned from the trajectory with :func:`learn_losses`)."""
    if trajectory is None:
        trajectory = read_trajectory(data)
    if losses is None:
        losses = load_losses(loss_path) if loss_path else learn_losses(trajectory, progress=progress)
    losses.check_species(trajectory.symbols, "--loss")
    return trajectory, losses
