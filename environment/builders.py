"""Starting configurations: boxes of rigid-geometry water molecules with thermal velocities; n^3 tilings of a frame."""

from __future__ import annotations

import numpy as np

from agents.geometry import minimum_image, wrap
from agents.species import CP2K_MASSES
from agents.units import AVOGADRO, EV_PER_AMU_A2_FS2, KB_EV_PER_K
from agents.validation import non_negative, positive
from environment.kinetics import kinetic_temperature

#: Water geometry (TIP3P/TIP4P): O-H bond length (angstrom) and H-O-H angle (degrees).
OH_BOND = 0.9572
HOH_ANGLE = 104.52
WATER_MASS = CP2K_MASSES["O"] + 2 * CP2K_MASSES["H"]


def box_for_density(n_molecules: int, density_g_cm3: float) -> float:
    """Side (angstrom) of the cubic box holding ``n_molecules`` waters at ``density_g_cm3``."""
    positive("density_g_cm3", density_g_cm3)
    volume_cm3 = n_molecules * WATER_MASS / AVOGADRO / density_g_cm3
    return (volume_cm3 * 1e24) ** (1.0 / 3.0)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3, 3) rotation matrices uniform on SO(3) (from uniform random unit quaternions)."""
    q = rng.normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def maxwell_boltzmann(masses, temperature_K: float, rng: np.random.Generator) -> np.ndarray:
    """Velocities (N, 3) in angstrom/fs at exactly ``temperature_K`` (N_f = 3N - 3), zero momentum."""
    masses = np.asarray(masses, dtype=float)
    temperature_K = non_negative("temperature_K", temperature_K)
    scale = np.sqrt(KB_EV_PER_K * max(temperature_K, 1e-300) / (masses[:, None] * EV_PER_AMU_A2_FS2))
    velocities = rng.normal(size=(len(masses), 3)) * scale
    velocities -= np.sum(masses[:, None] * velocities, axis=0) / np.sum(masses)
    return velocities * np.sqrt(temperature_K / kinetic_temperature(velocities, masses))


def water_box(
    n_molecules: int,
    density_g_cm3: float = 0.997,
    temperature_K: float = 300.0,
    seed=None,
    min_distance: float = 1.5,
    min_oo_distance: float = 2.5,
    max_tries: int = 2000,
):
    """Waters at random positions and orientations (random sequential addition), no close contacts.

    Args:
        n_molecules: number of water molecules.
        density_g_cm3: mass density (sets the box).
        temperature_K: Maxwell-Boltzmann temperature of the velocities (exact, zero momentum).
        seed: seed of the numpy random generator.
        min_distance: smallest distance (angstrom) between atoms of different molecules.
        min_oo_distance: smallest O-O distance (angstrom).
        max_tries: random draws per molecule before giving up.

    Returns:
        symbols (3n,) ordered O, H, H per molecule; positions (3n, 3) angstrom; velocities (3n, 3)
        angstrom/fs; box side (angstrom).
    """
    if int(n_molecules) < 1:
        raise ValueError(f"n_molecules must be at least 1, got {n_molecules!r}")
    n_molecules = int(n_molecules)
    rng = np.random.default_rng(seed)
    box = box_for_density(n_molecules, density_g_cm3)
    half = np.radians(HOH_ANGLE) / 2
    template = OH_BOND * np.array([[0, 0, 0], [np.sin(half), np.cos(half), 0], [-np.sin(half), np.cos(half), 0]])
    placed = np.empty((0, 3))
    for _ in range(n_molecules):
        for _ in range(max_tries):
            molecule = rng.uniform(0, box, 3) + template @ random_rotations(1, rng)[0].T
            gaps = np.linalg.norm(minimum_image(molecule[:, None] - placed[None], box), axis=-1)
            if placed.size == 0 or (gaps.min() >= min_distance and gaps[0, ::3].min() >= min_oo_distance):
                placed = np.vstack([placed, molecule])
                break
        else:
            raise ValueError(
                f"could not place {n_molecules} waters at density {density_g_cm3} g/cm^3 with "
                f"min_distance {min_distance} and min_oo_distance {min_oo_distance} angstrom"
            )
    symbols = ["O", "H", "H"] * n_molecules
    masses = [CP2K_MASSES[s] for s in symbols]
    return symbols, np.mod(placed, box), maxwell_boltzmann(masses, temperature_K, rng), box


def water_lattice(n_molecules: int, density_g_cm3: float = 0.997, temperature_K: float = 300.0, seed=None):
    """Large water boxes fast: oxygens on a jittered cubic lattice, random orientations, no overlap test.

    For benchmarks of many thousands of molecules, where :func:`water_box`'s placement test would
    dominate.  The lattice spacing (about 3.1 angstrom at liquid density) keeps oxygens apart;
    hydrogens of neighbours may come as close as about 1.2 angstrom.  Same returns as :func:`water_box`.
    """
    if int(n_molecules) < 1:
        raise ValueError(f"n_molecules must be at least 1, got {n_molecules!r}")
    n_molecules = int(n_molecules)
    rng = np.random.default_rng(seed)
    box = box_for_density(n_molecules, density_g_cm3)
    side = int(np.ceil(n_molecules ** (1.0 / 3.0)))
    cells = np.stack(np.meshgrid(*[np.arange(side)] * 3, indexing="ij"), -1).reshape(-1, 3)
    centres = (cells[rng.permutation(len(cells))[:n_molecules]] + 0.5) * (box / side)
    centres += rng.normal(scale=0.05, size=centres.shape)
    half = np.radians(HOH_ANGLE) / 2
    template = OH_BOND * np.array([[0, 0, 0], [np.sin(half), np.cos(half), 0], [-np.sin(half), np.cos(half), 0]])
    positions = (centres[:, None, :] + np.einsum("mj,nij->nmi", template, random_rotations(n_molecules, rng))).reshape(-1, 3)
    symbols = ["O", "H", "H"] * n_molecules
    masses = [CP2K_MASSES[s] for s in symbols]
    return symbols, np.mod(positions, box), maxwell_boltzmann(masses, temperature_K, rng), box


def copy_offsets(n: int, box: float) -> np.ndarray:
    """(n^3, 3) shifts (angstrom) of the copies of :func:`tile`: ``box * (a, b, d)``, copy c = (a n + b) n + d."""
    return box * np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)


def tile(symbols, positions, box: float, n: int, velocities=None):
    """``n`` x ``n`` x ``n`` copies of one periodic frame: the same infinite system in a box ``n`` times wider.

    Every atom k of the frame becomes atoms ``c N + k`` for the copies c = (a n + b) n + d, shifted by
    ``box * (a, b, d)`` (a, b, d in 0..n-1).  The minimum-image distance between atom i of copy c and
    the nearest copy of atom j in the tiled box is the frame's minimum-image distance r_ij, so any
    invariant with cutoff r_c <= box / 2 (and its force) on every copy equals the frame's.

    Args:
        symbols: (N,) species.  positions: (N, 3) angstrom (wrapped into [0, box) first).
        box: the frame's cubic side (angstrom).  n: copies per axis (1 returns the frame, wrapped).
        velocities: (N, 3) angstrom/fs, copied unchanged to every copy, or None.

    Returns:
        symbols (n^3 N,), positions (n^3 N, 3) in [0, n box), velocities (n^3 N, 3) or None, box n * box.
    """
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n (copies per axis) must be a positive integer, got {n!r}")
    n, box = int(n), positive("box", box)
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 2 or positions.shape[1] != 3 or len(positions) != len(symbols):
        raise ValueError(f"positions must have shape ({len(symbols)}, 3) for {len(symbols)} symbols, "
                         f"got {positions.shape}")
    tiled = (wrap(positions, box)[None] + copy_offsets(n, box)[:, None]).reshape(-1, 3)
    if velocities is not None:
        velocities = np.asarray(velocities, dtype=float)
        if velocities.shape != positions.shape:
            raise ValueError(f"velocities must have the shape of positions {positions.shape}, got {velocities.shape}")
        velocities = np.tile(velocities, (n**3, 1))
    return [str(s) for s in symbols] * n**3, tiled, velocities, n * box
