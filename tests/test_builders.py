"""Random orientations of the water builder: proper rotations, uniform on SO(3)."""

import numpy as np

from environment.builders import random_rotations


def test_random_rotations_are_proper_and_uniform():
    R = random_rotations(20000, np.random.default_rng(0))
    np.testing.assert_allclose(R @ R.transpose(0, 2, 1), np.broadcast_to(np.eye(3), R.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    # Haar measure: E[R] = 0 and a rotated axis is uniform on the sphere, E[(R e)_i^2] = 1/3.
    assert np.abs(R.mean(axis=0)).max() < 0.02
    np.testing.assert_allclose((R[:, :, 2] ** 2).mean(axis=0), 1 / 3, atol=0.01)
    # ... and its z component is uniform on [-1, 1] (Archimedes): quartiles at -1/2, 0, 1/2.
    np.testing.assert_allclose(np.quantile(R[:, 2, 2], [0.25, 0.5, 0.75]), [-0.5, 0.0, 0.5], atol=0.02)
