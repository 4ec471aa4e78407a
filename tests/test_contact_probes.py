"""Contact probes (learning/contact_probes.py): molecules pushed together, and extra rows in the fit."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from manybody_support import EVERY_KIND

from agents.geometry import minimum_image
from agents.loss import pair_potential_losses
from experiments.contact_check import contact_energies
from learning.contact_probes import EMBEDDED, EMBEDDED_HELD_OUT, closest_pairs, contact_probes, molecule_of, push_together, read_probes
from learning.cp2k.reader import read_trajectory
from learning.labelled import concatenate, same_system
from learning.descriptor_fit import DescriptorEquations, accumulate, fit_descriptor_loss, trajectory_forces
from learning.splits import split_frames


@pytest.fixture(scope="module")
def water():
    return read_trajectory().frames(slice(300, 302))


def _distance(positions, box, i, j):
    return float(np.linalg.norm(minimum_image(positions[j] - positions[i], box)))


def test_every_oxygen_owns_two_hydrogens(water):
    owner = molecule_of(water.positions[0], water.box, water.symbols)
    oxygens = np.flatnonzero(np.asarray(water.symbols) == "O")
    np.testing.assert_array_equal(owner[oxygens], oxygens)
    assert sorted(np.bincount(owner)[oxygens]) == [3] * len(oxygens)  # the O and its two H


def test_closest_pairs_are_the_brute_force_minimum_and_distinct(water):
    positions, box, symbols = water.positions[0], water.box, np.asarray(water.symbols)
    pairs = closest_pairs(positions, box, symbols, ("O", "O"), count=5)
    oxygens = np.flatnonzero(symbols == "O")
    brute = min(_distance(positions, box, i, j) for i in oxygens for j in oxygens if i < j)
    assert pairs[0][2] == pytest.approx(brute, abs=1e-12)
    assert [r for *_, r in pairs] == sorted(r for *_, r in pairs)
    assert len({frozenset(p[:2]) for p in pairs}) == 5
    for i, j, r in pairs:
        assert r == pytest.approx(_distance(positions, box, i, j), abs=1e-12)
    i, j, r = closest_pairs(positions, box, symbols, ("O", "H"))[0]
    owner = molecule_of(positions, box, symbols)
    assert symbols[i] == "O" and symbols[j] == "H" and owner[i] != owner[j] and r < 2.2  # a hydrogen bond


def test_push_together_moves_one_molecule_rigidly_to_the_distance(water):
    positions, box, symbols = water.positions[0], water.box, water.symbols
    i, j, r0 = closest_pairs(positions, box, symbols)[0]
    moved = push_together(positions, box, symbols, i, j, 1.7)
    assert _distance(moved, box, i, j) == pytest.approx(1.7, abs=1e-12)
    owner = molecule_of(positions, box, symbols)
    shifted = np.flatnonzero(np.any(moved != positions, axis=1))
    np.testing.assert_array_equal(shifted, np.flatnonzero(owner == owner[j]))
    shift = moved[shifted] - positions[shifted]
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-12)  # rigid
    axis = minimum_image(positions[j] - positions[i], box)
    np.testing.assert_allclose(shift[0], (1.7 - r0) * axis / np.linalg.norm(axis), atol=1e-12)
    with pytest.raises(ValueError, match="same molecule"):
        push_together(positions, box, symbols, j, int(np.flatnonzero(owner == j)[1]), 1.0)
    with pytest.raises(ValueError, match="positive"):
        push_together(positions, box, symbols, i, j, 0.0)


def test_contact_probes_cover_frames_pairs_and_distances(water):
    probes = contact_probes(water, [0, -1], distances=(2.0, 1.6), per_frame=2)
    assert [(p.frame, p.distance) for p in probes] == [(0, 2.0), (0, 1.6)] * 2 + [(1, 2.0), (1, 1.6)] * 2
    for p in probes:
        assert _distance(p.positions, water.box, p.i, p.j) == pytest.approx(p.distance, abs=1e-12)
    assert len({p.name for p in probes}) == len(probes)
    with pytest.raises(ValueError, match="outside"):
        contact_probes(water, [2])


def test_extra_frames_add_their_rows_to_the_training_equations():
    """accumulate(extra=E): the training sums are those of the split plus those of E's frames (the
    normal equations are sums over rows), E alone is the split "extra", and the other splits are untouched."""
    run = read_trajectory()
    main, extra = run.frames(slice(0, 600, 60)), run.frames(slice(5, 30, 10))
    splits = split_frames(len(main), equilibration=0.0)
    alone = accumulate(main, EVERY_KIND, "shared", "quadratic", wall=True, splits=splits)
    both = accumulate(main, EVERY_KIND, "shared", "quadratic", wall=True, splits=splits, extra=extra)
    assert both.wall == alone.wall  # sized from the training split alone
    rows = DescriptorEquations(EVERY_KIND, "shared", ("O", "H"), alone.quadratic, alone.wall)
    rows.add_frames({"extra": range(len(extra))}, extra.positions, extra.box, extra.symbols,
                    trajectory_forces(extra), extra.potential_energy)
    for s in ("O", "H"):
        train, added = alone.equations["train"][s], rows.equations["extra"][s]
        np.testing.assert_allclose(both.equations["train"][s].gram, train.gram + added.gram, rtol=1e-12,
                                   atol=1e-12 * np.abs(train.gram).max())
        np.testing.assert_allclose(both.equations["train"][s].moment, train.moment + added.moment, rtol=1e-12,
                                   atol=1e-12 * np.abs(train.moment).max())
        np.testing.assert_array_equal(both.equations["extra"][s].gram, added.gram)
        np.testing.assert_array_equal(both.equations["test"][s].gram, alone.equations["test"][s].gram)
    assert both.energy["train"].n == alone.energy["train"].n + len(extra)
    with pytest.raises(ValueError, match="species"):
        accumulate(main, EVERY_KIND, "shared", "quadratic", splits=splits,
                   extra=replace(extra, symbols=["H" if s == "O" else "O" for s in extra.symbols]))


def test_cached_equations_give_the_same_losses_as_fits_from_scratch():
    """fit_descriptor_loss(cache=...): fits on one run that differ only in their extra frames share its
    equations, give the same bits as fits from scratch, and leave the cached equations unchanged."""
    run = read_trajectory()
    main, extra = run.frames(slice(0, 600, 60)), run.frames(slice(5, 30, 10))
    splits = split_frames(len(main), equilibration=0.0)
    cache = {}
    for added in (None, extra, None):
        fresh = fit_descriptor_loss(main, EVERY_KIND, "shared", splits=splits, extra=added)
        cached = fit_descriptor_loss(main, EVERY_KIND, "shared", splits=splits, extra=added, cache=cache)
        for s in ("O", "H"):
            np.testing.assert_array_equal(cached.A[s], fresh.A[s])
            np.testing.assert_array_equal(cached.B[s], fresh.B[s])
        assert cached.provenance["metrics"] == fresh.provenance["metrics"]
    assert len(cache) == 1


@pytest.fixture(scope="module", params=[EMBEDDED, EMBEDDED_HELD_OUT], ids=["train", "held-out"])
def embedded(request):
    return read_probes(request.param)


def test_the_embedded_probes_are_pushed_frames_of_the_embedded_run(embedded):
    """The shipped single points are :func:`push_together` geometries of the run's frames (CP2K prints
    positions to 1e-10), and DFT says pushing two molecules together costs energy: it rises at every
    step inwards, and the pushed pair repels."""
    probes, table, run = embedded
    assert len(probes) == len(table) >= 8
    for row in table.itertuples():
        expected = push_together(run.positions[row.frame], run.box, run.symbols, row.i, row.j, row.distance_A)
        np.testing.assert_allclose(probes.positions[row.probe], expected, atol=1e-6)
        assert probes.potential_energy[row.probe] == pytest.approx(row.energy_eV, abs=1e-9)
        axis = minimum_image(probes.positions[row.probe][row.j] - probes.positions[row.probe][row.i], run.box)
        assert np.dot(probes.forces[row.probe][row.j] - probes.forces[row.probe][row.i], axis) > 0
    for _, group in table.groupby(["frame", "i", "j"]):
        energies = group.sort_values("distance_A", ascending=False)["energy_eV"].to_numpy()
        assert np.all(np.diff(energies) > 0)
        assert energies[0] > run.potential_energy[group["frame"].iloc[0]] - 0.5


def test_contact_energies_of_a_pair_potential_have_the_closed_form(embedded):
    """A loss equal to the O-O pair potential V(r) = c exp(-r) has E = sum_k H_k = 2 sum_{O pairs} V (minimum
    image), summed here by numpy over the probe and its frame (the probe's input rounds every atom to 1e-8)."""
    probes, table, run = embedded
    c = 3.0
    loss = pair_potential_losses(("O", "H"), ["exp(a=1)"], [[[c], [0.0]], [[0.0], [0.0]]])
    energies = contact_energies({"pair": loss}, probes, table, run)
    oxygens = np.flatnonzero(np.asarray(run.symbols) == "O")
    upper = np.triu_indices(len(oxygens), 1)

    def energy(positions):
        r = np.linalg.norm(minimum_image(positions[oxygens][:, None] - positions[oxygens][None], run.box), axis=2)
        return 2 * c * np.sum(np.exp(-r[upper]))

    for row in energies.itertuples():
        expected = energy(probes.positions[row.probe]) - energy(run.positions[row.frame])
        assert row.pair_eV == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert row.dft_eV == pytest.approx(table.energy_eV[row.probe] - run.potential_energy[row.frame], abs=1e-9)


def test_the_contacts_command_writes_table_figure_and_summary(tmp_path, capsys):
    from experiments.cli import main

    loss = pair_potential_losses(("O", "H"), ["exp(a=1)"], [[[3.0], [0.0]], [[0.0], [0.0]]])
    loss.save(tmp_path / "pair.json")
    assert main(["contacts", "--loss", f"oo={tmp_path / 'pair.json'}", "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["count"] == len(pd.read_csv(tmp_path / "out" / "contacts.csv"))
    assert set(summary["force_relative_rmse"]["oo"]) == {"O", "H"}
    assert (tmp_path / "out" / "contacts.png").stat().st_size > 0
    assert main(["contacts", "--loss", "nothing.json", "--probes", str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "nothing.json" in capsys.readouterr().err


def test_fit_extra_adds_the_probes_and_records_them(tmp_path, capsys):
    """``mld fit --extra``: the probes join the training rows (their own RMSE is the split "extra") and the
    provenance names them; the paper's own-form losses refuse extra data."""
    from conftest import embedded_run_slice

    from experiments.cli import main

    (tmp_path / "run").mkdir()
    data = str(embedded_run_slice(tmp_path / "run", 60) / "h2o-32.inp")
    probes = str(EMBEDDED / "probes.extxyz.xz")
    names = "O:gauss(s=1,rc=3.5),H:gauss(s=1,rc=3.5),O:pow(n=4,rc=3.5),OH:angle(eta=0.3,zeta=2,lambda=+1,rc=3)"
    fits = {}
    for name, extra in (("plain", []), ("probes", ["--extra", probes])):
        assert main(["fit", "--data", data, "--form", "shared", "--invariants", names, *extra,
                     "--out", str(tmp_path / f"{name}.json"), "--no-progress"]) == 0
        fits[name] = json.loads((tmp_path / f"{name}.json").read_text())["provenance"]
    assert "extra_data" not in fits["plain"] and "extra" not in fits["plain"]["relative_rmse"]
    assert fits["probes"]["extra_data"] == {"data": "learning/data/h2o-32/probes/probes.extxyz.xz", "frames": 16}
    assert set(fits["probes"]["relative_rmse"]["extra"]) == {"O", "H"}
    held_out = str(EMBEDDED_HELD_OUT / "probes.extxyz.xz")
    assert main(["fit", "--data", data, "--form", "shared", "--invariants", names, "--extra", probes, "--extra",
                 held_out, "--out", str(tmp_path / "both.json"), "--no-progress"]) == 0
    both = json.loads((tmp_path / "both.json").read_text())["provenance"]
    assert both["extra_data"] == {"data": "learning/data/h2o-32/probes/probes.extxyz.xz,"
                                          "learning/data/h2o-32/probes-held-out/probes.extxyz.xz", "frames": 32}
    capsys.readouterr()
    assert main(["fit", "--data", data, "--invariants", "paper", "--extra", probes, "--out",
                 str(tmp_path / "paper.json"), "--no-progress"]) == 2
    assert "--extra data needs a descriptor loss" in capsys.readouterr().err


def test_concatenate_joins_frames_of_the_same_system_only(embedded):
    probes, _, run = embedded
    joined = concatenate([probes, run.frames(slice(0, 3))], "both")
    assert len(joined) == len(probes) + 3 and joined.source == "both"
    np.testing.assert_array_equal(joined.forces[len(probes):], run.forces[:3])
    np.testing.assert_array_equal(joined.potential_energy[:len(probes)], probes.potential_energy)
    assert joined.velocities is not None and list(joined.steps) == list(range(len(joined)))
    with pytest.raises(ValueError, match="atoms or box differ"):
        concatenate([probes, replace(run, box=run.box + 1.0)], "bad")


def test_the_probes_variants_apply_only_to_the_probes_system():
    """``mld beyond`` runs the variants with embedded extra frames (+probes, +active) by default only on the
    embedded run's system; asked for them on another system, it says why not."""
    from experiments.beyond import EXTRA_DATA, VARIANTS, default_variants, embedded_extra

    run = read_trajectory().frames(slice(0, 2))
    assert default_variants(run) == tuple(VARIANTS)
    other = replace(run, box=run.box + 1.0)
    assert default_variants(other) == tuple(v for v in VARIANTS if not VARIANTS[v].extra)
    assert {"shared/many-body-sharp+probes", "shared/many-body-l2+active"} <= set(VARIANTS) - set(default_variants(other))
    for name in EXTRA_DATA:
        assert same_system(embedded_extra(run, (name,)), run)
        with pytest.raises(ValueError, match="another system"):
            embedded_extra(other, (name,))
    joined = embedded_extra(run, tuple(EXTRA_DATA))
    assert len(joined) == sum(len(load()) for load in EXTRA_DATA.values())
