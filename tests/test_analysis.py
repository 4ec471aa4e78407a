"""Water analysis: bond graph, census, angles and spectra on constructed and real configurations."""

import warnings

import networkx as nx
import numpy as np
import pytest

from agents import geometry
from agents.geometry import displacement
from experiments.analysis import (
    WAVENUMBER_PER_INV_FS,
    angle_statistics,
    bond_graph,
    census_over_time,
    hoh_angles,
    hoh_angles_over_time,
    molecule_census,
    nearest_oxygen,
    peak_over_time,
    power_spectrum,
    rdf,
    spectral_peak,
)
from experiments.extxyz import read_positions, write_frame
from learning.cp2k.reader import default_data_path, read_trajectory


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


def test_vectorised_census_and_angles_match_the_bond_graph_on_cp2k_frames():
    traj = read_trajectory(default_data_path())
    symbols, box = traj.symbols, traj.box
    census = census_over_time(symbols, traj.positions, box)
    angles = hoh_angles_over_time(symbols, traj.positions, box)
    ions = np.flatnonzero(census["water"] < 32)
    assert len(ions) > 0  # the run has transient H3O+ / OH- pairs: the check below sees them
    for f in [*ions[:5], 0, 200]:
        graph = bond_graph(symbols, traj.positions[f], box)
        expected = dict.fromkeys(census, 0)
        names = {(1, 2): "water", (1, 1): "hydroxide", (1, 3): "hydronium", (1, 0): "oxide", (0, 1): "free_H"}
        for component in nx.connected_components(graph):
            elements = [symbols[i] for i in component]
            key = names.get((elements.count("O"), elements.count("H")), "other")
            expected[key] += 1
            if key == "water":
                o = next(i for i in component if symbols[i] == "O")
                u, v = (displacement(traj.positions[f, o], traj.positions[f, h], box) for h in component if h != o)
                cosine = u @ v / np.linalg.norm(u) / np.linalg.norm(v)
                assert angles[f, o] == pytest.approx(np.degrees(np.arccos(cosine)), abs=1e-9)
        assert {name: int(count[f]) for name, count in census.items()} == expected
        assert np.count_nonzero(~np.isnan(angles[f])) == expected["water"]


def test_chunked_pair_distances_equal_one_pass(monkeypatch):
    rng = np.random.default_rng(0)
    symbols = ["O"] * 4 + ["H"] * 8
    positions = rng.uniform(0, 6.0, (7, 12, 3))
    owner, distance = nearest_oxygen(symbols, positions, 6.0)
    r, g, n = rdf(symbols, positions, 6.0, ("O", "H"), bin_width=0.1)
    monkeypatch.setattr(geometry, "PAIR_BUDGET", 40)  # 32 O-H pairs per frame: one frame per chunk
    chunked = nearest_oxygen(symbols, positions, 6.0)
    np.testing.assert_array_equal(chunked[0], owner)
    np.testing.assert_allclose(chunked[1], distance)
    np.testing.assert_allclose(rdf(symbols, positions, 6.0, ("O", "H"), bin_width=0.1)[1], g)


def test_frames_without_water_and_bad_rdf_input():
    box = 10.0
    far = np.array([[5.0, 5.0, 5.0], [1.0, 1.0, 1.0], [9.0, 1.0, 1.0]])  # both hydrogens farther than R_BOND
    frames = np.stack([np.vstack([water(np.array([5.0, 5.0, 5.0]))]), far])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean, std = angle_statistics(["O", "H", "H"], frames, box)
    np.testing.assert_allclose(mean, [104.52, np.nan])
    assert molecule_census(["O", "H", "H"], far, box) == {
        "water": 0, "hydroxide": 0, "hydronium": 0, "oxide": 1, "free_H": 2, "other": 0}
    with pytest.raises(ValueError, match="r_max"):
        rdf(["O", "H", "H"], frames, box, ("O", "H"), r_max=6.0)
    with pytest.raises(ValueError, match="'N'"):
        rdf(["O", "H", "H"], frames, box, ("O", "N"))
    with pytest.raises(ValueError, match="two O atoms"):
        rdf(["O", "H", "H"], frames, box, ("O", "O"))
