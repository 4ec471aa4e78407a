"""Descriptor sets (agents/descriptors.py) and their Jacobians (agents/descriptor_jacobian.py)."""

import json

import numpy as np
import pytest
from manybody_support import EVERY_KIND, random_config

from agents.descriptor_jacobian import agent_descriptors, descriptor_jacobian
from agents.descriptors import Angular, CutRadial, DescriptorSet, Feature, parse_feature, prototype_descriptors
from agents.invariants import InvariantSet, source_index
from agents.cutoff import SmoothCutoff
from agents.weights import Gaussian, paper_weight_functions


def test_names_parse_back_and_json_round_trips():
    preset = prototype_descriptors(("O", "H"), rc=4.5, weights=paper_weight_functions())
    assert len(preset) == 2 * 18 + 3 * 24
    assert "OH:angle(eta=0.3,zeta=2,lambda=+1,rc=4.5)" in preset.names
    assert "O:gauss(s=2,rc=4.5)" in preset.names
    assert all(parse_feature(f.name) == f for f in preset.features)
    assert DescriptorSet.from_dict(json.loads(json.dumps(preset.to_dict()))) == preset
    assert parse_feature("HO:angle(eta=1/4,zeta=16,lambda=-1,rc=3)") == Feature(("H", "O"), Angular(0.25, 16, -1, 3.0))
    assert parse_feature("O:gauss(s=2,rc=4.5)") == Feature(("O",), CutRadial(Gaussian(2.0), 4.5))


@pytest.mark.parametrize("name, word", [
    ("O:angle(eta=0.3,zeta=1.5,lambda=+1,rc=4)", "zeta"),
    ("OH:angle(eta=-0.3,zeta=2,lambda=+1,rc=4)", "eta"),
    ("OH:angle(eta=0.3,zeta=2,lambda=+2,rc=4)", "angle"),
    ("OH:gauss(s=2,rc=4)", "source"),
    ("O:gauss(s=2,rc=0)", "rc"),
    ("gauss(s=2,rc=4)", "SOURCES:FUNCTION"),
    ("O:cosine(rc=4)", "unknown descriptor"),
])
def test_bad_names_say_what_is_wrong(name, word):
    with pytest.raises(ValueError, match=word):
        parse_feature(name)


def test_repeated_features_are_refused():
    with pytest.raises(ValueError, match="repeat"):
        DescriptorSet.from_names("OH:angle(eta=1,zeta=1,lambda=+1,rc=3);HO:angle(eta=1,zeta=1,lambda=+1,rc=3)")


def test_box_must_hold_the_cutoff():
    positions, symbols = random_config(9, 7.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rc = 3.9 angstrom exceeds half the box"):
        descriptor_jacobian(positions, 7.0, symbols, EVERY_KIND)
    descriptor_jacobian(positions, 7.8, symbols, EVERY_KIND)  # rc = box / 2 is fine


@pytest.fixture(scope="module")
def config():
    rng = np.random.default_rng(1)
    box = 8.0
    positions, symbols = random_config(30, box, rng)
    return positions, box, symbols, descriptor_jacobian(positions, box, symbols, EVERY_KIND)


def test_reference_and_vectorized_agree(config):
    positions, box, symbols, J = config
    for k in range(len(positions)):
        phi, jac = agent_descriptors(k, positions, box, symbols, EVERY_KIND)
        assert np.max(np.abs(phi - J.phi[k])) <= 1e-12 * np.max(np.abs(phi))
        assert np.max(np.abs(jac - J.dense(k))) <= 1e-12 * np.max(np.abs(jac))
    assert np.all(np.mean(J.phi > 0, axis=0) > 0.5)  # every feature is populated: every kind is exercised


def test_gradients_are_finite_differences_of_phi(config):
    """Own (d phi(k)/dq_k) and cross (d phi(k)/dq_j) terms of every feature, against central differences."""
    positions, box, symbols, J = config
    jac = np.stack([J.dense(k) for k in range(len(positions))])  # (N, P, N, 3)
    h = 1e-5
    for j in range(len(positions)):
        for x in range(3):
            plus, minus = positions.copy(), positions.copy()
            plus[j, x] += h
            minus[j, x] -= h
            numeric = (descriptor_jacobian(plus, box, symbols, EVERY_KIND).phi
                       - descriptor_jacobian(minus, box, symbols, EVERY_KIND).phi) / (2 * h)
            scale = np.max(np.abs(jac[:, :, j, x]), axis=0) + 1e-3
            assert np.all(np.abs(numeric - jac[:, :, j, x]) <= 1e-6 * scale), (j, x)


def test_cutoff_radial_features_are_the_projects_cut_invariants(config):
    positions, box, symbols, J = config
    species = source_index(symbols, ("O", "H"))
    for p, feature in enumerate(EVERY_KIND.features):
        if not feature.angular:
            f = feature.function
            phi = InvariantSet((f.weight,), ("O", "H")).compute(positions, box, species, gradient=False,
                                                                 cutoff=SmoothCutoff(f.rc))
            assert np.allclose(phi[:, ("O", "H").index(feature.sources[0]), 0], J.phi[:, p], rtol=1e-13, atol=0)


def test_invariant_under_translation_rotation_and_permutation():
    rng = np.random.default_rng(2)
    box = 20.0
    cluster, symbols = random_config(24, 6.0, rng)  # a cluster far from its periodic images
    cluster = cluster - cluster.mean(axis=0)
    phi = descriptor_jacobian(cluster + box / 2, box, symbols, EVERY_KIND).phi
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotated = cluster @ q.T + box / 2
    assert np.allclose(descriptor_jacobian(rotated, box, symbols, EVERY_KIND).phi, phi, rtol=1e-12, atol=1e-14)
    shifted = cluster + box / 2 + rng.uniform(-30, 30, 3)  # any shift, wrapped or not
    assert np.allclose(descriptor_jacobian(shifted, box, symbols, EVERY_KIND).phi, phi, rtol=1e-12, atol=1e-14)
    perm = np.arange(len(symbols))
    for s in ("O", "H"):
        same = np.flatnonzero(np.array(symbols) == s)
        perm[same] = rng.permutation(same)
    permuted = descriptor_jacobian(cluster[perm] + box / 2, box, symbols, EVERY_KIND).phi
    assert np.allclose(permuted, phi[perm], rtol=1e-12, atol=1e-14)
