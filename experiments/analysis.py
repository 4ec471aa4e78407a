"""Structure and dynamics of water trajectories (Figs 4-7 and the analysis layer): pure array functions.

All functions take plain arrays (positions in angstrom, velocities in angstrom/fs, masses in amu,
times in fs, a cubic box side in angstrom), so the CP2K run and the learning-based run are analysed
by exactly the same code.  Molecules come from the O-H bond graph of every frame: each hydrogen is
bonded to its nearest oxygen (minimum image) when closer than ``r_bond``, so a proton that changes
owner or leaves is seen and counted.  Every per-frame quantity is computed for all frames at once
with numpy; pair distances are taken in chunks of frames (at most
:data:`agents.geometry.PAIR_BUDGET` at a time) so that memory stays bounded for long runs.
"""

from __future__ import annotations

from typing import NamedTuple

import networkx as nx
import numpy as np
from scipy import ndimage, signal

from agents.geometry import displacement, nearest_atoms, pair_distances
from agents.validation import count, positive
from environment.kinetics import degrees_of_freedom, kinetic_temperature

#: 1/fs in cm^-1 (10^15 / c with c in cm/s).
WAVENUMBER_PER_INV_FS = 1e15 / 2.99792458e10
#: Hydrogens farther than this from every oxygen are unbonded (angstrom).
R_BOND = 1.3
#: 1 angstrom^2/fs in units of 1e-5 cm^2/s (the usual unit of self-diffusion coefficients).
DIFFUSION_1E5_CM2_PER_S = 1e4
#: Equivalent noise bandwidth of the Hann window, in frequency bins (sets :func:`spectral_resolution_cm1`).
HANN_BANDWIDTH_BINS = 1.5


def _indices(symbols):
    symbols = np.asarray(symbols)
    return np.flatnonzero(symbols == "O"), np.flatnonzero(symbols == "H")


def _as_frames(positions) -> tuple[np.ndarray, bool]:
    """Positions as (F, N, 3) floats, and whether a single frame (N, 3) was given."""
    positions = np.asarray(positions, dtype=float)
    single = positions.ndim == 2
    return (positions[None] if single else positions), single


def _norm(vectors: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis (faster than ``np.linalg.norm`` for many short vectors)."""
    return np.sqrt(np.einsum("...k,...k->...", vectors, vectors))


def _pairs(symbols, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """Atom index pairs of species ``a`` and ``b``: each unordered pair once when ``a == b``."""
    symbols = np.asarray(symbols)
    first, second = np.flatnonzero(symbols == a), np.flatnonzero(symbols == b)
    for name, atoms in ((a, first), (b, second)):
        if len(atoms) == 0:
            raise ValueError(f"symbols: no atom of species {name!r} for the pair {a}-{b}")
    if a == b:
        if len(first) < 2:
            raise ValueError(f"symbols: the pair {a}-{a} needs at least two {a} atoms")
        i, j = np.triu_indices(len(first), 1)
        return first[i], first[j]
    return np.repeat(first, len(second)), np.tile(second, len(first))


# -- molecules: the O-H bond graph -----------------------------------------------------------
def nearest_oxygen(symbols, positions, box):
    """Owner oxygen (atom index) and O-H distance of every hydrogen, frame by frame.

    Args:
        symbols: (N,) element symbols.
        positions: (F, N, 3) or (N, 3) positions in angstrom.
        box: cubic box side in angstrom.

    Returns:
        owner (F, n_H) atom indices of the nearest oxygen and distance (F, n_H) in angstrom
        (without the frame axis for a single frame).
    """
    positions, single = _as_frames(positions)
    oxygens, hydrogens = _indices(symbols)
    if len(oxygens) == 0 or len(hydrogens) == 0:
        raise ValueError("symbols: water analysis needs both O and H atoms")
    owner, distance = nearest_atoms(positions, box, hydrogens, oxygens)
    return (owner[0], distance[0]) if single else (owner, distance)


class Ownership(NamedTuple):
    """The O-H bond graph of every frame as arrays (edges: hydrogen -> owner oxygen).

    Attributes:
        oxygens, hydrogens: (n_O,), (n_H,) atom indices of the O and H atoms.
        owner: (F, n_H) atom index of each hydrogen's nearest oxygen.
        distance: (F, n_H) O-H distance to that oxygen (angstrom).
        bonded: (F, n_H) whether that O-H is a bond (distance < r_bond).
        counts: (F, n_O) bonded hydrogens of each oxygen (2 for H2O).
    """

    oxygens: np.ndarray
    hydrogens: np.ndarray
    owner: np.ndarray
    distance: np.ndarray
    bonded: np.ndarray
    counts: np.ndarray


def ownership(symbols, positions, box, r_bond: float = R_BOND) -> Ownership:
    """The bond graph of every frame of ``positions`` (F, N, 3) or (N, 3), as :class:`Ownership`."""
    positions, _ = _as_frames(positions)
    owner, distance = nearest_oxygen(symbols, positions, box)
    oxygens, hydrogens = _indices(symbols)
    bonded = distance < r_bond
    slot = np.arange(len(positions))[:, None] * len(oxygens) + np.searchsorted(oxygens, owner)
    counts = np.bincount(slot[bonded], minlength=len(positions) * len(oxygens)).reshape(len(positions), -1)
    return Ownership(oxygens, hydrogens, owner, distance, bonded, counts)


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


def _census(bonds: Ownership, n_atoms: int) -> dict[str, np.ndarray]:
    """Molecule counts per frame from the bond graph (its connected components)."""
    k = bonds.counts
    n_other = n_atoms - len(bonds.oxygens) - len(bonds.hydrogens)  # isolated atoms of other elements
    return {
        "water": np.sum(k == 2, axis=1), "hydroxide": np.sum(k == 1, axis=1), "hydronium": np.sum(k == 3, axis=1),
        "oxide": np.sum(k == 0, axis=1), "free_H": np.sum(~bonds.bonded, axis=1),
        "other": np.sum(k > 3, axis=1) + n_other,
    }


def census_over_time(symbols, positions, box, r_bond: float = R_BOND) -> dict[str, np.ndarray]:
    """Counts of the molecular species in every frame of ``positions`` (F, N, 3).

    The molecules are the connected components of the bond graph (:func:`bond_graph`): an oxygen
    with its bonded hydrogens, a free hydrogen, or an atom of another element.

    Returns:
        name -> (F,) counts for ``water`` (O with two H), ``hydroxide`` (one H), ``hydronium``
        (three H), ``oxide`` (bare O), ``free_H`` (unbonded hydrogens), ``other``.
    """
    return _census(ownership(symbols, positions, box, r_bond), len(symbols))


def molecule_census(symbols, positions, box, r_bond: float = R_BOND) -> dict:
    """:func:`census_over_time` of one frame (N, 3): name -> count."""
    return {name: int(count[0]) for name, count in census_over_time(symbols, positions, box, r_bond).items()}


def _angles(bonds: Ownership, positions: np.ndarray, box) -> np.ndarray:
    """H-O-H angles (F, n_O) in degrees of the oxygens with exactly two bonded hydrogens, else NaN."""
    n_frames, n_oxygens = bonds.counts.shape
    group = np.where(bonds.bonded, np.searchsorted(bonds.oxygens, bonds.owner), n_oxygens)
    order = np.argsort(group, axis=1, kind="stable")  # hydrogen slots grouped by owner
    start = np.cumsum(bonds.counts, axis=1) - bonds.counts
    frame, oxygen = np.nonzero(bonds.counts == 2)
    first = bonds.hydrogens[order[frame, start[frame, oxygen]]]
    second = bonds.hydrogens[order[frame, start[frame, oxygen] + 1]]
    centre = positions[frame, bonds.oxygens[oxygen]]
    u = displacement(centre, positions[frame, first], box)
    v = displacement(centre, positions[frame, second], box)
    cosine = np.einsum("ik,ik->i", u, v) / (_norm(u) * _norm(v))
    angles = np.full((n_frames, n_oxygens), np.nan)
    angles[frame, oxygen] = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return angles


def hoh_angles_over_time(symbols, positions, box, r_bond: float = R_BOND) -> np.ndarray:
    """H-O-H angles (F, n_O) in degrees of every oxygen owning exactly two bonded H; NaN otherwise."""
    positions, _ = _as_frames(positions)
    return _angles(ownership(symbols, positions, box, r_bond), positions, box)


def hoh_angles(symbols, positions, box, r_bond: float = R_BOND):
    """H-O-H angles (degrees) of the water molecules of one frame (N, 3), in oxygen order."""
    angles = hoh_angles_over_time(symbols, positions, box, r_bond)[0]
    return angles[~np.isnan(angles)]


def angle_statistics(symbols, positions, box, r_bond: float = R_BOND):
    """Mean and standard deviation of the H-O-H angle per frame of (F, N, 3): two (F,) arrays (NaN without water)."""
    angles = hoh_angles_over_time(symbols, positions, box, r_bond)
    valid = ~np.isnan(angles)
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, angles, 0.0).sum(axis=1) / n
        std = np.sqrt(np.where(valid, (angles - mean[:, None]) ** 2, 0.0).sum(axis=1) / n)
    return mean, std


def histogram(values, edges) -> dict:
    """Mean, standard deviation and normalised histogram of ``values`` (NaN ignored).

    Args:
        values: any shape; NaN entries are left out.
        edges: (n_bins + 1,) bin edges.

    Returns:
        dict with ``mean``, ``std``, ``count`` and ``centres`` (n_bins,), ``density`` (n_bins,)
        (integrates to the fraction of values inside the edges).
    """
    values = np.asarray(values, dtype=float).ravel()
    values = values[~np.isnan(values)]
    if values.size == 0:
        raise ValueError("values: nothing to histogram (empty or all NaN)")
    counts, edges = np.histogram(values, bins=edges)
    return {
        "mean": float(values.mean()), "std": float(values.std()), "count": int(values.size),
        "centres": 0.5 * (edges[1:] + edges[:-1]), "density": counts / (values.size * np.diff(edges)),
    }


def water_structure(symbols, positions, box, r_bond: float = R_BOND) -> dict:
    """Bond-graph statistics of a run (F, N, 3): H-O-H angles, O-H bonds and the non-H2O share.

    Returns:
        dict with ``angles`` (F, n_O) degrees (NaN where an oxygen is not H2O), ``bonds`` (F, n_H)
        O-H bond lengths in angstrom (NaN for unbonded hydrogens), ``census`` (as
        :func:`census_over_time`) and ``non_h2o_fraction``: the fraction of molecule-frames (the
        bond graph's components, summed over frames) that are not H2O.
    """
    positions, _ = _as_frames(positions)
    bonds = ownership(symbols, positions, box, r_bond)
    census = _census(bonds, len(symbols))
    molecules = sum(int(count.sum()) for count in census.values())
    return {
        "angles": _angles(bonds, positions, box),
        "bonds": np.where(bonds.bonded, bonds.distance, np.nan),
        "census": census,
        "non_h2o_fraction": 1.0 - census["water"].sum() / molecules,
    }


# -- radial distribution functions -----------------------------------------------------------
def rdf(symbols, positions, box, pair: tuple[str, str] = ("O", "O"), bin_width: float = 0.02,
        r_max: float | None = None):
    """Radial distribution function g_AB(r) and coordination number n_AB(r), minimum image.

    Args:
        symbols: (N,) element symbols.
        positions: (F, N, 3) or (N, 3) positions in angstrom.
        box: cubic box side L in angstrom.
        pair: the species (A, B).
        bin_width: histogram bin width in angstrom.
        r_max: largest distance, at most (and by default) L/2, where the minimum image is exact.

    Returns:
        r (n_bins,) bin centres in angstrom; g (n_bins,) g_AB(r), 1 for an ideal gas; n (n_bins,)
        the mean number of B atoms within each bin's upper edge of an A atom (the coordination
        integral 4 pi rho_B int_0^r g r'^2 dr').
    """
    box = positive("box", box)
    positions, _ = _as_frames(positions)
    r_max = box / 2 if r_max is None else float(r_max)
    if not 0 < r_max <= box / 2 * (1 + 1e-12):
        raise ValueError(f"r_max must lie in (0, box/2 = {box / 2:g}] angstrom, got {r_max:g}")
    if not 0 < bin_width < r_max:
        raise ValueError(f"bin_width must lie in (0, r_max = {r_max:g}) angstrom, got {bin_width:g}")
    a, b = pair
    first, second = _pairs(symbols, a, b)
    n_bins = int(np.floor(r_max / bin_width + 1e-9))
    edges = np.arange(n_bins + 1) * bin_width
    counts = np.zeros(n_bins)
    for _, r in pair_distances(positions, box, first, second):
        index = (r / bin_width).astype(int)
        counts += np.bincount(index[index < n_bins], minlength=n_bins)
    n_a = np.count_nonzero(np.asarray(symbols) == a)
    neighbours = np.count_nonzero(np.asarray(symbols) == b) - (a == b)  # B atoms around one A
    per_centre = counts * (2 if a == b else 1) / (len(positions) * n_a)
    shells = 4.0 / 3.0 * np.pi * np.diff(edges**3)
    return 0.5 * (edges[1:] + edges[:-1]), per_centre / (neighbours / box**3 * shells), np.cumsum(per_centre)


def first_peak(r, g, smoothing: float = 0.04, fraction: float = 0.5) -> tuple[float, float]:
    """Position (angstrom) and height of the first peak of g(r), on a Gaussian-smoothed g.

    Args:
        r: (n,) evenly spaced bin centres in angstrom.
        g: (n,) the radial distribution function.
        smoothing: standard deviation (angstrom) of the Gaussian that smooths g first, so that the
            bin-to-bin noise of a short run does not move the peak; 0 for none.
        fraction: the first peak is the maximum of the first stretch of r where the smoothed g
            exceeds this fraction of its highest value (in water the first peaks of g_OO, g_OH
            and g_HH are the highest; of a lattice's equally high shells the nearest is taken).

    Returns:
        The peak's position (angstrom) and the smoothed g there.
    """
    r, g = np.asarray(r, dtype=float), np.asarray(g, dtype=float)
    if smoothing > 0:
        g = ndimage.gaussian_filter1d(g, smoothing / (r[1] - r[0]), mode="nearest")
    above = np.flatnonzero(g > fraction * np.max(g))
    gaps = np.flatnonzero(np.diff(above) > 1)
    stretch = above[: gaps[0] + 1] if gaps.size else above
    peak = stretch[np.argmax(g[stretch])]
    return float(r[peak]), float(g[peak])


def first_peak_over_windows(symbols, positions, box, window_frames: int, pair: tuple[str, str] = ("O", "O"),
                            bin_width: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first peak of g_AB(r) (:func:`first_peak` of :func:`rdf`) over consecutive windows of
    ``window_frames`` frames, the last incomplete window dropped: how the structure drifts in a run, e.g.
    as a liquid relaxes from its start, seen at the resolution of a reference run as long as one window.

    Returns:
        (W,) the first frame of each window; (W,) peak positions (angstrom); (W,) peak heights.
    """
    positions, _ = _as_frames(positions)
    window_frames = count("window_frames", window_frames)
    starts = np.arange(0, len(positions) - window_frames + 1, window_frames)
    peaks = np.array([first_peak(*rdf(symbols, positions[s:s + window_frames], box, pair, bin_width)[:2])
                      for s in starts]).reshape(-1, 2)
    return starts, peaks[:, 0], peaks[:, 1]


def rdf_difference(r, g, r_reference, g_reference) -> float:
    """Integrated absolute difference int |g - g_ref| dr (angstrom) over the common range of r.

    The reference is interpolated onto ``r`` (the two runs may have different boxes or bins).
    """
    r, g = np.asarray(r, dtype=float), np.asarray(g, dtype=float)
    common = r <= np.max(r_reference)
    if np.count_nonzero(common) < 2:
        raise ValueError("r_reference: the reference g(r) does not overlap the range of r")
    difference = np.abs(g[common] - np.interp(r[common], r_reference, g_reference))
    return float(np.trapezoid(difference, r[common]))


# -- vibrations ------------------------------------------------------------------------------
def spectral_resolution_cm1(segment_frames: int, dt: float) -> float:
    """Resolution (cm^-1) of a Hann-windowed spectrum of ``segment_frames`` samples ``dt`` fs apart.

    The Hann window's equivalent noise bandwidth, 1.5 / (n dt): about 160 cm^-1 for 624 frames of 0.5 fs.
    """
    return HANN_BANDWIDTH_BINS * WAVENUMBER_PER_INV_FS / (segment_frames * dt)


def vdos(velocities, symbols, masses, dt: float, segment_frames: int | None = None, padding: int = 4):
    """Vibrational density of states per species, from the velocity autocorrelation (Welch).

    The mass-weighted power spectrum sum_i m_i |v_i(omega)|^2 over the atoms of a species, i.e. the
    Fourier transform of its mass-weighted velocity autocorrelation, averaged over Hann-windowed,
    half-overlapping segments of ``segment_frames`` frames (Welch).  A long run cut into segments as
    long as a short reference has the reference's resolution (:func:`spectral_resolution_cm1`) and
    less noise.

    Args:
        velocities: (F, N, 3) angstrom/fs.
        symbols: (N,) element symbols.
        masses: (N,) amu.
        dt: time between frames in fs.
        segment_frames: frames per segment, 8 <= segment_frames <= F; the whole run by default.
        padding: each segment is zero-padded to ``padding`` times its length (a finer grid, not a
            finer resolution).

    Returns:
        wavenumbers (n_k,) in cm^-1 and species -> spectrum (n_k,) in cm (per cm^-1), normalised so
        that it integrates over the wavenumber to the species' degrees of freedom 3 N_s.
    """
    if velocities is None:
        raise ValueError("velocities: the trajectory has no velocities; a VDOS needs them")
    velocities = np.asarray(velocities, dtype=float)
    n_frames = len(velocities)
    n = n_frames if segment_frames is None else int(segment_frames)
    if not 8 <= n <= n_frames:
        raise ValueError(f"segment_frames must lie in [8, {n_frames}] (the run's frames), got {n}")
    series = np.ascontiguousarray(np.moveaxis(velocities, 0, -1))  # (N, 3, F): time last is faster
    frequency, power = signal.welch(series, fs=1.0 / dt, window="hann", nperseg=n, noverlap=n // 2,
                                    nfft=padding * n, detrend=False, axis=-1)
    weighted = (power.sum(axis=1) * np.asarray(masses, dtype=float)[:, None]).T  # (n_k, N)
    wavenumbers = frequency * WAVENUMBER_PER_INV_FS
    symbols = np.asarray(symbols)
    spectra = {}
    for species in dict.fromkeys(symbols):
        mine = symbols == species
        spectrum = weighted[:, mine].sum(axis=1)
        spectra[str(species)] = spectrum * 3 * np.count_nonzero(mine) / np.trapezoid(spectrum, wavenumbers)
    return wavenumbers, spectra


def band_positions(wavenumbers, spectrum, bend=(1300.0, 2000.0), stretch=(2800.0, 4000.0)) -> dict[str, float]:
    """Positions (cm^-1) of the maxima of ``spectrum`` in the bend and stretch windows (cm^-1)."""
    wavenumbers, spectrum = np.asarray(wavenumbers), np.asarray(spectrum)
    bands = {}
    for name, (low, high) in (("bend", bend), ("stretch", stretch)):
        inside = np.flatnonzero((wavenumbers >= low) & (wavenumbers <= high))
        if inside.size == 0:
            raise ValueError(f"{name}: no wavenumber of the spectrum lies in [{low:g}, {high:g}] cm^-1")
        bands[name] = float(wavenumbers[inside[np.argmax(spectrum[inside])]])
    return bands


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


# -- transport -------------------------------------------------------------------------------
def msd(positions, dt: float, masses=None, atoms=None, max_lag: int | None = None):
    """Mean-squared displacement, centre-of-mass drift removed, averaged over time origins (FFT).

    Args:
        positions: (F, N, 3) unwrapped positions in angstrom (see ``agents.geometry.unwrap``).
        dt: time between frames in fs.
        masses: (N,) amu for the centre of mass of all N atoms; equal masses when None.
        atoms: indices or boolean mask of the atoms averaged over (e.g. the oxygens); all by default.
        max_lag: largest lag in frames, at most F - 1; F // 2 by default (later lags have few origins).

    Returns:
        lags (n_lags,) in fs and MSD(t) = <|r_i(t0 + t) - r_i(t0)|^2> (n_lags,) in angstrom^2.
    """
    positions = np.asarray(positions, dtype=float)
    n_frames = len(positions)
    if n_frames < 2:
        raise ValueError(f"positions: an MSD needs at least 2 frames, got {n_frames}")
    max_lag = n_frames // 2 if max_lag is None else int(max_lag)
    if not 1 <= max_lag < n_frames:
        raise ValueError(f"max_lag must lie in [1, {n_frames - 1}] frames, got {max_lag}")
    weights = np.ones(positions.shape[1]) if masses is None else np.asarray(masses, dtype=float)
    centre = np.einsum("n,fnk->fk", weights, positions) / weights.sum()
    x = (positions - centre[:, None])[:, slice(None) if atoms is None else atoms].reshape(n_frames, -1)
    # MSD(m) = S1(m) - 2 S2(m) with S2 the autocorrelation (FFT, zero-padded) and S1 from cumulative sums.
    spectrum = np.fft.rfft(x, n=2 * n_frames, axis=0)
    lags = np.arange(max_lag + 1)
    origins = n_frames - lags
    s2 = np.fft.irfft(np.abs(spectrum) ** 2, axis=0)[: max_lag + 1] / origins[:, None]
    squares = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x**2, axis=0)])
    s1 = (squares[origins] + squares[-1] - squares[lags]) / origins[:, None]
    per_coordinate = s1 - 2 * s2
    return lags * dt, per_coordinate.reshape(len(lags), -1, 3).sum(axis=-1).mean(axis=1)


def diffusion_coefficient(lags, msd_values, start_fs: float, stop_fs: float | None = None) -> dict:
    """Self-diffusion coefficient from a straight-line fit MSD = 6 D t + c over a time window.

    Args:
        lags: (n,) lag times in fs.
        msd_values: (n,) MSD in angstrom^2.
        start_fs, stop_fs: the fitted window in fs (to the last lag by default); it should start
            after the ballistic and caging regime (about 1 ps in liquid water).

    Returns:
        dict with ``D_A2_per_fs``, ``D_1e-5_cm2_per_s``, ``window_fs`` [start, stop] and ``points``.
    """
    lags, msd_values = np.asarray(lags, dtype=float), np.asarray(msd_values, dtype=float)
    stop_fs = float(lags[-1]) if stop_fs is None else float(stop_fs)
    inside = (lags >= start_fs) & (lags <= stop_fs)
    if np.count_nonzero(inside) < 2:
        raise ValueError(f"the fit window [{start_fs:g}, {stop_fs:g}] fs holds fewer than 2 lags "
                         f"(lags reach {lags[-1]:g} fs)")
    slope = np.polyfit(lags[inside], msd_values[inside], 1)[0]
    d = slope / 6.0
    return {"D_A2_per_fs": float(d), "D_1e-5_cm2_per_s": float(d * DIFFUSION_1E5_CM2_PER_S),
            "window_fs": [float(start_fs), stop_fs], "points": int(np.count_nonzero(inside))}


# -- temperatures and energies ---------------------------------------------------------------
def species_temperatures(velocities, masses, symbols) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Kinetic temperature of each species by equipartition, per frame and mean.

    T_s = sum_{i in s} m_i |v_i|^2 / (3 N_s k_B), with 3 N_s degrees of freedom per species.
    ``total`` is the usual instantaneous temperature 2 K / ((3N - 3) k_B), as CP2K reports it for a
    run with fixed centre of mass: it equals sum_s 3 N_s T_s / (3N - 3), slightly above the
    dof-weighted mean of the species' temperatures.

    Args:
        velocities: (F, N, 3) angstrom/fs.
        masses: (N,) amu.
        symbols: (N,) element symbols.

    Returns:
        per_frame: species (and ``total``) -> (F,) K; mean: species (and ``total``) -> K.
    """
    if velocities is None:
        raise ValueError("velocities: the trajectory has no velocities; kinetic temperatures need them")
    velocities = np.asarray(velocities, dtype=float)
    masses = np.asarray(masses, dtype=float)
    symbols = np.asarray(symbols)
    per_frame = {}
    for species in dict.fromkeys(symbols):
        mine = symbols == species
        per_frame[str(species)] = kinetic_temperature(velocities[:, mine], masses[mine], 3 * np.count_nonzero(mine))
    per_frame["total"] = kinetic_temperature(velocities, masses, degrees_of_freedom(len(symbols)))
    return per_frame, {name: float(t.mean()) for name, t in per_frame.items()}


def com_kinetic_share(velocities, masses) -> np.ndarray:
    """Share (F,) of the kinetic energy carried by the centre-of-mass motion, |P|^2 / (2 M K)."""
    masses = np.asarray(masses, dtype=float)
    momentum = np.einsum("n,fnk->fk", masses, velocities)
    kinetic = 0.5 * np.einsum("n,fnk,fnk->f", masses, velocities, velocities)
    return 0.5 * np.einsum("fk,fk->f", momentum, momentum) / masses.sum() / kinetic


def _slope_per_ps(times, values, name: str) -> float:
    """Slope of a straight-line fit of ``values`` against ``times`` (fs), per ps; NaN values left out."""
    times, values = np.asarray(times, dtype=float), np.asarray(values, dtype=float)
    if times.shape != values.shape:
        raise ValueError(f"{name}: shape {values.shape} differs from the times' {times.shape}")
    finite = np.isfinite(times) & np.isfinite(values)
    if np.count_nonzero(finite) < 2:
        raise ValueError(f"{name}: a rate needs at least 2 finite values, got {np.count_nonzero(finite)}")
    return float(np.polyfit(times[finite], values[finite], 1)[0] * 1000.0)


def heating_rate_K_per_ps(times, temperatures) -> float:
    """Heating rate (K/ps): slope of a linear fit of the temperatures (K) against the times (fs)."""
    return _slope_per_ps(times, temperatures, "temperatures")


def energy_drift_eV_per_ps(times, energies) -> float:
    """Energy drift (eV/ps): slope of a linear fit of the total (conserved) energies (eV) against times (fs)."""
    return _slope_per_ps(times, energies, "energies")


# -- close contacts --------------------------------------------------------------------------
class ClosestPair(NamedTuple):
    """The closest two nuclei of a run: distance (angstrom), frame and atom indices i < j."""

    distance: float
    frame: int
    i: int
    j: int


def min_pair_distance(positions, box) -> ClosestPair:
    """The smallest minimum-image distance between any two nuclei over a run (F, N, 3) or a frame (N, 3)."""
    box = positive("box", box)
    positions, _ = _as_frames(positions)
    if positions.shape[1] < 2:
        raise ValueError("positions: a pair distance needs at least two atoms")
    first, second = np.triu_indices(positions.shape[1], 1)
    best = ClosestPair(np.inf, -1, -1, -1)
    for frames, r in pair_distances(positions, box, first, second):
        frame, pair = np.unravel_index(np.argmin(r), r.shape)
        if r[frame, pair] < best.distance:
            best = ClosestPair(float(r[frame, pair]), int(frames.start + frame), int(first[pair]), int(second[pair]))
    return best
