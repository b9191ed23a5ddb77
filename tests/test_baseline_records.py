"""The gate reads metrics as the run directory's typed records, from a run directory or a baseline file, and a
baseline saved before the flexible reading existed still loads (its new indicators are not applicable)."""

from __future__ import annotations

import json

import numpy as np
from fixtures_runs import rows_from_outcomes
from medbench.harness.gate.baseline import DOCUMENT_COLUMNS, load_scored, save_baseline
from medbench.harness.run.records import GroupMetrics, TaskMetrics


def test_a_saved_baseline_reads_back_the_runs_records(make_run, tmp_path):
    rows = (rows_from_outcomes("base", "h_a", "CWU", group="h", flexible_outcome=["correct", "wrong", "correct"],
                               unclosed_tag=[False, False, True])
            + rows_from_outcomes("sft", "h_a", "CCW", group="h", flexible_outcome="correct"))
    run_dir = make_run("run", rows)
    saved = save_baseline(run_dir, tmp_path / "baseline.json")
    from_run, from_file = load_scored(run_dir), load_scored(saved["path"])
    assert all(isinstance(r, TaskMetrics) for r in from_file.per_task)
    assert all(isinstance(r, GroupMetrics) for r in from_file.per_group)
    assert from_file.per_task == from_run.per_task and from_file.per_group == from_run.per_group
    assert from_file.record("base", "h_a").flexible_accuracy == 2 / 3
    assert from_file.record("sft", "h").tasks == ("h_a",)
    docs = from_file.task_documents("base", "h_a")
    assert docs["flexible_correct"].tolist() == [1.0, 0.0, 1.0] and docs["unclosed_tag"].tolist() == [0.0, 0.0, 1.0]
    assert {"flexible_outcome", "unclosed_tag", "layout"} <= set(DOCUMENT_COLUMNS)


def test_a_baseline_saved_before_the_flexible_reading_still_loads(make_run, tmp_path):
    """A baseline file as medbench wrote it before (no flexible/unclosed-tag/layout document columns, no
    flexible_accuracy in its records): it loads, and what it lacks is not applicable, never a made-up value."""
    rows = rows_from_outcomes("base", "t", "CW", flexible_outcome="correct") + rows_from_outcomes("sft", "t", "CC")
    path = save_baseline(make_run("run", rows), tmp_path / "new.json")["path"]
    data = json.loads(path.read_text())
    old = [c for c in data["documents"]["columns"] if c not in ("flexible_outcome", "unclosed_tag", "layout")]
    keep = [data["documents"]["columns"].index(c) for c in old]
    data["documents"] = {"columns": old, "rows": [[r[i] for i in keep] for r in data["documents"]["rows"]]}
    for rec in data["per_task"]:
        for key in ("flexible_accuracy", "unclosed_tag_rate", "completion_tokens_mean", "completion_tokens_median"):
            del rec[key]
    (tmp_path / "old.json").write_text(json.dumps(data))
    scored = load_scored(tmp_path / "old.json")
    rec = scored.record("base", "t")
    assert isinstance(rec, TaskMetrics) and rec.flexible_accuracy is None and rec.accuracy == 0.5
    docs = scored.task_documents("base", "t")
    assert np.isnan(docs["flexible_correct"]).all() and docs["correct"].tolist() == [1.0, 0.0]
