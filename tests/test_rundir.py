"""The run-directory API: typed records in, typed records out, and old directories still load.

``tests/data/run_schema_v1`` is a run directory written by the schema-1 code (the harness before typed records:
``lenient_extracted`` column, no flexible reading, per-record length units, a loglikelihood task reported
as "strict format 100%" and "0 words"), committed as the previous version's fixture.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from fixtures_runs import rows_from_outcomes
from medbench.harness.run.records import (
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    CheckpointEntry,
    GeneratedTokens,
    PairMetrics,
    RunMetrics,
    TaskMetrics,
)
from medbench.harness.run.rundir import RunDirError, RunWriter, load_run
from medbench.harness.stats.metrics import compute_metrics

V1 = Path(__file__).parent / "data" / "run_schema_v1"


@pytest.fixture
def v1_copy(tmp_path) -> Path:
    out = tmp_path / "v1"
    shutil.copytree(V1, out)
    return out


def test_a_schema_1_run_loads_with_typed_records():
    stored = json.loads((V1 / "metrics.json").read_text())
    assert stored["schema_version"] == 1 and SCHEMA_VERSION == 2
    run = load_run(V1)
    assert run.schema_version == 1
    assert [type(c) for c in run.checkpoints] == [CheckpointEntry, CheckpointEntry]
    assert [(c.name, c.role, c.adapter) for c in run.checkpoints] == [("base", "base", None),
                                                                      ("sft", "sft", "/adapters/sft")]
    assert run.checkpoints[1]["source"] == "hand-written key"  # a key run.json had and the record does not know
    samples = run.samples()
    assert list(samples.columns[: len(SAMPLE_COLUMNS)]) == list(SAMPLE_COLUMNS)
    assert samples["flexible_outcome"].isna().all() and "lenient_extracted" in samples.columns  # kept as stored


def test_a_schema_1_run_is_rescored_with_this_versions_rules():
    stored = json.loads((V1 / "metrics.json").read_text())
    run = load_run(V1)
    assert isinstance(run.metrics, RunMetrics) and all(isinstance(r, TaskMetrics) for r in run.task_metrics())
    old = {(r["checkpoint"], r["task"]): r for r in stored["per_task"]}
    for rec in run.task_metrics():
        was = old[(rec.checkpoint, rec.task)]
        assert (rec.n, rec.n_correct, rec.accuracy) == (was["n"], was["n_correct"], was["accuracy"])  # same grades
    ll = next(r for r in run.task_metrics() if r.task == "medbench_pubmedqa_ll" and r.checkpoint == "base")
    assert old[("base", "medbench_pubmedqa_ll")]["format_strict_rate"] == 1.0  # what schema 1 said
    assert ll.format_strict_rate is None and ll.reasoning_tokens_median is None  # does not apply
    assert run.length_unit == "tokens" and ll.flexible_accuracy is None  # schema 1 had no flexible reading
    assert [(p.reference, p.checkpoint, p.n_fixed, p.n_broken) for p in run.pair_metrics()] == [
        (p["reference"], p["checkpoint"], p["n_fixed"], p["n_broken"]) for p in stored["pairs"]]


@pytest.mark.parametrize("version", [3, 99])
def test_a_newer_schema_says_to_upgrade(v1_copy, version):
    meta = json.loads((v1_copy / "run.json").read_text())
    (v1_copy / "run.json").write_text(json.dumps({**meta, "schema_version": version}))
    with pytest.raises(RunDirError, match=rf"run.json has schema_version {version}, newer .* upgrade medbench"):
        load_run(v1_copy)


@pytest.mark.parametrize("version", [0, None])
def test_an_unknown_schema_says_how_to_migrate(v1_copy, version):
    data = json.loads((v1_copy / "metrics.json").read_text())
    (v1_copy / "metrics.json").write_text(json.dumps({**data, "schema_version": version}))
    with pytest.raises(RunDirError, match=r"metrics.json has schema_version .*--output NEW.*cache/"):
        load_run(v1_copy)


def test_a_damaged_metrics_record_names_the_file_and_the_missing_key(v1_copy):
    data = json.loads((v1_copy / "metrics.json").read_text())
    data["schema_version"] = SCHEMA_VERSION
    del data["per_task"][1]["task"]
    (v1_copy / "metrics.json").write_text(json.dumps(data))
    with pytest.raises(RunDirError, match=r"metrics.json: a TaskMetrics object lacks \['task'\]"):
        load_run(v1_copy)


def test_written_metrics_read_back_equal_and_typed(tmp_path):
    rows = rows_from_outcomes("base", "t", "CWU") + rows_from_outcomes("sft", "t", "CCW")
    metrics = compute_metrics(pd.DataFrame(rows), [{"name": "base", "role": "base"}, "sft"])
    writer = RunWriter(tmp_path / "run")
    writer.write_meta({"run_id": "run", "checkpoints": [{"name": "base", "role": "base"}, {"name": "sft"}]})
    writer.write_samples(rows)
    writer.write_metrics(metrics)
    run = load_run(tmp_path / "run")
    assert run.metrics == metrics and run.metrics.schema_version == SCHEMA_VERSION
    (pair,) = run.pair_metrics()
    assert isinstance(pair, PairMetrics) and pair.fixed == ("t:1",) and pair.broken == ()  # W→C; U→W is neither


def test_records_read_like_their_json_objects():
    rows = rows_from_outcomes("base", "t", "CW") + rows_from_outcomes("sft", "t", "WC")
    metrics = compute_metrics(pd.DataFrame(rows), ["base", "sft"])
    (pair,) = metrics.pairs
    as_json = json.loads(json.dumps(metrics.to_dict()))
    assert pair == as_json["pairs"][0] and {**pair} == as_json["pairs"][0]
    assert pair["fixed"] == ["t:1"] and pair.fixed == ("t:1",) and pair.get("no such key") is None
    assert metrics["per_task"][0]["accuracy"] == metrics.per_task[0].accuracy == 0.5
    assert RunMetrics.from_dict(as_json) == metrics
    with pytest.raises(KeyError):
        pair["no such key"]


def test_generation_counts_persist_per_rank_and_survive_a_torn_line(tmp_path):
    writer = RunWriter(tmp_path / "run")
    writer.generation_recorder("base", rank=0)("k0", GeneratedTokens(256, True))
    writer.generation_recorder("base", rank=1)("k1", GeneratedTokens(12, False))
    with (tmp_path / "run" / "cache" / "base_rank0.generated.jsonl").open("a") as fh:
        fh.write('{"key": "k2", "n_tok')  # a kill mid-write
    assert writer.read_generated("base") == {"k0": GeneratedTokens(256, True), "k1": GeneratedTokens(12, False)}
    assert writer.read_generated("other") == {}
