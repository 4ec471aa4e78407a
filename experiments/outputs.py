"""What experiments write: :class:`Results` (JSON summary, CSV tables, PNG figures) and how it reaches disk."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from agents.json_file import plain  # noqa: E402


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
        write_json(out / summary_name, self.summary)
        written.append(out / summary_name)
        return written


def write_json(path, data) -> Path:
    """Write ``data`` as indented JSON (made plain by :func:`plain`), atomically: a temporary file in
    the same folder, then a rename, so a reader never sees half a file."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(plain(data), indent=1) + "\n")
    partial.replace(path)
    return path


def publish(staging: Path, out: Path) -> None:
    """Move everything written in ``staging`` into ``out``, replacing what was there: runs write into
    a staging folder first, so a failed run leaves nothing half-written."""
    for item in Path(staging).iterdir():
        target = Path(out) / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
