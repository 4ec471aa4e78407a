"""The water-box builder: geometry, density, no overlaps, exact temperature, zero momentum."""

import numpy as np
import pytest

from agents.species import CP2K_MASSES
from environment.builders import HOH_ANGLE, OH_BOND, box_for_density, water_box
from agents.geometry import minimum_image
from agents.units import EV_PER_AMU_A2_FS2, KB_EV_PER_K
from experiments.analysis import hoh_angles, molecule_census, nearest_oxygen


def test_water_box_is_a_box_of_intact_waters_at_temperature():
    symbols, positions, velocities, box = water_box(32, density_g_cm3=1.0, temperature_K=350.0, seed=4)
    assert symbols == ["O", "H", "H"] * 32
    assert box == pytest.approx(box_for_density(32, 1.0)) and 9.8 < box < 9.9
    assert np.all((positions >= 0) & (positions < box))
    _, oh = nearest_oxygen(symbols, positions, box)
    np.testing.assert_allclose(oh, OH_BOND, rtol=1e-10)
    np.testing.assert_allclose(hoh_angles(symbols, positions, box), HOH_ANGLE, rtol=1e-10)
    assert molecule_census(symbols, positions, box)["water"] == 32
    d = np.linalg.norm(minimum_image(positions[:, None] - positions[None], box), axis=-1)
    molecule = np.arange(96) // 3
    assert d[molecule[:, None] != molecule[None]].min() >= 1.5
    masses = np.array([CP2K_MASSES[s] for s in symbols])[:, None]
    np.testing.assert_allclose(np.sum(masses * velocities, axis=0), 0, atol=1e-12)
    kinetic = 0.5 * np.sum(masses * velocities**2) * EV_PER_AMU_A2_FS2
    assert 2 * kinetic / ((3 * 96 - 3) * KB_EV_PER_K) == pytest.approx(350.0, rel=1e-12)


def test_water_box_is_reproducible_and_rejects_bad_input():
    a = water_box(8, seed=1)
    b = water_box(8, seed=1)
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="n_molecules"):
        water_box(0)
    with pytest.raises(ValueError, match="density"):
        water_box(8, density_g_cm3=-1)
    with pytest.raises(ValueError, match="could not place"):
        water_box(64, density_g_cm3=3.0, max_tries=20)
