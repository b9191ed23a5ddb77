"""A baseline records what produced it: the package versions and the machine of the run it was saved from.

Float32 training on CPU differs across processors and library builds, so a reviewer comparing a CI run with
a committed baseline must be able to read which versions and which CPU the baseline came from. The run's
``environment`` (written by ``medbench bench`` into run.json) is the source; it used to be read under keys
run.json does not have, and every baseline said ``"versions": null``.
"""

from __future__ import annotations

import json
import platform
from importlib.metadata import version

from fixtures_runs import rows_from_outcomes
from medbench.harness.gate.baseline import load_scored, save_baseline
from medbench.harness.run import environment
from medbench.harness.run.rundir import RunWriter, load_run

#: The distributions whose versions decide a run's numbers (the issue's list).
MUST_RECORD = ("medbench", "torch", "transformers", "lm-eval", "trl", "peft", "datasets")


def _bench_like_run(make_run):
    """A run directory whose run.json carries what the bench runner records (environment.environment())."""
    run = make_run("run", rows_from_outcomes("base", "pubmedqa", "CCWU") + rows_from_outcomes("sft", "pubmedqa", "CWCC"))
    meta = load_run(run).meta
    meta = {k: v for k, v in meta.items() if k not in ("versions", "git_sha", "schema_version")}
    RunWriter(run).write_meta({**meta, "environment": environment.environment()})
    return run


def test_saved_baseline_records_package_versions_and_machine(make_run, tmp_path):
    run = _bench_like_run(make_run)
    out = save_baseline(run, tmp_path / "main.json")["path"]
    prov = json.loads(out.read_text())["provenance"]
    for name in MUST_RECORD:
        assert prov["versions"][name] == version(name), name
    machine = prov["machine"]
    assert machine["python"] == platform.python_version()
    assert machine["platform"] == platform.platform() and machine["machine"] == platform.machine()
    assert machine["cpu"] == environment.cpu_model() and machine["cpu_count"] >= 1
    git = environment.git_info()
    assert prov["git_sha"] == git["sha"] and prov["git_dirty"] == git["dirty"]
    # read back by the gate's loader unchanged, and the same provenance when the gate reads the run itself
    assert load_scored(out).provenance["versions"] == prov["versions"]
    from_run = load_scored(run).provenance
    assert (from_run["versions"], from_run["machine"]) == (prov["versions"], prov["machine"])


def test_a_run_without_an_environment_keeps_its_flat_keys(make_run, tmp_path):
    run = make_run("old", rows_from_outcomes("base", "pubmedqa", "CW"))  # flat "versions" / "git_sha", as older runs
    prov = json.loads(save_baseline(run, tmp_path / "b.json")["path"].read_text())["provenance"]
    assert prov["versions"] == {"medbench": "test"} and prov["git_sha"] == "0" * 40 and prov["machine"] is None
