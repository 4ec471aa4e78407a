"""Sweeps on Dask: a 2 x 2 x 2 grid on a local cluster (loopback), a failing member, resuming, the CLI."""

import json

import numpy as np
import pandas as pd
import psutil
import pytest

from experiments.cli import main
from experiments.sweep import dask_client, expand, member_id, run_sweep
from learning.cp2k.reader import read_trajectory
from learning.selection import fit_losses

GRID = {"mode": "learning", "tau": [50.0, 500.0], "temperature_K": [300.0, 450.0], "seed": [1, 2], "steps": 10,
        "every": 5}
BAD = {"mode": "learning", "tau": -1.0, "temperature_K": 300.0, "seed": 1, "steps": 10, "every": 5}


@pytest.fixture(scope="module")
def shared():
    data = read_trajectory().frames(slice(None, None, 8))
    losses = fit_losses(data, invariants="exp(a=1),gauss(s=2),pow(n=2)", order="quadratic")
    return {"losses": losses, "start": {"symbols": data.symbols, "positions": data.positions[40], "box": data.box}}


@pytest.fixture(scope="module")
def cluster():
    """A local cluster of two single-threaded worker processes, listening on 127.0.0.1 only."""
    with dask_client(n_workers=2) as client:
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2 and client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert all(address.startswith("tcp://127.0.0.1:") and w["nthreads"] == 1 for address, w in workers.items())
        assert len({w["id"] for w in workers.values()}) == 2  # two processes (nanny-started workers)
        here = psutil.Process()
        listening = [c.laddr for p in [here, *here.children(recursive=True)] for c in p.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        assert len(listening) >= 4 and all(address.ip == "127.0.0.1" for address in listening), listening
        yield client.scheduler.address


def test_the_grid_expands_to_every_combination_with_stable_ids():
    members = expand([GRID, BAD, GRID])
    assert len(members) == 9 and members[0] == {**GRID, "tau": 50.0, "temperature_K": 300.0, "seed": 1}
    assert member_id(dict(reversed(list(members[3].items())))) == member_id(members[3])
    assert len({member_id(m) for m in members}) == 9
    with pytest.raises(ValueError, match="'seed'"):
        expand({"seed": []})


def test_a_sweep_reports_a_failing_member_keeps_the_others_and_resumes(shared, cluster, tmp_path):
    records = run_sweep([GRID, BAD], out=tmp_path, shared=shared, scheduler=cluster, progress=False)
    assert len(records) == 9
    ok = [r for r in records if r["status"] == "ok"]
    (failed,) = [r for r in records if r["status"] == "failed"]
    assert len(ok) == 8 and failed["tau"] == -1.0 and failed["seed"] == 1
    assert failed["error"].startswith("ValueError: tau must be positive")
    for r in ok:
        assert r["completed_steps"] == 10 and 0 < r["deviation_from_newton_A"] < 0.5
        assert 90 < r["hoh_angle_mean_deg"] < 130 and np.isfinite(r["heating_rate_K_per_ps"])
    deviation = pd.DataFrame(ok).groupby("tau")["deviation_from_newton_A"].mean()
    assert deviation[500.0] < deviation[50.0]  # closer to Newton as tau grows

    table = pd.read_csv(tmp_path / "sweep.csv")
    assert len(table) == 9 and set(table["status"]) == {"ok", "failed"}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "sweep.parquet"), table, check_dtype=False)
    assert (tmp_path / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    files = {p.name: p for p in (tmp_path / "members").iterdir()}
    assert len(files) == 9
    assert "integrators.py" in json.loads(files[f"{failed['member']}.json"].read_text())["traceback"]

    before = {name: (p.stat().st_mtime_ns, p.read_text()) for name, p in files.items()}
    again = run_sweep([GRID, BAD], out=tmp_path, shared=shared, n_workers=1, progress=False)  # the default local path
    after = {name: (p.stat().st_mtime_ns, p.read_text()) for name, p in files.items()}
    rerun = [name for name in files if after[name] != before[name]]
    assert rerun == [f"{failed['member']}.json"]  # only the failed member ran again
    assert [r["wall_time_s"] for r in again if r["status"] == "ok"] == [r["wall_time_s"] for r in ok]


def test_mld_sweep_on_a_running_cluster(shared, cluster, tmp_path, capsys):
    loss = shared["losses"].save(tmp_path / "loss.json")
    out = tmp_path / "sweep"
    argv = ["sweep", "--param", "tau=100,1000", "--param", "temperature=300", "--steps", "5", "--every", "5",
            "--loss", str(loss), "--scheduler", cluster, "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["members"] == 2 and printed["status"] == {"ok": 2} and printed["failed"] == []
    assert sorted(pd.read_parquet(out / "sweep.parquet")["tau"]) == [100, 1000]
    assert (out / "losses.json").exists() and "frame" in json.loads((out / "sweep.json").read_text())


@pytest.mark.parametrize("extra,message", [
    (["--param", "colour=red"], "unknown parameter 'colour'"),
    (["--param", "tau"], "NAME=VALUE"),
    (["--param", "tau=1", "--param", "tau=2"], "given twice"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers: only for the local cluster"),
    (["--frame", "9999"], "--frame 9999"),
])
def test_bad_sweep_options_are_one_line_errors(extra, message, shared, tmp_path, capsys):
    loss = shared["losses"].save(tmp_path / "loss.json")
    assert main(["sweep", "--loss", str(loss), "--out", str(tmp_path / "out"), "--no-progress", *extra]) == 2
    error = capsys.readouterr().err
    assert error.startswith("mld: error:") and message in error and error.count("\n") == 1
