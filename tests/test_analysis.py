"""Water analysis: bond graph, census, angles and spectra on constructed and real configurations."""

import numpy as np
import pytest

from experiments.analysis import (
    WAVENUMBER_PER_INV_FS,
    angle_statistics,
    bond_graph,
    census_over_time,
    hoh_angles,
    molecule_census,
    nearest_oxygen,
    peak_over_time,
    power_spectrum,
    spectral_peak,
)
from experiments.extxyz import read_positions, write_frame


def water(origin, angle_deg=104.52, r=0.9572):
    half = np.radians(angle_deg) / 2
    return np.array(
        [origin, origin + r * np.array([np.sin(half), np.cos(half), 0]), origin + r * np.array([-np.sin(half), np.cos(half), 0])]
    )


SYMBOLS = ["O", "H", "H", "O", "H", "H"]


def test_angles_and_bonds_of_two_waters_across_the_boundary():
    box = 8.0
    positions = np.vstack([water(np.array([0.1, 7.5, 4.0])), water(np.array([4.0, 4.0, 4.0]), angle_deg=110.0)])
    owner, distance = nearest_oxygen(SYMBOLS, positions % box, box)
    np.testing.assert_array_equal(owner, [0, 0, 3, 3])
    np.testing.assert_allclose(distance, 0.9572, rtol=1e-12)
    np.testing.assert_allclose(sorted(hoh_angles(SYMBOLS, positions % box, box)), [104.52, 110.0], rtol=1e-10)
    graph = bond_graph(SYMBOLS, positions % box, box)
    assert sorted(graph.edges) == [(0, 1), (0, 2), (3, 4), (3, 5)]


def test_census_sees_a_proton_transfer():
    box = 10.0
    positions = np.vstack([water(np.array([2.0, 2.0, 2.0])), water(np.array([5.0, 2.0, 2.0]))])
    assert molecule_census(SYMBOLS, positions, box)["water"] == 2
    moved = positions.copy()
    moved[1] = positions[3] + np.array([0.0, 0.0, 0.98])  # H of the first water now sits on the second O
    census = molecule_census(SYMBOLS, moved, box)
    assert (census["water"], census["hydroxide"], census["hydronium"]) == (0, 1, 1)
    over_time = census_over_time(SYMBOLS, np.stack([positions, moved]), box)
    np.testing.assert_array_equal(over_time["hydroxide"], [0, 1])


def test_power_spectrum_finds_a_known_vibration():
    dt = 0.5
    times = np.arange(2000) * dt
    wavenumber = 3400.0
    frequency = wavenumber / WAVENUMBER_PER_INV_FS  # 1/fs
    rng = np.random.default_rng(0)
    signals = 1.0 + 0.03 * np.sin(2 * np.pi * frequency * times[:, None] + rng.uniform(0, 6, 8))
    wavenumbers, power = power_spectrum(signals, dt)
    assert power.max() == 1.0
    resolution = wavenumbers[1]
    assert abs(spectral_peak(signals, dt) - wavenumber) <= resolution
    centres, peaks = peak_over_time(signals, dt, window_fs=200.0)
    assert len(centres) == len(peaks) > 3
    assert np.all(np.abs(peaks - wavenumber) <= 1 / (200.0) * WAVENUMBER_PER_INV_FS)
    with pytest.raises(ValueError, match="at least 4 frames"):
        power_spectrum(signals[:3], dt)


def test_extxyz_round_trip(tmp_path):
    positions = np.vstack([water(np.array([1.0, 1.0, 1.0])), water(np.array([4.0, 4.0, 4.0]))])
    path = tmp_path / "t.xyz"
    write_frame(path, SYMBOLS, positions, 8.0, velocities=np.zeros_like(positions), step=0)
    write_frame(path, SYMBOLS, positions + 0.5, 8.0, append=True, step=1, time_fs=0.5)
    symbols, frames = read_positions(path)
    assert symbols == SYMBOLS
    np.testing.assert_allclose(frames[1], positions + 0.5, atol=1e-10)
    mean, std = angle_statistics(symbols, frames, 8.0)
    np.testing.assert_allclose(mean, 104.52, rtol=1e-8)


def test_ase_reads_the_extended_xyz(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    positions = np.vstack([water(np.array([1.0, 1.0, 1.0])), water(np.array([4.0, 4.0, 4.0]))])
    path = tmp_path / "t.xyz"
    write_frame(path, SYMBOLS, positions, 8.0, velocities=np.ones_like(positions), step=0)
    write_frame(path, SYMBOLS, positions + 0.25, 8.0, velocities=np.ones_like(positions), append=True, step=1)
    frames = ase_io.read(path, index=":")
    assert len(frames) == 2 and frames[1].get_chemical_symbols() == SYMBOLS
    np.testing.assert_allclose(frames[1].positions, positions + 0.25, atol=1e-9)
    np.testing.assert_allclose(frames[0].cell.lengths(), 8.0)
    assert all(frames[0].pbc)
