"""The experiment base: a config dataclass in, a :class:`Results` out, saved as JSON, CSV and PNG."""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _plain(value):
    """JSON-ready copy of numbers, arrays and nested containers (NaN -> None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass
class Results:
    """What an experiment produced.

    Attributes:
        summary: scalar numbers and short lists (goes to ``summary.json``).
        tables: name -> DataFrame (each goes to ``NAME.csv``).
        figures: name -> matplotlib Figure (each goes to ``NAME.png``).
    """

    summary: dict = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, plt.Figure] = field(default_factory=dict)

    def save(self, out_dir, summary_name: str = "summary.json") -> list[Path]:
        """Write every table, figure and the summary into ``out_dir``; return the paths written."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for name, table in self.tables.items():
            table.to_csv(out / f"{name}.csv", index=False)
            written.append(out / f"{name}.csv")
        for name, figure in self.figures.items():
            figure.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
            plt.close(figure)
            written.append(out / f"{name}.png")
        (out / summary_name).write_text(json.dumps(_plain(self.summary), indent=1) + "\n")
        written.append(out / summary_name)
        return written


def publish(staging: Path, out: Path) -> None:
    """Move everything written in ``staging`` into ``out``, replacing what was there: runs write into
    a staging folder first, so a failed run leaves nothing half-written."""
    for item in Path(staging).iterdir():
        target = Path(out) / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)


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
        """Fill ``self.trajectory`` and ``self.losses`` (see :func:`experiments.pipeline.load_inputs`)."""
        from experiments.pipeline import load_inputs

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
