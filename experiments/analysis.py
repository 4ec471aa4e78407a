"""Structure and vibration of water trajectories (Figs 4-7): bonds, angles, spectra.

All functions take plain arrays (positions in angstrom, times in fs), so the CP2K run and the
learning-based run are analysed by exactly the same code.  Molecules come from a ``networkx`` bond
graph rebuilt every frame: each hydrogen is bonded to its nearest oxygen (minimum image) when
closer than ``r_bond``, so a proton that changes owner or leaves is seen and counted.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from agents.geometry import displacement

#: 1/fs in cm^-1 (10^15 / c with c in cm/s).
WAVENUMBER_PER_INV_FS = 1e15 / 2.99792458e10
#: Hydrogens farther than this from every oxygen are unbonded (angstrom).
R_BOND = 1.3


def _indices(symbols):
    symbols = np.asarray(symbols)
    return np.flatnonzero(symbols == "O"), np.flatnonzero(symbols == "H")


def nearest_oxygen(symbols, positions, box):
    """Owner oxygen (atom index) and O-H distance of every hydrogen, frame by frame.

    Args:
        symbols: (N,) element symbols.
        positions: (F, N, 3) or (N, 3) positions in angstrom.
        box: cubic box side in angstrom.

    Returns:
        owner (F, n_H) atom indices of the nearest oxygen and distance (F, n_H) in angstrom.
    """
    positions = np.asarray(positions, dtype=float)
    single = positions.ndim == 2
    positions = positions[None] if single else positions
    oxygens, hydrogens = _indices(symbols)
    if len(oxygens) == 0 or len(hydrogens) == 0:
        raise ValueError("symbols: water analysis needs both O and H atoms")
    d = displacement(positions[:, oxygens][:, None], positions[:, hydrogens][:, :, None], box)
    r = np.linalg.norm(d, axis=-1)  # (F, n_H, n_O)
    nearest = np.argmin(r, axis=-1)
    owner = oxygens[nearest]
    distance = np.take_along_axis(r, nearest[..., None], axis=-1)[..., 0]
    return (owner[0], distance[0]) if single else (owner, distance)


def bond_graph(symbols, positions, box, r_bond: float = R_BOND) -> nx.Graph:
    """The O-H bond graph of one frame: every atom a node, each H joined to its nearest O if close."""
    owner, distance = nearest_oxygen(symbols, positions, box)
    _, hydrogens = _indices(symbols)
    graph = nx.Graph()
    graph.add_nodes_from((i, {"symbol": s}) for i, s in enumerate(symbols))
    for h, o, r in zip(hydrogens, owner, distance):
        if r < r_bond:
            graph.add_edge(int(o), int(h), length=float(r))
    return graph


def molecule_census(symbols, positions, box, r_bond: float = R_BOND) -> dict:
    """Counts of the molecular species in one frame (from the bond graph's components).

    Returns:
        dict with ``water`` (O with two H), ``hydroxide`` (one H), ``hydronium`` (three H),
        ``oxide`` (bare O), ``free_H`` (unbonded hydrogens), ``other``.
    """
    graph = bond_graph(symbols, positions, box, r_bond)
    names = {(1, 2): "water", (1, 1): "hydroxide", (1, 3): "hydronium", (1, 0): "oxide", (0, 1): "free_H"}
    census = dict.fromkeys([*names.values(), "other"], 0)
    for component in nx.connected_components(graph):
        elements = [graph.nodes[i]["symbol"] for i in component]
        census[names.get((elements.count("O"), elements.count("H")), "other")] += 1
    return census


def census_over_time(symbols, positions, box, r_bond: float = R_BOND) -> dict[str, np.ndarray]:
    """:func:`molecule_census` of every frame of a trajectory (F, N, 3): name -> (F,) counts."""
    rows = [molecule_census(symbols, frame, box, r_bond) for frame in positions]
    return {name: np.array([row[name] for row in rows]) for name in rows[0]}


def hoh_angles(symbols, positions, box):
    """H-O-H angles (degrees) of every oxygen that owns exactly two hydrogens in a frame (N, 3)."""
    owner, _ = nearest_oxygen(symbols, positions, box)
    _, hydrogens = _indices(symbols)
    angles = []
    for o in np.unique(owner):
        pair = hydrogens[owner == o]
        if len(pair) != 2:
            continue
        u = displacement(positions[o], positions[pair[0]], box)
        v = displacement(positions[o], positions[pair[1]], box)
        cosine = np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
        angles.append(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
    return np.array(angles)


def angle_statistics(symbols, positions, box):
    """Mean and standard deviation of the H-O-H angle per frame of (F, N, 3): two (F,) arrays."""
    per_frame = [hoh_angles(symbols, frame, box) for frame in positions]
    mean = np.array([a.mean() if a.size else np.nan for a in per_frame])
    std = np.array([a.std() if a.size else np.nan for a in per_frame])
    return mean, std


def power_spectrum(signals, dt: float):
    """Mean power spectrum of bond-length signals, with a Hann window (Fig. 6).

    Args:
        signals: (F, n) time series (e.g. the O-H distance of each hydrogen), F >= 4.
        dt: sampling interval in fs.

    Returns:
        wavenumbers (cm^-1) and the power (arbitrary units, normalised to a maximum of 1).
    """
    signals = np.asarray(signals, dtype=float)
    if signals.ndim == 1:
        signals = signals[:, None]
    if len(signals) < 4:
        raise ValueError(f"power spectrum needs at least 4 frames, got {len(signals)}")
    centred = signals - signals.mean(axis=0)
    windowed = centred * np.hanning(len(signals))[:, None]
    power = np.mean(np.abs(np.fft.rfft(windowed, axis=0)) ** 2, axis=1)
    wavenumbers = np.fft.rfftfreq(len(signals), d=dt) * WAVENUMBER_PER_INV_FS
    return wavenumbers, power / power.max()


def bond_rates(distances, dt: float) -> np.ndarray:
    """Time derivative (angstrom/fs) of bond-length series (F, n), for vibrational spectra.

    Its spectrum is the bond-length spectrum weighted by omega^2: the stretch band stands out, while
    slow drifts and the steps of a proton changing owner, which dominate the raw spectrum, are damped.
    """
    return np.gradient(np.asarray(distances, dtype=float), dt, axis=0)


def spectral_peak(signals, dt: float, min_wavenumber: float = 1000.0) -> float:
    """Wavenumber (cm^-1) of the highest peak of :func:`power_spectrum` above ``min_wavenumber``."""
    wavenumbers, power = power_spectrum(signals, dt)
    band = wavenumbers >= min_wavenumber
    return float(wavenumbers[band][np.argmax(power[band])])


def peak_over_time(signals, dt: float, window_fs: float = 100.0, min_wavenumber: float = 1000.0):
    """The spectral peak in sliding windows (half overlapping): window centres (fs) and peaks (cm^-1)."""
    width = max(4, int(round(window_fs / dt)))
    signals = np.asarray(signals, dtype=float)
    if len(signals) < width:
        raise ValueError(f"peak over time: {len(signals)} frames are fewer than one {window_fs} fs window")
    starts = range(0, len(signals) - width + 1, max(1, width // 2))
    centres = np.array([(s + width / 2) * dt for s in starts])
    peaks = np.array([spectral_peak(signals[s : s + width], dt, min_wavenumber) for s in starts])
    return centres, peaks
