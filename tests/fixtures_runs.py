"""Build synthetic run directories for tests of metrics, the gate and the report (no model, no lm-eval).

    from fixtures_runs import rows_from_outcomes, write_run

    rows = rows_from_outcomes("base", "pubmedqa", "CCWU")      # C correct, W wrong, U unparseable
    rows += rows_from_outcomes("sft", "pubmedqa", "CWCC")
    run_dir = write_run(tmp_path / "run", rows, checkpoints=[{"name": "base", "role": "base"}, "sft"])

``write_run`` writes run.json, samples.parquet and metrics.json through the real RunWriter and
``compute_metrics``, so the directory is exactly what ``medbench bench`` would leave. The ``make_run``
fixture in conftest.py wraps it with a tmp_path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medbench.harness.run.rundir import SAMPLE_COLUMNS, Run, RunWriter
from medbench.harness.stats.metrics import compute_metrics

OUTCOME_CODES = {"C": "correct", "W": "wrong", "U": "unparseable"}


def sample_row(checkpoint: str, task: str, doc_key: str, outcome: str = "correct", **fields: Any) -> dict[str, Any]:
    """One samples.parquet row with plausible defaults; ``fields`` override any column."""
    correct = outcome == "correct"
    row: dict[str, Any] = {col: None for col in SAMPLE_COLUMNS}
    row.update(
        checkpoint=checkpoint, task=task, group=None, subgroup=None, doc_id=doc_key, doc_key=doc_key,
        showcase=False, task_version=1, prompt=f"Question {doc_key}?", completion="<answer>yes</answer>",
        target="yes", question=f"Question {doc_key}?", outcome=outcome,
        extracted=None if outcome == "unparseable" else ("yes" if correct else "no"),
        answer_source="none" if outcome == "unparseable" else "answer_tag",
        strict_correct=correct, layout="xml", answer_type="yesno",
        format_strict=outcome != "unparseable", format_soft=outcome != "unparseable", think_ok=None,
        text_outside_tags=False, truncated=False, reasoning_words=10, answer_words=1,
        reasoning_tokens=12, answer_tokens=2, completion_chars=40, notes="[]", completion_tokens=14,
        gen_time_s=0.01,
    )
    row.update(fields)
    return row


def rows_from_outcomes(
    checkpoint: str, task: str, outcomes: str | Sequence[str], *, keys: Sequence[str] | None = None,
    **fields: Any,
) -> list[dict[str, Any]]:
    """Rows for one checkpoint × task; ``outcomes`` is a code string ("CWU…") or a list of outcome names.

    Document keys default to ``"<task>:<i>"``, so two checkpoints built this way are paired document by
    document. ``fields`` apply to every row; a list value gives one value per row.
    """
    names = [OUTCOME_CODES.get(o, o) for o in outcomes]
    keys = list(keys) if keys is not None else [f"{task}:{i}" for i in range(len(names))]
    if len(keys) != len(names):
        raise ValueError(f"{len(keys)} keys for {len(names)} outcomes")
    rows = []
    for i, (key, outcome) in enumerate(zip(keys, names)):
        per_row = {k: (v[i] if isinstance(v, (list, tuple)) else v) for k, v in fields.items()}
        rows.append(sample_row(checkpoint, task, key, outcome, **per_row))
    return rows


def write_run(
    root: str | Path,
    rows: Sequence[Mapping[str, Any]],
    checkpoints: Sequence[str | Mapping[str, Any]] | None = None,
    *,
    run_id: str | None = None,
    reference: str | None = None,
    task_versions: Mapping[str, Any] | None = None,
) -> Path:
    """Write a complete run directory from sample rows; returns its path.

    ``checkpoints`` defaults to the checkpoints of ``rows`` in order of appearance, the first with role
    "base". Entries may be names or dicts with name/role like run.json's. ``task_versions`` sets a task's
    version in run.json and in its samples' task_version column.
    """
    import pandas as pd

    root = Path(root)
    if checkpoints is None:
        seen = list(dict.fromkeys(r["checkpoint"] for r in rows))
        checkpoints = [{"name": seen[0], "role": "base"}] + [{"name": n} for n in seen[1:]]
    entries = [dict(c) if isinstance(c, Mapping) else {"name": c} for c in checkpoints]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    versions = dict(task_versions or {})
    writer = RunWriter(root)
    meta = {
        "run_id": run_id or root.name,
        "checkpoints": entries,
        "tasks": [{"name": t, "version": versions.get(t, 1)} for t in tasks],
        "versions": {"medbench": "test"},
        "git_sha": "0" * 40,
    }
    writer.write_meta(meta)
    writer.write_samples([{**r, "task_version": versions.get(r["task"], r.get("task_version"))} for r in rows])
    frame = pd.read_parquet(root / "samples.parquet")
    in_lineage_order = Run(root=root, meta=meta, metrics={}).checkpoints  # as the bench runner orders them
    writer.write_metrics(compute_metrics(frame, in_lineage_order, reference))
    return root
