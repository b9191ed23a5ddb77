"""lm-eval sample logs → run-directory rows: token counts come from the model's tokenizer in batched calls,
and every number equals what one call per text gives (the real Qwen2 BPE tokenizer)."""

from __future__ import annotations

from typing import Any

import pytest
from medbench.harness.run.runner import PlannedTask
from medbench.harness.run.sample_rows import TokenizerCounter, count_many, rows_from_samples
from medbench.tasks.graders import JudgeVerdict
from medbench.tasks.registry import get_task

TRICKY = [
    "", " ", "\n\n", "yes", "yes", "B", "🩺 β-blocker, 18 mg/kg… ok", "<|im_end|> after a special token",
    "<think>\nnested tags</think>\n<answer>\n12\n</answer>", "x" * 5000, "multi\nline\n\n  text  \t end",
    "emoji at the end 🩺🩺", "Ünïcödé NFC vs NFD: é é",
]


@pytest.fixture(scope="module")
def qwen(realdata):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(realdata / "tokenizers" / "Qwen2-1.5B-Instruct_via_Qwen2-Boundless"))


def test_batched_counts_equal_one_call_per_text(qwen):
    counter = TokenizerCounter(qwen)
    per_text = [len(qwen(t, add_special_tokens=False)["input_ids"]) if t else 0 for t in TRICKY]
    assert [counter(t) for t in TRICKY] == per_text
    assert counter.many(TRICKY) == per_text
    assert count_many(counter, TRICKY) == per_text
    assert per_text[TRICKY.index("<|im_end|> after a special token")] > 1  # the text's tokens, not an id


def test_batches_split_without_changing_counts(qwen, monkeypatch):
    from medbench.harness.run import sample_rows

    monkeypatch.setattr(sample_rows, "BATCH", 3)
    counter = TokenizerCounter(qwen)
    assert counter.many(TRICKY) == [counter(t) for t in TRICKY]


def test_count_many_uses_a_plain_counter_once_per_distinct_text():
    seen: list[str] = []

    def count(text: str) -> int:
        seen.append(text)
        return len(text)

    assert count_many(count, ["ab", "c", "ab", ""]) == [2, 1, 2, 0]
    assert seen == ["ab", "c", ""]


def test_a_counter_whose_many_loses_texts_is_an_error():
    class Broken:
        def __call__(self, text: str) -> int:
            return 1

        def many(self, texts: list[str]) -> list[int]:
            return [1]

    with pytest.raises(ValueError, match="2 texts"):
        count_many(Broken(), ["a", "b"])


def _log(completions: list[Any], doc_of) -> list[dict[str, Any]]:
    """An lm-eval per-sample log, each document logged twice (once per filter), as lm-eval does."""
    out = []
    for i, c in enumerate(completions):
        s = {"doc_id": i, "doc": doc_of(i), "arguments": [[f"prompt {i}", {"until": []}]], "resps": [[c]],
             "filtered_resps": [c], "doc_hash": f"h{i}"}
        out += [s, dict(s)]
    return out


PUBMEDQA = [
    "<reasoning>\nThe trial 🩺 shows a benefit.\n</reasoning>\n<answer>\nyes\n</answer>\n",
    "Sure.\n<reasoning>maybe not</reasoning> <answer>maybe</answer>",
    "<reasoning>one</reasoning>\n<reasoning>two</reasoning>\n<answer>no</answer>",
    "<reasoning>\n" + "a long and winding chain of thought " * 40,  # unclosed and over the limit
    "the answer is yes",
    "",
    "<reasoning>\nshort\n</reasoning>\n<answer>\nyes\n</answer>",  # the same answer text as above
]
COT = ["Because of the findings.\n</think>\nStress incontinence.", "still thinking", "a\n</think>\n<think>b</think>\nc"]


def _judge(answer: str, reference: str) -> JudgeVerdict:
    return JudgeVerdict(agree=reference.lower() in answer.lower(), score=0.5, kind="proxy", rationale="test")


@pytest.mark.parametrize(("task", "completions", "max_gen_toks"), [
    ("medbench_pubmedqa", PUBMEDQA, 64),
    ("medbench_medical_cot", COT, 2048),
])
def test_rows_with_batched_counts_equal_rows_counted_text_by_text(qwen, task, completions, max_gen_toks):
    spec = get_task(task)

    def doc_of(i: int) -> dict[str, Any]:
        if spec.family == "pubmedqa":
            return {"QUESTION": f"q{i}?", "target": "yes", "doc_key": f"pmid{i}"}
        return {"Question": f"q{i}?", "target": "Stress incontinence", "doc_key": f"cot{i}"}

    planned = PlannedTask(spec, max_gen_toks, chat_template=True, chat_template_explicit=False)
    samples = _log(completions, doc_of)
    counter = TokenizerCounter(qwen)
    batched = rows_from_samples(samples, checkpoint="ck", task=planned, count_tokens=counter,
                                seconds_for=lambda kind, args: 0.5, judge=_judge)
    one_by_one = rows_from_samples(samples, checkpoint="ck", task=planned, count_tokens=lambda t: counter(t),
                                   seconds_for=lambda kind, args: 0.5, judge=_judge)
    assert batched == one_by_one
    assert len(batched) == len(completions)
    for row, completion in zip(batched, completions):
        assert row["completion_tokens"] == counter(completion)
        assert row["reasoning_tokens"] is not None and row["answer_tokens"] is not None
    if task == "medbench_pubmedqa":
        long_row = batched[3]
        assert long_row["completion_tokens"] >= max_gen_toks and long_row["truncated"]
        assert batched[0]["reasoning_tokens"] == counter("The trial 🩺 shows a benefit.")
        assert batched[0]["answer_tokens"] == counter("yes") and batched[0]["reasoning_spans"] == [[12, 40]]
        assert batched[2]["reasoning_tokens"] == counter("one\ntwo")


def _pubmedqa(max_gen_toks: int = 64) -> PlannedTask:
    return PlannedTask(get_task("medbench_pubmedqa"), max_gen_toks, chat_template=True, chat_template_explicit=False)


def _pubmedqa_doc(i: int) -> dict[str, Any]:
    return {"QUESTION": f"q{i}?", "target": "yes", "doc_key": f"pmid{i}"}


def test_rows_take_token_counts_and_truncation_from_the_generated_ids(qwen):
    """The backend counted the generated ids: those are the row's completion_tokens and truncated, whatever a
    re-count of the text says (before, the re-count was used: a 64-token limit could show 70 tokens)."""
    from medbench.harness.run.records import GeneratedTokens
    from medbench.harness.run.sample_rows import request_key

    long = "<reasoning>\n" + "a long and winding chain of thought " * 40  # re-counts to far more than 64
    samples = _log([long, long, "<reasoning>x</reasoning><answer>yes</answer>"], _pubmedqa_doc)
    counter = TokenizerCounter(qwen)
    assert counter(long) > 64
    generated = {request_key(samples[0]["arguments"][0]): GeneratedTokens(64, True),
                 request_key(samples[4]["arguments"][0]): GeneratedTokens(60, False)}  # doc 2: stopped on its own
    rows = rows_from_samples(samples, checkpoint="ck", task=_pubmedqa(64), count_tokens=counter,
                             seconds_for=lambda kind, args: None, generated=generated)
    assert [(r["completion_tokens"], r["truncated"], r["completion_tokens_source"]) for r in rows] == [
        (64, True, "generated"),
        (counter(long), True, "tokenizer"),  # no count for this request: the documented fallback
        (60, False, "generated"),
    ]


def test_rows_have_exactly_the_sample_columns_and_every_grade_field(qwen):
    from dataclasses import fields

    from medbench.harness.run.records import SAMPLE_COLUMNS
    from medbench.harness.run.sample_rows import DROPPED_GRADE_FIELDS
    from medbench.tasks.graders import GradeRecord

    rows = rows_from_samples(_log(["the answer is yes", ""], _pubmedqa_doc), checkpoint="ck", task=_pubmedqa(),
                             count_tokens=TokenizerCounter(qwen), seconds_for=lambda kind, args: None)
    assert all(list(r) == list(SAMPLE_COLUMNS) for r in rows)
    grade_fields = {f.name for f in fields(GradeRecord)} - {"judge", "correct"} - DROPPED_GRADE_FIELDS
    assert grade_fields <= set(SAMPLE_COLUMNS)
    assert "lenient_extracted" not in SAMPLE_COLUMNS  # always equal to extracted: dropped
    for col in ("flexible_outcome", "flexible_extracted", "flexible_source", "unclosed_tag", "completion_words",
                "completion_tokens", "completion_tokens_source", "truncated"):
        assert col in SAMPLE_COLUMNS
    plain = rows[0]
    assert (plain["outcome"], plain["flexible_outcome"], plain["flexible_extracted"]) == ("unparseable", "correct",
                                                                                          "yes")
    assert plain["completion_words"] == 4


def test_a_grade_field_without_a_column_is_an_error(monkeypatch, qwen):
    from medbench.tasks.graders import GradeRecord

    real = GradeRecord.to_dict
    monkeypatch.setattr(GradeRecord, "to_dict", lambda self: {**real(self), "new_grader_fact": 1})
    with pytest.raises(ValueError, match="new_grader_fact.*SampleRow"):
        rows_from_samples(_log(["yes"], _pubmedqa_doc), checkpoint="ck", task=_pubmedqa(),
                          count_tokens=TokenizerCounter(qwen), seconds_for=lambda kind, args: None)


def test_loglikelihood_rows_have_no_generation_facts():
    task = PlannedTask(get_task("medbench_pubmedqa_ll"), None, chat_template=False, chat_template_explicit=False)
    samples = [{"doc_id": 0, "doc": {"QUESTION": "q?", "final_decision": "no", "doc_key": "k0", "CONTEXTS": ["c"],
                                     "target": "no"},
                "arguments": [["p", " yes"], ["p", " no"], ["p", " maybe"]],
                "resps": [[[-2.0, False]], [[-1.0, True]], [[-3.0, False]]], "doc_hash": "h"}]
    (row,) = rows_from_samples(samples, checkpoint="ck", task=task, count_tokens=len,
                               seconds_for=lambda kind, args: None)
    assert (row["layout"], row["outcome"]) == ("loglikelihood", "correct")
    assert row["completion_tokens"] is None and row["completion_tokens_source"] is None and row["truncated"] is None
    assert row["format_strict"] is None and row["flexible_outcome"] is None


def test_rows_are_exactly_the_records_json_form(qwen):
    """The rows are built without SampleRow.to_dict's generic machinery (issue 14: it was a quarter of the
    grading time): each must still be, value for value and type for type, the record's own JSON form."""
    import json

    import numpy as np
    from medbench.harness.run.records import SampleRow
    from medbench.harness.run.sample_rows import _row_dict

    rows = rows_from_samples(_log(PUBMEDQA, _pubmedqa_doc), checkpoint="ck", task=_pubmedqa(),
                             count_tokens=TokenizerCounter(qwen), seconds_for=lambda kind, args: 0.25)
    assert any(len(r["reasoning_spans"]) == 2 for r in rows) and any(r["notes"] for r in rows)
    for row in rows:
        record = SampleRow(**row)
        assert json.dumps(row) == json.dumps(record.to_dict())
    odd = SampleRow(checkpoint="ck", task="t", doc_id=np.int64(3), doc_key="k", outcome="correct",
                    notes=("a", "b"), reasoning_spans=((1, 2), [np.int32(3), 4]), answer_span=(5, np.int64(6)),
                    judge_score=np.float32(0.5), gen_time_s=np.float64(0.1))
    fast, generic = _row_dict(odd), odd.to_dict()
    assert json.dumps(fast) == json.dumps(generic)
    assert [type(v) for v in fast.values()] == [type(v) for v in generic.values()]
    assert type(fast["reasoning_spans"][1][0]) is int and type(fast["doc_id"]) is int
