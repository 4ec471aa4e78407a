"""``mld bench``: seconds per 1000 steps, ns per atom-step and memory of learned-loss runs, alone or against OpenMM.

Setup as in the paper's timing (end of Sec. 5.3): water boxes at 0.997 g/cm^3 and 300 K, Newtonian NVT
(velocity Verlet + Nose-Hoover, chain length 1, tau 100 fs, dt 0.5 fs).  The mld set-ups
(:data:`SETUPS`), with random small loss coefficients (only the cost is measured):

- ``paper-all-pairs``: the paper's losses (7 weight functions per species, its selected sets, quadratic,
  own form) summed over all pairs by minimum image (O(N^2): run up to 8192 waters);
- ``paper-cutoff``: the same switched off smoothly at r_c, with a neighbour list (needs a box >= 2 r_c);
- ``many-body-l2-own``, ``many-body-l2-shared``: the many-body set with zeta <= 2 (``mld fit --invariants
  many-body-l2``: cut radial + angular invariants, r_c 4.5 A; what ``many-body`` means in the shared form) in
  its own or shared form;
- ``many-body-sharp-own``, ``many-body-sharp-shared``: the prototype's set, zeta up to 16, angular 3.5 A
  (``--invariants many-body-sharp``; ``many-body`` in the own form).

The references (:data:`REFERENCES`, ``--compare openmm``) run the same box (same positions, velocities,
masses, step and thermostat) as flexible TIP3P-FB water in OpenMM (:mod:`experiments.openmm_reference`),
with PME or with reaction field, at the same thread count.

Timing: all set-ups of one size live in one process.  Each takes one warm-up step, then ``blocks`` rounds
in which each set-up in turn runs its share of ``steps`` whole model steps (``model.run``: forces,
integrator, thermostat, bookkeeping), so a change in machine load hits all of them alike.  Exactly
``steps`` steps are timed per set-up (no cap for large systems); the median block gives ns per atom-step.

Memory (``memory=True``): one fresh Python process per (set-up, size) builds the set-up at the smallest
size it allows (from 8 waters) and steps it (libraries loaded, kernels compiled), frees it, resets the peak resident set size (Linux:
``/proc/self/clear_refs``), then builds the measured size and runs :data:`MEMORY_STEPS` steps: the peak
RSS above the RSS before that build, per atom.  The warm-up's freed memory may be reused, so for boxes
close to the warm-up's size (tens of waters) the figure is a lower bound; it is meant for large boxes.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numba
import numpy as np

from agents.descriptor_loss import FORMS, DescriptorLoss
from agents.invariants import InvariantSet
from agents.loss import AgentLosses, SpeciesLoss
from agents.pair_wall import PairWall
from agents.species import CP2K_MASSES
from agents.validation import count
from agents.weights import PAPER_SELECTED, weight_functions
from environment.builders import box_for_density, water_box, water_lattice
from environment.forces import default_threads
from environment.integrators import VelocityVerlet
from environment.kinetics import kinetic_temperature
from environment.model import MolecularModel
from environment.thermostats import NoseHooverChain
from learning.descriptor_fit import local_quadratic
from learning.fitting import DEFAULT_CUTOFF, MANY_BODY_SETS, PRESETS, descriptor_set, many_body_set

MODES = ("minimum-image", "cutoff")
#: The mld set-ups: the paper's model by all pairs or with a cutoff, each many-body set in either form.
SETUPS = ("paper-all-pairs", "paper-cutoff") + tuple(f"{name}-{form}" for name in MANY_BODY_SETS for form in FORMS)
#: The OpenMM references of ``--compare openmm``: flexible TIP3P-FB with PME, with reaction field.
REFERENCES = ("openmm-pme", "openmm-rf")
#: The set-up the many-body models are timed beside (``mld bench --invariants many-body``): the paper's.
PAPER_REFERENCE = "paper-all-pairs"
#: The mld set-ups that ``--compare openmm`` times by default.
COMPARED = ("paper-all-pairs", "paper-cutoff", "many-body-l2-shared")
#: Largest system timed with all-pairs sums (its cost grows as N^2).
MAX_MINIMUM_IMAGE_WATERS = 8192
#: Time step (fs), thermostat target (K) and Nose-Hoover time constant (fs) of every set-up.
DT_FS, TEMPERATURE_K, TAU_FS = 0.5, 300.0, 100.0
#: OpenMM's non-bonded cutoff (angstrom), or half the box where that is smaller.
OPENMM_CUTOFF = 9.0
#: Steps run after building the measured system in a memory probe; the smallest warm-up system (waters).
MEMORY_STEPS = 10
MEMORY_WARMUP_WATERS = 8


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


def benchmark_descriptor_loss(form: str = "shared", seed: int = 0, scale: float = 1e-4,
                              preset: str = "many-body") -> DescriptorLoss:
    """A many-body preset (``mld fit --invariants many-body``, the set of ``form``, or ``many-body-l2``,
    ``many-body-sharp``: cut radial + angular invariants, r_c 4.5 A) as a quadratic loss of ``form`` with small
    random coefficients and the repulsive prior of a real fit, which keeps nuclei apart (timing only)."""
    rng = np.random.default_rng(seed)
    descriptors = descriptor_set(preset, ("O", "H"), DEFAULT_CUTOFF, form)
    P, Q = len(descriptors), local_quadratic(descriptors)
    A, B = {}, {}
    for symbol in ("O", "H"):
        A[symbol] = rng.normal(size=P) * scale
        b = rng.normal(size=(len(Q), len(Q))) * scale
        B[symbol] = np.zeros((P, P))
        B[symbol][np.ix_(Q, Q)] = b + b.T
    wall = PairWall({"OO": 1.9, "OH": 0.7, "HH": 1.0}, rc=DEFAULT_CUTOFF)  # the prior of a real fit
    return DescriptorLoss(descriptors, form, A, B, wall, {"note": "random coefficients for benchmarking"})


def water(n_waters: int, seed: int = 0):
    """The benchmark's box: random placement up to 256 waters, a jittered lattice above (fast to build).
    Returns symbols, positions, velocities (300 K), box as :func:`environment.builders.water_box`."""
    build = water_box if n_waters <= 256 else water_lattice
    return build(n_waters, temperature_K=TEMPERATURE_K, seed=seed)


def skip_reason(setup: str, n_waters: int, cutoff: float) -> str | None:
    """Why ``setup`` is not run at ``n_waters`` waters, or None."""
    box = box_for_density(n_waters, 0.997)
    r_c = DEFAULT_CUTOFF if setup.startswith("many-body") else cutoff
    if setup == "paper-all-pairs" and n_waters > MAX_MINIMUM_IMAGE_WATERS:
        return f"{n_waters} waters, {setup}: all-pairs cost grows as N^2 (run up to {MAX_MINIMUM_IMAGE_WATERS})"
    if (setup == "paper-cutoff" or setup.startswith("many-body")) and box < 2 * r_c:
        return f"{n_waters} waters, {setup}: box {box:.1f} A is under 2 r_c = {2 * r_c} A"
    return None


class MldRun:
    """One mld set-up (:data:`SETUPS`) built on a water box, ready to time.

    Args:
        setup: one of :data:`SETUPS`.
        waters: (symbols, positions, velocities, box) as from :func:`water`.
        threads: numba threads; cutoff: r_c (angstrom) of ``paper-cutoff``; engine, seed: of the model.
    """

    program = "mld"

    def __init__(self, setup: str, waters, threads: int, cutoff: float = 6.0, engine: str = "numba", seed: int = 0):
        symbols, positions, velocities, box = waters
        if setup.startswith("many-body"):
            preset, form = setup.rsplit("-", 1)
            losses, model_cutoff = benchmark_descriptor_loss(form, seed, preset=preset), None
            self.mode = f"{preset}, {form} form"
            self.cutoff = DEFAULT_CUTOFF
        else:
            losses = benchmark_losses(seed)
            self.mode = "cutoff" if setup == "paper-cutoff" else "minimum-image"
            self.cutoff = model_cutoff = cutoff if setup == "paper-cutoff" else None
        self.model = MolecularModel(symbols, positions, box, losses, velocities=velocities, seed=seed,
                                    integrator=VelocityVerlet(DT_FS, NoseHooverChain(TEMPERATURE_K, TAU_FS, chain_length=1)),
                                    engine=engine, cutoff=model_cutoff, collect_every=10**9, threads=threads)
        self.atoms = len(symbols)
        self.threads = self.model.evaluator.threads
        self.label = f"mld {setup}" + (f" {cutoff:g} A" if setup == "paper-cutoff" else "")

    def advance(self, n_steps: int) -> None:
        """Take ``n_steps`` whole model steps (``model.run``)."""
        self.model.run(n_steps)

    @property
    def steps(self) -> int:
        """Steps taken so far."""
        return int(self.model.steps)

    def temperature(self) -> float:
        """Kinetic temperature now (K)."""
        return kinetic_temperature(self.model.velocities, self.model.masses)

    def neighbour_list(self):
        """The force evaluator's neighbour list (cutoff modes), else None."""
        return self.model.evaluator.neighbors


def _openmm_reference():
    try:
        from experiments import openmm_reference
    except ImportError as err:
        raise ValueError(f"--compare openmm needs OpenMM ({err}): pip install -e '.[bench]'") from None
    return openmm_reference


def make_run(setup: str, waters, threads: int, cutoff: float = 6.0, engine: str = "numba", seed: int = 0,
             openmm_cutoff: float = OPENMM_CUTOFF):
    """An :class:`MldRun` or an OpenMM run (``openmm-pme``, ``openmm-rf``) of ``setup`` on ``waters``."""
    if setup in REFERENCES:
        symbols, positions, velocities, box = waters
        return _openmm_reference().OpenMMRun(
            symbols, positions, velocities, box, [CP2K_MASSES[s] for s in symbols],
            "pme" if setup == "openmm-pme" else "reaction-field", openmm_cutoff, threads, DT_FS, TEMPERATURE_K, TAU_FS)
    if setup not in SETUPS:
        raise ValueError(f"set-up must be one of {SETUPS + REFERENCES}, got {setup!r}")
    return MldRun(setup, waters, threads, cutoff, engine, seed)


def _builds(run) -> tuple:
    """(builds, cumulative build seconds) of ``run``'s neighbour list; (None, None) without a list."""
    neighbours = run.neighbour_list()
    if neighbours is None:
        return None, None
    return neighbours.n_builds, neighbours.build_seconds


def time_blocks(runs, steps: int, blocks: int) -> list[dict]:
    """Time ``steps`` steps of every run after one warm-up step, in ``blocks`` alternating rounds.

    Returns:
        One dict per run: steps taken (counted by the run), blocks, timed seconds, ns per atom-step
        (median block) and every block's, the derived seconds per 1000 steps and atom-steps per second,
        the temperature at the end, and the neighbour list's builds, build seconds and their share of
        the timed seconds during the timed steps (None without a list).
    """
    lengths = [len(block) for block in np.array_split(np.arange(steps), blocks)]
    for run in runs:
        run.advance(1)
    before = [(run.steps, *_builds(run)) for run in runs]
    seconds = [[] for _ in runs]
    for k in lengths:
        for run, spent in zip(runs, seconds):
            start = time.perf_counter()
            run.advance(k)
            spent.append(time.perf_counter() - start)
    rows = []
    for run, (steps0, builds0, build_s0), spent in zip(runs, before, seconds):
        per_block = [1e9 * s / (run.atoms * k) for s, k in zip(spent, lengths)]
        ns = float(np.median(per_block))
        builds, build_s = _builds(run)
        rebuild_s = None if build_s is None else build_s - build_s0
        rows.append({
            "steps": run.steps - steps0, "blocks": len(lengths), "timed_seconds": sum(spent),
            "ns_per_atom_step": ns, "seconds_per_1000_steps": 1e-6 * ns * run.atoms,
            "atom_steps_per_second": 1e9 / ns, "block_ns_per_atom_step": per_block,
            "final_temperature_K": run.temperature(),
            "neighbour_list_builds": None if builds is None else builds - builds0,
            "rebuild_seconds": rebuild_s, "rebuild_share": None if rebuild_s is None else rebuild_s / sum(spent),
        })
    return rows


def _status_kB(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_probe(setup: str, n_waters: int, threads: int, options: dict) -> dict:
    """Peak memory of ``setup`` at ``n_waters`` waters, measured in this (fresh) process; see the module notes.

    Returns:
        baseline_MiB (RSS after the warm-up: interpreter, libraries, compiled kernels),
        peak_above_baseline_MiB, KB_per_atom (1 KB = 1024 bytes) and memory_steps.
    """
    warm_waters = next(n for n in range(MEMORY_WARMUP_WATERS, n_waters + 1)
                       if skip_reason(setup, n, options.get("cutoff", 6.0)) is None)
    warm = make_run(setup, water(warm_waters, options.get("seed", 0)), threads, **options)
    warm.advance(2)
    del warm
    gc.collect()
    baseline = _status_kB("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # the peak RSS starts again from the RSS now (Linux >= 4.0)
    except OSError as err:
        raise RuntimeError(f"memory per atom needs Linux's /proc/self/clear_refs to reset the peak RSS ({err})") from None
    run = make_run(setup, water(n_waters, options.get("seed", 0)), threads, **options)
    run.advance(MEMORY_STEPS)
    above = _status_kB("VmHWM") - baseline
    return {"baseline_MiB": baseline / 1024, "peak_above_baseline_MiB": above / 1024,
            "KB_per_atom": above / run.atoms, "memory_steps": MEMORY_STEPS}


def peak_memory(setup: str, n_waters: int, threads: int, options: dict) -> dict:
    """:func:`memory_probe` run in a fresh Python process (the same modules as this one)."""
    code = ("import json, sys\nfrom experiments.bench import memory_probe\n"
            "print(json.dumps(memory_probe(*json.loads(sys.argv[1]))))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code, json.dumps([setup, n_waters, threads, options])],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the memory probe of {setup} at {n_waters} waters failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _threading_layer() -> str:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        return numba.config.THREADING_LAYER


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__,
            "numba": numba.__version__, "numba_max_threads": numba.config.NUMBA_NUM_THREADS,
            "threading_layer": _threading_layer(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_average": os.getloadavg()}


def benchmark(sizes, setups, steps: int = 1000, blocks: int = 1, cutoff: float = 6.0, engine: str = "numba",
              threads: int | None = None, seed: int = 0, openmm_cutoff: float = OPENMM_CUTOFF,
              memory: bool = False) -> dict:
    """Time every set-up at every size (ascending), the set-ups of one size in alternating blocks
    (:func:`time_blocks`); progress lines go to stderr.

    Args:
        sizes: numbers of water molecules.
        setups: names from :data:`SETUPS` and :data:`REFERENCES`.
        steps: timed steps per set-up and size, exactly; blocks: rounds they are split into.
        cutoff: r_c (angstrom) of ``paper-cutoff``; openmm_cutoff: OpenMM's (at most half the box).
        engine: mld's force engine; threads: threads of every set-up (None: mld's default for the size).
        memory: also measure peak memory per atom (one subprocess per set-up and size).

    Returns:
        The machine, the rows (one per set-up and size) and the set-ups skipped (with why).
    """
    sizes = sorted(int(n) for n in sizes)
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--waters needs positive sizes, got {sizes!r}")
    steps, blocks = count("--steps", steps), count("--blocks", blocks)
    if steps < blocks:
        raise ValueError(f"--steps ({steps}) must be at least --blocks ({blocks})")
    unknown = set(setups) - set(SETUPS + REFERENCES)
    if unknown or not setups:
        raise ValueError(f"--setups must be among {SETUPS}, got {sorted(unknown) or setups}")
    started = machine()
    options = {"cutoff": cutoff, "engine": engine, "seed": seed, "openmm_cutoff": openmm_cutoff}
    results, skipped = [], []
    for n in sizes:
        todo = []
        for setup in setups:
            reason = skip_reason(setup, n, cutoff)
            skipped += [] if reason is None else [reason]
            todo += [setup] if reason is None else []
        if not todo:
            continue
        n_threads = min(default_threads(3 * n) if threads is None else count("--threads", threads),
                        int(numba.config.NUMBA_NUM_THREADS))
        waters = water(n, seed)
        runs = [make_run(setup, waters, n_threads, **options) for setup in todo]
        load = os.getloadavg()
        rows = time_blocks(runs, steps, blocks)
        for setup, run, row in zip(todo, runs, rows):
            row.update({"waters": n, "atoms": run.atoms, "setup": setup, "label": run.label, "program": run.program,
                        "mode": run.mode, "cutoff_A": run.cutoff,
                        "engine": "openmm CPU" if run.program == "OpenMM" else engine, "threads": run.threads,
                        "box_A": round(waters[3], 3), "load_average_before": load,
                        "load_average_after": os.getloadavg(),
                        "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            print(f"{n} waters, {run.label}, {run.threads} thread{'s' if run.threads > 1 else ''}: "
                  f"{row['seconds_per_1000_steps']:.3g} s per 1000 steps, {row['ns_per_atom_step']:.0f} ns per atom-step",
                  file=sys.stderr)
        del runs
        if memory:
            for setup, row in zip(todo, rows):
                row.update(peak_memory(setup, n, n_threads, options))
                print(f"{n} waters, {row['label']}: {row['KB_per_atom']:.2f} KB per atom above a "
                      f"{row['baseline_MiB']:.0f} MiB baseline", file=sys.stderr)
        results += rows
    started["threading_layer"] = _threading_layer()  # known once a parallel region has run
    return {
        "benchmark": "Newtonian NVT (velocity Verlet + Nose-Hoover, dt 0.5 fs, 300 K) of water boxes; mld: "
                     "quadratic losses with random small coefficients",
        "threads": "each row's `threads` is the number used (default: environment.forces.default_threads)",
        "timing": f"{steps} steps per set-up after one warm-up step, in {blocks} alternating blocks; "
                  "ns_per_atom_step is the median block",
        "machine": started, "load_average_end": os.getloadavg(), "cutoff_A": cutoff, "steps": steps, "blocks": blocks, "results": results,
        "skipped": skipped,
        "peak_rss_note": "peak_rss_MiB: this process's peak so far; KB_per_atom: peak RSS above the baseline "
                         "in a fresh process per set-up and size (memory=True)",
    }


def run_benchmark(sizes, modes, steps: int = 1000, cutoff: float = 6.0, engine: str = "numba",
                  threads: int | None = None, invariants: str = "paper", form: str = "own", blocks: int = 1,
                  memory: bool = False) -> dict:
    """``mld bench``: the paper's model in ``modes``, or the many-body model in ``form`` (see :func:`benchmark`).

    The many-body model runs beside the paper's (``paper-all-pairs``, the paper's setup) in alternating blocks
    of one process, and its rows gain ``vs_paper``: ns per atom-step over the paper model's at the same size.
    """
    if set(modes) - set(MODES):
        raise ValueError(f"--modes must be among {MODES}, got {modes}")
    if invariants not in ("paper",) + PRESETS or form not in ("own", "shared"):
        raise ValueError(f"--invariants must be paper, {' or '.join(PRESETS)} and --form own or shared, got "
                         f"{invariants}, {form}")
    if invariants == "paper" and form != "own":
        raise ValueError("--form shared needs a many-body --invariants (the paper's losses are own-form)")
    if invariants != "paper":  # the descriptors carry their own cutoffs
        setups, cutoff = [PAPER_REFERENCE, f"{many_body_set(invariants, form)}-{form}"], DEFAULT_CUTOFF
    else:
        setups = [{"minimum-image": "paper-all-pairs", "cutoff": "paper-cutoff"}[mode] for mode in modes]
    report = benchmark(sizes, setups, steps, blocks, cutoff, engine, threads, memory=memory)
    if invariants != "paper":
        paper = {row["waters"]: row["ns_per_atom_step"] for row in report["results"] if row["setup"] == PAPER_REFERENCE}
        for row in report["results"]:
            if row["setup"] != PAPER_REFERENCE and row["waters"] in paper:
                row["vs_paper"] = row["ns_per_atom_step"] / paper[row["waters"]]
                print(f"{row['waters']} waters, {row['label']}: {row['vs_paper']:.2f}x the paper model's time per "
                      f"atom-step", file=sys.stderr)
    report["paper"] = {"waters": 128, "seconds_per_1000_steps": 20.0, "machine": "AMD Ryzen 9 7950X (16 cores)"}
    return report


def compare_openmm(sizes, setups=COMPARED, steps: int = 1000, blocks: int = 5, cutoff: float = 6.0,
                   engine: str = "numba", threads: int | None = None, openmm_cutoff: float = OPENMM_CUTOFF,
                   memory: bool = True) -> dict:
    """``mld bench --compare openmm``: the mld ``setups`` and OpenMM's PME and reaction-field water in one
    process per size (:func:`benchmark`); every mld row gains ``vs_openmm_pme`` and ``vs_openmm_rf``, its
    ns per atom-step over OpenMM's at the same size."""
    if set(setups) - set(SETUPS):
        raise ValueError(f"--setups must be among {SETUPS}, got {list(setups)}")
    _openmm_reference()  # a missing OpenMM is an error before anything runs
    report = benchmark(sizes, list(setups) + list(REFERENCES), steps, blocks, cutoff, engine, threads,
                       openmm_cutoff=openmm_cutoff, memory=memory)
    reference = {(row["waters"], row["setup"]): row["ns_per_atom_step"] for row in report["results"]}
    for row in report["results"]:
        if row["program"] == "mld":
            row["vs_openmm_pme"] = row["ns_per_atom_step"] / reference[row["waters"], "openmm-pme"]
            row["vs_openmm_rf"] = row["ns_per_atom_step"] / reference[row["waters"], "openmm-rf"]
    report["openmm"] = {
        "model": "flexible TIP3P-FB (OpenMM's tip3pfb.xml, rigidWater=False, no constraints), CPU platform, "
                 "NoseHooverIntegrator (chain 1, tau 100 fs), same positions, velocities and masses as mld",
        "cutoff_A": f"{openmm_cutoff:g} A or half the box where smaller (each row's cutoff_A); PME with "
                    "OpenMM's default error tolerance 5e-4; reaction field eps 78.3; dispersion correction on",
    }
    return report


def _cell(value, form: str) -> str:
    return "-" if value is None else format(value, form)


def table(report: dict) -> str:
    """The report's rows as a Markdown table, with the timing, threads and load average above it."""
    m = report["machine"]
    load = [" ".join(f"{x:.2f}" for x in loads) for loads in (m["load_average"], report["load_average_end"])]
    lines = [f"{report['timing']}; {m['cpus']} CPUs, load average {load[0]} at start, {load[1]} at the end; "
             f"numba {m['numba']} ({m['threading_layer']})", "",
             "| waters | set-up | threads | steps | ns / atom-step | s / 1000 steps | / OpenMM PME | / OpenMM RF "
             "| cutoff (A) | NL builds | rebuild share | KB / atom | T end (K) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        lines.append(
            f"| {r['waters']} | {r['label']} | {r['threads']} | {r['steps']} | {r['ns_per_atom_step']:.0f} "
            f"| {r['seconds_per_1000_steps']:.3g} | {_cell(r.get('vs_openmm_pme'), '.2f')} "
            f"| {_cell(r.get('vs_openmm_rf'), '.2f')} | {_cell(r['cutoff_A'], 'g')} "
            f"| {_cell(r['neighbour_list_builds'], 'd')} | {_cell(r['rebuild_share'], '.0%')} "
            f"| {_cell(r.get('KB_per_atom'), '.2f')} | {r['final_temperature_K']:.0f} |")
    lines += [f"skipped: {reason}" for reason in report["skipped"]]
    return "\n".join(lines)
