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
