"""``mld reproduce``: the paper's every experiment on one CP2K run, with figures and a report."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from experiments.beyond import FormComparisonExperiment
from experiments.dataset import DatasetExperiment
from experiments.feature_selection import FeatureSelectionExperiment
from experiments.observables import observe
from experiments.outputs import publish, write_json
from experiments.report import write_report
from experiments.tau_limit import TauLimitExperiment
from experiments.timing import TimingExperiment
from experiments.water import WaterSimulationExperiment
from learning.cp2k.reader import read_trajectory


#: NVT steps per variant of the full run's "Beyond the paper" step (0.5 fs each); ``mld beyond --steps`` runs longer.
BEYOND_STEPS = 20000


def reproduce(data=None, out="mld-reproduce", quick=False, progress=False) -> dict:
    """Every experiment of the paper on one CP2K run: figures, CSV, ``summary.json`` and ``report.md``.

    ``quick`` fits on every 4th frame and runs shorter simulations (under 2 minutes here).  The last
    step goes beyond the paper (:mod:`experiments.beyond`): quick, two variants (shared/many-body-l2,
    own/radial) on every 8th frame, 200 steps; otherwise every variant that applies to the data
    (:func:`experiments.beyond.default_variants`) on every 4th frame, :data:`BEYOND_STEPS`.
    """
    started = time.perf_counter()
    out = Path(out)
    trajectory = read_trajectory(data)
    stride = 4 if quick else 1
    staging = Path(tempfile.mkdtemp(dir=out))
    try:
        summaries = {}
        dataset = DatasetExperiment(data=str(data) if data else None)
        dataset.save(staging / "dataset")
        summaries["dataset"] = dataset.results.summary

        selection = FeatureSelectionExperiment(trajectory=trajectory.frames(slice(None, None, stride)), progress=progress)
        selection.save(staging / "selection")
        summaries["selection"] = selection.results.summary
        losses = selection.selection["losses"]
        losses.save(staging / "losses.json")

        steps = 400 if quick else max(len(trajectory), 2000)
        experiments = {
            "water": WaterSimulationExperiment(trajectory=trajectory, losses=losses, steps=steps,
                                               nve_steps=100 if quick else 400, progress=progress),
            "tau": TauLimitExperiment(trajectory=trajectory, losses=losses, steps=100, progress=progress),
            "timing": TimingExperiment(trajectory=trajectory, losses=losses, steps=50 if quick else 200),
        }
        for name, experiment in experiments.items():
            experiment.save(staging / name)
            summaries[name] = experiment.results.summary
        beyond = (FormComparisonExperiment(trajectory=trajectory, variants=("shared/many-body-l2", "own/radial"),
                                           stride=8, steps=200, nve_steps=100, progress=progress) if quick else
                  FormComparisonExperiment(trajectory=trajectory, steps=BEYOND_STEPS, every=4, progress=progress))
        beyond.save(staging / "beyond")
        summaries["beyond"] = beyond.results.summary
        water = experiments["water"]
        observables = observe(water.learned, water.reference)
        observables.save(staging / "observables")
        summaries["observables"] = observables.summary
        summaries["quick"] = quick
        summaries["wall_time_s"] = time.perf_counter() - started
        write_json(staging / "summary.json", summaries)
        write_report(summaries, staging / "report.md")
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summaries

