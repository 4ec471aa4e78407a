"""The Verlet neighbour list (environment/neighbors.py) against brute force."""

import numba
import numpy as np
import pytest

from environment.neighbors import NeighborList, _grid
from agents.geometry import minimum_image


def brute_pairs(positions, box, radius):
    d = minimum_image(positions[:, None, :] - positions[None, :, :], box)
    r = np.linalg.norm(d, axis=-1)
    np.fill_diagonal(r, np.inf)
    return {(int(k), int(j)) for k, j in zip(*np.nonzero(r <= radius))}


def listed(nl):
    k, j = nl.pairs()
    pairs = set(zip(k.tolist(), j.tolist()))
    assert len(k) == len(pairs)  # no duplicates
    return pairs


# (box, atoms, cutoff): one cell (all pairs), then 5 (the smallest stencil), 6, 11 (box = 12 r / 2 exactly), 14 half-radius cells
GRIDS = [(12.0, 150, 4.0), (13.0, 250, 4.0), (15.2, 300, 4.0), (30.0, 1500, 4.0), (26.0, 900, 2.5)]


@pytest.mark.parametrize("box, n, cutoff", GRIDS)
@pytest.mark.parametrize("n_species", [1, 2, 3])
def test_same_pairs_as_brute_force(box, n, cutoff, n_species):
    rng = np.random.default_rng(n + n_species)
    positions = rng.uniform(-box, 2 * box, (n, 3))  # periodic images outside the box too
    species = rng.integers(0, n_species, n)
    nl = NeighborList(cutoff, skin=1.0)
    nl.build(positions, box, species, n_species)
    assert listed(nl) == brute_pairs(positions, box, cutoff + 1.0)
    for row in range(0, n, 17):  # rows are grouped by species
        for a in range(n_species):
            assert np.all(species[nl.neighbors_of(row, a)] == a)
    assert np.array_equal(np.sort(nl.order), np.arange(n))
    counts = np.diff(nl.pointers, axis=1)
    assert nl.max_block == counts.max() and nl.max_row == counts.sum(axis=1).max()


def test_the_grids_cover_every_path():
    assert [_grid(box, cutoff + 1.0) for box, _, cutoff in GRIDS] == [(1, 0), (5, 2), (6, 2), (11, 2), (14, 2)]


@pytest.mark.parametrize("box, radius", [(12.5, 5.0), (13.0, 5.0), (21.0, 3.5), (16.0, 6.0)])
def test_atoms_on_cell_borders(box, radius):
    """Atoms exactly on cell borders and box faces (0, box, -box): every pair within the radius is listed."""
    n_cell, reach = _grid(box, radius)
    side = box / n_cell
    rng = np.random.default_rng(7)
    ticks = np.concatenate([np.arange(-1, n_cell + 2) * side, [-0.0, box, -box, 2 * box]])
    positions = rng.choice(ticks, (400, 3))
    positions[::3, 0] = rng.uniform(0, box, len(positions[::3]))  # some off the grid in one coordinate
    positions = np.unique(positions, axis=0)  # no coincident atoms
    species = rng.integers(0, 2, len(positions))
    nl = NeighborList(radius - 0.5, skin=0.5)
    nl.build(positions, box, species, 2)
    pairs = listed(nl)
    assert brute_pairs(positions, box, radius - 1e-9) <= pairs <= brute_pairs(positions, box, radius + 1e-9)


def test_independent_of_the_thread_count():
    rng = np.random.default_rng(2)
    box = 24.0
    positions = rng.uniform(0, box, (1400, 3))
    species = rng.integers(0, 2, 1400)
    built = []
    saved = numba.get_num_threads()
    try:
        for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(threads)
            nl = NeighborList(4.5, skin=0.5)
            nl.build(positions, box, species, 2)
            built.append((nl.indices, nl.pointers, nl.order))
    finally:
        numba.set_num_threads(saved)
    for a, b in zip(*built):
        assert np.array_equal(a, b)


def test_rebuild_only_after_half_the_skin():
    rng = np.random.default_rng(1)
    box = 25.0
    positions = rng.uniform(0, box, (800, 3))
    species = np.zeros(800, dtype=int)
    nl = NeighborList(5.0, skin=1.0)
    assert nl.update(positions, box, species) and nl.n_builds == 1
    assert nl.build_seconds > 0
    moved = positions.copy()
    moved[3] += [0.4999, 0.0, 0.0]  # just under skin / 2
    moved[7] -= [0.0, 0.3, 0.3]  # |shift| = 0.42 < skin / 2
    assert not nl.update(moved, box, species) and nl.n_builds == 1
    moved[5] += [0.0, 0.0, 0.5001]  # just over
    assert nl.update(moved, box, species) and nl.n_builds == 2
    # a move across the periodic boundary counts as its minimum image
    wrapped = moved.copy()
    wrapped[9] += [box, 0.0, 0.0]
    assert not nl.update(wrapped, box, species)
    # another species, box or atom count: rebuilt
    other = species.copy()
    other[0] = 1
    assert nl.update(wrapped, box, other, 2) and nl.n_builds == 3
    assert nl.update(wrapped, box + 1.0, other, 2) and nl.update(wrapped[:-1], box + 1.0, other[:-1], 2)


def test_no_pair_within_the_cutoff_is_missed_before_a_rebuild():
    """Two atoms just outside r_c + skin approaching by just under skin / 2 each stay unlisted but
    outside r_c; random moves under skin / 2 keep every pair within r_c listed."""
    cutoff, skin, box = 4.0, 1.0, 20.0
    positions = np.array([[5.0, 5.0, 5.0], [5.0 + cutoff + skin + 1e-6, 5.0, 5.0], [15.0, 15.0, 15.0]])
    nl = NeighborList(cutoff, skin)
    nl.update(positions, box, np.zeros(3, dtype=int))
    assert listed(nl) == set()
    closer = positions.copy()
    closer[0, 0] += 0.5 * skin - 1e-6
    closer[1, 0] -= 0.5 * skin - 1e-6
    assert not nl.update(closer, box, np.zeros(3, dtype=int))
    assert np.linalg.norm(closer[1] - closer[0]) > cutoff
    closer[1, 0] -= 2e-6  # now over skin / 2: rebuilt, and the pair is listed
    assert nl.update(closer, box, np.zeros(3, dtype=int)) and listed(nl) == {(0, 1), (1, 0)}

    rng = np.random.default_rng(3)
    positions = rng.uniform(0, box, (700, 3))
    species = rng.integers(0, 2, 700)
    nl = NeighborList(cutoff, skin)
    nl.update(positions, box, species, 2)
    for _ in range(5):
        step = rng.normal(size=positions.shape)
        step *= rng.uniform(0, 0.5 * skin, (len(step), 1)) / np.linalg.norm(step, axis=1, keepdims=True)
        moved = positions + step
        assert not nl.update(moved, box, species, 2)
        assert brute_pairs(moved, box, cutoff) <= listed(nl)


def test_forces_with_the_cell_list_match_the_reference():
    """Cutoff-mode losses and forces through the half-radius cell list equal the numpy reference to 1e-10,
    with the list kept over moves and rebuilt."""
    from test_kernels import close, random_losses, reference_forces, water_like

    from environment.kernels import LossForces

    rng = np.random.default_rng(4)
    box = 18.0
    positions, symbols = water_like(180, box, rng)
    losses = random_losses(rng)
    fast = LossForces(losses, symbols, box, cutoff=4.0, skin=0.6)
    assert _grid(box, fast.neighbors.radius)[1] == 2
    for scale in (0.0, 0.02, 0.3):  # list kept, then rebuilt
        moved = positions + rng.normal(scale=scale, size=positions.shape)
        H, F = fast(moved)
        H0, F0 = reference_forces(losses, moved, box, symbols, cutoff=4.0)
        assert close(H, H0) and close(F, F0)
    assert fast.neighbors.n_builds == 2
