"""The Verlet neighbour list (environment/neighbors.py) against brute force."""

import numpy as np
import pytest

from environment.neighbors import NeighborList
from agents.geometry import minimum_image


def brute_pairs(positions, box, radius):
    d = minimum_image(positions[:, None, :] - positions[None, :, :], box)
    r = np.linalg.norm(d, axis=-1)
    np.fill_diagonal(r, np.inf)
    return {(int(k), int(j)) for k, j in zip(*np.nonzero(r <= radius))}


@pytest.mark.parametrize("box, n", [(12.0, 150), (30.0, 1500)])  # all-pairs path, cell path
def test_same_pairs_as_brute_force(box, n):
    rng = np.random.default_rng(0)
    positions = rng.uniform(-box, 2 * box, (n, 3))
    species = rng.integers(0, 3, n)
    nl = NeighborList(4.0, skin=1.0)
    nl.build(positions, box, species, 3)
    k, j = nl.pairs()
    assert set(zip(k.tolist(), j.tolist())) == brute_pairs(positions, box, 5.0)
    assert len(k) == len(set(zip(k.tolist(), j.tolist())))  # no duplicates
    # rows are grouped by species
    for row in range(0, n, 17):
        for a in range(3):
            assert np.all(species[nl.neighbors_of(row, a)] == a)
    within = {(a, b) for a, b in brute_pairs(positions, box, 4.0)}
    assert within <= set(zip(k.tolist(), j.tolist()))


def test_rebuild_only_after_half_the_skin():
    rng = np.random.default_rng(1)
    box = 25.0
    positions = rng.uniform(0, box, (800, 3))
    species = np.zeros(800, dtype=int)
    nl = NeighborList(5.0, skin=1.0)
    assert nl.update(positions, box, species) and nl.n_builds == 1
    moved = positions.copy()
    moved[3] += [0.45, 0.0, 0.0]
    moved[7] -= [0.0, 0.3, 0.3]  # |shift| = 0.42 < skin / 2
    assert not nl.update(moved, box, species) and nl.n_builds == 1
    moved[5] += [0.0, 0.0, 0.51]
    assert nl.update(moved, box, species) and nl.n_builds == 2
    # a move across the periodic boundary counts as its minimum image
    wrapped = moved.copy()
    wrapped[9] += [box, 0.0, 0.0]
    assert not nl.update(wrapped, box, species)
