"""The numbers of the many-body descriptor losses: fits, speed and a short NVT run, as JSON.

``python -m experiments.manybody_numbers [--data DIR] [--stride N] [--out DIR]`` (about 10 min on
2 cores for the 624-frame shared CP2K run; most of it accumulating the shared normal equations):

1. own / shared x linear / quadratic fits of the prototype descriptors (cutoff radial + angular,
   r_c 4.5 angstrom) with the pair-wall prior, ridge chosen on validation; relative force RMSE (5.2)
   per species on every split, wall time and memory of the normal equations;
2. time per force evaluation of the compiled path (32-water CP2K frame, 128-water box; 1 and 2
   threads; wall-clock median and minimum of 50 calls);
3. the shared quadratic loss in NVE (100 fs, energy drift) and in NVT (velocity Verlet +
   Nose-Hoover at CP2K's mean temperature, from the first training frame): H-O-H angle, O-H bond
   and temperature against CP2K's.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numba
import numpy as np

from agents.descriptors import prototype_descriptors
from agents.pair_wall import PairWall
from environment.builders import water_box
from environment.forces import ForceEvaluator
from agents.dynamics import kick
from environment.kinetics import kinetic_temperature
from environment.thermostats import NoseHooverChain
from agents.units import EV_PER_AMU_A2_FS2
from experiments.analysis import hoh_angles, nearest_oxygen
from learning.cp2k.reader import default_data_path, read_trajectory
from learning.splits import split_frames
from learning.descriptor_fit import ORDERS, DescriptorEquations, fit, local_quadratic, trajectory_forces


def fits(run, splits, rc, angular_rc, out):
    descriptors = prototype_descriptors(("O", "H"), rc, angular_rc=angular_rc)
    wall = PairWall.from_contacts(run.positions[splits["train"]], run.box, run.symbols, rc)
    forces = trajectory_forces(run)
    rows, losses = [], {}
    for form in ("own", "shared"):
        started = time.perf_counter()
        equations = DescriptorEquations(descriptors, form, ("O", "H"), local_quadratic(descriptors), wall)
        equations.add_frames(splits, run.positions, run.box, run.symbols, forces)
        seconds = time.perf_counter() - started
        megabytes = sum(eq.gram.nbytes for split in equations.equations.values() for eq in split.values()) / 2**20
        for order in ORDERS:
            result = fit(equations, order)
            losses[form, order] = result.loss
            result.loss.save(out / f"{form}_{order}.json")
            rows.append({"form": form, "order": order, "ridge": result.ridge, "rmse": result.rmse,
                         "columns": len(equations.columns(order)), "accumulate_s": seconds,
                         "normal_equations_MiB": megabytes})
            print(json.dumps(rows[-1]), flush=True)
    return rows, losses


def timings(loss, run):
    symbols, positions, _, box = water_box(128, seed=1)
    systems = {"32 waters (CP2K frame)": (run.positions[0], run.box, run.symbols),
               "128 waters": (positions, box, symbols)}
    rows = []
    for name, (q, side, sym) in systems.items():
        for threads in (1, 2):
            forces = ForceEvaluator(loss, sym, side, threads=min(threads, numba.config.NUMBA_NUM_THREADS))
            forces(q)
            seconds = []
            for _ in range(50):
                started = time.perf_counter()
                forces(q)
                seconds.append(time.perf_counter() - started)
            rows.append({"system": name, "atoms": len(sym), "threads": threads,
                         "median_ms": 1e3 * float(np.median(seconds)), "min_ms": 1e3 * float(np.min(seconds))})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def dynamics(loss, run, splits, steps, dt=0.5):
    start = splits["train"][0]
    masses = run.masses
    target = float(np.mean(run.temperature[splits["train"]]))
    forces = DescriptorForces(loss, run.symbols, run.box)

    def simulate(thermostat, n_steps):
        q, v = run.positions[start].copy(), run.velocities[start].copy()
        if thermostat is not None:
            thermostat.attach(3 * len(q) - 3)
        H, F = forces(q)
        frames, energies, temperatures = [], [], []
        for _ in range(n_steps):
            if thermostat is not None:
                thermostat.half_step(v, masses, dt)
            v = kick(v, F, masses[:, None], 0.5 * dt)
            q = q + dt * v
            H, F = forces(q)
            v = kick(v, F, masses[:, None], 0.5 * dt)
            if thermostat is not None:
                thermostat.half_step(v, masses, dt)
            frames.append(q)
            energies.append(H.sum() + 0.5 * np.sum(masses[:, None] * v**2) * EV_PER_AMU_A2_FS2)
            temperatures.append(kinetic_temperature(v, masses))
        return np.array(frames), np.array(energies), np.array(temperatures)

    _, energies, _ = simulate(None, 200)
    frames, _, temperatures = simulate(NoseHooverChain(target, tdamp_fs=25.0, chain_length=1), steps)

    def structure(positions):
        angles = np.concatenate([hoh_angles(run.symbols, q, run.box) for q in positions])
        bonds = np.concatenate([nearest_oxygen(run.symbols, q, run.box)[1] for q in positions])
        return {"hoh_deg": [float(angles.mean()), float(angles.std())],
                "oh_A": [float(bonds.mean()), float(bonds.std())]}

    return {
        "nve_100fs_energy_drift_eV": float(energies[-1] - energies[0]),
        "nve_energy_peak_to_peak_eV": float(np.ptp(energies)),
        "nvt_fs": steps * dt, "target_K": target,
        "learned_second_half": {**structure(frames[steps // 2::10]), "T_K": float(temperatures[steps // 2:].mean())},
        "cp2k_after_equilibration": {**structure(run.positions[start::5]),
                                     "T_K": float(run.temperature[start:].mean())},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(default_data_path()), help="CP2K run (directory or input file)")
    parser.add_argument("--stride", type=int, default=1, help="use every STRIDE-th training frame")
    parser.add_argument("--rc", type=float, default=4.5, help="descriptor cutoff, angstrom")
    parser.add_argument("--angular-rc", type=float, default=None, help="angular cutoff, angstrom (default --rc)")
    parser.add_argument("--steps", type=int, default=800, help="NVT steps of 0.5 fs")
    parser.add_argument("--out", default="mld-manybody", help="folder for the losses and numbers.json")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = read_trajectory(args.data)
    splits = split_frames(len(run))
    splits["train"] = splits["train"][:: args.stride]
    rows, losses = fits(run, splits, args.rc, args.angular_rc, out)
    shared = losses["shared", "quadratic"]
    numbers = {"data": run.source, "frames": {k: len(v) for k, v in splits.items()}, "fits": rows,
               "timing": timings(shared, run), "dynamics": dynamics(shared, run, splits, args.steps),
               "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    (out / "numbers.json").write_text(json.dumps(numbers, indent=1) + "\n")
    print(json.dumps(numbers["dynamics"], indent=1))


if __name__ == "__main__":
    main()
