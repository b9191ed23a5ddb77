"""Properties of the graders over generated completions (hypothesis).

Whatever a model emits, grading never raises, the outcome is one of three, and the record is internally
consistent; the recipe's layout is accepted for *any* reasoning text, however many lines it has; and, for
every answer type, a hedge — an answer region naming two or more distinct valid answers — is never correct,
earns no correctness or answer-type reward, and never out-earns committing to one answer (issue #12).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medbench.tasks.graders import OUTCOMES, grade, region_answer, xml_tag_score
from medbench.trainers.rewards import RECIPE_REWARDS, answer_type_reward, correctness_reward

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
    # the flexible reading extends the primary one and never contradicts it
    assert (rec.flexible_extracted is None) == (rec.flexible_outcome == "unparseable")
    if rec.extracted is not None:
        assert (rec.flexible_extracted, rec.flexible_outcome) == (rec.extracted, rec.outcome)
    if rec.answer_source != "none":
        assert rec.flexible_source == rec.answer_source
    if any(n.startswith("ambiguous") for n in rec.notes):
        assert rec.outcome == rec.flexible_outcome == "unparseable"


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


# -- hedges: a region naming two or more distinct valid answers ------------------------------------------------

def _layout(reasoning: str, region: str, tail: str) -> str:
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{region}\n</answer>{tail}"


reasonings = st.sampled_from(["r", "The cohort is small.\nThe effect is consistent.", "48 + 24 = 72", ""])
tails = st.sampled_from(["\n", "", "\nI hope this helps."])


def _emphasis(draw, option: str) -> str:
    return draw(st.sampled_from([option, f"**{option}**", f"*{option}*", option.upper(), option.capitalize()]))


@st.composite
def yesno_hedges(draw):
    labels = draw(st.lists(st.sampled_from(["yes", "no", "maybe"]), min_size=2, max_size=3, unique=True))
    words = [_emphasis(draw, w) for w in labels]
    joined = words[0]
    for w in words[1:]:
        joined += draw(st.sampled_from([" or ", ", ", " / ", "/", " and ", " vs ", ", or ", "\n", " nor ", " | "])) + w
    prefix = draw(st.sampled_from(["", "either ", "It could be ", "Answer: ", "I cannot say ", "Perhaps "]))
    suffix = draw(st.sampled_from(["", ".", "?", "!", ", depending on the cohort.", " (it depends)", " — unclear."]))
    return prefix + joined + suffix, labels


OPTION_TEXTS = ["Radial nerve", "Axillary nerve", "Aspirin 325 mg", "Increased residual volume", "Both",
                "None of the above", "Hypokalemia", "Ulnar"]


@st.composite
def choice_hedges(draw):
    letters = draw(st.sampled_from(["ABCD", "ABCDE"]))
    picked = draw(st.lists(st.sampled_from(list(letters)), min_size=2, max_size=len(letters), unique=True))
    if draw(st.booleans()):  # an echoed option list: every letter labelled with its option text
        sep = draw(st.sampled_from(["\n", " ", "; "]))
        mark = draw(st.sampled_from([".", ")", ":"]))
        region = sep.join(f"{x}{mark} {draw(st.sampled_from(OPTION_TEXTS))}" for x in picked)
    else:
        forms = [draw(st.sampled_from([x, f"({x})", f"**{x}**", f"Option {x}", f"[{x}]"])) for x in picked]
        region = forms[0]
        for f in forms[1:]:
            region += draw(st.sampled_from([" or ", ", ", "/", " and ", "-", " & ", ", or ", " vs ", ", but ",
                                            " ", " or maybe "])) + f
        region = draw(st.sampled_from(["", "Either ", "The answer is ", "Maybe ", "I think "])) + region
        region += draw(st.sampled_from(["", ".", "?", " is correct", ", not sure."]))
    return region, picked, letters


numbers = st.integers(min_value=0, max_value=5000)


@st.composite
def number_hedges(draw):
    values = draw(st.lists(numbers, min_size=2, max_size=3, unique=True))
    spelled = [draw(st.sampled_from([f"{v}", f"${v}", f"{v:,}", f"{v}.0"])) for v in values]
    region = spelled[0]
    for sp in spelled[1:]:
        region += draw(st.sampled_from([" or ", " to ", " and ", ", ", " vs ", " or even ", " - ", "/", "–"])) + sp
    region = draw(st.sampled_from(["", "The answer is ", "about ", "either ", "Answer: "])) + region
    region += draw(st.sampled_from(["", " pairs", ".", " dollars in total"]))
    return region, [str(v) for v in values]


def _assert_hedge_earns_nothing(completion: str, targets: list[str], kind: str, letters: str = "ABCD") -> None:
    for target in targets:
        rec = grade(completion, target, layout="xml", answer=kind, letters=letters)
        assert rec.outcome != "correct" and rec.flexible_outcome != "correct", (completion, target, rec.notes)
        assert rec.strict_extracted is None and not rec.strict_correct
        kw = {"answer": [target], "answer_type": [kind], "letters": [letters]}
        assert correctness_reward([completion], **kw) == [0.0]
        assert answer_type_reward([completion], **kw) == [0.0]


HEDGE_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HEDGE_SETTINGS
@given(hedge=yesno_hedges(), reasoning=reasonings, tail=tails)
def test_a_yesno_hedge_is_never_correct(hedge, reasoning, tail):
    region, labels = hedge
    _assert_hedge_earns_nothing(_layout(reasoning, region, tail), labels, "yesno")


@HEDGE_SETTINGS
@given(hedge=choice_hedges(), reasoning=reasonings, tail=tails)
def test_a_letter_hedge_is_never_correct(hedge, reasoning, tail):
    region, picked, letters = hedge
    _assert_hedge_earns_nothing(_layout(reasoning, region, tail), picked, "choice", letters)


@HEDGE_SETTINGS
@given(hedge=number_hedges(), reasoning=reasonings, tail=tails)
def test_a_number_hedge_is_never_correct(hedge, reasoning, tail):
    region, values = hedge
    _assert_hedge_earns_nothing(_layout(reasoning, region, tail), values, "number")


def _total(completion: str, target: str, kind: str, letters: str = "ABCD") -> float:
    kwargs = {"prompts": ["p"], "completions": [completion], "completion_ids": [[1]], "answer": [target],
              "answer_type": [kind], "letters": [letters]}
    return sum(f(**kwargs)[0] for f in RECIPE_REWARDS)


@st.composite
def hedged_layouts(draw):
    """(hedged completion, the same layout with one committed option in its place, for each option, target,
    answer type, letters): a hedge in one region, or answer blocks that disagree."""
    kind = draw(st.sampled_from(["yesno", "choice", "number"]))
    if kind == "yesno":
        region, options = draw(yesno_hedges())
        letters = "ABCD"
    elif kind == "choice":
        region, options, letters = draw(choice_hedges())
    else:
        region, options = draw(number_hedges())
        letters = "ABCD"
    reasoning, tail = draw(reasonings), draw(tails)
    target = draw(st.sampled_from(options))
    if draw(st.booleans()):
        hedged = _layout(reasoning, region, tail)
        singles = [_layout(reasoning, o, tail) for o in options]
    else:  # several answer blocks, one option each
        blocks = "".join(f"\n<answer>\n{o}\n</answer>" for o in options)
        hedged = f"<reasoning>\n{reasoning}\n</reasoning>{blocks}{tail}"
        singles = [f"<reasoning>\n{reasoning}\n</reasoning>" + f"\n<answer>\n{o}\n</answer>" * len(options) + tail
                   for o in options]
    return hedged, singles, target, kind, letters


@HEDGE_SETTINGS
@given(case=hedged_layouts())
def test_no_hedge_out_earns_the_best_committed_answer_in_the_same_layout(case):
    hedged, singles, target, kind, letters = case
    best = max(_total(s, target, kind, letters) for s in singles)
    assert _total(hedged, target, kind, letters) <= best + 1e-9, hedged


@SETTINGS
@given(label=st.sampled_from(["yes", "no", "maybe"]), form=st.sampled_from(["{}", "{}.", "**{}**", "{}!", "'{}'"]),
       upper=st.booleans(), explanation=st.sampled_from(["", ", because the trial met its endpoint",
                                                          ", there was no rebound effect"]))
def test_one_committed_label_is_read(label, form, upper, explanation):
    word = label.capitalize() if upper else label
    rec = grade(_layout("r", form.format(word) + explanation, "\n"), label, layout="xml", answer="yesno")
    assert rec.outcome == "correct", rec.notes
