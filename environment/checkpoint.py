"""Checkpoints of a :class:`environment.model.MolecularModel`: stop a run, resume it bit-for-bit.

One file, a NumPy ``.npz`` archive (``numpy.load(path)`` reads it; nothing is pickled), written to a
temporary name beside it and renamed over the old one, so a kill at any instant leaves either the
previous or the new checkpoint, never half of one.  Format ``mld-checkpoint/1``:

``meta``
    a 0-d unicode array holding JSON: ``format``; ``symbols``; ``box`` (angstrom); ``masses``
    (amu per species); ``steps`` and ``time_fs``; ``integrator`` (its settings: mode, dt, tau or
    thermostat and force cap); ``forces`` (engine, cutoff ``{r_c, r_on}`` or null, skin, threads);
    ``allow_other_box``; ``collect`` (every, agents, positions); ``rng`` (``model.rng.bit_generator.state``)
    and ``random`` (``model.random.getstate()``); ``loss`` (the agent-loss JSON of
    :meth:`agents.loss.AgentLosses.to_dict`, provenance included); ``table`` (the DataCollector's
    model columns, in order; non-numeric ones inline under ``table_json``); ``agent_records`` (when
    agents are collected); ``extra`` (the caller's settings, e.g. ``mld simulate``'s).
``positions``, ``velocities``, ``forces``, ``loss_forces`` (N, 3) and ``loss_values`` (N,)
    float64, in angstrom, angstrom/fs, eV/angstrom and eV: the model's arrays (``forces`` is the
    averaged force F of eq. 3.1 in the learning dynamics).
``thermostat_eta``, ``thermostat_xi``
    the Nose-Hoover chain's state (Newtonian dynamics with a thermostat).
``neighbor_reference``
    (N, 3) the positions at which the neighbour list was last built (cutoff mode).  The list is rebuilt
    there on loading: its pair order sets the order of every force sum, and it keeps the same rebuild
    schedule, so the forces stay bit-identical.
``table/NAME``
    each numeric DataCollector column: the rows collected so far.

A loaded model continues exactly as the saved one would have: same arrays, thermostat, step count,
time, random-number states, neighbour list and collected rows.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from agents.cutoff import SmoothCutoff
from agents.loss_file import losses_from_dict
from environment.integrators import integrator_from_settings

FORMAT = "mld-checkpoint/1"
ARRAYS = ("positions", "velocities", "forces", "loss_forces", "loss_values")


def _plain(value):
    """json.dumps ``default``: numpy scalars and arrays as Python numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} into a checkpoint")


def _table(datacollector) -> tuple[list[str], dict, dict]:
    """Column names, numeric columns as arrays, and the other columns as JSON-ready lists."""
    names, numeric, other = list(datacollector.model_vars), {}, {}
    for name in names:
        values = datacollector.model_vars[name]
        try:
            array = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            array = None
        if array is not None and len(array) == len(values):
            numeric[name] = array
        else:
            other[name] = json.loads(json.dumps(values, default=_plain))
    return names, numeric, other


def save_checkpoint(model, path, extra: dict | None = None) -> Path:
    """Write ``model``'s whole state to ``path`` (atomically); see the module docstring."""
    if model._pending is not None:
        raise RuntimeError("cannot checkpoint in the middle of an agent-by-agent step: finish it first")
    path = Path(path)
    evaluator = model.evaluator
    cutoff = evaluator.cutoff
    names, numeric, other = _table(model.datacollector)
    version, internal, gauss = model.random.getstate()
    meta = {
        "format": FORMAT,
        "symbols": list(model.symbols), "box": model.box,
        "masses": {s: sp.mass for s, sp in model.species.items()},
        "steps": int(model.steps), "time_fs": float(model.time_fs),
        "integrator": model.integrator.settings(),
        "forces": {"engine": evaluator.engine, "skin": evaluator.skin, "threads": evaluator.threads,
                   "cutoff": None if cutoff is None else {"r_c": cutoff.r_c, "r_on": cutoff.r_on}},
        "allow_other_box": model.allow_other_box,
        "zero_net_force": model.zero_net_force,
        "collect": {"every": model.collect_every, "agents": model.collect_agents,
                    "positions": model.collect_positions, "velocities": model.collect_velocities},
        "rng": model.rng.bit_generator.state,
        "random": [version, list(internal), gauss],
        "loss": model.losses.to_dict(),
        "table": names, "table_json": other,
        "extra": extra or {},
    }
    if model.collect_agents:
        meta["agent_records"] = {str(step): records for step, records in model.datacollector._agent_records.items()}
    arrays = {name: np.asarray(getattr(model, name)) for name in ARRAYS}
    arrays.update(model.integrator.state())
    arrays.update(evaluator.state())
    arrays.update({f"table/{name}": values for name, values in numeric.items()})
    partial = path.with_name(f".{path.name}.partial")
    with partial.open("wb") as handle:
        np.savez(handle, meta=np.array(json.dumps(meta, default=_plain)), **arrays)
    os.replace(partial, path)
    return path


def read_checkpoint(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The JSON header and the arrays of a checkpoint; ``ValueError`` naming ``path`` if it is not one."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"][()]))
            arrays = {name: data[name] for name in data.files if name != "meta"}
    except FileNotFoundError:
        raise ValueError(f"checkpoint {path} does not exist") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint {path}: not a readable mld checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: format {meta.get('format') if isinstance(meta, dict) else None!r}, "
                         f"expected {FORMAT!r}")
    missing = [name for name in ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"checkpoint {path}: the arrays {missing} are missing")
    return meta, arrays


def load_checkpoint(cls, path, threads: int | None = None):
    """A model of class ``cls`` in the state saved at ``path``, ready to continue; the caller's
    ``extra`` settings are in its ``checkpoint_extra``."""
    meta, arrays = read_checkpoint(path)
    try:
        losses = losses_from_dict(meta["loss"], f"checkpoint {path} (its loss)")
        forces = meta["forces"]
        cutoff = None if forces["cutoff"] is None else SmoothCutoff(**forces["cutoff"])
        model = cls(meta["symbols"], arrays["positions"], meta["box"], losses, velocities=arrays["velocities"],
                    masses=meta["masses"], integrator=integrator_from_settings(meta["integrator"]),
                    collect_every=meta["collect"]["every"], collect_agents=meta["collect"]["agents"],
                    collect_positions=meta["collect"]["positions"],
                    collect_velocities=meta["collect"].get("velocities", False), engine=forces["engine"],
                    cutoff=cutoff, skin=forces["skin"], threads=threads, allow_other_box=meta["allow_other_box"],
                    zero_net_force=meta.get("zero_net_force", False))
        model.space.agent_positions[:] = arrays["positions"]
        for name in ARRAYS[1:]:
            getattr(model, name)[:] = arrays[name]
        model.snapshot = model.positions.copy()
        model.time_fs = float(meta["time_fs"])
        model.steps = int(meta["steps"])
        model.integrator.restore(arrays)
        model.evaluator.restore(arrays)
        model.rng.bit_generator.state = meta["rng"]
        version, internal, gauss = meta["random"]
        model.random.setstate((version, tuple(internal), gauss))
        columns = {}
        for name in meta["table"]:
            if name in meta["table_json"]:
                columns[name] = list(meta["table_json"][name])
            else:
                values = arrays[f"table/{name}"]
                columns[name] = values.tolist() if values.ndim == 1 else [row.copy() for row in values]
        model.datacollector.model_vars = columns
        if "agent_records" in meta:
            model.datacollector._agent_records = {
                int(step): [tuple(tuple(v) if isinstance(v, list) else v for v in record) for record in records]
                for step, records in meta["agent_records"].items()}
    except (KeyError, TypeError, IndexError) as err:
        raise ValueError(f"checkpoint {path}: malformed ({type(err).__name__}: {err})") from None
    model.checkpoint_extra = meta.get("extra", {})
    return model
