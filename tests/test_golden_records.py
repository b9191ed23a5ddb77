"""The golden corpus: every golden completion's grade record equals the committed one, on every machine.

Grading is pure string work, so this is the CI check that holds on any CPU and still catches a real change:
a grader, prompt-independent extraction rule or record field that changes what a run records for any of
these completions fails here, with the changed fields spelled out, until the change is re-blessed on purpose
(``python tests/golden/regenerate.py``, then review the diff of records.jsonl). The records pin behaviour;
each case's ``why`` says what it exercises, not what the right verdict is.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"


def _regenerate():
    spec = importlib.util.spec_from_file_location("golden_regenerate", GOLDEN / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


regen = _regenerate()


@pytest.fixture(scope="module")
def cases():
    return regen.load_cases()


@pytest.fixture(scope="module")
def current(cases):
    return regen.current_records(cases)


def test_every_golden_record_equals_the_committed_one(cases, current):
    committed = regen.read_records()
    assert committed, f"{regen.RECORDS} is missing or empty: run `python tests/golden/regenerate.py`"
    diff = regen.diff_records(committed, current, cases, limit=5)
    if diff:
        pytest.fail(
            "the graders now record something else for golden completions. If the change is intended, re-bless "
            "with `python tests/golden/regenerate.py` and review the records.jsonl diff.\n\n" + diff,
            pytrace=False,
        )


def test_corpus_covers_every_layout_and_answer_type(cases):
    from medbench.tasks.registry import get_task

    adversarial = [c for c in cases if c["corpus"] == "adversarial_completions"]
    kinds = set()
    for c in adversarial:
        spec = get_task(c["task"])
        letters = c["doc"].get("letters") or spec.letters
        kinds.add((spec.layout, spec.answer, letters if spec.answer == "choice" else ""))
    assert kinds >= {("xml", "yesno", ""), ("xml", "number", ""), ("xml", "choice", "ABCD"),
                     ("xml", "choice", "ABCDE"), ("think", "free", "")}
    assert len(adversarial) >= 60 and all(str(c.get("why", "")).strip() for c in adversarial)
    assert any(c.get("hit_token_limit") for c in adversarial) and any(c["completion"] == "" for c in adversarial)


def test_records_hold_nothing_a_tokenizer_or_judge_model_decides(current):
    for r in current:
        assert not set(regen.TOKENIZER_FIELDS) & set(r["record"]), r["id"]
        if r["record"]["answer_type"] == "free" and r["record"]["judge_kind"] is not None:
            assert r["record"]["judge_model"] == regen.STUB_MODEL, r["id"]
    json.dumps(current)  # plain JSON all the way down


def test_a_changed_record_is_reported_field_by_field(cases, current):
    changed = json.loads(json.dumps(current))
    target = changed[3]
    target["record"]["outcome"] = "wrong" if target["record"]["outcome"] != "wrong" else "correct"
    target["task_version"] = "999"
    diff = regen.diff_records(current, changed, cases)
    case = next(c for c in cases if c["id"] == target["id"])
    assert diff.splitlines()[0] == f"1 changed, 0 added, 0 removed of {len(current)} golden records"
    assert f"{target['id']}  [{target['task']}, adversarial_completions]  why: {case['why']}" in diff
    assert f"  outcome: {current[3]['record']['outcome']!r} -> {target['record']['outcome']!r}" in diff
    assert f"  task_version: {current[3]['task_version']!r} -> '999'" in diff and "  completion: " in diff
    assert "removed: adversarial_completions/" + current[0]["id"] in regen.diff_records(current, changed[1:], cases)


def test_regenerate_check_passes_on_the_committed_records(capsys):
    assert regen.main(["--check"]) == 0
    assert "golden records match" in capsys.readouterr().out


def test_golden_grading_is_what_a_run_records(cases, current):
    """The golden records come from ``grade_doc``; a run's rows come from ``sample_rows.rows_from_samples``
    over lm-eval's log. For every golden completion both record the same grade fields, so the golden check
    pins what a run would write to samples.parquet (``hit_token_limit`` comes from the completion's token
    count reaching the task's budget, as in a run)."""
    from medbench.harness.run.runner import PlannedTask
    from medbench.harness.run.sample_rows import DROPPED_GRADE_FIELDS, rows_from_samples
    from medbench.tasks.registry import get_task

    budget = 64
    for case, golden in zip(cases, current):
        planned = PlannedTask(get_task(case["task"]), budget, chat_template=True, chat_template_explicit=False)
        completion = case["completion"]
        hit = bool(case.get("hit_token_limit"))

        def count(text: str, completion: str = completion, hit: bool = hit) -> int:
            return budget if (hit and text == completion) else min(len(text.split()), budget - 1)

        log = [{"doc_id": 0, "doc": case["doc"], "arguments": [["prompt", {"until": []}]], "resps": [[completion]],
                "filtered_resps": [completion], "doc_hash": "h"}]
        (row,) = rows_from_samples(log, checkpoint="golden", task=planned, count_tokens=count,
                                   seconds_for=lambda kind, args: None, judge=regen.stub_judge)
        # every grade field is a sample column, except the ones the run directory drops on purpose
        expected = {k: v for k, v in golden["record"].items() if k != "target" and k not in DROPPED_GRADE_FIELDS}
        assert {k: row[k] for k in expected} == expected, case["id"]
        assert (row["doc_key"], row["task_version"]) == (golden["doc_key"], golden["task_version"])
