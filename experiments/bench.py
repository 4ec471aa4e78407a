"""``mld bench``: seconds per 1000 steps, atom-steps per second and peak memory of learned-loss runs.

Setup as in the paper's timing (end of Sec. 5.3): water boxes, 7 weight functions per species
(the paper's selected sets), a quadratic loss, Newtonian NVT (velocity Verlet + Nosé–Hoover),
in two modes: ``minimum-image`` (all pairs, the paper's sums; O(N^2), run up to 8192 waters) and
``cutoff`` (smooth cutoff r_c with a neighbour list; needs a box of at least 2 r_c).  The loss
coefficients are random but small: only the cost is measured.  Whole model steps are timed
(forces, integrator, thermostat, Mesa bookkeeping), after a warm-up step.
"""

from __future__ import annotations

import os
import platform
import resource
import sys

import numpy as np

from environment.builders import box_for_density, water_box, water_lattice
from environment.integrators import VelocityVerlet
from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain
from experiments.timing import seconds_per_step
from agents.invariants import InvariantSet
from agents.loss import AgentLosses, SpeciesLoss
from agents.weights import PAPER_SELECTED, weight_functions
from agents.descriptor_loss import DescriptorLoss
from agents.pair_wall import PairWall
from learning.descriptor_fit import local_quadratic
from learning.fitting import DEFAULT_CUTOFF, descriptor_set

MODES = ("minimum-image", "cutoff")
#: Largest system timed with all-pairs sums (its cost grows as N^2).
MAX_MINIMUM_IMAGE_WATERS = 8192


def benchmark_losses(seed: int = 0, scale: float = 1e-4) -> AgentLosses:
    """Quadratic losses on the paper's invariant sets with small random coefficients (timing only)."""
    rng = np.random.default_rng(seed)
    losses = {}
    for symbol, names in PAPER_SELECTED.items():
        invariants = InvariantSet(weight_functions(names), ("O", "H"))
        S, M = invariants.shape
        B = rng.normal(size=(S * M, S * M)) * scale
        losses[symbol] = SpeciesLoss(symbol, invariants, rng.normal(size=(S, M)) * scale, (B + B.T).reshape(S, M, S, M))
    return AgentLosses(losses, {"note": "random coefficients for benchmarking"})


def benchmark_descriptor_loss(form: str = "shared", seed: int = 0, scale: float = 1e-4) -> DescriptorLoss:
    """The many-body preset (``mld fit --invariants many-body``: cut radial + angular invariants, r_c 4.5 A,
    angular 3.5 A) as a quadratic loss of ``form`` with small random coefficients and the repulsive prior
    of a real fit, which keeps nuclei apart (timing only)."""
    rng = np.random.default_rng(seed)
    descriptors = descriptor_set("many-body", ("O", "H"), DEFAULT_CUTOFF)
    P, Q = len(descriptors), local_quadratic(descriptors)
    A, B = {}, {}
    for symbol in ("O", "H"):
        A[symbol] = rng.normal(size=P) * scale
        b = rng.normal(size=(len(Q), len(Q))) * scale
        B[symbol] = np.zeros((P, P))
        B[symbol][np.ix_(Q, Q)] = b + b.T
    wall = PairWall({"OO": 1.9, "OH": 0.7, "HH": 1.0}, rc=DEFAULT_CUTOFF)  # the prior of a real fit
    return DescriptorLoss(descriptors, form, A, B, wall, {"note": "random coefficients for benchmarking"})


def bench_size(n_waters: int, steps: int, mode: str = "minimum-image", cutoff: float = 6.0,
               engine: str = "numba", seed: int = 0, threads: int | None = None, invariants: str = "paper",
               form: str = "own") -> dict:
    """Time up to ``steps`` fast-path steps of ``n_waters`` waters (fewer for very large systems).

    ``invariants='paper'``: the paper's loss (own form) in ``mode``; ``'many-body'``: the many-body
    preset in ``form``, its own cutoffs (``mode`` and ``cutoff`` do not apply)."""
    build = water_box if n_waters <= 256 else water_lattice
    symbols, positions, velocities, box = build(n_waters, temperature_K=300.0, seed=seed)
    atoms = len(symbols)
    steps = max(3, min(steps, int(2e7 / (atoms * (atoms if mode == "minimum-image" else 150)))))
    if invariants == "many-body":
        losses, model_cutoff, mode = benchmark_descriptor_loss(form, seed), None, f"many-body, {form} form"
    else:
        losses, model_cutoff = benchmark_losses(seed), (cutoff if mode == "cutoff" else None)
    model = MolecularModel(symbols, positions, box, losses, velocities=velocities, seed=seed,
                           integrator=VelocityVerlet(0.5, NoseHooverChain(300.0, 100.0, chain_length=1)),
                           engine=engine, cutoff=model_cutoff, collect_every=10**9, threads=threads)
    seconds = steps * seconds_per_step(model, steps)
    return {
        "waters": n_waters, "atoms": atoms, "mode": mode, "engine": engine, "threads": model.evaluator.threads,
        "box_A": round(box, 3),
        "steps": steps, "seconds_per_1000_steps": 1000.0 * seconds / steps,
        "atom_steps_per_second": atoms * steps / seconds,
        "ns_per_atom_step": 1e9 * seconds / (atoms * steps),
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _threading_layer() -> str:
    import numba

    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return numba.config.THREADING_LAYER


def machine() -> dict:
    import numba

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__,
            "numba": numba.__version__, "numba_max_threads": numba.config.NUMBA_NUM_THREADS,
            "threading_layer": _threading_layer(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_average": os.getloadavg()}


def run_benchmark(sizes, modes, steps: int = 1000, cutoff: float = 6.0, engine: str = "numba",
                  threads: int | None = None, invariants: str = "paper", form: str = "own") -> dict:
    """Time every size in every mode (ascending sizes); progress lines go to stderr.

    Returns:
        The machine, the timed rows of :func:`bench_size` and the sizes skipped (with why).
    """
    sizes = sorted(int(n) for n in sizes)
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--waters needs positive sizes, got {sizes!r}")
    if steps < 1:
        raise ValueError(f"--steps must be positive, got {steps}")
    if set(modes) - set(MODES):
        raise ValueError(f"--modes must be among {MODES}, got {modes}")
    if invariants not in ("paper", "many-body") or form not in ("own", "shared"):
        raise ValueError(f"--invariants must be paper or many-body and --form own or shared, got {invariants}, {form}")
    if invariants == "paper" and form != "own":
        raise ValueError("--form shared needs --invariants many-body (the paper's losses are own-form)")
    if invariants == "many-body":
        modes = ["cutoff"]  # the descriptors carry their own cutoffs (4.5 A radial, 3.5 A angular)
        cutoff = DEFAULT_CUTOFF
    results, skipped = [], []
    for mode in modes:
        for n in sizes:
            if mode == "minimum-image" and n > MAX_MINIMUM_IMAGE_WATERS:
                skipped.append(f"{n} waters, minimum-image: all-pairs cost grows as N^2")
                continue
            box = box_for_density(n, 0.997)
            if mode == "cutoff" and box < 2 * cutoff:
                skipped.append(f"{n} waters, cutoff: box {box:.1f} A is under 2 r_c = {2 * cutoff} A")
                continue
            row = bench_size(n, steps, mode, cutoff, engine, threads=threads, invariants=invariants, form=form)
            results.append(row)
            print(f"{n} waters, {row['mode']}, {row['threads']} thread{'s' if row['threads'] > 1 else ''}: "
                  f"{row['seconds_per_1000_steps']:.3g} s per 1000 steps, {row['ns_per_atom_step']:.0f} ns per atom-step",
                  file=sys.stderr)
    return {
        "benchmark": "Newtonian NVT (velocity Verlet + Nose-Hoover), quadratic loss, 7 weight functions per species",
        "threads": "each row's `threads` is the number used (default: environment.forces.default_threads)",
        "machine": machine(), "cutoff_A": cutoff, "results": results, "skipped": skipped,
        "peak_rss_note": "process peak resident memory so far; sizes run in ascending order",
        "paper": {"waters": 128, "seconds_per_1000_steps": 20.0, "machine": "AMD Ryzen 9 7950X (16 cores)"},
    }
