"""Files medbench writes atomically (run.json, metrics.json, baselines, provenance) get the process's normal
file mode, like every other file of a run: 0644 under umask 022, 0600 under 077. ``tempfile.mkstemp`` made
them 0600 whatever the umask, so a teammate could read samples.parquet and report.html but not run.json."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from fixtures_runs import rows_from_outcomes
from medbench.harness.gate.baseline import save_baseline
from medbench.harness.run.rundir import RunWriter, write_json
from medbench.trainers.provenance import DataSlice, Provenance, write_provenance


@pytest.fixture
def umask():
    """Set the process umask for one test, and put the old one back."""
    old = os.umask(0o022)
    try:
        yield lambda mask: os.umask(mask)
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _provenance() -> Provenance:
    return Provenance(role="sft", parent="base", recipe="sft", config={}, config_source="test.yaml", config_sha256="0",
                      backend="trl", data=DataSlice(sources=[], n_rows=0, sha256="0"), steps=1)


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask_like_plain_writes(make_run, tmp_path, umask, mask, expected):
    umask(mask)
    run = make_run("run", rows_from_outcomes("base", "pubmedqa", "CCWU"))
    plain = tmp_path / "plain.txt"
    plain.write_text("x")  # what open() gives every other file of a run
    assert _mode(plain) == expected
    RunWriter(run).write_meta({"run_id": "run"})
    baseline = save_baseline(run, tmp_path / "baselines" / "main.json")["path"]
    write_json(tmp_path / "state.json", {"a": 1})
    prov = write_provenance(tmp_path / "ckpt", _provenance())
    written = {p.name: _mode(p) for p in (run / "run.json", run / "metrics.json", run / "samples.parquet",
                                         baseline, tmp_path / "state.json", prov)}
    assert written == {name: expected for name in written}


def test_an_atomic_write_leaves_no_temp_file_behind(tmp_path, umask):
    write_json(tmp_path / "a.json", {"a": 1})
    write_json(tmp_path / "a.json", {"a": 2})  # overwrite in place
    write_provenance(tmp_path, _provenance())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "medbench_provenance.json"]
    assert (tmp_path / "a.json").read_text() == '{\n  "a": 2\n}\n'
