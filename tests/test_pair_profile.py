"""The pair profile E(r) of experiments.pair_profile against a closed form, and its errors."""

import numpy as np
import pytest

from agents.loss import pair_potential_losses
from experiments.pair_profile import main, pair_profile


def test_two_nuclei_under_a_pair_loss_give_its_closed_form():
    """H_k = A exp(-r) for each of two hydrogens (eq. 4.5, linear): E(r) = 2 A exp(-r), across the periodic wall."""
    losses = pair_potential_losses(("H",), ["exp(a=1)"], [[[-2.0]]])
    positions = np.array([[9.5, 3.0, 3.0], [0.7, 3.4, 2.8]])  # 1.3 angstrom apart through the box's face
    distances = np.array([0.9, 1.2, 1.7, 2.5, 3.1])
    energies = pair_profile(losses, positions, 10.0, ["H", "H"], 0, 1, distances)
    np.testing.assert_allclose(energies, 2 * -2.0 * (np.exp(-distances) - np.exp(-3.1)), rtol=1e-12, atol=1e-14)


def test_bad_atoms_and_distances_are_named():
    losses = pair_potential_losses(("H",), ["exp(a=1)"], [[[-2.0]]])
    positions = np.array([[1.0, 1.0, 1.0], [2.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="atoms 0 and 0"):
        pair_profile(losses, positions, 10.0, ["H", "H"], 0, 0)
    with pytest.raises(ValueError, match="atoms 0 and 5"):
        pair_profile(losses, positions, 10.0, ["H", "H"], 0, 5)
    with pytest.raises(ValueError, match="distances"):
        pair_profile(losses, positions, 10.0, ["H", "H"], 0, 1, [1.0, -2.0])


def test_the_command_prints_the_profile_of_a_frame(tmp_path, capsys):
    losses = pair_potential_losses(("H",), ["exp(a=1)"], [[[-2.0]]])
    losses.save(tmp_path / "loss.json")
    frame = tmp_path / "frame.xyz"
    frame.write_text('2\nLattice="10 0 0 0 10 0 0 0 10" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
                     "H 1.0 1.0 1.0\nH 2.0 1.0 1.0\n")
    main([str(tmp_path / "loss.json"), str(frame), "0", "1", "--distances", "1,2"])
    out = capsys.readouterr().out
    assert "H0-H1" in out and f"{2 * -2.0 * (np.exp(-1) - np.exp(-2)):+10.3f} eV" in out


def test_molecule_moves_rigidly_with_its_atom():
    """``molecule=True``: J's hydrogens ride along, so a pair loss on O-O and O-H sees every O-H distance change;
    E = 2 sum over pairs V (4.5 as a pair potential), summed here by numpy for the translated molecule."""
    c = np.array([[[1.5], [0.7]], [[0.7], [0.0]]])
    losses = pair_potential_losses(("O", "H"), ["exp(a=1)"], c)
    symbols = ["O", "H", "H", "O", "H", "H"]
    positions = np.array([[1.0, 1.0, 1.0], [1.9, 1.3, 1.0], [0.7, 1.9, 1.1],
                          [3.6, 1.2, 1.4], [4.1, 2.0, 1.3], [4.2, 0.5, 1.6]])
    box, distances = 12.0, np.array([1.6, 2.0, 2.6])
    axis = positions[3] - positions[0]
    axis /= np.linalg.norm(axis)

    def energy(q):
        total = 0.0
        for a in range(6):
            for b in range(a + 1, 6):
                r = np.linalg.norm(q[b] - q[a])
                total += c[int(symbols[a] == "H"), int(symbols[b] == "H"), 0] * np.exp(-r)
        return 2 * total

    expected = []
    for r in distances:
        q = positions.copy()
        q[3:] += positions[0] + r * axis - positions[3]
        expected.append(energy(q))
    energies = pair_profile(losses, positions, box, symbols, 0, 3, distances, molecule=True)
    np.testing.assert_allclose(energies, np.array(expected) - expected[-1], rtol=1e-10, atol=1e-12)
    alone = pair_profile(losses, positions, box, symbols, 0, 3, distances)
    assert not np.allclose(alone, energies)
