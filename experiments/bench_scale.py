"""Force-evaluation cost per atom-step and peak memory of the fused kernels, for water boxes.

    python -m experiments.bench_scale [--molecules 32 128 1024 8192 32768] [--repeats 5] [--threads N]

Water boxes at 0.0334 molecules / angstrom^3 are made cheaply (jittered O lattice, random
orientations; no equilibration), with the paper-sized losses of issue 6 (7 weight functions per sink
species, 2 source species, quadratic).  Modes: ``minimum-image`` (all pairs, the paper's sums; only up to
8192 molecules) and ``cutoff`` (r_c = 6, r_on = 5, skin 1 angstrom).  Each evaluation is timed after a
warm-up, best of ``--repeats`` (wall clock and process CPU time, the latter steadier on a shared machine); the neighbour-list build is timed separately (it is amortised over many
steps).  Peak memory is the process's maximum resident set size.  Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from learning.invariants import InvariantSet
from learning.loss import AgentLosses, SpeciesLoss
from learning.weights import weight_functions

H_FUNCS = "exp(a=1/2),exp(a=1/4),gauss(s=2),gauss(s=3),gauss(s=4),gauss(s=5),gauss(s=6)"
O_FUNCS = "exp(a=1/5),exp(a=1/6),exp(a=1/7),gauss(s=4),gauss(s=6),gauss(s=8),pow(n=2)"
DENSITY = 0.0334  # molecules per cubic angstrom


def water_box(n_molecules, rng):
    """Positions (3n, 3), symbols O H H ..., and the box side of ``n_molecules`` waters."""
    box = (n_molecules / DENSITY) ** (1 / 3)
    side = int(np.ceil(n_molecules ** (1 / 3)))
    cells = np.array(np.meshgrid(*[np.arange(side)] * 3, indexing="ij")).reshape(3, -1).T
    cells = cells[rng.permutation(len(cells))[:n_molecules]]
    O = (cells + 0.5) * box / side + rng.normal(scale=0.05, size=(n_molecules, 3))
    u = rng.normal(size=(n_molecules, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    v = np.cross(u, rng.normal(size=(n_molecules, 3)))
    v /= np.linalg.norm(v, axis=1)[:, None]
    half = np.radians(104.5) / 2
    positions = np.empty((3 * n_molecules, 3))
    positions[0::3] = O
    positions[1::3] = O + 0.96 * (np.cos(half) * u + np.sin(half) * v)
    positions[2::3] = O + 0.96 * (np.cos(half) * u - np.sin(half) * v)
    return positions % box, ["O", "H", "H"] * n_molecules, box


def paper_losses(rng):
    losses = {}
    for s, funcs, sources in (("O", O_FUNCS, ("O", "H")), ("H", H_FUNCS, ("H", "O"))):
        inv = InvariantSet(weight_functions(funcs), sources)
        P = 14
        B = rng.normal(scale=1e-3, size=(P, P))
        losses[s] = SpeciesLoss(s, inv, rng.normal(scale=0.1, size=inv.shape), (B + B.T).reshape(inv.shape * 2))
    return AgentLosses(losses)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def measure(n_molecules, mode, repeats, rng):
    from learning.kernels import LossForces

    positions, symbols, box = water_box(n_molecules, rng)
    cutoff = None if mode == "minimum-image" else 6.0
    t0 = time.perf_counter()
    fast = LossForces(paper_losses(rng), symbols, box, cutoff=cutoff, skin=1.0)
    fast(positions)  # warm-up (and the neighbour-list build)
    first = time.perf_counter() - t0
    build = None
    if fast.neighbors is not None:
        t0 = time.perf_counter()
        fast.neighbors.build(positions, box, fast.species, 2)
        build = time.perf_counter() - t0
    n_eval = max(1, min(200, int(2e6 / (len(positions) * (len(positions) if cutoff is None else 150)))))
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n_eval):
            fast(positions)
        times.append((time.perf_counter() - t0) / n_eval)
        cpu.append((time.process_time() - c0) / n_eval)
    best = min(times)
    return {
        "molecules": n_molecules, "atoms": len(positions), "mode": mode, "box_angstrom": round(box, 3),
        "ms_per_evaluation_best": best * 1e3, "ms_per_evaluation_median": float(np.median(times)) * 1e3,
        "cpu_ms_per_evaluation_best": min(cpu) * 1e3,  # all threads together
        "ns_per_atom_step": best / len(positions) * 1e9,
        "cpu_ns_per_atom_step": min(cpu) / len(positions) * 1e9,
        "seconds_per_1000_steps": best * 1e3,
        "neighbor_build_s": build,
        "listed_pairs_per_atom": (len(fast.neighbors.indices) / len(positions)) if fast.neighbors else None,
        "first_call_s": first, "peak_rss_mb": peak_rss_mb(),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, nargs="+", default=[32, 128, 1024, 8192, 32768])
    parser.add_argument("--modes", nargs="+", default=["minimum-image", "cutoff"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-minimum-image", type=int, default=8192)
    args = parser.parse_args(argv)
    import numba

    if args.threads:
        numba.set_num_threads(args.threads)
    t0 = time.perf_counter()
    import learning.kernels  # noqa: F401  (loads or compiles the cached kernels)

    rng = np.random.default_rng(42)
    results = {"threads": numba.get_num_threads(), "import_s": time.perf_counter() - t0, "runs": []}
    for mode in args.modes:
        for n in args.molecules:
            if mode == "minimum-image" and n > args.max_minimum_image:
                continue
            if mode == "cutoff" and 6.0 > 0.5 * (n / DENSITY) ** (1 / 3):
                continue  # r_c = 6 angstrom needs a box of at least 12 angstrom
            results["runs"].append(measure(n, mode, args.repeats, rng))
            print(json.dumps(results["runs"][-1]), flush=True)
    print(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
