"""The neighbour list's cost in real runs: time per step and rebuild share against the skin, and the
amortized rebuild share and peak memory against the system size (docs/neighbors.md).

``python -m experiments.neighbor_bench skin --waters 128 1024 8192 --skins 0.5 1 1.5``
``python -m experiments.neighbor_bench size --atoms 384 3072 24576 98304 1000000``
print one JSON line per run.  The set-up is ``mld bench``'s (the paper's loss with 7 weight functions
per species in cutoff mode, or the many-body shared preset, ``many-body-l2``), NVT at 450 K (velocity Verlet +
Nosé-Hoover), timed after a warm-up step; the rebuild share is ``NeighborList.build_seconds`` over
the timed wall time, ``build_in_steps`` a build's cost in steps without one, and ``steps_per_build``
how often the list was rebuilt.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numba

from environment.builders import water_box, water_lattice
from environment.integrators import VelocityVerlet
from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain
from experiments.bench import benchmark_descriptor_loss, benchmark_losses


def timed_run(n_waters: int, steps: int, skin: float, invariants: str = "paper", cutoff: float = 6.0,
              temperature_K: float = 450.0, seed: int = 0) -> dict:
    """Run ``steps`` NVT steps of ``n_waters`` waters after one warm-up step; time, builds and memory."""
    build = water_box if n_waters <= 256 else water_lattice
    symbols, positions, velocities, box = build(n_waters, temperature_K=temperature_K, seed=seed)
    if invariants == "many-body":
        losses, model_cutoff = benchmark_descriptor_loss("shared", seed), None
    else:
        losses, model_cutoff = benchmark_losses(seed), cutoff
    model = MolecularModel(symbols, positions, box, losses, velocities=velocities, seed=seed,
                           integrator=VelocityVerlet(0.5, NoseHooverChain(temperature_K, 100.0, chain_length=1)),
                           cutoff=model_cutoff, skin=skin, collect_every=10**9)
    model.step()
    nl = model.evaluator.neighbors
    builds, build_seconds = nl.n_builds, nl.build_seconds
    start = time.perf_counter()
    for _ in range(steps):
        model.step()
    seconds = time.perf_counter() - start
    atoms = len(symbols)
    builds, build_seconds = nl.n_builds - builds, nl.build_seconds - build_seconds
    if builds:
        ms_per_build = 1e3 * build_seconds / builds
    else:  # no rebuild in the timed steps: time one at the current positions
        before = nl.build_seconds
        nl.build(model.space.agent_positions, box, nl.reference_species, nl.pointers.shape[1] - 1)
        ms_per_build = 1e3 * (nl.build_seconds - before)
    ms_step = 1e3 * (seconds - build_seconds) / steps  # a step without a rebuild
    interval = steps / builds if builds else float("inf")
    return {
        "waters": n_waters, "atoms": atoms, "invariants": invariants, "skin_A": skin, "radius_A": nl.radius,
        "steps": steps, "ms_per_step": 1e3 * seconds / steps, "ns_per_atom_step": 1e9 * seconds / (atoms * steps),
        "builds": builds, "rebuild_share": build_seconds / seconds, "steps_per_build": interval,
        "ms_per_build": ms_per_build, "ms_per_step_without_build": ms_step, "build_in_steps": ms_per_build / ms_step,
        "pairs_per_atom": len(nl.indices) / atoms,
        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": numba.get_num_threads(), "load_average": os.getloadavg(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scan", choices=("skin", "size"))
    parser.add_argument("--waters", type=int, nargs="+", default=[128, 1024, 8192])
    parser.add_argument("--atoms", type=int, nargs="+", default=[384, 3072, 24576, 98304])
    parser.add_argument("--skins", type=float, nargs="+", default=[0.3, 0.5, 0.75, 1.0, 1.5, 2.0])
    parser.add_argument("--skin", type=float, default=None, help="size scan: the skin (default: the model's)")
    parser.add_argument("--invariants", choices=("paper", "many-body"), default="paper")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)
    if args.scan == "skin":
        for n in args.waters:
            for skin in args.skins:
                print(json.dumps(timed_run(n, args.steps, skin, args.invariants)), flush=True)
    else:
        from environment.neighbors import DEFAULT_SKIN

        for atoms in args.atoms:
            steps = min(args.steps, max(12, int(3e7 / (150 * atoms))))
            row = timed_run(atoms // 3, steps, DEFAULT_SKIN if args.skin is None else args.skin, args.invariants)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
