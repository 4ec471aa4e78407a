"""A loss learned in the CP2K box, run in a box n^3 times the volume: the same water within noise?

A descriptor loss with cutoffs r_c <= L/2 is valid in any box of side >= 2 r_c (its invariants do not
depend on the box).  This experiment checks that the physics does not either: one loss (by default the
shared many-body loss that ``mld beyond`` fits, or a loss file) drives :class:`experiments.beyond.NVTProtocol`
from the same CP2K frame twice, in the CP2K box (side L) and in its n x n x n tiling
(:func:`environment.builders.tile`, side n L, n^3 times the atoms; positions and velocities copied), and
both runs' observables (:func:`experiments.observables.compute_observables`) are compared with each
other and with CP2K's from that frame.

The copies of a tiling start identical and, under forces that are equal on every copy, would stay so
(a 96-atom system run 8 times); chaos breaks that symmetry from rounding alone.  To make the copies
independent from the start, each atom's velocity gets a seeded Gaussian kick of ``symmetry_noise``
angstrom/fs per component (their centre-of-mass part removed; 1e-6 is 5e-5 of a thermal H velocity),
and the run reports how far the copies drift apart (RMS minimum-image distance of each copy's atoms
from copy 0's, shifted).

The rule "the same within noise": an observable agrees between the boxes when |tiled - original| is
within its :data:`experiments.observables.TOLERANCES` entry, the tolerance of the comparison with CP2K
(set from the spread between the two halves of the CP2K run); g(r) by int |g_tiled - g_original| dr
over the common range r <= L/2.  Units: angstrom, fs, amu, eV, K.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from agents.geometry import minimum_image
from agents.loss_file import load_losses
from environment.builders import copy_offsets, tile
from environment.thermostats import NoseHooverChain
from experiments.base import LearnedLossExperiment
from experiments.beyond import NVTProtocol, fit_variant, loss_file_name, protocol_model, target_temperature
from experiments.observables import RDF_DIFFERENCES, compare, compute_observables, from_cp2k
from experiments.outputs import Results
from experiments.water import MIN_FRAMES, collected_trajectory, run_or_stop
from learning.cp2k.reader import read_trajectory

#: The loss fitted when none is given (a key of :data:`experiments.beyond.VARIANTS`): the shared many-body loss
#: (``many-body-l2``) with the embedded contact probes and its round of active learning, whose 100 ps runs from five
#: CP2K frames and 768-atom runs from three all complete (README, "The l <= 2 set").
DEFAULT_VARIANT = "shared/many-body-l2+active"
#: The agreement rule, as written into the summary.
RULE = ("boxes agree on an observable when |tiled - original| <= its CP2K tolerance (experiments.observables."
        "TOLERANCES, set from the spread between the halves of the CP2K run); g(r): int |g_tiled - g_original| dr "
        "over r <= L/2 of the original box")


@dataclass
class TiledBoxConfig(NVTProtocol):
    """:class:`experiments.beyond.NVTProtocol` in the CP2K box and in its ``tile`` x ``tile`` x ``tile`` tiling.

    ``loss``: a loss file (None: fit :data:`DEFAULT_VARIANT` on every ``stride``-th frame);
    ``symmetry_noise``: standard deviation (angstrom/fs) of the velocity kick that makes the copies
    independent (0: exact copies).
    """

    tile: int = 2
    loss: str | None = None
    symmetry_noise: float = 1e-6


class TiledBoxExperiment(LearnedLossExperiment):
    """One loss, the same NVT protocol, the CP2K box and its n^3 tiling: observables side by side with CP2K's.

    ``losses`` (optional) is an already learned loss, used as given.  After :meth:`run`, ``self.losses``
    holds the loss that ran (:meth:`save` writes it when it was fitted here).
    """

    Config = TiledBoxConfig
    name = "tiling"

    def run(self) -> Results:
        cfg = self.config
        if isinstance(cfg.tile, bool) or int(cfg.tile) != cfg.tile or cfg.tile < 2:
            raise ValueError(f"--tile must be an integer of at least 2 (copies per axis), got {cfg.tile!r}")
        if cfg.stride < 1 or cfg.every < 1 or cfg.steps < 1:
            raise ValueError("stride, every and steps must be positive")
        if not cfg.symmetry_noise >= 0:
            raise ValueError(f"symmetry_noise must be >= 0 angstrom/fs, got {cfg.symmetry_noise!r}")
        if self.trajectory is None:
            self.trajectory = read_trajectory(cfg.data)
        traj = self.trajectory
        start, target = self.start_frame(), target_temperature(traj, cfg)
        fit_s, self.fitted = None, self.losses is None and cfg.loss is None
        if self.fitted:
            began = time.perf_counter()
            self.losses = fit_variant(traj, DEFAULT_VARIANT, cfg.stride)
            fit_s = time.perf_counter() - began
        elif self.losses is None:
            self.losses = load_losses(cfg.loss)
        self.losses.check_species(traj.symbols, "--loss")

        n = int(cfg.tile)
        symbols, positions, velocities, box = tile(traj.symbols, traj.positions[start], traj.box, n,
                                                   traj.velocities[start])
        velocities = velocities + self._kick(velocities.shape, traj.masses)
        runs = {"original": self._run("original box", traj.symbols, traj.positions[start], traj.velocities[start],
                                      traj.box, target),
                "tiled": self._run(f"{n}x{n}x{n} tiling", symbols, positions, velocities, box, target)}
        divergence = copy_divergence(runs["tiled"]["trajectory"].positions, n, len(traj.symbols), box)
        observed = {name: compute_observables(run.pop("trajectory")) for name, run in runs.items()}
        observed["cp2k"] = compute_observables(from_cp2k(traj, start))
        table = self._table(observed)
        agree = table["boxes_agree"].value_counts().to_dict()
        summary = {
            "start_frame": int(start), "target_temperature_K": target, "tile": n, "fit_s": fit_s,
            "loss": "fitted: " + DEFAULT_VARIANT if self.fitted else (cfg.loss or "given"),
            "test_rmse": self.losses.provenance.get("metrics"),
            "thermostat": f"Nose-Hoover chain, length {cfg.chain_length}, tdamp {cfg.tdamp_fs} fs",
            "rule": RULE, "agreement": {"pass": agree.get("pass", 0), "fail": agree.get("fail", 0),
                                        "judged": agree.get("pass", 0) + agree.get("fail", 0)},
            "copy_divergence_A": {"final": float(divergence[-1]), "max": float(divergence.max())},
            "runs": runs,
            "observables": {row["observable"]: row for row in table.to_dict("records")},
        }
        times = np.arange(len(divergence)) * cfg.every * cfg.dt
        return Results(summary, {"tiling": table}, {"tiling": self._figure(observed, times, divergence, n)})

    def _kick(self, shape, masses) -> np.ndarray:
        """The seeded symmetry-breaking velocity kick (angstrom/fs), with zero total momentum."""
        kick = np.random.default_rng(self.config.seed).normal(scale=self.config.symmetry_noise, size=shape)
        m = np.tile(masses, shape[0] // len(masses))[:, None]
        return kick - np.sum(m * kick, axis=0) / np.sum(m)

    def _run(self, label, symbols, positions, velocities, box, target) -> dict:
        """The protocol's NVT run of one box: its collected trajectory and how it went."""
        cfg = self.config
        model = protocol_model(cfg, self.losses, symbols, positions, velocities, box,
                               NoseHooverChain(target, cfg.tdamp_fs, cfg.chain_length), cfg.every)
        began = time.perf_counter()
        stop = run_or_stop(model, cfg.steps, cfg.max_temperature_factor * target, cfg.progress, f"{label} NVT")
        seconds = time.perf_counter() - began
        trajectory = collected_trajectory(model, f"{label} NVT run")
        if trajectory.n_frames < MIN_FRAMES:
            raise ValueError(f"the {label} run is too short to compare ({trajectory.n_frames} frames, {stop})")
        return {"atoms": len(symbols), "box_A": float(box), "nvt_steps": int(model.steps), "blew_up": stop,
                "s_per_step": seconds / max(model.steps, 1), "threads": int(model.evaluator.threads),
                "trajectory": trajectory}

    @staticmethod
    def _table(observed: dict) -> pd.DataFrame:
        """One row per observable of :data:`TOLERANCES`: CP2K, both boxes, their difference, the tolerance,
        whether the boxes agree and each box's status against CP2K."""
        between = compare(observed["tiled"], observed["original"])
        against = {name: {r["observable"]: r for r in compare(observed[name], observed["cp2k"])}
                   for name in ("original", "tiled")}
        rows = []
        for row in between:
            key = row["observable"]
            original, tiled = (against[name][key] for name in ("original", "tiled"))
            if key in RDF_DIFFERENCES:  # both boxes' integrals against CP2K's g; the difference: box against box
                values = {"cp2k": 0.0, "original": original["learned"], "tiled": tiled["learned"],
                          "difference": row["learned"]}
            else:
                values = {name: observed[name]["summary"].get(key) for name in ("cp2k", "original", "tiled")}
                values["difference"] = (None if values["tiled"] is None or values["original"] is None
                                        else values["tiled"] - values["original"])
            rows.append({"observable": key, "description": row["description"], "unit": row["unit"], **values,
                         "tolerance": row["tolerance"], "boxes_agree": row["status"],
                         "original_vs_cp2k": original["status"], "tiled_vs_cp2k": tiled["status"], "note": row["note"]})
        return pd.DataFrame(rows)

    @staticmethod
    def _figure(observed: dict, times, divergence, n: int):
        """g_OO, the H-O-H angle and O-H bond distributions of both boxes over CP2K's, and the copies' divergence
        (dotted: the original side, where g_OO of the tiling counts copies of one O while they are correlated)."""
        figure, axes = plt.subplots(1, 4, figsize=(17, 3.6))
        styles = {"cp2k": ("CP2K", {"color": "k", "ls": "--"}), "original": ("original box", {"color": "tab:blue"}),
                  "tiled": (f"{n}x{n}x{n} tiling", {"color": "tab:orange", "alpha": 0.8})}
        for name, (label, style) in styles.items():
            arrays = observed[name]["arrays"]
            if "OO" in arrays["rdf"]:
                axes[0].plot(arrays["rdf"]["OO"]["r"], arrays["rdf"]["OO"]["g"], label=label, **style)
            for axis, key in ((axes[1], "angles"), (axes[2], "bonds")):
                if key in arrays:
                    axis.plot(arrays[key]["centres"], arrays[key]["density"], drawstyle="steps-mid",
                              label=f"{label}: {arrays[key]['mean']:.3f}", **style)
        side = observed["original"]["box_A"]
        axes[0].axvline(side, color="0.6", ls=":", label=f"original side {side:.2f} Å (copies of one O)")
        axes[0].set(xlabel="r (Å)", ylabel="g$_{OO}$(r)")
        axes[1].set(xlabel="H-O-H angle (°)", ylabel="probability density (1/°)")
        axes[2].set(xlabel="O-H bond (Å)", ylabel="probability density (1/Å)")
        for axis in axes[:3]:
            axis.legend(fontsize=8)
        axes[3].semilogy(times[1:], divergence[1:], color="tab:orange")  # 0 at t = 0
        axes[3].set(xlabel="time (fs)", ylabel="copies' RMS distance from copy 0 (Å)")
        figure.tight_layout()
        return figure

    def save(self, out_dir):
        """Results (summary.json, tiling.csv, tiling.png) and the loss, when it was fitted here."""
        written = super().save(out_dir)
        if self.fitted:
            written.append(self.losses.save(Path(out_dir) / loss_file_name(DEFAULT_VARIANT)))
        return written


def copy_divergence(positions, n: int, n_atoms: int, box: float) -> np.ndarray:
    """RMS minimum-image distance (angstrom) of every copy's atoms from copy 0's (shifted), per frame.

    Args:
        positions: (F, n^3 n_atoms, 3) a tiled run's positions (copy c = atoms c n_atoms ... , as
            :func:`environment.builders.tile` orders them).  n: copies per axis.  box: the tiled side.

    Returns:
        (F,) angstrom; 0 while the copies move in lockstep.
    """
    copies = np.asarray(positions).reshape(len(positions), n**3, n_atoms, 3)
    shifts = copy_offsets(n, box / n)[None, :, None]
    d = minimum_image(copies[:, 1:] - copies[:, :1] - shifts[:, 1:], box)
    return np.sqrt(np.mean(np.sum(d**2, axis=-1), axis=(1, 2)))
