"""Shared pieces of the many-body descriptor tests (tests/test_manybody_*.py)."""

import numpy as np

from agents.descriptor_loss import DescriptorLoss
from agents.descriptors import DescriptorSet
from agents.pair_wall import PairWall
from learning.cp2k.reader import default_data_path, read_trajectory

#: Every kind of descriptor: exp / gauss / integer and non-integer pow radial terms, angular terms with
#: zeta 1, 2, 4, 16 and lambda +-1 on all three species pairs, and three different cutoffs.
EVERY_KIND = DescriptorSet.from_names(
    "O:exp(a=1/2,rc=3.5); H:gauss(s=1,rc=3); O:pow(n=2,rc=3.9); H:pow(n=1.5,rc=3.9);"
    "OO:angle(eta=0.05,zeta=1,lambda=+1,rc=3.9); OH:angle(eta=0.3,zeta=2,lambda=-1,rc=3.5);"
    "HO:angle(eta=1,zeta=4,lambda=+1,rc=3.9); HH:angle(eta=0.3,zeta=16,lambda=-1,rc=3)"
)


def random_config(n_atoms, box, rng, min_distance=0.8):
    """``n_atoms`` O/H atoms (1:2) uniformly in a periodic box, no two closer than ``min_distance`` angstrom."""
    positions = np.empty((0, 3))
    while len(positions) < n_atoms:
        trial = rng.uniform(0.0, box, 3)
        d = positions - trial
        d -= box * np.round(d / box)
        if len(positions) == 0 or np.min(np.linalg.norm(d, axis=1)) >= min_distance:
            positions = np.vstack([positions, trial])
    symbols = ["O" if k % 3 == 0 else "H" for k in range(n_atoms)]
    return positions, symbols


def random_loss(descriptors, form, rng, quadratic=None, wall=None, scale=1.0):
    """A loss with random A and a random symmetric B on the descriptors ``quadratic`` (default all)."""
    P = len(descriptors)
    Q = np.arange(P) if quadratic is None else np.asarray(quadratic, dtype=int)
    A, B = {}, {}
    for s in ("O", "H"):
        A[s] = scale * rng.normal(size=P)
        b = 0.5 * scale * rng.normal(size=(len(Q), len(Q)))
        B[s] = np.zeros((P, P))
        B[s][np.ix_(Q, Q)] = b + b.T
    return DescriptorLoss(descriptors, form, A, B, wall)


def water_frame():
    """The first frame of the embedded CP2K run: positions (96, 3), box 9.85 angstrom, symbols."""
    run = read_trajectory(default_data_path())
    return run.positions[0], run.box, run.symbols


def small_wall(rc=3.9):
    """A wall on every species pair, a little inside the closest contacts of the test configurations."""
    return PairWall({"OO": 1.2, "OH": 0.6, "HH": 0.7}, eps=0.1, rc=rc)
