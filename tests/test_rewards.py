"""The GRPO rewards on literal completions, in both forms TRL passes them, and their agreement with grade()."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medbench.tasks.graders import JudgeVerdict, grade, region_answer, xml_tag_score
from medbench.trainers.rewards import (
    RECIPE_REWARDS,
    GradeReward,
    answer_type_reward,
    completion_text,
    correctness_reward,
    soft_format_reward,
    strict_format_reward,
    xmlcount_reward,
)


def xml(reasoning: str, answer: str, tail: str = "\n") -> str:
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>{tail}"


MULTILINE = "Natalia sold 48 clips in April.\nIn May she sold half as many: 24.\nTogether: 48 + 24 = 72."
NO_NL = xml(MULTILINE, "72", tail="")

# (completion, answer, answer_type, [xmlcount, soft, strict, answer type, correctness])
CASES = [
    pytest.param(xml(MULTILINE, "72"), "72", "number", [0.5, 0.5, 0.5, 0.5, 2.0], id="perfect-multiline"),
    pytest.param(NO_NL, "#### 72", "number", [0.5 - 0.001 * len(NO_NL) + 0.001, 0.5, 0.5, 0.5, 2.0],
                 id="no-final-newline-recipe-quirk"),
    pytest.param(xml("r", "Yes."), "yes", "yesno", [0.5, 0.5, 0.5, 0.5, 2.0], id="Yes-period"),
    pytest.param(xml("r", "Yes, the trial shows it."), "yes", "yesno", [0.5, 0.5, 0.5, 0.0, 2.0],
                 id="yes-with-explanation-not-bare"),
    pytest.param(xml("r", "no"), "yes", "yesno", [0.5, 0.5, 0.5, 0.5, 0.0], id="wrong"),
    pytest.param(xml("r", "(B)"), "B", "choice", [0.5, 0.5, 0.5, 0.5, 2.0], id="paren-B"),
    pytest.param(xml("r", "E"), "B", "choice", [0.5, 0.5, 0.5, 0.0, 0.0], id="letter-outside-ABCD"),
    # the correctness reward is the benchmark's primary reading: the answer region only (issue #12)
    pytest.param("<reasoning>\nSo the answer is yes.\n</reasoning>", "yes", "yesno",
                 [0.125, 0.0, 0.0, 0.0, 0.0], id="answer-only-in-reasoning-earns-no-correctness"),
    pytest.param("The answer is 72", "72", "number", [0.0, 0.0, 0.0, 0.0, 0.0], id="plain-text-earns-nothing"),
    pytest.param(xml("r", "72 or 73"), "72", "number", [0.5, 0.5, 0.5, 0.0, 0.0], id="hedge-earns-format-only"),
    pytest.param(xml("r", "A. x\nB. y\nC. z\nD. w"), "D", "choice", [0.5, 0.5, 0.5, 0.0, 0.0],
                 id="echoed-options-earn-format-only"),
    pytest.param("<answer>72</answer>", "72", "number", [0.0, 0.0, 0.0, 0.5, 2.0], id="answer-tag-only"),
    pytest.param("", "72", "number", [0.0, 0.0, 0.0, 0.0, 0.0], id="empty"),
    pytest.param(xml("r", "The residual is normal."), "Normal residual.", "free",
                 [0.5, 0.5, 0.5, None, None], id="free-row-not-applicable"),
]


def rewards(completions, answer, answer_type):
    """Call every recipe reward exactly as GRPOTrainer._calculate_rewards does (keywords, extra columns and
    the trainer's own extras included)."""
    n = len(completions)
    kwargs = {"prompts": [[{"role": "user", "content": "q"}]] * n, "completions": completions,
              "completion_ids": [[1, 2, 3]] * n, "answer": answer, "answer_type": answer_type,
              "source": ["gsm8k"] * n, "question": ["q"] * n, "trainer_state": object(),
              "log_extra": lambda *a: None, "log_metric": lambda *a: None}
    return [f(**kwargs) for f in RECIPE_REWARDS]


@pytest.mark.parametrize("completion, answer, answer_type, expected", CASES)
@pytest.mark.parametrize("form", ["standard", "conversational"])
def test_recipe_rewards_on_literal_completions(form, completion, answer, answer_type, expected):
    c = completion if form == "standard" else [{"role": "assistant", "content": completion}]
    got = [r[0] for r in rewards([c], [answer], [answer_type])]
    assert got == [pytest.approx(e) if e is not None else None for e in expected]


def test_batch_keeps_order_and_length():
    comps = [xml("r", "yes"), "nothing", xml("r", "B")]
    out = rewards(comps, ["yes", "no", "B"], ["yesno", "yesno", "choice"])
    assert all(len(r) == 3 for r in out)
    assert out[4] == [2.0, 0.0, 2.0]


def test_recipe_rewards_are_named_and_ordered_like_the_recipe():
    # TRL logs each reward as rewards/<__name__> (trl.trainer.utils.get_callable_name)
    assert [f.__name__ for f in RECIPE_REWARDS] == [
        "xmlcount_reward", "soft_format_reward", "strict_format_reward", "answer_type_reward",
        "correctness_reward"]


# -- multi-line reasoning: ours vs the recipe's regexes ---------------------------------------------------


def recipe_strict_format_reward_func(completions, **kwargs):
    pattern = r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$"
    return [0.5 if re.match(pattern, c[0]["content"]) else 0.0 for c in completions]


def recipe_soft_format_reward_func(completions, **kwargs):
    pattern = r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>"
    return [0.5 if re.match(pattern, c[0]["content"]) else 0.0 for c in completions]


def test_multiline_reasoning_rewarded_by_ours_not_by_the_recipe_regexes():
    batch = [[{"role": "assistant", "content": xml(MULTILINE, "72")}]]
    assert recipe_strict_format_reward_func(batch) == [0.0]
    assert recipe_soft_format_reward_func(batch) == [0.0]
    assert strict_format_reward(batch) == [0.5]
    assert soft_format_reward(batch) == [0.5]


# -- one source of truth: each reward is the grade record's field -------------------------------------------

FRAGMENTS = ["<reasoning>\n", "\n</reasoning>\n", "<answer>\n", "\n</answer>", "\n", "yes", "No.", "(B)",
             "18", "1,234", "maybe", "The answer is ", " "]
completions = st.one_of(st.text(max_size=60),
                        st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=20).map("".join))
ROWS = {"yesno": "yes", "choice": "B", "number": "18"}


@settings(max_examples=300, deadline=None)
@given(text=completions, kind=st.sampled_from(sorted(ROWS)))
def test_each_reward_is_the_corresponding_grade_field(text, kind):
    target = ROWS[kind]
    rec = grade(text, target, layout="xml", answer=kind)
    xmlc, soft, strict, valid, correct = (r[0] for r in rewards([text], [target], [kind]))
    assert xmlc == xml_tag_score(text)
    assert soft == (0.5 if rec.format_soft else 0.0)
    assert strict == (0.5 if rec.format_strict else 0.0)
    assert correct == (2.0 if rec.outcome == "correct" else 0.0)
    assert valid == (0.5 if region_answer(text, layout="xml", answer=kind) is not None else 0.0)
    if rec.format_strict:  # the validity reading is the record's strict extraction
        assert valid == (0.5 if rec.strict_extracted is not None else 0.0)


# -- completions as TRL passes them -------------------------------------------------------------------------


def test_conversational_completion_text():
    assert completion_text([{"role": "assistant", "content": "a\nb"}]) == "a\nb"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "x"},
                                                              {"type": "image"}, {"type": "text", "text": "y"}]}]) == "xy"
    # a response parser (Qwen3-style) that split the thinking off: put back as a think block
    split = [{"role": "assistant", "reasoning_content": "the detrusor is stable", "content": "yes"}]
    assert completion_text(split) == "<think>\nthe detrusor is stable\n</think>\nyes"
    assert GradeReward("t", _think_ok, layout="think", think_prefilled=False)(
        [split], answer=["yes"], answer_type=["yesno"]) == [1.0]
    # tool turns are not the model's answer
    assert completion_text([{"role": "assistant", "content": "a"}, {"role": "tool", "content": "42"},
                            {"role": "assistant", "content": "b"}]) == "ab"


def test_unknown_completion_shape_is_a_clear_error():
    with pytest.raises(TypeError, match="list of chat messages"):
        xmlcount_reward([42])


# -- bad data stops training with the row named ---------------------------------------------------------------


def test_missing_column_lists_what_was_received():
    with pytest.raises(ValueError, match=r"needs the dataset column 'answer_type'.*\['answer', 'source'\]"):
        correctness_reward(["x"], prompts=["p"], completion_ids=[[1]], answer=["yes"], source=["pubmedqa"],
                           trainer_state=object())


def test_column_length_mismatch():
    with pytest.raises(ValueError, match="column 'answer' has 1 values for 2 completions"):
        correctness_reward(["x", "y"], answer=["yes"], answer_type=["yesno", "yesno"])


def test_bad_target_names_the_row():
    with pytest.raises(ValueError, match=r"completion 1 \(answer='perhaps', answer_type='yesno'\).*yes/no/maybe"):
        correctness_reward(["x", "y"], answer=["yes", "perhaps"], answer_type=["yesno", "yesno"])


def test_unknown_answer_type_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean 'number'"):
        correctness_reward(["x"], answer=["1"], answer_type=["numbr"])


def test_letters_column_widens_the_choice():
    assert answer_type_reward([xml("r", "E")], answer_type=["choice"], letters=["ABCDE"]) == [0.5]
    assert correctness_reward([xml("r", "E")], answer=["E"], answer_type=["choice"], letters=["ABCDE"]) == [2.0]


# -- your own reward from the record ----------------------------------------------------------------------------


def _think_ok(rec):
    return 1.0 if rec.think_ok else 0.0


def _strictly_correct(rec):
    return 1.0 if rec.strict_correct else 0.0


def test_grade_reward_think_layout_and_default_answer_type():
    r = GradeReward("think_ok", _think_ok, layout="think", answer_type="yesno")
    comps = ["thinking\n</think>\nyes", "<think>\nagain\n</think>\nyes", "never closed"]
    assert r(comps, answer=["yes"] * 3) == [1.0, 0.0, 0.0]
    assert r.__name__ == "think_ok"
    assert pickle.loads(pickle.dumps(r))(comps[:1], answer=["yes"]) == [1.0]


def test_grade_reward_column_wins_over_default():
    r = GradeReward("strictly_correct", _strictly_correct, answer_type="yesno")
    assert r([xml("r", "B")], answer=["B"], answer_type=["choice"]) == [1.0]


def test_grade_reward_free_rows_use_the_judge():
    calls = []

    def judge(answer, reference):
        calls.append((answer, reference))
        return JudgeVerdict(agree=True, score=0.9, kind="proxy")

    r = GradeReward("judged", lambda rec: rec.judge.score if rec.judge else 0.0, layout="think", judge=judge)
    assert r(["t\n</think>\nNormal residual volume."], answer=["Normal residual."], answer_type=["free"]) == [0.9]
    assert calls == [("Normal residual volume.", "Normal residual.")]
    without = GradeReward("judged", lambda rec: 1.0, layout="think")
    assert without(["t\n</think>\nx"], answer=["y"], answer_type=["free"]) == [None]
