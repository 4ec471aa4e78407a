"""Seconds per 1000 steps of ``model.run`` in compiled code (:mod:`environment.fused`) against the Python
step loop (``run(n, fused=False)``), in one process, in alternating blocks; prints medians, ratios, the
thread count and the load average.

``python -m experiments.fused_timing [--steps 200] [--blocks 6] [--threads 1]``: the paper's model
(random small coefficients, :func:`experiments.bench.benchmark_losses`) in NVT (Nose-Hoover, 0.5 fs) at
32 and 128 waters with all pairs, 128 waters with a 6 angstrom cutoff, collecting every 10 and 100 steps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numba

from environment import MolecularModel, NoseHooverChain, VelocityVerlet, water_box
from experiments.bench import benchmark_losses

#: (waters, cutoff in angstrom or None for all pairs) timed by default.
CASES = ((32, None), (128, None), (128, 6.0))


def compare(n_waters: int, cutoff, collect_every: int, steps: int, blocks: int, threads: int) -> dict:
    """Median seconds per 1000 steps of the loop and the fused run of one model, alternating blocks."""
    symbols, positions, velocities, box = water_box(n_waters, temperature_K=300.0, seed=0)
    model = MolecularModel(symbols, positions, box, benchmark_losses(0), velocities=velocities, seed=0,
                           integrator=VelocityVerlet(0.5, NoseHooverChain(300.0, 100.0, chain_length=1)),
                           cutoff=cutoff, collect_every=collect_every, threads=threads)
    model.run(collect_every, fused=False)
    model.run(collect_every)  # compiles (or loads) the fused run
    seconds = {False: [], True: []}
    for block in range(blocks):
        for fused in ((False, True) if block % 2 == 0 else (True, False)):
            start = time.perf_counter()
            model.run(steps, fused=fused)
            seconds[fused].append(time.perf_counter() - start)
    loop, fused = (1000.0 * statistics.median(seconds[f]) / steps for f in (False, True))
    return {"waters": n_waters, "mode": "all pairs" if cutoff is None else f"cutoff {cutoff:g} A",
            "collect_every": collect_every, "loop_s_per_1000": loop, "fused_s_per_1000": fused,
            "fused_over_loop": fused / loop, "threads": model.evaluator.threads, "load_average": os.getloadavg()[0]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="steps per block (default: 200)")
    parser.add_argument("--blocks", type=int, default=6, help="blocks of each kind (default: 6)")
    parser.add_argument("--threads", type=int, default=1, help="numba threads (default: 1)")
    args = parser.parse_args(argv)
    for n_waters, cutoff in CASES:
        for every in (10, 100):
            row = compare(n_waters, cutoff, every, args.steps, args.blocks, args.threads)
            print(f"{row['waters']} waters, {row['mode']}, collect every {every}: loop {row['loop_s_per_1000']:.3f}, "
                  f"fused {row['fused_s_per_1000']:.3f} s per 1000 steps (median), fused/loop "
                  f"{row['fused_over_loop']:.3f}; {row['threads']} thread(s) of {numba.config.NUMBA_NUM_THREADS}, "
                  f"load average {row['load_average']:.1f}", flush=True)


if __name__ == "__main__":
    main()
