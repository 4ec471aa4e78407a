"""Learned losses against CP2K's contact probes: the energy of two molecules pushed together.

For every probe of ``mld cp2k probes`` (a frame of the source run with one molecule moved rigidly so
that an intermolecular pair is ``distance`` apart), the DFT energy relative to the unmoved frame,
E_probe - E_frame, beside each loss's E = sum_k H_k at the same two geometries.  A loss that falls
where DFT rises lets molecules fuse in long runs (README, "Beyond the paper").  The relative force
RMSE (5.2) of each loss over the probes comes with it.  Energies in eV, distances in angstrom.

    mld contacts --probes DIR --loss NAME=LOSS.json [--loss ...] --out DIR
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from environment.forces import ForceEvaluator
from experiments.outputs import Results
from learning.contact_probes import read_probes
from learning.cp2k.reader import portable_path
from learning.scoring import relative_force_rmse


def contact_energies(losses: dict, probes, table: pd.DataFrame, run) -> pd.DataFrame:
    """``table`` (probes.csv) with ``dft_eV`` and one ``<name>_eV`` column per loss: each probe's energy
    relative to the unmoved frame ``frame`` of ``run``."""
    out = table[["probe", "frame", "i", "j", "r0_A", "distance_A"]].copy()
    frames = table["frame"].to_numpy()
    out["dft_eV"] = probes.potential_energy[table["probe"].to_numpy()] - run.potential_energy[frames]
    for name, loss in losses.items():
        energy = ForceEvaluator(loss, list(run.symbols), run.box)
        unmoved = {f: energy(run.positions[f])[0].sum() for f in np.unique(frames)}
        out[f"{name}_eV"] = [energy(probes.positions[p])[0].sum() - unmoved[f]
                             for p, f in zip(table["probe"], frames)]
    return out


def contact_check(losses: dict, probes_dir) -> Results:
    """:func:`contact_energies` and the force RMSE of every loss on the probes of ``probes_dir``, with a figure."""
    probes, table, run = read_probes(probes_dir)
    energies = contact_energies(losses, probes, table, run)
    summary = {"probes": portable_path(probes_dir), "source": portable_path(run.source), "count": len(table),
               "force_relative_rmse": {name: relative_force_rmse(loss, probes) for name, loss in losses.items()},
               "energy_rmse_eV": {name: float(np.sqrt(np.mean((energies[f"{name}_eV"] - energies["dft_eV"]) ** 2)))
                                  for name in losses}}
    return Results(summary, {"contacts": energies}, {"contacts": _figure(energies, list(losses))})


def _figure(energies: pd.DataFrame, names: list[str]):
    groups = list(energies.groupby(["frame", "i", "j"], sort=False))
    columns = min(4, len(groups))
    rows = -(-len(groups) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), squeeze=False)
    for ax, ((frame, i, j), group) in zip(axes.flat, groups):
        group = group.sort_values("distance_A")
        r = np.concatenate([group["distance_A"], [group["r0_A"].iloc[0]]])
        ax.plot(r, np.concatenate([group["dft_eV"], [0.0]]), "ko", label="CP2K")
        for name in names:
            ax.plot(r, np.concatenate([group[f"{name}_eV"], [0.0]]), "-s", ms=3, label=name)
        ax.axhline(0.0, color="0.8", lw=0.8)
        ax.set_title(f"frame {frame}, atoms {i}-{j}", fontsize=9)
        ax.set_xlabel("pair distance (angstrom)")
        ax.set_ylabel("E - E(frame) (eV)")
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    return figure
