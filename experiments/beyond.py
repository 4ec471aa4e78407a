"""Beyond the paper: own vs shared losses and radial vs many-body invariants, as one experiment.

Each variant ``FORM/INVARIANTS`` is learned from the CP2K run (:func:`learning.fitting.learn`,
quadratic, eq. 4.5; relative force RMSE 5.2 on the test split) and then drives the same water runs
as :mod:`experiments.water` (Sec. 5.3): Newtonian NVT (velocity Verlet, eq. 4.6, with a Nosé–Hoover
thermostat at the CP2K run's mean temperature, no force clipping) from the first equilibrated CP2K
frame, compared with CP2K by :func:`experiments.observables.observe`, and a short NVE run from the
same frame: the ``shared`` form (every agent descends E = sum_k H_k) conserves E, so its drift (eV/ps)
measures the integrator; the paper's ``own`` form has no E and heats (K/ps).

Variants: ``radial`` is the paper's 18 weight functions (4.2-4.4) cut smoothly at 4.5 angstrom;
``many-body-sharp`` is the prototype's radial + angular descriptor set (zeta up to 16, angular 3.5 angstrom) of
:func:`learning.fitting.descriptor_set`, and ``many-body-l2`` the same with zeta <= 2, every invariant cut at
4.5 angstrom (its forces are summed through moments: about 1.7x the paper model's time per step where
``many-body-sharp`` takes about 2.8x); ``--invariants many-body`` is ``many-body-l2`` in the shared form and
``many-body-sharp`` in the own form;
``+probes`` adds the embedded CP2K contact probes (two molecules pushed together,
:mod:`learning.contact_probes`) to the training rows; ``+active`` adds one round of active learning as
well (the probes pushed on to 1.45 angstrom, and CP2K labels of the last frames of a learned run that
failed; for ``many-body-l2``, of its own ``+probes`` run that failed): :data:`EXTRA_DATA`.
Units: angstrom, fs, amu, eV, K.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from agents.validation import count
from environment.integrators import VelocityVerlet
from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain
from experiments.base import LearnedLossExperiment
from experiments.observables import TOLERANCES, from_cp2k, observe
from experiments.outputs import Results
from experiments.water import MIN_FRAMES, collected_trajectory, heating_rate, run_or_stop
from learning.contact_probes import EMBEDDED, EMBEDDED_ACTIVE_LEARNING
from learning.cp2k.reader import read_trajectory
from learning.fitting import learn
from learning.labelled import concatenate, read_labelled, same_system

#: Embedded CP2K single points of the h2o-32 system that a variant may add to its training rows (the labelled
#: frames alone: :func:`learning.contact_probes.read_probes` would read the source run as well).
EXTRA_DATA = {
    "probes": lambda: read_labelled(EMBEDDED / "probes.extxyz.xz"),
    "probes-1.45": lambda: read_labelled(EMBEDDED_ACTIVE_LEARNING / "probes-1.45.extxyz.xz"),
    "failure-frames": lambda: read_labelled(EMBEDDED_ACTIVE_LEARNING / "failure-frames.extxyz.xz"),
    "l2-failure-frames": lambda: read_labelled(EMBEDDED_ACTIVE_LEARNING / "l2-failure-frames.extxyz.xz"),
}


@dataclass(frozen=True)
class Variant:
    """How a variant is learned: ``form``, ``invariants`` (as ``mld fit --invariants``), ``cutoff`` in
    angstrom (None: the many-body set's default) and the ``extra`` labelled frames (keys of
    :data:`EXTRA_DATA`) that join the training rows."""

    form: str
    invariants: str
    cutoff: float | None
    extra: tuple[str, ...] = ()


VARIANTS = {
    "own/radial": Variant("own", "paper", 4.5),
    "own/many-body-sharp": Variant("own", "many-body-sharp", None),
    "shared/radial": Variant("shared", "paper", 4.5),
    "shared/many-body-sharp": Variant("shared", "many-body-sharp", None),
    "shared/many-body-sharp+probes": Variant("shared", "many-body-sharp", None, ("probes",)),
    "shared/many-body-sharp+active": Variant("shared", "many-body-sharp", None,
                                             ("probes", "probes-1.45", "failure-frames")),
    "shared/many-body-l2": Variant("shared", "many-body-l2", None),
    "shared/many-body-l2+probes": Variant("shared", "many-body-l2", None, ("probes",)),
    "shared/many-body-l2+active": Variant("shared", "many-body-l2", None, ("probes", "l2-failure-frames")),
}
#: The observables compared with CP2K for every variant (keys of :data:`experiments.observables.OBSERVABLES`).
COMPARED = ("hoh_angle_mean_deg", "oh_bond_mean_A", "non_h2o_fraction", "bend_cm1", "stretch_cm1",
            "T_O_K", "T_H_K", "com_kinetic_share", "min_distance_A")


@dataclass
class NVTProtocol:
    """The NVT protocol of ``mld beyond`` (times in fs, temperatures in K).

    ``stride``: fit on every stride-th frame of the run (splits of Sec. 5.1 within those);
    ``steps``: NVT steps of ``dt``, collected every ``every`` steps; ``temperature_K=None``: the CP2K
    run's mean temperature after ``equilibration`` (a fraction of the run); ``start_frame=None``: its
    first equilibrated frame.  Velocity Verlet, Nosé–Hoover chain of ``chain_length`` with ``tdamp_fs``,
    no force clipping; a run stops (a result, not a crash) above ``max_temperature_factor`` x target.
    """

    data: str | None = None
    stride: int = 4
    steps: int = 2000
    every: int = 2
    equilibration: float = 0.2
    start_frame: int | None = None
    dt: float = 0.5
    temperature_K: float | None = None
    tdamp_fs: float = 25.0
    chain_length: int = 1
    zero_net_force: bool = True
    max_temperature_factor: float = 10.0
    seed: int = 42
    progress: bool = False


@dataclass
class FormComparisonConfig(NVTProtocol):
    """:class:`NVTProtocol` for every variant, and ``nve_steps`` of NVE from the same frame for the drift."""

    variants: tuple[str, ...] | None = None
    nve_steps: int = 400


def target_temperature(trajectory, cfg: NVTProtocol) -> float:
    """The thermostat's target (K): ``cfg.temperature_K``, or the CP2K run's mean after equilibration."""
    return cfg.temperature_K or float(np.mean(trajectory.temperature[int(round(cfg.equilibration * len(trajectory))):]))


def protocol_model(cfg: NVTProtocol, loss, symbols, positions, velocities, box: float, thermostat,
                   every: int = 1) -> MolecularModel:
    """A model run by the protocol's integrator (velocity Verlet with ``thermostat``, None: NVE), collecting
    positions and velocities every ``every`` steps."""
    return MolecularModel(symbols, positions, box, loss, velocities=velocities,
                          integrator=VelocityVerlet(cfg.dt, thermostat, None), seed=cfg.seed, collect_every=every,
                          zero_net_force=cfg.zero_net_force, collect_positions=True, collect_velocities=True)


def loss_file_name(variant: str) -> str:
    """``losses_<form>_<invariants>.json`` of a variant."""
    return "losses_" + variant.replace("/", "_") + ".json"


def fit_variant(trajectory, variant: str, stride: int = 4, cache: dict | None = None, progress: bool = False):
    """The quadratic loss of ``variant`` (a key of :data:`VARIANTS`) learned from every ``stride``-th frame
    (and the variant's embedded extra frames).  ``cache``: a dict, one per ``trajectory`` and ``stride``, in
    which variants that differ only in their extra frames share the equations of the run's frames
    (:func:`learning.fitting.learn`); the losses are the same bits as without it."""
    if variant not in VARIANTS:
        raise ValueError(f"--variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    how = VARIANTS[variant]
    extra = embedded_extra(trajectory, how.extra) if how.extra else None
    return learn(trajectory.frames(slice(None, None, count("--stride", stride))), how.form, how.invariants,
                 "quadratic", cutoff=how.cutoff, extra=extra, progress=progress, cache=cache)


def embedded_extra(trajectory, names=("probes",)):
    """The embedded labelled frames ``names`` (keys of :data:`EXTRA_DATA`) as one set, checked to be single
    points of ``trajectory``'s system (same atoms, same box)."""
    sets = [EXTRA_DATA[name]() for name in names]
    for name, frames in zip(names, sets):
        if not same_system(frames, trajectory):
            raise ValueError(f"the embedded {name} ({frames.source}) are single points of the embedded h2o-32 run; "
                             f"{trajectory.source} is another system: label its own with `mld cp2k probes` or "
                             "`mld cp2k label` and fit with `mld fit --extra`")
    return sets[0] if len(sets) == 1 else concatenate(sets, "+".join(names))


def default_variants(trajectory) -> tuple[str, ...]:
    """Every variant of :data:`VARIANTS` that applies to ``trajectory``: those with embedded extra frames
    only for the system they were computed for (the embedded h2o-32 run, or more steps of it)."""
    extra_applies = same_system(EXTRA_DATA["probes"](), trajectory)
    return tuple(name for name, how in VARIANTS.items() if extra_applies or not how.extra)


class FormComparisonExperiment(LearnedLossExperiment):
    """Own vs shared and radial vs many-body losses: fit, NVT and NVE runs, water observables vs CP2K.

    ``losses`` (optional) maps variant -> an already learned loss, which is then not refitted.
    After :meth:`run`, ``self.losses`` holds every variant's loss (:meth:`save` writes them).
    """

    Config = FormComparisonConfig
    name = "beyond"

    def run(self) -> Results:
        cfg = self.config
        if cfg.variants is not None:
            unknown = [v for v in cfg.variants if v not in VARIANTS]
            if unknown or not cfg.variants:
                raise ValueError(f"--variants must name some of {', '.join(VARIANTS)}, got {', '.join(cfg.variants)}")
        if cfg.stride < 1 or cfg.every < 1 or cfg.steps < 1:
            raise ValueError("stride, every and steps must be positive")
        if self.trajectory is None:
            self.trajectory = read_trajectory(cfg.data)
        traj = self.trajectory
        chosen = cfg.variants if cfg.variants is not None else default_variants(traj)
        self.losses = dict(self.losses or {})
        equations = {}  # the run's equations, shared by the variants that differ only in extra frames
        start = self.start_frame()
        target = target_temperature(traj, cfg)
        reference = from_cp2k(traj, start)
        rows, variants, cp2k = [], {}, None
        for variant in chosen:
            summary, comparison = self._variant(variant, start, target, reference, equations)
            variants[variant] = summary
            if comparison is not None:
                cp2k = cp2k or {r["observable"]: r["reference"] for r in comparison}
            rows.append(self._row(variant, summary))
        table = pd.DataFrame(rows)
        summary = {"start_frame": int(start), "target_temperature_K": target, "fit_frames": len(range(0, len(traj), cfg.stride)),
                   "thermostat": f"Nose-Hoover chain, length {cfg.chain_length}, tdamp {cfg.tdamp_fs} fs",
                   "cp2k": cp2k, "tolerances": {k: TOLERANCES.get(k) for k in COMPARED}, "variants": variants}
        return Results(summary, {"variants": table}, {"variants": self._figure(table, cp2k)})

    def _model(self, loss, frame: int, thermostat, every: int = 1) -> MolecularModel:
        traj = self.trajectory
        return protocol_model(self.config, loss, traj.symbols, traj.positions[frame], traj.velocities[frame], traj.box,
                              thermostat, every)

    def _variant(self, variant: str, start: int, target: float, reference, equations: dict):
        """Fit (unless given; ``equations``: the cache of :func:`fit_variant`), NVE drift, NVT run and its
        observables against CP2K for one variant."""
        cfg = self.config
        how = VARIANTS[variant]
        fit_s = None
        if variant not in self.losses:
            began = time.perf_counter()
            self.losses[variant] = fit_variant(self.trajectory, variant, cfg.stride, equations)
            fit_s = time.perf_counter() - began
        loss = self.losses[variant]
        limit = cfg.max_temperature_factor * target

        nve = self._model(loss, start, None)
        nve_stop = run_or_stop(nve, cfg.nve_steps, limit, cfg.progress, f"{variant} NVE")
        nve_table = nve.datacollector.get_model_vars_dataframe()
        drift = heating_rate(nve_table, shared=how.form == "shared") if len(nve_table) > 2 else {}

        nvt = self._model(loss, start, NoseHooverChain(target, cfg.tdamp_fs, cfg.chain_length), cfg.every)
        began = time.perf_counter()
        nvt_stop = run_or_stop(nvt, cfg.steps, limit, cfg.progress, f"{variant} NVT")
        seconds_per_step = (time.perf_counter() - began) / max(nvt.steps, 1)
        learned = collected_trajectory(nvt, f"{variant} NVT run")
        comparison = None
        if learned.n_frames >= MIN_FRAMES:
            comparison = observe(learned, reference).summary["comparison"]
        summary = {
            "form": how.form, "invariants": how.invariants, "cutoff_A": how.cutoff, "extra": list(how.extra), "fit_s": fit_s,
            "test_rmse": loss.provenance.get("metrics"),
            "nve": {**drift, "steps": int(nve.steps), "blew_up": nve_stop},
            "nvt_steps": int(nvt.steps), "nvt_s_per_step": seconds_per_step, "blew_up": nvt_stop,
            "observables": None if comparison is None else
            {r["observable"]: {"learned": r["learned"], "status": r["status"]} for r in comparison if r["observable"] in COMPARED},
        }
        return summary, comparison

    @staticmethod
    def _row(variant: str, s: dict) -> dict:
        """One CSV row: the variant's numbers, flat."""
        rmse = s["test_rmse"] or {}
        row = {"variant": variant, "rmse_O": rmse.get("O"), "rmse_H": rmse.get("H"), "fit_s": s["fit_s"],
               "nvt_steps": s["nvt_steps"], "s_per_step": s["nvt_s_per_step"],
               "nve_K_per_ps": s["nve"].get("temperature_K_per_ps"), "nve_eV_per_ps": s["nve"].get("energy_eV_per_ps"),
               "blew_up": s["blew_up"] or ""}
        for key in COMPARED:
            row[key] = (s["observables"] or {}).get(key, {}).get("learned")
        passed = [o["status"] for o in (s["observables"] or {}).values()]
        row["passed"] = f"{passed.count('pass')}/{len(passed)}"
        return row

    @staticmethod
    def _figure(table: pd.DataFrame, cp2k: dict | None):
        """H-O-H angle, non-H2O fraction, |T_O - T_H| and |NVE heating| (log scale) per variant; CP2K dashed;
        a variant whose NVT run stopped early is drawn as a red cross (its values: the frames before)."""
        figure, axes = plt.subplots(1, 4, figsize=(14, 3.5))
        x = np.arange(len(table))
        stopped = table["blew_up"].astype(bool).to_numpy()
        cp2k = cp2k or {}
        gap = (table["T_O_K"] - table["T_H_K"]).abs()
        panels = (("H-O-H angle (°)", table["hoh_angle_mean_deg"], cp2k.get("hoh_angle_mean_deg")),
                  ("molecule-frames not H2O", table["non_h2o_fraction"], cp2k.get("non_h2o_fraction")),
                  ("|T_O - T_H| (K)", gap, None if cp2k.get("T_O_K") is None else abs(cp2k["T_O_K"] - cp2k["T_H_K"])),
                  ("|NVE heating| (K/ps)", table["nve_K_per_ps"].abs(), None))
        for axis, (label, values, reference) in zip(axes, panels):
            values = values.astype(float).to_numpy()
            axis.plot(x[~stopped], values[~stopped], "o", color="tab:green", ms=8)
            axis.plot(x[stopped], values[stopped], "x", color="tab:red", ms=9, mew=2)
            if reference is not None:
                axis.axhline(reference, ls="--", color="tab:blue", label="CP2K")
                axis.legend(fontsize=8)
            axis.set_xticks(x, table["variant"], rotation=30, ha="right", fontsize=8)
            axis.set_ylabel(label)
        axes[-1].set_yscale("log")
        figure.tight_layout()
        return figure

    def save(self, out_dir) -> list[Path]:
        """Results (summary.json, variants.csv, variants.png) and every variant's ``losses_<form>_<invariants>.json``."""
        written = super().save(out_dir)
        return written + [loss.save(Path(out_dir) / loss_file_name(variant)) for variant, loss in self.losses.items()]
