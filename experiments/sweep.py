"""Ensembles and parameter sweeps on Dask: every member of a grid of parameters is one Dask task.

:func:`run_sweep` is shaped like Mesa's ``batch_run``: a dict of parameters (a value, or a list of
values to sweep) in, one record (a flat dict) per member out.  It runs on a local
``distributed.LocalCluster`` (one single-threaded worker process per core, on 127.0.0.1, no
dashboard) or on any running Dask cluster given by its scheduler address, so the same sweep runs on
a laptop or on a SLURM cluster (``dask_jobqueue.SLURMCluster``).

On disk, in ``out``::

    members/<member id>.json   each member's record, written (atomically) as soon as it finishes
    sweep.csv, sweep.parquet   all records, one row each (scalar fields)
    sweep.png                  metrics against the first swept parameter, mean +- std over seeds

A member whose runner raises (a bad parameter, a lost worker) is recorded with status ``failed``,
its parameters, the exception's type and message; the others are not lost.  Running the same sweep
into the same ``out`` again skips every member with a record whose status is not ``failed`` (an
interrupted sweep resumes; failed members are retried).

The default runner, :func:`water_member`, is a short learned-loss water simulation.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import time
import traceback
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from distributed import Client, LocalCluster, as_completed
from tqdm import tqdm

from agents.geometry import minimum_image
from agents.species import species as make_species
from environment.builders import maxwell_boltzmann
from environment.integrators import VelocityVerlet, make_integrator
from environment.model import MolecularModel
from experiments.analysis import angle_statistics
from experiments.guarded_run import SimulationBlewUp, run_guarded
from experiments.outputs import plain, write_json

#: Fields every record has besides the parameters and the runner's results.
RECORD_FIELDS = ("member", "status", "error")
#: Record fields kept in the members' JSON only, not in the gathered table.
JSON_ONLY = ("traceback",)


# -- the grid ------------------------------------------------------------------------------
def expand(parameters) -> list[dict]:
    """The members of a sweep: the Cartesian product of the values of each parameter.

    Args:
        parameters: ``{name: value or list of values}`` (a list, tuple, range or array is swept; any
            other value is fixed), or a list of such dicts, whose members are joined (duplicates once).

    Returns:
        One ``{name: value}`` per member, in grid order (the last parameter varies fastest).
    """
    grids = [parameters] if isinstance(parameters, dict) else list(parameters)
    members = {}
    for grid in grids:
        if not isinstance(grid, dict):
            raise ValueError(f"parameters must be a dict of name -> values (or a list of them), got {grid!r}")
        values = [list(v) if isinstance(v, (list, tuple, range, np.ndarray)) else [v] for v in grid.values()]
        empty = [name for name, v in zip(grid, values) if not v]
        if empty:
            raise ValueError(f"parameters {empty}: no values to sweep")
        for combination in itertools.product(*values):
            member = plain(dict(zip(grid, combination)))
            members.setdefault(member_id(member), member)
    return list(members.values())


def member_id(parameters: dict) -> str:
    """A stable file-safe name of a member: its parameters, shortened, and a hash of all of them."""
    canonical = json.dumps(plain(parameters), sort_keys=True)
    digest = hashlib.sha1(canonical.encode()).hexdigest()[:10]
    readable = "_".join(f"{k}={v}" for k, v in sorted(parameters.items()))
    return f"{re.sub(r'[^A-Za-z0-9._=+-]+', '-', readable)[:80]}-{digest}"


# -- running -------------------------------------------------------------------------------
@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None):
    """A Dask client: of the running cluster at ``scheduler`` (an address such as ``tcp://host:8786``),
    or of a new local cluster of ``n_workers`` single-threaded processes (default: one per core)
    listening on 127.0.0.1 only, without a dashboard, closed on exit."""
    if scheduler is not None:
        if n_workers is not None:
            raise ValueError("--workers: only for the local cluster; a running cluster (--scheduler) has its own")
        with Client(scheduler) as client:
            yield client
        return
    n_workers = os.cpu_count() if n_workers is None else int(n_workers)
    if n_workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {n_workers}")
    # no dashboard; the scheduler's small HTTP server (health, metrics) on a free loopback port
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def run_member(runner, parameters: dict, shared: dict) -> dict:
    """One member's record: ``runner(**parameters, **shared)``'s results, or the failure it raised."""
    started = time.perf_counter()
    try:
        summary = dict(runner(**parameters, **shared))
    except Exception as err:  # the sweep reports any member's failure and goes on
        return failure(parameters, err)
    status = summary.pop("status", "ok")
    return {"member": member_id(parameters), "status": status, "error": None, **parameters,
            **summary, "wall_time_s": time.perf_counter() - started}


def failure(parameters: dict, err: BaseException) -> dict:
    """The record of a member that raised ``err`` (its traceback's last lines kept in the member's JSON)."""
    return {"member": member_id(parameters), "status": "failed", "error": f"{type(err).__name__}: {err}",
            **parameters, "traceback": "".join(traceback.format_exception(err)[-3:])}


def run_sweep(parameters, runner=None, out="mld-sweep", shared: dict | None = None, scheduler: str | None = None,
              n_workers: int | None = None, progress: bool = True, metrics=None) -> list[dict]:
    """Run every member of a parameter grid as a Dask task; resume where a previous run stopped.

    Args:
        parameters: the grid (see :func:`expand`), e.g. ``{"tau": [10, 100], "seed": [1, 2], "steps": 200}``.
        runner: ``runner(**member_parameters, **shared) -> dict`` of results (JSON-able; a ``status``
            entry other than ``'ok'``, e.g. ``'blew_up'``, is reported as such).  It must be importable
            by the workers (a module-level function).  Default: :func:`water_member`.
        out: output folder (created).
        shared: objects every member needs (the losses, the start), sent to every worker once.
        scheduler: address of a running Dask scheduler; None starts a local cluster.
        n_workers: local cluster size (default: one worker per core).
        progress: show a progress bar (members done, of all).
        metrics: result fields drawn in ``sweep.png`` (default: the runner's ``metrics`` attribute if it
            has one, else its first four numeric results).

    Returns:
        One record per member, in grid order: ``member`` (its id), ``status`` (``'ok'``, ``'failed'``
        or the runner's), ``error`` (``'Type: message'`` of a failure), the parameters, then the
        runner's results.
    """
    runner = water_member if runner is None else runner
    metrics = getattr(runner, "metrics", None) if metrics is None else metrics
    members = expand(parameters)
    out = Path(out)
    folder = out / "members"
    folder.mkdir(parents=True, exist_ok=True)
    records = {member_id(p): _finished(folder / f"{member_id(p)}.json") for p in members}
    todo = [p for p in members if records[member_id(p)] is None]
    if todo:
        with dask_client(scheduler, n_workers) as client:
            sent = client.scatter(shared or {}, broadcast=True)
            futures = {client.submit(run_member, runner, p, sent, key=f"mld-member-{member_id(p)}", pure=False): p
                       for p in todo}
            with tqdm(total=len(members), initial=len(members) - len(todo), desc="sweep", unit="member",
                      disable=not progress) as bar:
                for future in as_completed(futures):
                    p = futures[future]
                    record = future.result() if future.status == "finished" else failure(p, future.exception())
                    write_json(folder / f"{member_id(p)}.json", record)
                    records[member_id(p)] = plain(record)  # as a resumed sweep reads it back (NaN -> None)
                    bar.update()
    ordered = [records[member_id(p)] for p in members]
    gather(ordered, out, metrics, parameter_names=list(dict.fromkeys(k for p in members for k in p)))
    return ordered


def _finished(path: Path) -> dict | None:
    """The record at ``path`` unless it is missing, unreadable or a failure (those members run again)."""
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return None if record.get("status") == "failed" else record


# -- the gathered table and figure -------------------------------------------------------------
def gather(records: list[dict], out, metrics=None, parameter_names=()) -> pd.DataFrame:
    """Write ``sweep.csv``, ``sweep.parquet`` and ``sweep.png`` into ``out``; return the table.

    The table has one row per record and its scalar fields (lists, dicts and failures' tracebacks stay
    in the members' JSON).
    """
    table = pd.DataFrame([{k: v for k, v in r.items() if k not in JSON_ONLY and (v is None or np.isscalar(v))}
                          for r in records])
    out = Path(out)
    table.to_csv(out / "sweep.csv", index=False)
    table.to_parquet(out / "sweep.parquet", index=False)
    figure = plot_sweep(table, list(parameter_names), metrics)
    figure.savefig(out / "sweep.png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    return table


def plot_sweep(table: pd.DataFrame, parameter_names: list[str], metrics=None) -> plt.Figure:
    """One panel per metric against the first swept numeric parameter (not ``seed``), one line per
    combination of the other swept parameters, mean +- std over seeds; only members with status ``ok``."""
    ok = table[table["status"] == "ok"]
    swept = [p for p in parameter_names if p in table and table[p].nunique() > 1 and p != "seed"]
    numeric = [p for p in swept if pd.api.types.is_numeric_dtype(table[p])]
    x = numeric[0] if numeric else None
    hue = [p for p in swept if p != x]
    if metrics is None:
        skip = set(parameter_names) | set(RECORD_FIELDS) | {"wall_time_s", "completed_steps"}
        metrics = [c for c in table if c not in skip and pd.api.types.is_numeric_dtype(table[c])][:4]
    metrics = [m for m in metrics if m in ok and ok[m].notna().any()]
    figure, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.6 * max(len(metrics), 1), 3.6), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        groups = ok.groupby(hue, dropna=False) if hue else [((), ok)]
        for key, group in groups:
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{p}={v}" for p, v in zip(hue, key)) or None
            if x is None:
                axis.errorbar(np.arange(len(group)), group[metric], fmt="o", label=label)
                continue
            stats = group.groupby(x)[metric].agg(["mean", "std"]).reset_index()
            axis.errorbar(stats[x], stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3, label=label)
        axis.set_xlabel(x or "member")
        if x is not None and _spans_decades(ok[x]):
            axis.set_xscale("log")
        if _spans_decades(ok[metric]):
            axis.set_yscale("log")
        axis.set_ylabel(metric)
        if hue:
            axis.legend(fontsize=7)
    others = Counter(table.loc[table["status"] != "ok", "status"])
    left_out = ", ".join(f"{n} {status}" for status, n in others.items())
    figure.suptitle(f"{len(table)} members" + (f" ({left_out}: not shown)" if left_out else "")
                    + (", mean ± std over seeds" if "seed" in parameter_names else ""), fontsize=10)
    figure.tight_layout()
    return figure


def _spans_decades(values: pd.Series) -> bool:
    """Whether positive values span a factor of 10 or more (drawn on a log scale)."""
    values = pd.to_numeric(values, errors="coerce").dropna()
    return bool(len(values)) and values.min() > 0 and values.max() >= 10 * values.min()


# -- the default member: a short learned-loss water run ----------------------------------------------
def water_member(losses, start: dict, mode: str = "learning", tau: float | None = None, temperature_K: float = 300.0,
                 seed: int = 1, steps: int = 200, dt: float = 0.5, every: int = 10, thermostat: str | None = None,
                 max_force: float | None = None, engine: str = "numba") -> dict:
    """A short learned-loss simulation from a given configuration, with fresh velocities.

    Args:
        losses: the :class:`agents.loss.AgentLosses` (shared by all members).
        start: ``{"symbols", "positions" (N, 3) angstrom, "box" angstrom}`` (shared by all members).
        mode: ``'learning'`` (finite tau) or ``'newtonian'`` (see :func:`environment.integrators.make_integrator`).
        tau: learning time constant (fs), learning mode only.
        temperature_K: Maxwell-Boltzmann temperature of the start velocities, drawn with ``seed``
            (and the thermostat's target in newtonian mode).
        seed: seeds the velocities and the model.
        steps, dt, every: number of steps, time step (fs), and every how many steps observables are kept.
        thermostat, max_force: newtonian mode only (defaults: Nose-Hoover, 10 eV/angstrom).
        engine: force engine; every member uses one numba thread (one worker per core).

    Returns:
        ``mean_temperature_K``, ``final_temperature_K``, ``heating_rate_K_per_ps`` (slope of the
        temperature), ``conserved_drift_eV_per_ps`` (slope of the model's ``conserved`` quantity, a
        true energy only for losses with a total energy), ``hoh_angle_mean_deg`` and
        ``hoh_angle_std_deg`` (over the kept frames), ``deviation_from_newton_A`` (learning mode: RMS
        distance at the end from velocity Verlet without thermostat or clipping from the same start;
        NaN in newtonian mode), ``completed_steps``; ``status`` ``'blew_up'`` and ``blew_up`` (the
        reason) when the run blew up.
    """
    symbols, box = list(start["symbols"]), float(start["box"])
    masses = np.array([make_species(s).mass for s in symbols])
    velocities = maxwell_boltzmann(masses, temperature_K, np.random.default_rng(seed))
    integrator = make_integrator(mode, dt, temperature_K, tau=tau, thermostat=thermostat, max_force=max_force)

    def build(dynamics):
        return MolecularModel(symbols, start["positions"], box, losses, velocities=velocities, integrator=dynamics,
                              seed=seed, collect_every=every, collect_positions=True, engine=engine, threads=1)

    run = build(integrator)
    summary = {"completed_steps": steps}
    try:
        run_guarded(run, steps, 10 * temperature_K)
    except SimulationBlewUp as blow_up:
        summary.update(status="blew_up", blew_up=str(blow_up), completed_steps=blow_up.step - 1)
    table = run.datacollector.get_model_vars_dataframe()
    time_ps = table["time_fs"].to_numpy() / 1000.0
    positions = np.stack(table["positions"].to_list())
    angles_mean, angles_std = angle_statistics(symbols, positions, box)
    summary.update(
        mean_temperature_K=float(table["temperature"].mean()), final_temperature_K=float(run.temperature),
        heating_rate_K_per_ps=_slope(time_ps, table["temperature"].to_numpy()),
        conserved_drift_eV_per_ps=_slope(time_ps, table["conserved"].to_numpy()),
        hoh_angle_mean_deg=float(np.nanmean(angles_mean)), hoh_angle_std_deg=float(np.nanmean(angles_std)),
        deviation_from_newton_A=np.nan,
    )
    if mode == "learning" and "blew_up" not in summary:
        newton = build(VelocityVerlet(dt))
        run_guarded(newton, steps)
        gap = minimum_image(run.positions - newton.positions, box)
        summary["deviation_from_newton_A"] = float(np.sqrt(np.mean(np.sum(gap**2, axis=-1))))
    return summary


#: What the sweep's figure draws for water members.
water_member.metrics = ("deviation_from_newton_A", "hoh_angle_mean_deg", "heating_rate_K_per_ps")


def _slope(x, y) -> float:
    """Least-squares slope of y against x (NaN with fewer than two points)."""
    return float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else np.nan
