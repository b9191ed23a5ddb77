"""The sample browser's collapsible reasoning and highlighted answer come from the grader's record (its spans);
the report never grades: a run written before records carried spans is shown without highlighting."""

from __future__ import annotations

from pathlib import Path

import pytest
from medbench.harness.run.rundir import RunWriter, load_run
from medbench.harness.stats import metrics as metrics_mod
from medbench.reports.render import browser_payload, combine_runs
from report_fixture import build_samples, checkpoints, fixture_meta, fixture_tasks

SIZES = {"pubmedqa": 12, "health": 4, "gsm8k": 8, "medical_cot": 6}


def _write(root: Path, rows: list[dict]) -> Path:
    import pandas as pd

    writer = RunWriter(root)
    writer.write_meta(fixture_meta(root.name, fixture_tasks(specialties=2)))
    writer.write_samples(rows)
    writer.write_metrics(metrics_mod.compute_metrics(pd.DataFrame(rows), checkpoints()))
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    rows = build_samples(SIZES, specialties=2)
    # Multi-block reasoning and an answer text that also appears before the answer region.
    rows[0] = {**rows[0], **_regrade(rows[0], "<reasoning>yes?</reasoning>\n<reasoning>\nyes 🩺\n</reasoning>\n"
                                              "<answer>\nyes\n</answer>")}
    root = tmp_path_factory.mktemp("spans")
    with_spans = _write(root / "with-spans", rows)
    old = [{k: v for k, v in r.items() if k not in ("reasoning_spans", "answer_span")} for r in rows]
    return with_spans, _write(root / "before-spans", old)


def _regrade(row: dict, completion: str) -> dict:
    from medbench.tasks.graders import grade

    rec = grade(completion, row["target"], layout="xml", answer="yesno", count_tokens=lambda t: len(t.split()))
    return {**rec.to_dict(), "completion": completion}


def test_spans_come_from_the_record_and_nothing_is_parsed(runs, monkeypatch):
    from medbench.tasks import graders

    def refuse(*args, **kwargs):
        raise AssertionError("the report parsed a completion: it renders what the grader recorded")

    monkeypatch.setattr(graders, "parse_layout", refuse)
    for run in runs:
        data = browser_payload(combine_runs([load_run(run)]))  # neither run is parsed
        assert data["questions"]
    data = browser_payload(combine_runs([load_run(runs[0])]))
    cells = [c for q in data["questions"] for c in q["c"] if c is not None]
    assert sum(c["r"] is not None for c in cells) > len(cells) // 2


def test_runs_without_spans_show_plain_text_with_the_same_everything_else(runs):
    _, before = runs
    assert load_run(before).samples()["reasoning_spans"].isna().all()
    new, old = (browser_payload(combine_runs([load_run(r)])) for r in runs)
    old_cells = [c for q in old["questions"] for c in q["c"] if c is not None]
    assert all(c["r"] is None and c["a"] is None for c in old_cells)  # degraded: no highlighting, no re-grading
    strip = lambda data: [[{k: v for k, v in c.items() if k not in ("r", "a")} for c in q["c"]]
                          for q in data["questions"]]
    assert strip(new) == strip(old)


def test_two_reasoning_blocks_stay_inline_and_the_answer_is_the_answer_region(runs):
    data = browser_payload(combine_runs([load_run(runs[0])]))
    cell = next(c for q in data["questions"] for c in q["c"]
                if c is not None and c["txt"].startswith("<reasoning>yes?</reasoning>"))
    assert cell["r"] is None  # two blocks: nothing to collapse as one
    units = cell["txt"].encode("utf-16-le")
    start, end = cell["a"]
    assert units[2 * start:2 * end].decode("utf-16-le") == "yes"
    assert start > cell["txt"].index("<answer>")  # the region, not the first "yes" (UTF-16: 🩺 counts twice)
