"""Where the grader found the reasoning and the answer: the record's spans are the single source of the texts
whose lengths it reports, so the harness can count their tokens in one batch and the report can highlight
them without parsing a completion again."""

from __future__ import annotations

import pytest
from medbench.tasks.graders import JudgeVerdict, grade, measured_texts, parse_layout, parse_think, parse_xml

#: Completions where the regions are not where a naive search would put them.
COMPLETIONS = [
    ("xml", "<reasoning>\nyes, probably\n</reasoning>\n<answer>\nyes\n</answer>\n"),
    # the answer text also appears earlier, and again after the answer region
    ("xml", "Sure.\n<reasoning>maybe not, yes</reasoning> <answer> yes </answer> yes"),
    # two reasoning blocks: the reasoning is both, joined with a newline
    ("xml", "<reasoning>first 🩺 thought</reasoning>\n<reasoning>\n\nsecond\n</reasoning>\n<answer>no</answer>"),
    # a blank reasoning block between two others, and an unclosed answer (truncated)
    ("xml", "<reasoning> a </reasoning><reasoning>  </reasoning><reasoning>b</reasoning><answer>\nmay"),
    # an unclosed reasoning block only
    ("xml", "<reasoning>\n  the mechanism is β-adrenergic and then"),
    ("xml", "no tags at all, the answer is yes"),
    ("xml", ""),
    # think layout (prompt pre-fills <think>): reasoning, then the answer after the last </think>
    ("think", "Because of 🩺 findings.\n</think>\nThe answer is stress incontinence."),
    ("think", "one\n</think>\n<think>two</think>\n  final answer  "),
    ("think", "still thinking when the budget ran out"),
    ("think", "\n</think>\n"),
]


@pytest.mark.parametrize(("layout", "completion"), COMPLETIONS)
def test_parse_spans_cut_out_exactly_the_reasoning_and_answer(layout, completion):
    parsed = parse_layout(completion, layout)
    assert "\n".join(completion[s:e] for s, e in parsed.reasoning_spans) == parsed.reasoning
    if parsed.answer is None:
        assert parsed.answer_span is None
    else:
        s, e = parsed.answer_span
        assert completion[s:e] == parsed.answer
    for s, e in parsed.reasoning_spans:
        assert 0 <= s <= e <= len(completion)
        assert completion[s:e] == completion[s:e].strip()


def test_spans_are_the_true_positions_not_the_first_match():
    text = "Sure.\n<reasoning>maybe not, yes</reasoning> <answer> yes </answer> yes"
    parsed = parse_xml(text)
    s, e = parsed.answer_span
    assert (s, e) == (text.index("<answer>") + len("<answer> "), text.index(" </answer>"))
    think = parse_think("one\n</think>\n<think>two</think>\n  final answer  ")
    assert think.reasoning == "one\ntwo" and len(think.reasoning_spans) == 2


def _count(text: str) -> int:
    """A stand-in token counter that notices every character (so a wrong text gives a wrong count)."""
    return len(text.encode("utf-8"))


def _judge(answer: str, reference: str) -> JudgeVerdict:
    return JudgeVerdict(agree=answer == reference, score=1.0, kind="proxy")


@pytest.mark.parametrize(("layout", "completion"), COMPLETIONS)
def test_measured_texts_are_what_grade_counts(layout, completion):
    """grade(count_tokens=f) counts f(reasoning) and f(answer); measured_texts gives those same texts from the
    record alone, so counting them later in a batch gives the same numbers."""
    answer = "free" if layout == "think" else "yesno"
    target = "stress incontinence" if layout == "think" else "yes"
    rec = grade(completion, target, layout=layout, answer=answer, count_tokens=_count,
                judge=_judge if answer == "free" else None)
    reasoning, answer_text = measured_texts(completion, rec)
    assert (rec.reasoning_tokens, rec.answer_tokens) == (_count(reasoning), _count(answer_text))
    assert (rec.reasoning_words, rec.answer_words) == (len(reasoning.split()), len(answer_text.split()))
    parsed = parse_layout(completion, layout)
    assert (reasoning, answer_text) == (parsed.reasoning, parsed.answer or "")
    d = rec.to_dict()
    assert d["reasoning_spans"] == [list(s) for s in parsed.reasoning_spans]
    assert d["answer_span"] == (None if parsed.answer_span is None else list(parsed.answer_span))
