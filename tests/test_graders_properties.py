"""Properties of the graders over generated completions (hypothesis).

Whatever a model emits, grading never raises, the outcome is one of three, and the record is internally
consistent; and the recipe's layout is accepted for *any* reasoning text, however many lines it has.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medbench.tasks.graders import OUTCOMES, grade, region_answer, xml_tag_score

TAGS = ["<reasoning>", "</reasoning>", "<answer>", "</answer>", "<think>", "</think>", "\n", " ", "yes", "No.",
        "(B)", "B)", "The answer is ", "1,234", "$18.00", "-", ".", "/", "####", "maybe"]
TARGETS = {"yesno": "yes", "choice": "B", "number": "18"}

# Text built from layout fragments and arbitrary characters reaches the parsers' corner cases far more often
# than uniform unicode does.
completions = st.one_of(
    st.text(),
    st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=5)), max_size=30).map("".join),
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _check(rec) -> None:
    assert rec.outcome in OUTCOMES
    assert (rec.extracted is None) == (rec.outcome == "unparseable")
    assert rec.extracted == rec.lenient_extracted
    assert (rec.answer_source == "none") == (rec.extracted is None)
    if rec.strict_correct:
        assert rec.outcome == "correct"
    if rec.strict_extracted is not None:
        assert rec.format_strict
    if rec.format_strict:
        assert rec.format_soft


@SETTINGS
@given(completion=completions, answer=st.sampled_from(sorted(TARGETS)),
       layout=st.sampled_from(["xml", "think"]), prefilled=st.booleans())
def test_never_raises_and_record_is_consistent(completion, answer, layout, prefilled):
    rec = grade(completion, TARGETS[answer], layout=layout, answer=answer, think_prefilled=prefilled)
    _check(rec)
    if rec.format_strict:
        assert rec.strict_extracted == region_answer(completion, layout=layout, answer=answer,
                                                     think_prefilled=prefilled)


@SETTINGS
@given(raw=st.binary(max_size=200), answer=st.sampled_from(sorted(TARGETS)))
def test_never_raises_on_arbitrary_bytes(raw, answer):
    _check(grade(raw, TARGETS[answer], layout="xml", answer=answer))


reasoning_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="<>"), min_size=1
).filter(lambda s: s.strip())


@SETTINGS
@given(reasoning=st.lists(reasoning_text, min_size=1, max_size=8).map("\n".join),
       label=st.sampled_from(["yes", "no", "maybe"]))
def test_recipe_layout_is_strict_for_any_reasoning(reasoning, label):
    completion = f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{label}\n</answer>\n"
    rec = grade(completion, label, layout="xml", answer="yesno")
    assert (rec.outcome, rec.strict_correct, rec.format_strict, rec.format_soft) == ("correct", True, True, True)
    assert xml_tag_score(completion) == pytest.approx(0.5)


@SETTINGS
@given(n=st.integers(min_value=-10**30, max_value=10**30), cents=st.integers(min_value=0, max_value=99))
def test_number_spellings_are_the_same_answer(n, cents):
    value = f"{n}.{cents:02d}"
    spelled = f"{n:,}.{cents:02d}"
    rec = grade(f"<reasoning>\nr\n</reasoning>\n<answer>\n{spelled}\n</answer>", value, layout="xml",
                answer="number")
    assert rec.strict_correct
