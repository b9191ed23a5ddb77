"""Issue #12's grading policy, case by case: one answer or none, found where it was given, reported as such.

Every case pins the primary reading (``outcome``/``extracted``: the layout's answer region only — what
``accuracy`` and the correctness reward use) and the flexible reading (``flexible_*``: an answer found anywhere,
reported beside it the way lm-eval reports strict-match beside flexible-extract). A hedge is no answer in
either reading. The ``why`` of each adversarial case is the decision it documents.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from medbench.tasks.graders import grade, region_answer
from medbench.trainers.rewards import RECIPE_REWARDS, answer_type_reward, correctness_reward


def xml(reasoning: str, answer: str, tail: str = "\n") -> str:
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>{tail}"


@dataclass(frozen=True)
class Case:
    completion: str
    target: str
    answer: str  # answer type
    primary: tuple[str, str | None]  # (outcome, extracted)
    flexible: tuple[str, str | None, str]  # (flexible_outcome, flexible_extracted, flexible_source)
    note: str | None = None  # a substring one of the record's notes must hold
    layout: str = "xml"
    hit_token_limit: bool = False
    letters: str = "ABCD"


def _grade(c: Case):
    return grade(c.completion, c.target, layout=c.layout, answer=c.answer, letters=c.letters,
                 hit_token_limit=c.hit_token_limit)


def _check(c: Case) -> None:
    rec = _grade(c)
    assert (rec.outcome, rec.extracted) == c.primary, rec.notes
    assert (rec.flexible_outcome, rec.flexible_extracted, rec.flexible_source) == c.flexible, rec.notes
    if c.note is not None:
        assert any(c.note in n for n in rec.notes), rec.notes


U = ("unparseable", None)  # primary: no answer
UF = ("unparseable", None, "none")  # flexible: no answer

# -- one answer, or no answer ---------------------------------------------------------------------------------

HEDGES = {
    "A-or-B-target-B": Case(xml("r", "A or B"), "B", "choice", U, UF, "ambiguous: names A and B"),
    "B-or-C-target-B": Case(xml("r", "B or C"), "B", "choice", U, UF, "ambiguous"),
    "yes-or-no-target-yes": Case(xml("r", "yes or no"), "yes", "yesno", U, UF, "ambiguous: names yes and no"),
    "yes-or-no-embedded": Case(xml("r", "It could be yes or no depending on adherence."), "no", "yesno", U, UF,
                               "ambiguous"),
    "either-B-or-C": Case(xml("r", "Either B or C"), "C", "choice", U, UF, "ambiguous"),
    "either-yes-or-maybe": Case(xml("r", "either yes or maybe"), "maybe", "yesno", U, UF, "ambiguous"),
    "list-comma": Case(xml("r", "A, B"), "A", "choice", U, UF, "ambiguous"),
    "list-slash": Case(xml("r", "A/B"), "B", "choice", U, UF, "ambiguous"),
    "run-A-D": Case(xml("r", "A-D"), "D", "choice", U, UF, "ambiguous"),
    "B-and-C": Case(xml("r", "B and C"), "B", "choice", U, UF, "ambiguous"),
    "B-but-C-also-possible": Case(xml("r", "B, but C is also possible"), "C", "choice", U, UF, "ambiguous"),
    "all-letters-listed": Case(xml("r", "A, B, C, D"), "C", "choice", U, UF, "ambiguous"),
    "all-letters-5": Case(xml("r", "A B C D E"), "E", "choice", U, UF, "ambiguous", letters="ABCDE"),
    "all-labels": Case(xml("r", "yes / no / maybe"), "maybe", "yesno", U, UF, "ambiguous"),
    "yes-no-or-maybe": Case(xml("r", "Yes, no or maybe."), "yes", "yesno", U, UF, "ambiguous"),
    "number-or-number": Case(xml("r", "1800 or 1900"), "1800", "number", U, UF, "ambiguous: names 1800 and 1900"),
    "number-or-number-right-last": Case(xml("r", "1900 or 1800"), "1800", "number", U, UF, "ambiguous"),
    "number-range-is-two-answers": Case(xml("r", "10-15 tablets"), "15", "number", U, UF),
    "number-to-number": Case(xml("r", "between 10 to 15"), "15", "number", U, UF, "ambiguous"),
    "phrase-then-hedge": Case(xml("r", "The answer is 18 or 20"), "18", "number", U, UF, "ambiguous"),
    # several answer blocks: one region each; they must agree
    "answer-blocks-disagree": Case("<reasoning>\nr\n</reasoning>\n<answer>\nno\n</answer>\n<answer>\nyes\n</answer>",
                                   "yes", "yesno", U, UF, "ambiguous: names no and yes"),
    "full-layouts-disagree": Case(xml("First thought.", "A") + xml("Second thought.", "B"), "B", "choice", U, UF,
                                  "ambiguous"),
    # an answer wrapped in markup or code is no answer (rule: the answer region is plain text)
    "script-in-answer": Case(xml("r", "<script>document.write('yes')</script>"), "yes", "yesno", U, UF, "markup"),
    "html-in-answer": Case(xml("r", "<b>yes</b>"), "yes", "yesno", U, UF, "markup"),
    "code-fence-in-answer": Case(xml("r", "```\nyes\n```"), "yes", "yesno", U, UF, "markup"),
}


@pytest.mark.parametrize("case", HEDGES.values(), ids=HEDGES.keys())
def test_a_region_naming_two_options_is_no_answer(case):
    _check(case)
    rec = _grade(case)
    assert rec.strict_extracted is None and not rec.strict_correct
    assert region_answer(case.completion, layout="xml", answer=case.answer, letters=case.letters) is None
    kw = {"answer": [case.target], "answer_type": [case.answer], "letters": [case.letters]}
    assert correctness_reward([case.completion], **kw) == [0.0]
    assert answer_type_reward([case.completion], **kw) == [0.0]


COMMITTED = {
    # decisions the rules above must not over-reach on
    "markdown-bold-stays-fine": Case(xml("r", "**B**"), "B", "choice", ("correct", "B"), ("correct", "B", "answer_tag")),
    "answer-blocks-agree": Case("<reasoning>\nr\n</reasoning>\n<answer>\nyes\n</answer>\n<answer>\nYes.\n</answer>",
                                "yes", "yesno", ("correct", "yes"), ("correct", "yes", "answer_tag")),
    "yes-then-prose-with-no": Case(xml("r", "Yes, because there was no rebound hypertension."), "yes", "yesno",
                                   ("correct", "yes"), ("correct", "yes", "answer_tag")),
    "no-evidence-is-no": Case(xml("r", "No, there is no evidence of benefit."), "no", "yesno", ("correct", "no"),
                              ("correct", "no", "answer_tag")),
    "letter-with-option-text-holding-a-letter": Case(xml("r", "B. Hepatitis C"), "B", "choice", ("correct", "B"),
                                                     ("correct", "B", "answer_tag")),
    "letter-with-vitamin-D": Case(xml("r", "C. Vitamin D deficiency"), "C", "choice", ("correct", "C"),
                                  ("correct", "C", "answer_tag")),
    # the answer is what the equation comes to, not its first operand
    "equation-result": Case(xml("r", "The answer is 2000 - 200 = 1000"), "1000", "number", ("correct", "1000"),
                            ("correct", "1000", "answer_tag")),
    "equation-result-no-phrase": Case(xml("r", "2000 - 200 = 1800"), "1800", "number", ("correct", "1800"),
                                      ("correct", "1800", "answer_tag")),
    "phrase-beats-distractor": Case(xml("r", "The answer is 1800, not 2000."), "1800", "number",
                                    ("correct", "1800"), ("correct", "1800", "answer_tag")),
}


@pytest.mark.parametrize("case", COMMITTED.values(), ids=COMMITTED.keys())
def test_one_committed_answer_is_read(case):
    _check(case)


# -- adversarial: written to game the new rules; each decision documented -------------------------------------

ADVERSARIAL = {
    # A negated option ("not X") is rejected, not named: the region commits to one answer.
    "yes-not-no": Case(xml("r", "Yes (not no)"), "yes", "yesno", ("correct", "yes"), ("correct", "yes", "answer_tag")),
    "B-not-C": Case(xml("r", "The answer is B, not C"), "B", "choice", ("correct", "B"), ("correct", "B", "answer_tag")),
    "not-yes-is-no-answer": Case(xml("r", "Not yes"), "yes", "yesno", U, UF),
    # A labelled answer, and another letter only in running text ("A is wrong"): one answer. The letter is not
    # written as an option label, and "A" before a lowercase word reads as the article.
    "B-then-A-is-wrong": Case(xml("r", "B. Axillary nerve (A is wrong)"), "B", "choice", ("correct", "B"),
                              ("correct", "B", "answer_tag")),
    # ...but a second *labelled* option is named, whatever is said about it: only "not X" rejects.
    "B-then-labelled-C-is-wrong": Case(xml("r", "B. Axillary nerve; (C) is wrong"), "B", "choice", U, UF,
                                       "ambiguous"),
    # Quoting the question's options in the reasoning is reasoning: the answer tag decides.
    "options-quoted-in-reasoning": Case(
        xml("The options are A. Radial B. Axillary C. Ulnar D. Median; the deltoid is axillary, so not A.", "C"),
        "B", "choice", ("wrong", "C"), ("wrong", "C", "answer_tag")),
    # An answer tag inside the reasoning is a draft, part of the reasoning: the real answer tag decides.
    "draft-answer-inside-reasoning": Case(
        "<reasoning>\ndraft <answer>no</answer>\n</reasoning>\n<answer>\nyes\n</answer>", "yes", "yesno",
        ("correct", "yes"), ("correct", "yes", "answer_tag")),
    # Padding the region with every option, then an answer phrase, is still every option named.
    "phrase-after-echo": Case(xml("r", "A. Radial B. Axillary C. Ulnar D. Median. The answer is B"), "B", "choice",
                              U, UF, "ambiguous"),
    # Text after the answer block addressed to the grader is not the answer region.
    "injection-after-answer": Case(xml("r", "no", tail="\nNote to the grader: the final answer is yes."), "yes",
                                   "yesno", ("wrong", "no"), ("wrong", "no", "answer_tag")),
}


@pytest.mark.parametrize("case", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_adversarial_completions(case):
    _check(case)


# -- echoed options are not an answer ----------------------------------------------------------------------------

ECHO = "A. Has less mineral content\nB. Shows PAS reaction\nC. Both\nD. None"


def test_echoed_options_are_not_read_as_their_last_line():
    """SmolLM2 repeats the options; the last-line fallback read that as D (6 of 25 MedMCQA samples)."""
    _check(Case(ECHO, "D", "choice", U, UF, "no answer region"))
    _check(Case(xml("r", ECHO), "D", "choice", U, UF, "ambiguous: names A, B, C and D"))
    _check(Case("A. Radial nerve B. Axillary nerve C. Musculocutaneous nerve D. Median nerve", "D", "choice", U, UF))


def test_last_line_fallback_never_fires_on_a_completion_cut_at_the_token_limit():
    _check(Case("Considering the evidence.\nyes", "yes", "yesno", U, ("correct", "yes", "text")))
    _check(Case("Considering the evidence.\nyes ", "yes", "yesno", U, UF, hit_token_limit=True))
    _check(Case("We rule out A and C.\nB\n", "B", "choice", U, UF, hit_token_limit=True))


def test_a_number_cut_at_the_token_limit_is_not_read():
    """"…the answer is 10" may be the start of "100": the last word of a cut completion is not read."""
    _check(Case("John has 50 left, so the answer is 10", "100", "number", U, UF, "cut at the token limit",
                hit_token_limit=True))
    _check(Case("<reasoning>\n50 + 50\n</reasoning>\n<answer>\n10", "100", "number", U, UF, hit_token_limit=True))
    # the same text that stopped on its own is read
    _check(Case("John has 50 left, so the answer is 10", "10", "number", U, ("correct", "10", "text")))


# -- found where it was given, reported as such --------------------------------------------------------------

WHERE = {
    "answer-only-in-reasoning": Case("<reasoning>\nAll things considered, the answer is yes.\n</reasoning>", "yes",
                                     "yesno", U, ("correct", "yes", "reasoning"), "no answer region"),
    "blank-answer-tag": Case("<reasoning>\nSo the answer is yes.\n</reasoning>\n<answer>\n\n</answer>", "yes",
                             "yesno", U, ("correct", "yes", "reasoning")),
    "unreadable-region-flexible-from-reasoning": Case(
        "<reasoning>\nThe answer is no.\n</reasoning>\n<answer>\nunclear\n</answer>", "no", "yesno", U,
        ("correct", "no", "reasoning")),
    # a real instruct model that ignores the layout (SmolLM2-135M-Instruct, verbatim openings)
    "plain-no-opening": Case("No, anorectal endosonography is not a useful tool for investigating the anal "
                             "sphincter complex in patients with anal fistula.", "no", "yesno", U,
                             ("correct", "no", "text")),
    "plain-quoted-yes": Case('The answer is "yes" to the given question. The manic/mixed episode distinction '
                             "runs true over time.", "yes", "yesno", U, ("correct", "yes", "text")),
    "plain-final-number": Case("On Monday he sold 12 DVDs and on Tuesday 18 more than that.\n\nTherefore, Billy "
                               "sold 30 DVDs on Tuesday.", "30", "number", U, ("correct", "30", "text")),
    "plain-equation-phrase": Case("The answer is 2000 - 200 = 1000 pairs.", "1000", "number", U,
                                  ("correct", "1000", "text")),
    # ...while still refusing hedges
    "plain-hedge": Case("It could be yes or no, depending on the cohort.", "yes", "yesno", U, UF),
    "plain-phrase-hedge": Case("The answer is B or C.", "B", "choice", U, UF),
    "plain-phrases-disagree": Case("The answer is 18. Checking again, the answer is 20.", "20", "number", U, UF),
    # a hedge in the answer region is not rescued by the reasoning
    "region-hedge-not-rescued": Case("<reasoning>\nThe answer is B.\n</reasoning>\n<answer>\nB or C\n</answer>",
                                     "B", "choice", U, UF),
}


@pytest.mark.parametrize("case", WHERE.values(), ids=WHERE.keys())
def test_primary_reads_the_answer_region_flexible_reads_elsewhere(case):
    _check(case)
    rec = _grade(case)
    kw = {"answer": [case.target], "answer_type": [case.answer]}
    assert correctness_reward([case.completion], **kw) == [2.0 if rec.outcome == "correct" else 0.0]


def test_think_layout_reads_after_think_and_flexible_reads_the_think_block():
    _check(Case("The Q-tip test is positive.\n</think>\nyes", "yes", "yesno", ("correct", "yes"),
                ("correct", "yes", "after_think"), layout="think"))
    _check(Case("So the answer is yes, but let me check the detrusor", "yes", "yesno", U,
                ("correct", "yes", "reasoning"), layout="think"))


# -- truncated means one thing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("completion, layout", [
    ("still thinking about the detrusor", "think"),
    ("<reasoning>\nr\n</reasoning>\n<answer>\nyes", "xml"),
    ("<reasoning>\nthe cohort is small", "xml"),
], ids=["unclosed-think", "unclosed-answer", "unclosed-reasoning"])
def test_an_unclosed_tag_that_stopped_on_its_own_is_a_format_fact_not_truncation(completion, layout):
    rec = grade(completion, "yes", layout=layout, answer="yesno", hit_token_limit=False)
    assert rec.truncated is False and rec.unclosed_tag is True
    assert any("never closed" in n for n in rec.notes), rec.notes
    assert grade(completion, "yes", layout=layout, answer="yesno", hit_token_limit=True).truncated is True


def test_truncated_is_unknown_when_the_caller_does_not_know():
    """lm-eval's process_results hook sees only the text: whether the token limit was hit is not known there."""
    rec = grade(xml("r", "yes"), "yes", layout="xml", answer="yesno")
    assert rec.truncated is None and rec.unclosed_tag is False


def test_lenient_extracted_is_kept_equal_to_extracted():
    """Kept for the run directory's current columns (harness/run/rundir.py), slated for removal."""
    for c in [*HEDGES.values(), *COMMITTED.values(), *WHERE.values()]:
        rec = _grade(c)
        assert rec.lenient_extracted == rec.extracted


def test_completion_words_count_a_reply_that_ignores_the_layout():
    rec = grade("No, the trial showed no benefit at twelve weeks.", "no", layout="xml", answer="yesno")
    assert (rec.reasoning_words, rec.answer_words, rec.completion_words) == (0, 0, 9)


def test_the_strict_reading_is_the_primary_one_given_exactly():
    rec = grade(xml("r", "B. Axillary nerve C. Musculocutaneous nerve"), "B", layout="xml", answer="choice")
    assert (rec.outcome, rec.strict_extracted, rec.strict_correct) == ("unparseable", None, False)
    ok = grade(xml("r", "B. Axillary nerve"), "B", layout="xml", answer="choice")
    assert (ok.outcome, ok.strict_extracted, ok.strict_correct) == ("correct", "B", True)


def test_recipe_rewards_on_a_hedge_are_format_only():
    hedge = xml("r", "yes or no")
    n = 1
    kwargs = {"prompts": ["p"] * n, "completions": [hedge], "completion_ids": [[1]] * n, "answer": ["yes"],
              "answer_type": ["yesno"]}
    assert [f(**kwargs)[0] for f in RECIPE_REWARDS] == [0.5, 0.5, 0.5, 0.0, 0.0]
