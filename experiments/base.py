"""The experiment base: a config dataclass in, a :class:`experiments.outputs.Results` out."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from experiments.inputs import load_inputs
from experiments.outputs import Results


class Experiment:
    """Base class: ``Experiment(config).run()`` returns :class:`Results`; ``save`` writes them.

    Subclasses set ``Config`` (a dataclass of hyperparameters with defaults) and implement ``run``.
    """

    Config: type = None
    name: str = "experiment"

    def __init__(self, config=None, **overrides):
        config = config if config is not None else self.Config()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.results: Results | None = None

    def run(self) -> Results:
        raise NotImplementedError

    def save(self, out_dir) -> list[Path]:
        """Run if needed, then write ``summary.json``, CSV tables and PNG figures to ``out_dir``."""
        if self.results is None:
            self.results = self.run()
        self.results.summary.setdefault("config", dataclasses.asdict(self.config))
        return self.results.save(out_dir)


class LearnedLossExperiment(Experiment):
    """An experiment that runs learned losses on a CP2K run's system.

    The trajectory and losses may be given (``reproduce`` shares them); otherwise they come from the
    config's ``data`` and ``losses`` paths, the losses being learned from the data when no path is given.
    """

    def __init__(self, config=None, trajectory=None, losses=None, **overrides):
        super().__init__(config, **overrides)
        self.trajectory = trajectory
        self.losses = losses

    def load_inputs(self):
        """Fill ``self.trajectory`` and ``self.losses`` (see :func:`experiments.inputs.load_inputs`)."""
        cfg = self.config
        self.trajectory, self.losses = load_inputs(cfg.data, cfg.losses, self.trajectory, self.losses, cfg.seed)
        return self.trajectory, self.losses

    def start_frame(self) -> int:
        """The configured start frame, or the first frame after the equilibration fraction."""
        cfg, n = self.config, len(self.trajectory)
        start = int(round(cfg.equilibration * n)) if cfg.start_frame is None else cfg.start_frame
        if not 0 <= start < n:
            raise ValueError(f"start_frame {start} is past the end of the data ({n} frames)")
        return start
