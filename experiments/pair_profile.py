"""Does a loss have a floor? Its total E = sum_k H_k (4.5) as two atoms of a frame are pushed together.

Atom ``j`` is moved along the line from atom ``i`` (minimum image) to each distance r, every other atom
staying where the frame has it; E(r) is reported relative to its value at the largest r.  For a
shared loss E is the potential the agents descend (forces -grad E); for the paper's own losses it is
the sum of the agents' losses, which no agent descends as a whole.  A learned quadratic loss can fall
without bound below the closest contact of its training frames, where no data constrain it: that is
what stops long runs (README, "Beyond the paper", 100 ps).

    python -m experiments.pair_profile LOSS FRAME I J [--distances 1,1.3,...] [--molecule]

FRAME is ``PATH[:FRAME]`` as ``mld simulate --from`` reads it (a CP2K run, ``trajectory.xyz``,
``last_good_frame.xyz``, ...).  Distances in angstrom, energies in eV.
"""

from __future__ import annotations

import argparse

import numpy as np

from agents.geometry import displacement
from agents.loss_file import load_losses
from environment.forces import ForceEvaluator
from experiments.cli.options import path_and_frame
from experiments.start import read_start
from learning.contact_probes import push_together

#: Default distances (angstrom): from well inside the closest O-O contact of liquid water to beyond it.
DISTANCES = (1.0, 1.3, 1.45, 1.64, 1.8, 2.0, 2.2, 2.4, 2.6, 2.8)


def pair_profile(losses, positions, box: float, symbols, i: int, j: int, distances=DISTANCES,
                 molecule: bool = False) -> np.ndarray:
    """E(r) - E(r_max) (eV) for atom ``j`` at each distance r (angstrom) from atom ``i`` along their axis;
    ``molecule``: ``j``'s whole molecule moves with it, rigidly (the geometry of a contact probe,
    :func:`learning.contact_probes.push_together`)."""
    positions = np.asarray(positions, dtype=np.float64)
    if i == j or not (0 <= i < len(positions) and 0 <= j < len(positions)):
        raise ValueError(f"atoms {i} and {j}: need two different atoms of the {len(positions)} in the frame")
    distances = np.asarray(distances, dtype=np.float64)
    if distances.ndim != 1 or len(distances) < 2 or not np.all(distances > 0):
        raise ValueError(f"distances: need two or more positive distances in angstrom, got {distances.tolist()}")
    axis = displacement(positions[i], positions[j], box)
    axis /= np.linalg.norm(axis)
    evaluate = ForceEvaluator(losses, symbols, box)
    energies = np.empty(len(distances))
    for n, r in enumerate(distances):
        if molecule:
            moved = push_together(positions, box, symbols, i, j, r)
        else:
            moved = positions.copy()
            moved[j] = positions[i] + r * axis
        energies[n] = evaluate(moved)[0].sum()
    return energies - energies[np.argmax(distances)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("loss", help="a loss JSON (mld fit, mld beyond)")
    parser.add_argument("frame", metavar="PATH[:FRAME]", help="the frame, as mld simulate --from reads it")
    parser.add_argument("i", type=int, help="the atom that stays")
    parser.add_argument("j", type=int, help="the atom that moves")
    parser.add_argument("--distances", default=",".join(f"{r:g}" for r in DISTANCES),
                        help="comma-separated distances, angstrom (default: %(default)s)")
    parser.add_argument("--molecule", action="store_true",
                        help="move J's whole molecule rigidly (as a contact probe), not J alone")
    args = parser.parse_args(argv)
    path, frame = path_and_frame(args.frame)
    start = read_start(path, frame)
    distances = [float(r) for r in args.distances.split(",")]
    energies = pair_profile(load_losses(args.loss), start.positions, start.box, start.symbols, args.i, args.j,
                            distances, args.molecule)
    pair = f"{start.symbols[args.i]}{args.i}-{start.symbols[args.j]}{args.j}"
    moved = "with its molecule " if args.molecule else ""
    print(f"E = sum of the agents' losses as {pair} is moved {moved}along its axis ({start.description}), "
          f"relative to r = {max(distances):g} A:")
    for r, e in zip(distances, energies):
        print(f"  r = {r:5.2f} A   E = {e:+10.3f} eV")


if __name__ == "__main__":
    main()
