"""``mld bench``: seconds per 1000 steps and atom-steps per second of the learned-loss simulation.

Setup as in the paper's timing (end of Sec. 5.3): water boxes, 7 weight functions per species
(the paper's selected sets), a quadratic loss, Newtonian NVT (velocity Verlet + Nosé–Hoover chain),
full minimum-image sums.  The loss coefficients are random but small: only the cost is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

import numpy as np

from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain
from learning.invariants import InvariantSet
from learning.loss import AgentLosses, SpeciesLoss
from learning.weights import weight_functions

#: The paper's seven most relevant weight functions per species (Sec. 5.2).
PAPER_SETS = {
    "O": "exp(a=1/5),exp(a=1/6),exp(a=1/7),gauss(s=4),gauss(s=6),gauss(s=8),pow(n=2)",
    "H": "exp(a=1/2),exp(a=1/4),gauss(s=2),gauss(s=3),gauss(s=4),gauss(s=5),gauss(s=6)",
}


def benchmark_losses(seed: int = 0, scale: float = 1e-4) -> AgentLosses:
    """Quadratic losses on the paper's invariant sets with small random coefficients (timing only)."""
    rng = np.random.default_rng(seed)
    losses = {}
    for symbol, names in PAPER_SETS.items():
        invariants = InvariantSet(weight_functions(names), ("O", "H"))
        P = 2 * len(invariants.functions)
        B = rng.normal(size=(P, P)) * scale
        losses[symbol] = SpeciesLoss(symbol, invariants, rng.normal(size=P) * scale, (B + B.T).reshape(2, 7, 2, 7))
    return AgentLosses(losses, {"note": "random coefficients for benchmarking"})


def bench_size(n_waters: int, steps: int, seed: int = 0) -> dict:
    """Time ``steps`` fast-path steps of ``n_waters`` waters (after one warm-up step)."""
    model = MolecularModel.water_box(n_waters, benchmark_losses(seed), temperature_K=300.0, seed=seed,
                                     thermostat=NoseHooverChain(300.0, 100.0), collect_every=max(1, steps))
    model.step()
    start = time.perf_counter()
    for _ in range(steps):
        model.step()
    seconds = time.perf_counter() - start
    atoms = 3 * n_waters
    return {
        "waters": n_waters, "atoms": atoms, "steps": steps,
        "seconds_per_1000_steps": 1000.0 * seconds / steps,
        "atom_steps_per_second": atoms * steps / seconds,
    }


def machine() -> dict:
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "numpy": np.__version__}


def run(args) -> int:
    sizes = [int(n) for n in str(args.waters).split(",") if n.strip()]
    if not sizes or min(sizes) < 1 or args.steps < 1:
        raise ValueError("--waters needs positive sizes and --steps a positive count")
    results = []
    for n in sizes:
        row = bench_size(n, args.steps)
        row["peak_rss_MiB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results.append(row)
        print(f"{n} waters: {row['seconds_per_1000_steps']:.2f} s per 1000 steps", file=sys.stderr)
    print(json.dumps({"benchmark": "newtonian NVT, quadratic loss, 7 weight functions per species, "
                                   "full minimum-image sums",
                      "machine": machine(), "results": results,
                      "paper": {"waters": 128, "seconds_per_1000_steps": 20.0, "machine": "AMD Ryzen 9 7950X (16 cores)"}},
                     indent=1))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="time the learned-loss simulation (prints JSON)")
    p.add_argument("--waters", default="32,128", help="comma-separated numbers of water molecules")
    p.add_argument("--steps", type=int, default=200, help="timed steps per size")
    p.set_defaults(func=run)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m experiments.bench")
    register(parser.add_subparsers(dest="command"))
    sys.exit(run(parser.parse_args(["bench", *sys.argv[1:]])))
