"""The graders on adversarial completions, each with the record a user should get.

Every case states the whole decision: outcome, what was extracted and from where, the strict reading, the
format flags and truncation. A case that fails here is a grader that would mislabel a sample in the report
*and* mis-reward it in GRPO (the rewards are the same functions).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import pytest
from medbench.tasks.graders import (
    OUTCOMES,
    GradeRecord,
    JudgeVerdict,
    grade,
    parse_xml,
    region_answer,
    xml_tag_score,
)

# The GRPO recipe's own format checks, verbatim (re.match, no DOTALL).
RECIPE_STRICT = r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$"
RECIPE_SOFT = r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>"


def xml(reasoning: str, answer: str, tail: str = "\n") -> str:
    """A completion in the recipe's exact layout."""
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>{tail}"


@dataclass(frozen=True)
class Expect:
    """The fields of a GradeRecord a case pins down (defaults: nothing found, no format, truncation unknown,
    no tag left open, and a flexible reading equal to the primary one)."""

    outcome: str
    extracted: str | None = None
    source: str = "none"
    strict: str | None = None
    strict_correct: bool = False
    format_strict: bool = False
    format_soft: bool = False
    think_ok: bool | None = None
    outside: bool = False
    truncated: bool | None = None
    unclosed: bool = False
    #: (flexible_outcome, flexible_extracted, flexible_source); None: the same as the primary reading
    flex: tuple | None = None

    def of(self, rec: GradeRecord) -> Expect:
        flex = (rec.flexible_outcome, rec.flexible_extracted, rec.flexible_source)
        return Expect(
            outcome=rec.outcome,
            extracted=rec.extracted,
            source=rec.answer_source,
            strict=rec.strict_extracted,
            strict_correct=rec.strict_correct,
            format_strict=rec.format_strict,
            format_soft=rec.format_soft,
            think_ok=rec.think_ok,
            outside=rec.text_outside_tags,
            truncated=rec.truncated,
            unclosed=rec.unclosed_tag,
            flex=None if flex == (rec.outcome, rec.extracted, rec.answer_source) else flex,
        )


def _strict_ok(value: str) -> dict:
    """A completion that did everything as asked and was right."""
    return {"extracted": value, "source": "answer_tag", "strict": value, "strict_correct": True,
            "format_strict": True, "format_soft": True}


LONG = "The patient has a fever. " * 4000  # 100,000 characters of reasoning

XML_YESNO = [
    pytest.param(xml("Step 1: the cohort is small.\nStep 2: the effect is consistent.", "yes"), "yes",
                 Expect("correct", **_strict_ok("yes")), id="multi-line-reasoning-strict"),
    pytest.param(xml("r", "Yes."), "yes", Expect("correct", **_strict_ok("yes")), id="Yes-period-is-yes"),
    pytest.param(xml("r", "YES"), "yes", Expect("correct", **_strict_ok("yes")), id="YES-upper"),
    pytest.param(xml("r", "**Yes**"), "yes", Expect("correct", **_strict_ok("yes")), id="markdown-bold-yes"),
    pytest.param(xml("r", "No."), "yes",
                 Expect("wrong", extracted="no", source="answer_tag", strict="no", format_strict=True,
                        format_soft=True), id="wrong-answer-strict-layout"),
    pytest.param(xml("r", "Yes, because the trial met its endpoint."), "yes",
                 Expect("correct", extracted="yes", source="answer_tag", format_strict=True, format_soft=True),
                 id="yes-with-explanation-lenient-only"),
    pytest.param(xml("r", "I cannot say yes or no"), "no",
                 Expect("unparseable", format_strict=True, format_soft=True), id="hedged-yes-or-no"),
    pytest.param(xml("r", "maybe not"), "no",
                 Expect("wrong", extracted="maybe", source="answer_tag", format_strict=True, format_soft=True),
                 id="maybe-not-reads-maybe"),
    pytest.param("<reasoning>\nr\n</reasoning>\n<answer>\nno\n</answer>\n<answer>\nyes\n</answer>", "yes",
                 Expect("unparseable", format_soft=True), id="repeated-answer-tags-that-disagree-are-no-answer"),
    pytest.param("<answer>\nyes\n</answer>\n<reasoning>\nr\n</reasoning>", "yes",
                 Expect("correct", extracted="yes", source="answer_tag"), id="tags-in-wrong-order"),
    pytest.param("<reasoning>\n<reasoning>\nr\n</reasoning>\n</reasoning>\n<answer>\nyes\n</answer>", "yes",
                 Expect("correct", extracted="yes", source="answer_tag", outside=True),
                 id="nested-reasoning-tags"),
    pytest.param("<reasoning>\ndraft <answer>no</answer>\n</reasoning>\n<answer>\nyes\n</answer>", "yes",
                 Expect("correct", extracted="yes", source="answer_tag", format_soft=True),
                 id="answer-tag-inside-reasoning-then-real-answer"),
    # An answer outside the answer region is the flexible reading, never the primary one.
    pytest.param("<reasoning>\nAll things considered, the answer is yes.\n</reasoning>", "yes",
                 Expect("unparseable", flex=("correct", "yes", "reasoning")), id="answer-only-in-reasoning"),
    pytest.param("<reasoning>\nSo the answer is yes.\n</reasoning>\n<answer>\n\n</answer>", "yes",
                 Expect("unparseable", format_soft=True, flex=("correct", "yes", "reasoning")),
                 id="blank-answer-tag-answer-in-reasoning"),
    pytest.param("<reasoning>\nThe answer is no.\n</reasoning>\n<answer>\nunclear\n</answer>", "no",
                 Expect("unparseable", format_strict=True, format_soft=True, flex=("correct", "no", "reasoning")),
                 id="unreadable-answer-tag-not-rescued-by-reasoning"),
    pytest.param("<reasoning>\nr\n</reasoning>\n<answer>\nyes", "yes",
                 Expect("correct", extracted="yes", source="unclosed_answer_tag", unclosed=True),
                 id="unclosed-answer-tag"),
    # stopped on its own (no token limit hit): the last line is what the model ended on
    pytest.param("<reasoning>\nfirst, the cohort\nyes", "yes",
                 Expect("unparseable", unclosed=True, flex=("correct", "yes", "reasoning")),
                 id="unclosed-reasoning-last-line-is-flexible"),
    pytest.param("The answer is yes.", "yes",
                 Expect("unparseable", outside=True, flex=("correct", "yes", "text")), id="no-tags-phrase"),
    pytest.param("Considering the evidence.\nyes", "yes",
                 Expect("unparseable", outside=True, flex=("correct", "yes", "text")), id="no-tags-bare-last-line"),
    pytest.param("<Answer>yes</Answer>", "yes", Expect("unparseable", outside=True, flex=("correct", "yes", "text")),
                 id="tags-are-case-sensitive"),
    pytest.param("", "yes", Expect("unparseable"), id="empty"),
    pytest.param(None, "yes", Expect("unparseable"), id="none"),
    pytest.param("   \n\t  \n", "yes", Expect("unparseable"), id="whitespace-only"),
    pytest.param(b"<reasoning>\n\xff\xfe bytes\n</reasoning>\n<answer>\nyes\n</answer>\n", "yes",
                 Expect("correct", **_strict_ok("yes")), id="non-utf8-bytes"),
    pytest.param("<script>alert('x')</script>\n" + xml("r", "yes"), "yes",
                 Expect("correct", extracted="yes", source="answer_tag", format_soft=True, outside=True),
                 id="script-tag-outside"),
    pytest.param(xml("<script>alert(1)</script>", "yes"), "yes", Expect("correct", **_strict_ok("yes")),
                 id="script-tag-in-reasoning"),
    pytest.param(xml(LONG, "yes"), "yes", Expect("correct", **_strict_ok("yes")), id="100k-chars-strict"),
    pytest.param("<reasoning>\n" + LONG, "yes", Expect("unparseable", unclosed=True), id="100k-chars-unclosed"),
]

XML_CHOICE = [
    pytest.param(xml("r", "(B)"), "B", Expect("correct", **_strict_ok("B")), id="paren-B"),
    pytest.param(xml("r", "B) Aspirin 325 mg"), "B", Expect("correct", **_strict_ok("B")), id="B-paren-text"),
    pytest.param(xml("r", "B. Aspirin"), "B. Aspirin", Expect("correct", **_strict_ok("B")),
                 id="target-with-option-text"),
    pytest.param(xml("r", "The answer is B"), "B",
                 Expect("correct", extracted="B", source="answer_tag", format_strict=True, format_soft=True),
                 id="the-answer-is-B-in-tag"),
    pytest.param("After weighing the options, the answer is B.", "B",
                 Expect("unparseable", outside=True, flex=("correct", "B", "text")), id="the-answer-is-B-no-tags"),
    pytest.param(xml("r", "The answer is b"), "B",
                 Expect("correct", extracted="B", source="answer_tag", format_strict=True, format_soft=True),
                 id="the-answer-is-lowercase-b"),
    pytest.param(xml("r", "the answer is a bit unclear"), "A",
                 Expect("unparseable", format_strict=True, format_soft=True), id="article-a-is-not-A"),
    pytest.param(xml("r", "A patient like this needs aspirin"), "A",
                 Expect("unparseable", format_strict=True, format_soft=True), id="article-A-is-not-A"),
    pytest.param(xml("r", "Option C"), "C",
                 Expect("correct", extracted="C", source="answer_tag", format_strict=True, format_soft=True),
                 id="option-C"),
    pytest.param(xml("r", "b"), "B",
                 Expect("correct", extracted="B", source="answer_tag", format_strict=True, format_soft=True),
                 id="lowercase-b-lenient-only"),
    pytest.param(xml("r", "E"), "B", Expect("unparseable", format_strict=True, format_soft=True),
                 id="letter-outside-ABCD"),
    pytest.param(xml("r", "B and C"), "B", Expect("unparseable", format_strict=True, format_soft=True),
                 id="two-letters"),
    pytest.param(xml("r", "B. Aspirin\nbecause it inhibits platelets"), "B",
                 Expect("correct", extracted="B", source="answer_tag", format_strict=True, format_soft=True),
                 id="letter-then-explanation-lines"),
    pytest.param("We rule out A and C.\nB", "B", Expect("unparseable", outside=True, flex=("correct", "B", "text")),
                 id="no-tags-letter-last-line"),
]

XML_NUMBER = [
    pytest.param(xml("r", "1,234"), "1234", Expect("correct", **_strict_ok("1234")), id="thousands-comma"),
    pytest.param(xml("r", "$1,234.00"), "#### 1234", Expect("correct", **_strict_ok("1234")),
                 id="dollars-and-cents-vs-gsm8k-target"),
    pytest.param(xml("r", "0.5"), "0.50", Expect("correct", **_strict_ok("0.5")), id="decimal-vs-padded-target"),
    pytest.param(xml("r", ".5"), "0.5", Expect("correct", **_strict_ok("0.5")), id="leading-dot-decimal"),
    pytest.param(xml("r", "-3"), "-3", Expect("correct", **_strict_ok("-3")), id="negative"),
    pytest.param(xml("r", "12%"), "12", Expect("correct", **_strict_ok("12")), id="percent"),
    pytest.param(xml("r", "18."), "18", Expect("correct", **_strict_ok("18")), id="trailing-period"),
    pytest.param(xml("r", "18 mg"), "18",
                 Expect("correct", extracted="18", source="answer_tag", format_strict=True, format_soft=True),
                 id="units-lenient-only"),
    pytest.param(xml("r", "1,2345"), "12345",
                 Expect("correct", extracted="12345", source="answer_tag", format_strict=True, format_soft=True),
                 id="odd-comma-grouping-never-splits-digits"),
    pytest.param(xml("r", "The answer is 18, not 20"), "18",
                 Expect("correct", extracted="18", source="answer_tag", format_strict=True, format_soft=True),
                 id="explicit-phrase-beats-last-number"),
    pytest.param(xml("r", "10-15 tablets"), "15", Expect("unparseable", format_strict=True, format_soft=True),
                 id="range-names-two-numbers-and-is-not-negative"),
    pytest.param(xml("r", "48/2 = 24"), "24",
                 Expect("correct", extracted="24", source="answer_tag", format_strict=True, format_soft=True),
                 id="division-result"),
    pytest.param(xml("r", "Vitamin B12: 3 tablets"), "3",
                 Expect("correct", extracted="3", source="answer_tag", format_strict=True, format_soft=True),
                 id="digits-glued-to-a-letter-are-not-a-number"),
    pytest.param(xml("r", "3/4"), "4", Expect("unparseable", format_strict=True, format_soft=True),
                 id="fraction-is-not-its-denominator"),
    pytest.param(xml("r", "She ate 3/4 of it, so 6 slices remain"), "6",
                 Expect("correct", extracted="6", source="answer_tag", format_strict=True, format_soft=True),
                 id="fraction-skipped-last-number-read"),
    pytest.param(xml("r", "20"), "18",
                 Expect("wrong", extracted="20", source="answer_tag", strict="20", format_strict=True,
                        format_soft=True), id="wrong-number"),
    pytest.param("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72",
                 Expect("unparseable", outside=True, flex=("correct", "72", "text")), id="gsm8k-hash-answer"),
    pytest.param(xml("r", "1" * 100_000), "5",
                 Expect("wrong", extracted="1" * 100_000, source="answer_tag", strict="1" * 100_000,
                        format_strict=True, format_soft=True), id="100k-digit-number-no-crash"),
]

THINK = [
    # The SFT recipe's inference prompt ends with "<think>", so the completion normally holds only "</think>".
    pytest.param("The Q-tip test is positive.\nSo yes.\n</think>\nyes", "yes", {},
                 Expect("correct", extracted="yes", source="after_think", strict="yes", strict_correct=True,
                        format_strict=True, format_soft=True, think_ok=True), id="prefilled-ok"),
    pytest.param("<think>\nr\n</think>\nyes", "yes", {"think_prefilled": False},
                 Expect("correct", extracted="yes", source="after_think", strict="yes", strict_correct=True,
                        format_strict=True, format_soft=True, think_ok=True), id="not-prefilled-ok"),
    pytest.param("<think>\nr\n</think>\nyes", "yes", {},
                 Expect("correct", extracted="yes", source="after_think", format_soft=True, think_ok=False),
                 id="prefilled-but-reopened"),
    pytest.param("r1\n</think>\n<think>\nr2\n</think>\nno", "no", {},
                 Expect("correct", extracted="no", source="after_think", format_soft=True, think_ok=False),
                 id="two-think-blocks-answer-after-last"),
    pytest.param("still thinking about the detrusor", "yes", {},
                 Expect("unparseable", think_ok=False, unclosed=True), id="unclosed-think"),
    pytest.param("still thinking\nyes ", "yes", {"hit_token_limit": True},
                 Expect("unparseable", think_ok=False, unclosed=True, truncated=True),
                 id="cut-at-the-limit-last-line-not-an-answer"),
    pytest.param("so the answer is yes, but let me check", "yes", {},
                 Expect("unparseable", think_ok=False, unclosed=True, flex=("correct", "yes", "reasoning")),
                 id="unclosed-think-phrase-in-reasoning-is-flexible"),
    pytest.param("r\n</think>\n", "yes", {}, Expect("unparseable", think_ok=True), id="nothing-after-think"),
    pytest.param("Sure! <think>r</think>yes", "yes", {"think_prefilled": False},
                 Expect("correct", extracted="yes", source="after_think", format_soft=True, think_ok=True,
                        outside=True), id="text-before-think"),
    pytest.param("yes", "yes", {"think_prefilled": False},
                 Expect("unparseable", think_ok=False, outside=True, flex=("correct", "yes", "text")),
                 id="no-think-at-all"),
    pytest.param("r\n</think>\nyes\n", "yes", {"hit_token_limit": True},
                 Expect("correct", extracted="yes", source="after_think", strict="yes", strict_correct=True,
                        format_strict=True, format_soft=True, think_ok=True, truncated=True),
                 id="hit-token-limit-is-truncated"),
    # the last word of a completion cut at the token limit may be incomplete ("no" of "not"): not read
    pytest.param("r\n</think>\nno", "no", {"hit_token_limit": True},
                 Expect("unparseable", format_strict=True, format_soft=True, think_ok=True, truncated=True),
                 id="hit-token-limit-last-word-not-read"),
    pytest.param(LONG + "\n</think>\nyes", "yes", {},
                 Expect("correct", extracted="yes", source="after_think", strict="yes", strict_correct=True,
                        format_strict=True, format_soft=True, think_ok=True), id="100k-chars"),
]


@pytest.mark.parametrize("completion, target, expected", XML_YESNO)
def test_xml_yesno(completion, target, expected):
    assert expected.of(grade(completion, target, layout="xml", answer="yesno")) == expected


@pytest.mark.parametrize("completion, target, expected", XML_CHOICE)
def test_xml_choice(completion, target, expected):
    assert expected.of(grade(completion, target, layout="xml", answer="choice")) == expected


@pytest.mark.parametrize("completion, target, expected", XML_NUMBER)
def test_xml_number(completion, target, expected):
    assert expected.of(grade(completion, target, layout="xml", answer="number")) == expected


@pytest.mark.parametrize("completion, target, options, expected", THINK)
def test_think_yesno(completion, target, options, expected):
    assert expected.of(grade(completion, target, layout="think", answer="yesno", **options)) == expected


def test_five_option_letters():
    rec = grade(xml("r", "E"), "E", layout="xml", answer="choice", letters="ABCDE")
    assert (rec.outcome, rec.strict_extracted) == ("correct", "E")


# -- what the record keeps ------------------------------------------------------------------------------


def test_raw_text_is_kept_not_sanitised():
    """The grader keeps model text as is; escaping is the HTML report's job (it must never be dropped)."""
    rec = grade(xml("r", "Give <5 mg & stop if \"rash\" </br"), "ref", layout="xml", answer="free",
                judge=lambda a, r: JudgeVerdict(agree=False, score=0.0, kind="proxy"))
    assert rec.extracted == "Give <5 mg & stop if \"rash\" </br"


def test_lengths_in_words_and_tokens_cover_every_think_block():
    rec = grade("one two\n</think>\n<think>\nthree\n</think>\nyes", "yes", layout="think", answer="yesno",
                count_tokens=lambda s: len(s))
    assert rec.reasoning_words == 3
    assert rec.reasoning_tokens == len("one two\nthree")
    assert (rec.answer_words, rec.answer_tokens) == (1, 3)


def test_completion_chars_counts_decoded_text():
    assert grade(b"\xffyes", "yes", layout="xml", answer="yesno").completion_chars == 4


def test_to_dict_is_flat_with_judge_fields():
    d = grade(xml("r", "yes"), "yes", layout="xml", answer="yesno").to_dict()
    assert d["outcome"] == "correct" and d["judge_kind"] is None and d["notes"] == []


# -- free text goes through the judge ------------------------------------------------------------------


class RecordingJudge:
    def __init__(self, agree: bool) -> None:
        self.agree, self.calls = agree, []

    def __call__(self, answer: str, reference: str) -> JudgeVerdict:
        self.calls.append((answer, reference))
        return JudgeVerdict(agree=self.agree, score=float(self.agree), kind="llm", rationale="r", model="m")


@pytest.mark.parametrize("agree, outcome", [(True, "correct"), (False, "wrong")], ids=["agree", "disagree"])
def test_free_text_outcome_is_the_judges(agree, outcome):
    judge = RecordingJudge(agree)
    rec = grade("thinking\n</think>\nDetrusor overactivity is unlikely.", "  Normal cystometry. ",
                layout="think", answer="free", judge=judge)
    assert judge.calls == [("Detrusor overactivity is unlikely.", "Normal cystometry.")]
    assert (rec.outcome, rec.judge.agree, rec.judge.rationale, rec.strict_correct) == (outcome, agree, "r", agree)
    assert rec.to_dict()["judge_kind"] == "llm"


@pytest.mark.parametrize("completion", ["truncated reasoning\nwith a last line", "r\n</think>\n   "],
                         ids=["unclosed-think", "blank-answer"])
def test_free_text_without_answer_is_unparseable_and_not_judged(completion):
    judge = RecordingJudge(True)
    rec = grade(completion, "Normal cystometry.", layout="think", answer="free", judge=judge)
    assert (rec.outcome, rec.extracted, judge.calls) == ("unparseable", None, [])


def test_free_text_without_judge_names_the_fix():
    with pytest.raises(ValueError, match="default_judge"):
        grade("r</think>x", "y", layout="think", answer="free")


# -- bad arguments are named -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": "perhaps", "answer": "yesno"}, "yes/no/maybe target expected"),
        ({"target": "F", "answer": "choice"}, "answer letter A/B/C/D expected"),
        ({"target": "eighteen", "answer": "number"}, "numeric target expected"),
        ({"target": "nan", "answer": "number"}, "numeric target expected"),
        ({"target": "yes", "answer": "yesn"}, "did you mean 'yesno'"),
    ],
    ids=["yesno-target", "choice-target", "number-target", "nan-target", "unknown-answer-type"],
)
def test_bad_targets_and_types_fail_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        grade("x", layout="xml", **kwargs)


def test_unknown_layout_fails_clearly():
    with pytest.raises(ValueError, match="unknown layout 'json'"):
        grade("x", "yes", layout="json", answer="yesno")  # type: ignore[arg-type]


# -- the recipe's regexes vs ours -------------------------------------------------------------------------

MULTILINE = xml("The Q-tip test shows urethral hypermobility.\nLeakage only with coughing: stress incontinence.\n"
                "So the detrusor is stable and the residual volume normal.", "yes")
ONELINE = xml("Stress incontinence, stable detrusor.", "yes")


def test_recipe_regexes_reject_multiline_reasoning_that_we_accept():
    assert re.match(RECIPE_STRICT, MULTILINE) is None
    assert re.match(RECIPE_SOFT, MULTILINE) is None
    rec = grade(MULTILINE, "yes", layout="xml", answer="yesno")
    assert rec.format_strict and rec.format_soft and rec.strict_correct


def test_recipe_strict_regex_and_ours_agree_on_one_line_reasoning():
    """The copy above is the real regex: on a one-line reasoning both accept."""
    assert re.match(RECIPE_STRICT, ONELINE)
    rec = grade(ONELINE, "yes", layout="xml", answer="yesno")
    assert rec.format_strict and rec.format_soft


def test_recipe_soft_regex_rejects_even_its_own_prompt_layout():
    """Without DOTALL, ``.*?`` cannot cross the newline the system prompt puts after ``<reasoning>``: the
    recipe's soft reward only ever fires on tags with no newline inside. Ours accepts both."""
    assert re.match(RECIPE_SOFT, ONELINE) is None
    on_one_line = "<reasoning>stable detrusor</reasoning>\n<answer>yes</answer>"
    assert re.match(RECIPE_SOFT, on_one_line)
    assert grade(ONELINE, "yes", layout="xml", answer="yesno").format_soft
    assert grade(on_one_line, "yes", layout="xml", answer="yesno").format_soft


# -- the recipe's XML count and the answer-region reading ------------------------------------------------


@pytest.mark.parametrize(
    "completion, score",
    [
        (xml("a\nb\nc", "yes"), 0.5),  # every tag placed, trailing newline: full marks, any reasoning length
        (xml("r", "yes", tail="\nextra"), 0.5 - 0.005 - 0.005),  # 5 chars after: both penalties
        (xml("r", "yes", tail=""), 0.5 - 0.001 * len(xml("r", "yes", tail="")) + 0.001),  # recipe quirk
        ("<reasoning>\nr\n</reasoning>\n", 0.25),
        ("<reasoning>\nr\n<reasoning>\nr\n</reasoning>\n<answer>\nyes\n</answer>\n", 0.375),
        ("yes", 0.0),
    ],
    ids=["perfect", "trailing-text", "no-final-newline-quirk", "reasoning-only", "reasoning-twice", "no-tags"],
)
def test_xml_tag_score_reproduces_count_xml(completion, score):
    assert xml_tag_score(completion) == pytest.approx(score)


def recipe_count_xml(text: str) -> float:
    """The recipe's count_xml, verbatim, as the oracle."""
    count = 0.0
    if text.count("<reasoning>\n") == 1:
        count += 0.125
    if text.count("\n</reasoning>\n") == 1:
        count += 0.125
    if text.count("\n<answer>\n") == 1:
        count += 0.125
        count -= len(text.split("\n</answer>\n")[-1]) * 0.001
    if text.count("\n</answer>") == 1:
        count += 0.125
        count -= (len(text.split("\n</answer>")[-1]) - 1) * 0.001
    return count


@pytest.mark.parametrize(
    "completion", [c.values[0] for c in XML_YESNO + XML_CHOICE if isinstance(c.values[0], str)],
    ids=[c.id for c in XML_YESNO + XML_CHOICE if isinstance(c.values[0], str)],
)
def test_xml_tag_score_equals_recipe_on_every_case(completion):
    assert xml_tag_score(completion) == recipe_count_xml(completion)


@pytest.mark.parametrize("completion, expected", [
    (xml("r", "Yes."), "yes"),
    ("<answer>yes</answer> and then more", "yes"),  # layout not strict, region still a bare answer
    ("<reasoning>\nr\n</reasoning>\n<answer>\nyes, clearly\n</answer>", None),
    ("yes", None),  # no answer region
], ids=["strict", "loose-layout", "not-bare", "no-region"])
def test_region_answer(completion, expected):
    assert region_answer(completion, layout="xml", answer="yesno") == expected


def test_parse_xml_exposes_strict_answer_only_for_strict_layout():
    assert parse_xml(xml("r", " yes ")).strict_answer == "yes"
    assert parse_xml("<answer>yes</answer>").strict_answer is None


# -- performance guard (not a speed target: catches catastrophic regex backtracking) ----------------------


@pytest.mark.parametrize("completion", ["<reasoning>\n" + LONG, "<reasoning>\n" * 5000 + LONG,
                                        "<answer>yes</answer>" * 5000, " " * 100_000,
                                        # aimed at the readers: phrases, lists, negations, chains, markup
                                        xml("r", "The answer is yes or " * 5000), xml("r", "A, B, (C) " * 10000),
                                        "the answer is 1 or 2 = " * 5000, xml("r", "not (" * 20000 + "B"),
                                        'answer to the question "' * 4000, "<answer><b " * 10000,
                                        xml("r", "1" * 50_000 + " - " + "2" * 50_000)],
                         ids=["open-reasoning", "many-open-tags", "many-answers", "spaces", "phrase-hedges",
                              "letter-lists", "number-chains", "negations", "open-quoted-questions",
                              "unclosed-markup", "huge-expression"])
def test_100k_adversarial_completions_grade_in_linear_time(completion):
    # A regex with ``.*?\S.*?`` under fullmatch took 90 s on the first of these; string scanning takes ~10 ms.
    start = time.perf_counter()
    for answer in ("yesno", "choice", "number"):
        grade(completion, {"yesno": "yes", "choice": "B", "number": "5"}[answer], layout="xml", answer=answer)
    grade(completion, "yes", layout="think", answer="yesno")
    assert time.perf_counter() - start < 5.0


def test_outcomes_constant():
    assert OUTCOMES == ("correct", "wrong", "unparseable")
