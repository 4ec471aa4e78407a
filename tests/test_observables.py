"""The analysis layer on constructed systems with known answers, on the embedded CP2K run, and end to end."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.transform import Rotation

from agents import geometry
from agents.geometry import wrap
from agents.units import ACCEL_EV_PER_AMU_A, EV_PER_AMU_A2_FS2, KB_EV_PER_K
from experiments.analysis import (
    WAVENUMBER_PER_INV_FS,
    band_positions,
    com_kinetic_share,
    diffusion_coefficient,
    energy_drift_eV_per_ps,
    first_peak,
    first_peak_over_windows,
    heating_rate_K_per_ps,
    min_pair_distance,
    msd,
    rdf,
    species_temperatures,
    vdos,
    water_structure,
)
from experiments.extxyz import write_frame
from experiments.observables import (
    TrajectoryData,
    analyze,
    compare,
    compute_observables,
    from_cp2k,
    read_any_trajectory,
)
from learning.cp2k.reader import default_data_path, read_trajectory

MASSES = {"O": 15.9994, "H": 1.00794}


# -- constructed systems ---------------------------------------------------------------------
def test_ideal_gas_has_g_equal_to_one():
    rng = np.random.default_rng(1)
    box, n = 10.0, 100
    symbols = ["O"] * n + ["H"] * n
    positions = rng.uniform(0, box, (40, 2 * n, 3))
    for pair in (("O", "O"), ("O", "H")):
        r, g, coordination = rdf(symbols, positions, box, pair, bin_width=0.1)
        assert r[-1] == pytest.approx(box / 2 - 0.05)
        far = r > 1.5
        assert abs(g[far].mean() - 1) < 0.01
        assert np.max(np.abs(g[far] - 1)) < 0.15  # about 5 sigma of the counting noise
        neighbours = n - (pair[0] == pair[1])
        expected = neighbours / box**3 * 4 / 3 * np.pi * (r + 0.05) ** 3
        np.testing.assert_allclose(coordination[far], expected[far], rtol=0.03)


def test_simple_cubic_lattice_has_peaks_at_its_shells():
    a, cells = 2.013, 5
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 3) * a
    box = cells * a
    symbols = ["O"] * len(grid)
    r, g, coordination = rdf(symbols, grid, box, ("O", "O"), bin_width=0.04)
    shells = a * np.sqrt([1, 2, 3, 4, 5, 6])
    occupied = r[g > 0]
    assert len(occupied) == len(shells)
    np.testing.assert_allclose(occupied, shells, atol=0.02)
    np.testing.assert_allclose(np.interp([1.2 * a, 1.6 * a, 1.9 * a], r, coordination), [6, 18, 26])
    assert first_peak(r, g)[0] == pytest.approx(a, abs=0.02)


def test_first_peak_over_windows_follows_a_lattice_as_it_melts():
    a, cells = 2.9, 4
    grid = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 3) * a
    rng = np.random.default_rng(0)
    frames = np.array([grid + rng.normal(scale=0.02 if f < 4 else 0.25, size=grid.shape) for f in range(8)])
    symbols, box = ["O"] * len(grid), cells * a
    starts, r, height = first_peak_over_windows(symbols, frames, box, 4)
    assert list(starts) == [0, 4] and np.allclose(r, a, atol=0.1) and height[0] > 2 * height[1]
    whole = first_peak(*rdf(symbols, frames, box)[:2])
    assert [x[0] for x in first_peak_over_windows(symbols, frames, box, 8)[1:]] == list(whole)
    assert list(first_peak_over_windows(symbols, frames, box, 3)[0]) == [0, 3]  # frames 6-7: no whole window


def _dimers(wavenumbers, dt, n_frames, rng):
    """Velocities (F, 2n, 3) of O-H harmonic dimers vibrating at ``wavenumbers`` (cm^-1), random phases."""
    m_o, m_h = MASSES["O"], MASSES["H"]
    times = np.arange(n_frames) * dt
    axes = Rotation.random(len(wavenumbers), random_state=rng).apply([0.0, 0.0, 1.0])
    omega = 2 * np.pi * np.asarray(wavenumbers) / WAVENUMBER_PER_INV_FS
    rate = -0.1 * omega * np.sin(omega * times[:, None] + rng.uniform(0, 2 * np.pi, len(omega)))  # dq/dt
    v_o = -m_h / (m_o + m_h) * rate[..., None] * axes
    v_h = m_o / (m_o + m_h) * rate[..., None] * axes
    return np.concatenate([v_o, v_h], axis=1), ["O"] * len(omega) + ["H"] * len(omega)


def test_harmonic_dimers_vdos_peaks_at_their_frequencies():
    rng = np.random.default_rng(2)
    dt = 0.5
    velocities, symbols = _dimers([1600.0] * 4 + [3300.0] * 4, dt, 2000, rng)
    masses = np.array([MASSES[s] for s in symbols])
    wavenumbers, spectra = vdos(velocities, symbols, masses, dt, segment_frames=400)
    grid = wavenumbers[1]
    assert grid == pytest.approx(WAVENUMBER_PER_INV_FS / (4 * 400 * dt))
    for s in ("O", "H"):
        assert np.trapezoid(spectra[s], wavenumbers) == pytest.approx(3 * 8)
        bands = band_positions(wavenumbers, spectra[s])
        assert bands["bend"] == pytest.approx(1600, abs=grid)
        assert bands["stretch"] == pytest.approx(3300, abs=grid)
    single, spectra = vdos(velocities[:, [0, 8]], ["O", "H"], masses[[0, 8]], dt)
    assert single[np.argmax(spectra["H"])] == pytest.approx(1600, abs=single[1])
    with pytest.raises(ValueError, match="velocities"):
        vdos(None, symbols, masses, dt)
    with pytest.raises(ValueError, match="segment_frames"):
        vdos(velocities, symbols, masses, dt, segment_frames=4000)


def test_ballistic_msd_is_v_t_squared():
    rng = np.random.default_rng(3)
    velocities = rng.normal(0, 0.01, (50, 3))
    velocities -= velocities.mean(axis=0)  # no centre-of-mass motion (equal masses)
    times = np.arange(100) * 2.0
    positions = rng.uniform(0, 10, (50, 3)) + times[:, None, None] * velocities
    expected = np.mean(np.sum(velocities**2, axis=1)) * times[:51] ** 2
    lags, values = msd(positions, 2.0)
    np.testing.assert_allclose(lags, times[:51])
    np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-12)
    drifting = positions + times[:, None, None] * np.array([0.02, 0.0, -0.01])  # a common drift is removed
    np.testing.assert_allclose(msd(drifting, 2.0)[1], expected, rtol=1e-9, atol=1e-12)


def test_random_walk_msd_is_6_d_t():
    rng = np.random.default_rng(4)
    dt, sigma = 1.0, 0.05
    steps = rng.normal(0, sigma, (2000, 400, 3))
    positions = np.cumsum(steps, axis=0)
    d = sigma**2 / (2 * dt)
    lags, values = msd(positions, dt)
    early = (lags > 0) & (lags <= 200)
    np.testing.assert_allclose(values[early], 6 * d * lags[early], rtol=0.05)
    fit = diffusion_coefficient(lags, values, 100.0)
    assert fit["window_fs"] == [100.0, 1000.0] and fit["points"] == 901
    assert fit["D_A2_per_fs"] == pytest.approx(d, rel=0.08)
    assert fit["D_1e-5_cm2_per_s"] == pytest.approx(1e4 * fit["D_A2_per_fs"])
    with pytest.raises(ValueError, match="fit window"):
        diffusion_coefficient(lags, values, 5000.0)


def _rigid_waters(n_frames, rng, spacing=3.2, cells=3, angle=104.52, bond=0.9572):
    """Symbols and wrapped positions (F, 3 n, 3) of n = cells^3 rigid waters, randomly oriented each frame."""
    half = np.radians(angle) / 2
    body = np.array([[0, 0, 0], [bond * np.sin(half), bond * np.cos(half), 0],
                     [-bond * np.sin(half), bond * np.cos(half), 0]])
    centres = np.stack(np.meshgrid(*[np.arange(cells)] * 3, indexing="ij"), -1).reshape(-1, 3) * spacing
    n = len(centres)
    rotations = Rotation.random(n_frames * n, random_state=rng).as_matrix().reshape(n_frames, n, 3, 3)
    atoms = centres[None, :, None] + np.einsum("fnij,aj->fnai", rotations, body)  # (F, n, 3 atoms, 3)
    order = np.concatenate([np.arange(n) * 3, np.arange(n) * 3 + 1, np.arange(n) * 3 + 2])
    order = np.concatenate([order[:n], np.sort(order[n:])])  # oxygens first, then the hydrogens
    positions = atoms.reshape(n_frames, 3 * n, 3)[:, order]
    return ["O"] * n + ["H"] * 2 * n, wrap(positions, spacing * cells), spacing * cells


def test_rigid_waters_angle_and_bond_statistics_are_their_geometry():
    rng = np.random.default_rng(5)
    symbols, positions, box = _rigid_waters(6, rng)
    structure = water_structure(symbols, positions, box)
    np.testing.assert_allclose(structure["angles"], 104.52, atol=1e-9)
    np.testing.assert_allclose(structure["bonds"], 0.9572, atol=1e-9)
    assert structure["non_h2o_fraction"] == 0.0
    moved = positions.copy()
    moved[5, 27] = positions[5, 1] + np.array([0.0, 0.0, 0.98])  # a hydrogen of water 0 jumps onto oxygen 1
    structure = water_structure(symbols, wrap(moved, box), box)
    assert structure["non_h2o_fraction"] == pytest.approx(2 / (6 * 27))
    assert structure["census"]["hydronium"].tolist() == [0, 0, 0, 0, 0, 1]
    result = compute_observables(TrajectoryData(symbols, positions, None, box, None, np.ones(81), "rigid", "test"))
    summary = result["summary"]
    assert summary["hoh_angle_mean_deg"] == pytest.approx(104.52) and summary["oh_bond_mean_A"] == pytest.approx(0.9572)
    assert summary["hoh_angle_std_deg"] < 1e-9 and summary["oh_bond_std_A"] < 1e-9
    assert summary["T_O_K"] is None and "no velocities" in result["missing"]["bend_cm1"]["reason"]
    assert "no times" in result["missing"]["msd_50fs_O_A2"]["reason"]


def test_maxwell_boltzmann_draw_has_its_species_temperatures():
    rng = np.random.default_rng(6)
    symbols = ["O"] * 200 + ["H"] * 400
    target = {"O": 300.0, "H": 450.0}
    masses = np.array([MASSES[s] for s in symbols])
    sigma = np.sqrt(np.array([KB_EV_PER_K * target[s] for s in symbols]) / masses * ACCEL_EV_PER_AMU_A)
    velocities = rng.normal(0.0, 1.0, (20, len(symbols), 3)) * sigma[:, None]
    per_frame, mean = species_temperatures(velocities, masses, symbols)
    assert mean["O"] == pytest.approx(300.0, rel=0.04)
    assert mean["H"] == pytest.approx(450.0, rel=0.04)
    np.testing.assert_allclose(per_frame["total"], (600 * per_frame["O"] + 1200 * per_frame["H"]) / (1800 - 3))
    kinetic = 0.5 * np.einsum("n,fnk,fnk->f", masses, velocities, velocities) * EV_PER_AMU_A2_FS2
    np.testing.assert_allclose(per_frame["total"], 2 * kinetic / (1797 * KB_EV_PER_K))
    assert np.all(com_kinetic_share(velocities, masses) < 0.01)
    np.testing.assert_allclose(com_kinetic_share(np.ones((2, 600, 3)), masses), 1.0)


def test_rates_are_linear_fit_slopes():
    times = np.arange(100) * 0.5
    assert heating_rate_K_per_ps(times, 300.0 + 0.2 * times) == pytest.approx(200.0)
    energies = -100.0 + 1e-4 * times
    energies[3] = np.nan  # a step missing from a CP2K .ener file
    assert energy_drift_eV_per_ps(times, energies) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="energies"):
        energy_drift_eV_per_ps(times, energies[:10])


def test_min_pair_distance_across_the_boundary_in_chunks(monkeypatch):
    rng = np.random.default_rng(7)
    box = 10.0
    positions = rng.uniform(0, box, (6, 12, 3))
    positions[4, 3] = [0.05, 5.0, 5.0]
    positions[4, 9] = [box - 0.03, 5.02, 5.0]
    monkeypatch.setattr(geometry, "PAIR_BUDGET", 100)  # 66 pairs per frame: one frame per chunk
    closest = min_pair_distance(positions, box)
    assert (closest.frame, closest.i, closest.j) == (4, 3, 9)
    assert closest.distance == pytest.approx(np.hypot(0.08, 0.02))


# -- the embedded CP2K run -------------------------------------------------------------------
@pytest.fixture(scope="module")
def cp2k():
    return read_any_trajectory(default_data_path())


@pytest.fixture(scope="module")
def cp2k_observables(cp2k):
    return compute_observables(cp2k)


def test_embedded_cp2k_run_lands_in_the_expected_ranges(cp2k, cp2k_observables):
    assert cp2k.kind == "cp2k" and cp2k.n_frames == len(read_trajectory()) and cp2k.dt_fs == 0.5 and cp2k.energies is not None
    s = cp2k_observables["summary"]
    assert 0.99 < s["oh_bond_mean_A"] < 1.03
    assert 102.0 < s["hoh_angle_mean_deg"] < 108.0
    assert 2.6 < s["g_OO_peak_r_A"] < 2.8
    assert 1450.0 < s["bend_cm1"] < 1750.0
    assert 2900.0 < s["stretch_cm1"] < 3400.0
    assert 0.0 <= s["non_h2o_fraction"] < 0.05
    assert 0.85 < s["min_distance_A"] < 1.0
    assert 350.0 < s["T_O_K"] < 550.0 and 350.0 < s["T_H_K"] < 550.0
    assert abs(s["energy_drift_eV_per_ps"]) < 0.05 and s["com_kinetic_share"] < 1e-3
    assert s["diffusion_O_A2_per_fs"] is None and cp2k_observables["missing"]["diffusion_O_A2_per_fs"]["too_short"]


def test_compare_says_when_the_reference_is_too_short(cp2k_observables):
    rows = {row["observable"]: row for row in compare(cp2k_observables, cp2k_observables)}
    assert rows["oh_bond_mean_A"]["status"] == "pass" and rows["g_OO_difference_A"]["learned"] == 0.0
    for key in ("bend_cm1", "stretch_cm1", "diffusion_O_1e-5_cm2_per_s"):
        assert rows[key]["status"] == "reference too short" and rows[key]["reference"] is None
    fine = compare(cp2k_observables, cp2k_observables, {"bend_cm1": 400.0, "T_H_K": 30.0})
    assert [row["status"] for row in fine] == ["pass", "pass"]


# -- files -----------------------------------------------------------------------------------
def test_analyze_own_extxyz_against_cp2k_writes_everything(tmp_path, cp2k):
    path = tmp_path / "learned.xyz"
    for f in range(120):  # a "learned" run: CP2K's first frames, wrapped, 30% too fast
        write_frame(path, cp2k.symbols, wrap(cp2k.positions[f], cp2k.box), cp2k.box, 1.3 * cp2k.velocities[f],
                    append=f > 0, step=f, time_fs=float(cp2k.times[f]))
    summary = analyze(path, cp2k, out=tmp_path / "out")
    names = ["rdf", "structure", "angles", "bonds", "vdos", "msd", "temperatures"]
    for name in ["observables.json", *[f"{n}.csv" for n in [*names, "comparison"]], *[f"{n}.png" for n in names]]:
        assert (tmp_path / "out" / name).stat().st_size > 0, name
    # g_OO's first peak over windows as long as the reference (here longer than the run: one window) ...
    learned, reference = summary["trajectory"], summary["reference"]
    assert learned["structure_window_frames"] == 120 and reference["structure_window_frames"] == cp2k.n_frames // 4
    assert learned["summary"]["g_OO_peak_height_first_window"] == learned["summary"]["g_OO_peak_height"]
    structure = pd.read_csv(tmp_path / "out" / "structure.csv")  # ... and the reference's over its quarters
    assert list(structure["run"]) == ["learned"] + ["CP2K"] * 4
    assert structure["window_start_fs"].iloc[-1] == cp2k.times[3 * (cp2k.n_frames // 4)]
    assert json.loads((tmp_path / "out" / "observables.json").read_text()) == summary
    assert summary["labels"] == ["learned", "CP2K"]
    rows = {row["observable"]: row for row in summary["comparison"]}
    assert rows["oh_bond_mean_A"]["status"] == "pass" and rows["g_OO_difference_A"]["status"] == "pass"
    assert rows["T_H_K"]["status"] == "fail" and rows["T_O_K"]["status"] == "fail"
    assert rows["bend_cm1"]["status"] == "reference too short" and "resolution" in rows["bend_cm1"]["note"]
    assert rows["energy_drift_eV_per_ps"]["status"] == "not available"
    table = pd.read_csv(tmp_path / "out" / "comparison.csv")
    assert {"pass", "fail", "reference too short"} <= set(table["status"])
    rdf_table = pd.read_csv(tmp_path / "out" / "rdf.csv")
    assert set(rdf_table["run"]) == {"learned", "CP2K"} and {"g_OO", "n_OH", "g_HH"} <= set(rdf_table.columns)


def test_ase_round_trip_with_velocities_energies_and_times(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.units import fs

    rng = np.random.default_rng(8)
    symbols, positions, box = _rigid_waters(3, rng, cells=2)
    velocities = rng.normal(0, 0.01, positions.shape)
    frames = []
    for f in range(3):
        atoms = Atoms(symbols, positions=positions[f], cell=[box] * 3, pbc=True)
        atoms.set_velocities(velocities[f] / fs)  # ASE's velocity unit
        atoms.info["time_fs"] = 2.0 * f
        atoms.calc = SinglePointCalculator(atoms, energy=-10.0 - f)
        frames.append(atoms)
    path = tmp_path / "ase.extxyz"
    ase_io.write(path, frames)
    data = read_any_trajectory(path)
    assert data.kind == "ase" and data.symbols == symbols and data.box == pytest.approx(box)
    np.testing.assert_allclose(data.positions, positions, atol=1e-6)
    np.testing.assert_allclose(data.velocities, velocities, atol=1e-8)  # ASE writes 8 decimals of momenta
    np.testing.assert_allclose(data.times, [0.0, 2.0, 4.0])
    kinetic = 0.5 * np.einsum("n,fnk,fnk->f", data.masses, velocities, velocities) * EV_PER_AMU_A2_FS2
    np.testing.assert_allclose(data.energies, -10.0 - np.arange(3) + kinetic, rtol=1e-6)
    ase_io.write(tmp_path / "nocell.xyz", Atoms(symbols, positions=positions[0]))
    with pytest.raises(ValueError, match="no cell"):
        read_any_trajectory(tmp_path / "nocell.xyz")


def test_own_extxyz_reads_back_positions_velocities_times_and_masses(tmp_path):
    rng = np.random.default_rng(9)
    symbols, positions, box = _rigid_waters(3, rng, cells=2)
    velocities = rng.normal(0, 0.01, positions.shape)
    path = tmp_path / "own.xyz"
    for f in range(3):
        write_frame(path, symbols, positions[f], box, velocities[f], append=f > 0, step=2 * f, time_fs=1.0 * f)
    data = read_any_trajectory(path)
    assert data.kind == "ase" and data.symbols == symbols and data.box == box
    np.testing.assert_allclose(data.positions, positions, atol=1e-9)
    np.testing.assert_allclose(data.velocities, velocities, atol=1e-9)
    np.testing.assert_allclose(data.times, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(data.masses, [MASSES[s] for s in symbols])
    path.write_text(path.read_text().replace("Lattice=", "Cell="))
    with pytest.raises(ValueError, match="no cell"):
        read_any_trajectory(path)


def test_frames_too_far_apart_for_the_bands_are_skipped_with_the_reason():
    run = read_trajectory().frames(slice(None, None, 50))  # 25 fs apart: spectra reach only 667 cm^-1
    result = compute_observables(from_cp2k(run))
    assert result["summary"]["bend_cm1"] is None and result["summary"]["stretch_cm1"] is None
    assert "resolve only up to" in result["missing"]["bend_cm1"]["reason"]
