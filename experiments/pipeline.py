"""The main job: data in, learned losses, simulations, figures and a report out (``mld reproduce``),
and the single learned-loss run of ``mld simulate``."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain
from experiments.base import _plain
from experiments.extxyz import write_frame
from experiments.simulation import SimulationBlewUp, run_guarded
from learning.cp2k import default_data_path, read_trajectory
from learning.loss import AgentLosses


def check_losses_fit(losses: AgentLosses, symbols, where: str = "--loss") -> None:
    """``ValueError`` naming ``where`` unless ``losses`` covers exactly the species of ``symbols``."""
    present = sorted(set(symbols))
    for s in present:
        if s not in losses.losses:
            raise ValueError(f"{where}: the losses are for species {losses.species}, the data has {present}")
        if sorted(losses[s].invariants.sources) != present:
            raise ValueError(f"{where}: the loss of {s} reads species {list(losses[s].invariants.sources)}, "
                             f"the data has {present}")


def load_inputs(data=None, loss_path=None, trajectory=None, losses=None, seed=42, progress=False):
    """The trajectory (given, read from ``data``, or the embedded default) and the losses (given,
    loaded from ``loss_path``, or learned from the trajectory with :func:`learn_losses`)."""
    if trajectory is None:
        trajectory = read_trajectory(data or default_data_path())
    if losses is None:
        losses = AgentLosses.load(loss_path) if loss_path else learn_losses(trajectory, progress=progress)
    check_losses_fit(losses, trajectory.symbols)
    return trajectory, losses


def learn_losses(trajectory, progress=False) -> AgentLosses:
    raise NotImplementedError
