"""Bad input, fuzzed (hypothesis): the CP2K reader and the loss loader, fed truncated files, flipped
bytes, dropped lines, missing fields and missing files, either read what is complete (with a warning)
or raise one ``ValueError`` that names the file, never an unrelated exception."""

import json
import lzma
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.loss import AgentLosses
from learning.cp2k.reader import default_data_path, read_trajectory

FRAMES = 3
N_ATOMS = 96
FILES = ("h2o-32.inp", "h2o-32-pos-1.xyz", "h2o-32-vel-1.xyz", "h2o-32-frc-1.xyz", "h2o-32-1.ener")
FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def run_files() -> dict[str, bytes]:
    """The first FRAMES frames of the embedded run, file name -> bytes."""
    source = default_data_path().parent
    files = {"h2o-32.inp": (source / "h2o-32.inp").read_bytes()}
    for name in FILES[1:4]:
        with lzma.open(source / f"{name}.xz", "rb") as handle:
            files[name] = b"".join(handle.readline() for _ in range(FRAMES * (N_ATOMS + 2)))
    with lzma.open(source / "h2o-32-1.ener.xz", "rb") as handle:
        files["h2o-32-1.ener"] = b"".join(handle.readline() for _ in range(FRAMES + 1))
    return files


def mutate(data: bytes, kind: str, where: float, byte: int) -> bytes | None:
    """``data`` cut, with one byte changed, or without one line; None: the file is removed."""
    at = min(int(where * len(data)), len(data) - 1)
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ byte]) + data[at + 1:]
    if kind == "drop line":
        lines = data.splitlines(keepends=True)
        del lines[min(int(where * len(lines)), len(lines) - 1)]
        return b"".join(lines)
    return None


MUTATIONS = st.tuples(st.sampled_from(FILES), st.sampled_from(["truncate", "flip", "drop line", "remove"]),
                      st.floats(0, 1), st.integers(1, 255))


@FUZZ
@given(mutation=MUTATIONS)
def test_a_damaged_cp2k_run_is_read_up_to_the_damage_or_refused_naming_the_file(run_files, mutation):
    name, kind, where, byte = mutation
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder)
        for file, data in run_files.items():
            if file == name:
                data = mutate(data, kind, where, byte)
            if data is not None:
                (run / file).write_bytes(data)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trajectory = read_trajectory(run / "h2o-32.inp")
        except ValueError as err:
            message = str(err)
            named = [file for file in FILES if file in message] or (["h2o-32-pos-1.xyz"] if "pos-1.xyz" in message else [])
            assert named, message
            assert name in message or name == "h2o-32.inp" or kind == "remove", message
            return
    assert 1 <= len(trajectory) <= FRAMES and trajectory.positions.shape[1:] == (N_ATOMS, 3)
    assert np.all(np.isfinite(trajectory.positions)) and np.all(np.isfinite(trajectory.accelerations))
    assert set(trajectory.steps) <= set(range(FRAMES))


@pytest.fixture(scope="module")
def loss_text() -> str:
    """The embedded losses, with the domain a new fit records."""
    document = json.loads((Path(__file__).resolve().parents[1] / "docs" / "results" / "losses.json").read_text())
    document["provenance"].update(box_A=9.8528, cutoff_A=None, species=["O", "H"], temperature_K=[402.4, 493.3],
                                  accelerations="forces")
    return json.dumps(document, indent=1)


def json_paths(value, prefix=()):
    """Every key path of a JSON value (dict keys and list indices)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from json_paths(item, prefix + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield prefix + (index,)
            yield from json_paths(item, prefix + (index,))


def check_loss_file(path: Path) -> None:
    """Loads, or a ValueError naming the file; a loaded loss can be checked against a box."""
    try:
        losses = AgentLosses.load(path)
    except ValueError as err:
        assert str(path) in str(err), str(err)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            losses.check_domain(9.8528)
        except ValueError as err:
            assert "the loss was learned" in str(err), str(err)


@FUZZ
@given(kind=st.sampled_from(["truncate", "flip", "drop line"]), where=st.floats(0, 1), byte=st.integers(1, 255))
def test_a_damaged_loss_file_is_refused_naming_the_file(loss_text, kind, where, byte):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "loss.json"
        path.write_bytes(mutate(loss_text.encode(), kind, where, byte))
        check_loss_file(path)


@FUZZ
@given(data=st.data())
def test_a_loss_file_with_a_missing_or_retyped_field_is_refused_naming_the_file(loss_text, data):
    document = json.loads(loss_text)
    paths = sorted(json_paths(document), key=str)
    path = data.draw(st.sampled_from(paths))
    replacement = data.draw(st.sampled_from(["delete", None, "text", 3, [], {}]))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if replacement == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "loss.json"
        file.write_text(json.dumps(document))
        check_loss_file(file)
