"""The sample browser's collapsible reasoning and highlighted answer come from the grader's record (its spans),
not from parsing every completion again; runs written before records carried spans look the same."""

from __future__ import annotations

from pathlib import Path

import pytest
from medbench.harness.stats import metrics as metrics_mod
from medbench.harness.run.rundir import RunWriter, load_run
from medbench.reports.render import browser_payload, combine_runs
from report_fixture import CHECKPOINTS, build_samples, fixture_meta

SIZES = {"pubmedqa": 12, "health_benchmarks": 10, "gsm8k": 8, "medical_cot": 6}


def _write(root: Path, rows: list[dict]) -> Path:
    import pandas as pd

    writer = RunWriter(root)
    writer.write_meta(fixture_meta(root.name))
    writer.write_samples(rows)
    writer.write_metrics(metrics_mod.compute_metrics(pd.DataFrame(rows), CHECKPOINTS))
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path]:
    rows = build_samples(SIZES)
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


def test_runs_without_spans_are_parsed_and_give_the_same_browser_data(runs):
    with_spans, before = runs
    assert load_run(before).samples()["reasoning_spans"].isna().all()
    assert browser_payload(combine_runs([load_run(with_spans)])) == browser_payload(combine_runs([load_run(before)]))


def test_spans_from_the_record_need_no_parsing(runs, monkeypatch):
    from medbench.tasks import graders

    def refuse(*args, **kwargs):
        raise AssertionError("the report parsed a completion although the record has its spans")

    monkeypatch.setattr(graders, "parse_layout", refuse)
    data = browser_payload(combine_runs([load_run(runs[0])]))
    cells = [c for q in data["questions"] for c in q["c"] if c is not None]
    assert sum(c["r"] is not None for c in cells) > len(cells) // 2
    with pytest.raises(AssertionError, match="parsed a completion"):
        browser_payload(combine_runs([load_run(runs[1])]))


def test_two_reasoning_blocks_stay_inline_and_the_answer_is_the_answer_region(runs):
    data = browser_payload(combine_runs([load_run(runs[0])]))
    cell = next(c for q in data["questions"] for c in q["c"]
                if c is not None and c["txt"].startswith("<reasoning>yes?</reasoning>"))
    assert cell["r"] is None  # two blocks: nothing to collapse as one
    units = cell["txt"].encode("utf-16-le")
    start, end = cell["a"]
    assert units[2 * start:2 * end].decode("utf-16-le") == "yes"
    assert start > cell["txt"].index("<answer>")  # the region, not the first "yes" (UTF-16: 🩺 counts twice)
