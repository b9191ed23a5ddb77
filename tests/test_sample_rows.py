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
