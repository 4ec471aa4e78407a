"""The compiled descriptor-loss forces (environment/descriptor_kernels.py) against the numpy path."""

import numba
import numpy as np
import pytest
from manybody_support import EVERY_KIND, random_config, random_loss, small_wall, water_frame

from agents.descriptor_jacobian import descriptor_jacobian
from agents.descriptors import DescriptorSet, parse_feature, prototype_descriptors
from agents.pair_wall import PairWall
from environment.descriptor_kernels import MOMENT_RANK, DescriptorForces, EncodedDescriptors
from environment.forces import ForceEvaluator
from learning.fitting import descriptor_set

#: A reduced prototype set at the production cutoff (radial, then the angular grid on every pair).
WATER_SET = prototype_descriptors(("O", "H"), rc=4.5, weights=("exp(a=1)", "gauss(s=1)", "pow(n=2)"),
                                  etas=(0.3, 1.0), zetas=(1, 16))


def close(a, b, rtol=1e-10):
    return np.max(np.abs(a - b)) <= rtol * np.max(np.abs(b))


def cases():
    positions, box, symbols = water_frame()
    water = (positions, box, symbols, WATER_SET, PairWall({"OO": 1.9, "OH": 0.7, "HH": 1.0}, rc=4.5))
    positions, symbols = random_config(60, 9.0, np.random.default_rng(20))
    # a radial cutoff beyond every angular one: the pairs come from the inner neighbours only
    mixed = DescriptorSet(EVERY_KIND.features + (parse_feature("O:gauss(s=2,rc=4.4)"),))
    return {"water": water, "random": (positions, 9.0, symbols, mixed, small_wall())}


CASES = cases()


@pytest.mark.parametrize("case", ["water", "random"])
@pytest.mark.parametrize("form", ["own", "shared"])
def test_fast_path_matches_numpy(case, form):
    positions, box, symbols, descriptors, wall = CASES[case]
    loss = random_loss(descriptors, form, np.random.default_rng(21), quadratic=range(0, len(descriptors), 3),
                       wall=wall)
    fast = DescriptorForces(loss, symbols, box, skin=0.5)
    H, F = fast(positions)
    H0, F0 = loss.evaluate(positions, box, symbols)
    assert close(H, H0) and close(F, F0)
    assert close(fast.descriptors(positions), descriptor_jacobian(positions, box, symbols, descriptors).phi)
    moved = positions + np.random.default_rng(22).normal(scale=0.05, size=positions.shape)  # list kept
    H, F = fast(moved)
    H0, F0 = loss.evaluate(moved, box, symbols)
    assert close(H, H0) and close(F, F0)
    assert fast.neighbors.n_builds == 1


def test_thread_counts_agree():
    positions, box, symbols, descriptors, wall = CASES["water"]
    loss = random_loss(descriptors, "shared", np.random.default_rng(23), wall=wall)
    one = ForceEvaluator(loss, symbols, box, threads=1)(positions)
    two = ForceEvaluator(loss, symbols, box, threads=min(2, numba.config.NUMBA_NUM_THREADS))(positions)
    assert close(one[0], two[0], 1e-13) and close(one[1], two[1], 1e-13)


#: Angular factors that share power rows in every way the kernel builds them: zeta = 1, 2^j and sums of powers
#: of two (3, 5, 6, 7, 12) for both lambdas, three etas on one leg cutoff and a second leg cutoff, radial
#: weights whose exp() is shared (exp(a=1/2) = exp(a=1/4)^2, gauss(s=1) = gauss(s=2)^4).
POWERS = DescriptorSet.from_names(
    "O:exp(a=1/4,rc=3.9); O:exp(a=1/2,rc=3.9); H:gauss(s=2,rc=3.9); H:gauss(s=1,rc=3.5); H:exp(a=1,rc=3.9);"
    "OH:angle(eta=0.05,zeta=3,lambda=+1,rc=3.5); OH:angle(eta=0.3,zeta=5,lambda=-1,rc=3.5);"
    "OH:angle(eta=1,zeta=6,lambda=+1,rc=3.5); HH:angle(eta=0.3,zeta=7,lambda=-1,rc=3.5);"
    "HH:angle(eta=0.3,zeta=12,lambda=+1,rc=3.5); HH:angle(eta=0.05,zeta=1,lambda=-1,rc=3.5);"
    "OO:angle(eta=0.3,zeta=16,lambda=+1,rc=3.9); OO:angle(eta=0.3,zeta=2,lambda=-1,rc=3.9);"
    "HO:angle(eta=1,zeta=4,lambda=-1,rc=3.9)"
)


@pytest.mark.parametrize("form", ["own", "shared"])
def test_shared_powers_and_exponentials_match_numpy(form):
    positions, symbols = random_config(60, 9.0, np.random.default_rng(26))
    loss = random_loss(POWERS, form, np.random.default_rng(27), wall=small_wall())
    H, F = DescriptorForces(loss, symbols, 9.0, skin=0.5)(positions)
    H0, F0 = loss.evaluate(positions, 9.0, symbols)
    assert close(H, H0) and close(F, F0)


@pytest.mark.parametrize("form", ["own", "shared"])
def test_one_and_two_threads_give_the_same_bits(form):
    positions, box, symbols, descriptors, wall = CASES["water"]
    loss = random_loss(descriptors, form, np.random.default_rng(28), wall=wall)
    one = ForceEvaluator(loss, symbols, box, threads=1)(positions)
    two = ForceEvaluator(loss, symbols, box, threads=min(2, numba.config.NUMBA_NUM_THREADS))(positions)
    assert np.array_equal(one[0], two[0]) and np.array_equal(one[1], two[1])


def test_atoms_without_a_loss_are_sources_only():
    positions, box, symbols, descriptors, wall = CASES["random"]
    loss = random_loss(descriptors, "shared", np.random.default_rng(24))
    del loss.A["H"], loss.B["H"]
    H, F = DescriptorForces(loss, symbols, box)(positions)
    H0, F0 = loss.evaluate(positions, box, symbols)
    assert close(H, H0) and close(F, F0) and np.all(H[np.array(symbols) == "H"] == 0)


def test_box_must_hold_the_cutoffs():
    positions, box, symbols, descriptors, _ = CASES["random"]
    loss = random_loss(descriptors, "own", np.random.default_rng(25))
    with pytest.raises(ValueError, match="exceeds half the box"):
        DescriptorForces(loss, symbols, 7.0)
    loss.wall = PairWall({"OO": 1.0}, rc=4.6)
    with pytest.raises(ValueError, match="wall rc = 4.6 angstrom exceeds half the box"):
        DescriptorForces(loss, symbols, box)


#: Only angular features of small zeta (every one summed through moments, no neighbour pairs formed), on two
#: leg cutoffs, with a leg (eta=1, rc=3) that only the OO pair uses.
MOMENTS_ONLY = DescriptorSet.from_names(
    "O:exp(a=1/2,rc=3.9); H:gauss(s=1,rc=3.9); OO:angle(eta=0.05,zeta=1,lambda=+1,rc=3.9);"
    "OO:angle(eta=1,zeta=2,lambda=-1,rc=3); OH:angle(eta=0.3,zeta=2,lambda=+1,rc=3.5);"
    "OH:angle(eta=0.3,zeta=1,lambda=-1,rc=3.5); HH:angle(eta=0.05,zeta=2,lambda=-1,rc=3.9)"
)


@pytest.mark.parametrize("form", ["own", "shared"])
def test_features_summed_through_moments_match_numpy(form):
    encoded = EncodedDescriptors(MOMENTS_ONLY, ["O", "H"])
    assert MOMENT_RANK == 2 and len(encoded.mom_p) == 5 and encoded.grp_ptr[-1] == 0  # no pair by pair
    positions, symbols = random_config(60, 9.0, np.random.default_rng(30))
    loss = random_loss(MOMENTS_ONLY, form, np.random.default_rng(31), wall=small_wall())
    fast = DescriptorForces(loss, symbols, 9.0, skin=0.5)
    H, F = fast(positions)
    H0, F0 = loss.evaluate(positions, 9.0, symbols)
    assert close(H, H0) and close(F, F0)
    assert close(fast.descriptors(positions), descriptor_jacobian(positions, 9.0, symbols, MOMENTS_ONLY).phi)


def test_the_l2_preset_is_summed_through_moments_and_the_prototype_pair_by_pair():
    l2 = EncodedDescriptors(descriptor_set("many-body-l2", ("O", "H"), 4.5, "shared"), ["O", "H"])
    prototype = EncodedDescriptors(descriptor_set("many-body-sharp", ("O", "H"), 4.5, "own"), ["O", "H"])
    assert len(l2.mom_p) == 36 and l2.grp_ptr[-1] == 0 and set(l2.rc) == {4.5}
    assert len(prototype.mom_p) == 0 and prototype.grp_ptr[-1] == 72
