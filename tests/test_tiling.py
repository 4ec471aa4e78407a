"""``environment.builders.tile``: an n^3 tiling of a frame is the same periodic system in a wider box.

The physics check: a loss whose cutoffs are <= box/2 sees, on every copy, exactly the frame's
neighbourhoods, so its invariants, loss values and forces (own and shared, numpy reference and numba
fast path) on every copy equal the untiled ones.
"""

import numpy as np
import pytest

from agents.descriptor_jacobian import descriptor_jacobian
from agents.geometry import minimum_image
from environment.builders import tile
from environment.forces import ForceEvaluator
from experiments.tiling import copy_divergence
from manybody_support import EVERY_KIND, random_loss, small_wall, water_frame


@pytest.fixture(scope="module")
def frame():
    positions, box, symbols = water_frame()
    rng = np.random.default_rng(3)
    return symbols, positions, box, rng.normal(scale=0.02, size=positions.shape)


def test_tiling_copies_the_frame_into_a_box_n_times_wider(frame):
    symbols, positions, box, velocities = frame
    N = len(symbols)
    tiled_symbols, tiled, tiled_velocities, side = tile(symbols, positions, box, 2, velocities)
    assert side == 2 * box and len(tiled_symbols) == len(tiled) == 8 * N
    assert tiled.min() >= 0 and tiled.max() < side
    for c in range(8):
        a, b, d = np.unravel_index(c, (2, 2, 2))
        np.testing.assert_allclose(tiled[c * N:(c + 1) * N], np.mod(positions, box) + box * np.array([a, b, d]))
        np.testing.assert_array_equal(tiled_velocities[c * N:(c + 1) * N], velocities)
        assert tiled_symbols[c * N:(c + 1) * N] == list(symbols)
    # the density is the frame's: the cell holds 8x the atoms in 8x the volume
    assert len(tiled) / side**3 == pytest.approx(N / box**3)
    assert tile(symbols, positions, box, 1)[2] is None


def test_the_nearest_copy_is_at_the_minimum_image_distance(frame):
    """For atoms i (copy 0) and j: min over copies of j of the tiled minimum-image distance = r_ij."""
    symbols, positions, box, _ = frame
    N = len(symbols)
    _, tiled, _, side = tile(symbols, positions, box, 3)
    original = np.linalg.norm(minimum_image(positions[:, None] - positions[None], box), axis=-1)
    tiled_d = np.linalg.norm(minimum_image(tiled[:N, None] - tiled[None], side), axis=-1)
    np.testing.assert_allclose(tiled_d.reshape(N, 27, N).min(axis=1), original, atol=1e-12)


@pytest.mark.parametrize("form", ["shared", "own"])
def test_invariants_losses_and_forces_on_every_copy_equal_the_untiled_ones(frame, form):
    symbols, positions, box, _ = frame
    assert EVERY_KIND.rc_max <= box / 2
    loss = random_loss(EVERY_KIND, form, np.random.default_rng(5), wall=small_wall())
    tiled_symbols, tiled, _, side = tile(symbols, positions, box, 2)
    phi = descriptor_jacobian(positions, box, symbols, EVERY_KIND).phi
    np.testing.assert_allclose(descriptor_jacobian(tiled, side, tiled_symbols, EVERY_KIND).phi, np.tile(phi, (8, 1)),
                               rtol=0, atol=1e-10)
    for engine in ("numpy", "numba"):
        H, F = ForceEvaluator(loss, symbols, box, engine)(positions)
        H_tiled, F_tiled = ForceEvaluator(loss, tiled_symbols, side, engine)(tiled)
        assert np.abs(F).max() > 1.0
        np.testing.assert_allclose(H_tiled, np.tile(H, 8), rtol=0, atol=1e-10)
        np.testing.assert_allclose(F_tiled, np.tile(F, (8, 1)), rtol=0, atol=1e-10)


def test_tiling_names_a_bad_argument(frame):
    symbols, positions, box, velocities = frame
    with pytest.raises(ValueError, match="n \\(copies per axis\\)"):
        tile(symbols, positions, box, 0)
    with pytest.raises(ValueError, match="n \\(copies per axis\\)"):
        tile(symbols, positions, box, 1.5)
    with pytest.raises(ValueError, match="velocities must have the shape"):
        tile(symbols, positions, box, 2, velocities[:-1])
    with pytest.raises(ValueError, match="positions must have shape"):
        tile(symbols[:-1], positions, box, 2)


def test_copy_divergence_is_the_rms_distance_of_the_copies_from_copy_0(frame):
    symbols, positions, box, _ = frame
    N = len(symbols)
    _, tiled, _, side = tile(symbols, positions, box, 2)
    moved = tiled.copy()
    moved[3 * N + 5] += [0.3, 0.0, -0.4]  # one atom of copy 3 moved by 0.5 A ...
    moved[N + 7] = np.mod(moved[N + 7] + [0.0, 0.0, side - 0.2], side)  # ... and one of copy 1 by -0.2 A, wrapped
    expected = np.sqrt((0.5**2 + 0.2**2) / (7 * N))
    np.testing.assert_allclose(copy_divergence(np.stack([tiled, moved]), 2, N, side), [0.0, expected], atol=1e-12)
