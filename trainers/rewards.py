"""GRPO rewards: the GRPO recipe's five reward functions, as thin adapters over medbench's graders.

The function that decides in the report whether ``<answer>maybe</answer>`` is correct and well-formed is the
function that rewards it here (:func:`medbench.tasks.graders.grade` and the layout parser under it); nothing
in this module reads a tag or an answer by itself. The recipe's five rewards, in its order
(:data:`RECIPE_REWARDS`):

====================  ======================================================  =====================
reward                what earns it                                           grader underneath
====================  ======================================================  =====================
xmlcount_reward       0.125 per tag in place, minus 0.001 per trailing char   ``xml_tag_score``
soft_format_reward    0.5: a closed reasoning block, then an answer block     ``format_soft``
strict_format_reward  0.5: exactly the system prompt's layout                 ``format_strict``
answer_type_reward    0.5: ``<answer>`` holds just a number / yes-no-maybe /  ``region_answer``
                      a letter, as the row's ``answer_type`` asks
correctness_reward    2.0: the answer region's one answer is right            ``outcome == "correct"``
====================  ======================================================  =====================

A hedge earns nothing beyond the format rewards: a region that names two options (``"yes or no"``, ``"A-D"``,
an echoed option list, answer blocks that disagree) is no answer for ``answer_type_reward`` and
``correctness_reward`` alike, so no hedged completion out-earns committing to one answer in the same layout.
The flexible reading (an answer found in the reasoning or in plain text) is reported by the benchmark and never
rewarded; a :class:`GradeReward` on ``flexible_correct`` would reward it, on purpose.

Unlike the recipe's regexes (``re.match`` without ``re.DOTALL``), the layout checks accept reasoning that
spans lines, which is what a model asked to reason writes; the recipe's soft regex cannot even match its own
system prompt's layout, since that puts a newline right after ``<reasoning>``.

**How TRL calls them.** ``GRPOTrainer`` calls every reward function with keyword arguments: ``prompts``,
``completions``, ``completion_ids``, every dataset column except ``prompt`` (one value per completion), and
``trainer_state``, ``log_extra``, ``log_metric``. A completion is a string (standard datasets) or a list of
message dicts ``[{"role": "assistant", "content": …}]`` (conversational datasets); both are accepted. The
dataset columns these rewards read are explicit, typed parameters:

* ``answer`` — the target (``"yes"``, ``"B"``, ``"72"`` or ``"… #### 72"``);
* ``answer_type`` — ``"number"``, ``"yesno"``, ``"choice"`` or ``"free"``;
* ``letters`` (optional) — the valid letters of a choice row (``"ABCDE"``); ``"ABCD"`` when absent.

Everything else TRL passes is accepted and ignored. A reward returns ``None`` where it does not apply (a
``free`` row has no well-typed answer to check and, without a judge, no correctness); TRL leaves such a
reward out for that sample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from medbench.tasks.graders import (
    DEFAULT_LETTERS,
    GradeRecord,
    Judge,
    Layout,
    as_text,
    grade,
    parse_layout,
    region_answer,
    xml_tag_score,
)

__all__ = [
    "ANSWER_TYPE_REWARD",
    "CORRECT_REWARD",
    "RECIPE_LAYOUT",
    "RECIPE_REWARDS",
    "SOFT_FORMAT_REWARD",
    "STRICT_FORMAT_REWARD",
    "Completion",
    "GradeReward",
    "RewardFunc",
    "answer_type_reward",
    "completion_text",
    "correctness_reward",
    "grade_completions",
    "soft_format_reward",
    "strict_format_reward",
    "xmlcount_reward",
]

#: The recipe's rewards, as its reward functions return them.
SOFT_FORMAT_REWARD = 0.5
STRICT_FORMAT_REWARD = 0.5
ANSWER_TYPE_REWARD = 0.5
CORRECT_REWARD = 2.0

#: The GRPO recipe's answer layout (``<reasoning>…</reasoning><answer>…</answer>``).
RECIPE_LAYOUT: Layout = "xml"

#: One completion as TRL passes it: text, or the assistant's chat messages.
Completion = str | Sequence[Mapping[str, Any]]


class RewardFunc(Protocol):
    """What ``GRPOTrainer(reward_funcs=[...])`` needs from a custom reward: a name (TRL logs
    ``rewards/<__name__>``) and one float, or ``None`` for "not applicable", per completion. Dataset columns
    arrive as keyword arguments."""

    __name__: str

    def __call__(self, completions: Sequence[Completion], **columns: Any) -> list[float | None]: ...


# ---------------------------------------------------------------------------------------------------------
# Completions and columns
# ---------------------------------------------------------------------------------------------------------


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # multimodal-style parts: [{"type": "text", "text": "…"}]
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text")
    raise TypeError(f"message content must be text or a list of parts, got {type(content).__name__}")


def completion_text(completion: Completion | bytes) -> str:
    """The raw text of one completion, as the graders read it.

    A string is returned as is (bytes decoded like the graders do). For chat messages, the assistant
    messages' contents are joined in order; a ``reasoning_content`` that a tokenizer's response parser split
    off (Qwen3-style templates) is put back as ``<think>\\n…\\n</think>\\n`` before the content, so the think
    layout is graded on what the model actually wrote.
    """
    if isinstance(completion, (str, bytes)):
        return as_text(completion)
    if isinstance(completion, Sequence) and all(isinstance(m, Mapping) for m in completion):
        parts: list[str] = []
        for message in completion:
            if message.get("role", "assistant") != "assistant":
                continue
            reasoning = message.get("reasoning_content")
            if reasoning:
                parts.append(f"<think>\n{reasoning}\n</think>\n")
            parts.append(_content_text(message.get("content")))
        return "".join(parts)
    raise TypeError(
        "a completion must be a string or a list of chat messages like [{'role': 'assistant', 'content': '…'}], "
        f"got {type(completion).__name__}: {str(completion)[:80]!r}"
    )


#: What GRPOTrainer passes besides the dataset's columns.
_TRAINER_EXTRAS = ("prompts", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments")


def _received(trainer_extras: Mapping[str, Any], **named: Any) -> list[str]:
    """The dataset columns a reward was called with (for error messages)."""
    given = [k for k, v in named.items() if v is not None]
    return sorted(given + [k for k in trainer_extras if k not in _TRAINER_EXTRAS])


def _column(name: str, values: Sequence[Any] | None, n: int, reward: str, received: list[str]) -> Sequence[Any]:
    """A dataset column TRL passed, checked: present and one value per completion."""
    if values is None:
        raise ValueError(
            f"{reward} needs the dataset column {name!r} (one value per prompt); the columns it received are "
            f"{received}. Add {name!r} to the training dataset."
        )
    if isinstance(values, str) or len(values) != n:
        got = "a single string" if isinstance(values, str) else f"{len(values)} values"
        raise ValueError(f"{reward}: column {name!r} has {got} for {n} completions; expected a list, one per completion")
    return values


def grade_completions(
    completions: Sequence[Completion],
    answer: Sequence[str],
    answer_type: Sequence[str],
    letters: Sequence[str | None] | None = None,
    *,
    layout: Layout = RECIPE_LAYOUT,
    think_prefilled: bool = True,
    judge: Judge | None = None,
    reward: str = "reward",
) -> list[GradeRecord | None]:
    """:func:`~medbench.tasks.graders.grade` for a batch; ``None`` for a ``free`` row when no judge is given.
    A bad target or answer type stops training with the row named (bad data must not silently score 0)."""
    out: list[GradeRecord | None] = []
    for i, (completion, target, kind) in enumerate(zip(completions, answer, answer_type)):
        if kind == "free" and judge is None:
            out.append(None)
            continue
        try:
            out.append(grade(completion_text(completion), target, layout=layout, answer=kind,
                             letters=(letters[i] if letters is not None else None) or DEFAULT_LETTERS,
                             think_prefilled=think_prefilled, judge=judge))
        except ValueError as e:
            raise ValueError(f"{reward}: completion {i} (answer={target!r}, answer_type={kind!r}): {e}") from e
    return out


# ---------------------------------------------------------------------------------------------------------
# The recipe's five rewards
# ---------------------------------------------------------------------------------------------------------


def xmlcount_reward(completions: Sequence[Completion], **trainer_extras: Any) -> list[float | None]:
    """The recipe's ``xmlcount_reward_func``: :func:`~medbench.tasks.graders.xml_tag_score`, up to 0.5
    (its numbers, quirks included)."""
    return [xml_tag_score(completion_text(c)) for c in completions]


def soft_format_reward(completions: Sequence[Completion], **trainer_extras: Any) -> list[float | None]:
    """0.5 when a closed ``<reasoning>`` block is followed by a closed ``<answer>`` block (the record's
    ``format_soft``), multi-line content allowed."""
    return [SOFT_FORMAT_REWARD if parse_layout(completion_text(c), RECIPE_LAYOUT).format_soft else 0.0
            for c in completions]


def strict_format_reward(completions: Sequence[Completion], **trainer_extras: Any) -> list[float | None]:
    """0.5 when the completion is exactly the system prompt's layout (the record's ``format_strict``):
    ``<reasoning>\\n…\\n</reasoning>\\n<answer>\\n…\\n</answer>``, reasoning on as many lines as it needs."""
    return [STRICT_FORMAT_REWARD if parse_layout(completion_text(c), RECIPE_LAYOUT).format_strict else 0.0
            for c in completions]


def answer_type_reward(
    completions: Sequence[Completion],
    answer_type: Sequence[str] | None = None,
    letters: Sequence[str | None] | None = None,
    **trainer_extras: Any,
) -> list[float | None]:
    """0.5 when the answer region holds exactly one answer of the row's type — a number (GSM8K), yes/no/maybe
    (PubMedQA), a valid letter (Health_Benchmarks) — whatever the rest of the layout
    (:func:`~medbench.tasks.graders.region_answer`, the reading behind ``strict_extracted``); the recipe's
    ``int_reward_func`` generalised by source. ``None`` for ``free`` rows."""
    received = _received(trainer_extras, answer_type=answer_type, letters=letters)
    kinds = _column("answer_type", answer_type, len(completions), "answer_type_reward", received)
    out: list[float | None] = []
    for i, (c, kind) in enumerate(zip(completions, kinds)):
        if kind == "free":
            out.append(None)
            continue
        valid = region_answer(completion_text(c), layout=RECIPE_LAYOUT, answer=kind,
                              letters=(letters[i] if letters is not None else None) or DEFAULT_LETTERS)
        out.append(ANSWER_TYPE_REWARD if valid is not None else 0.0)
    return out


def correctness_reward(
    completions: Sequence[Completion],
    answer: Sequence[str] | None = None,
    answer_type: Sequence[str] | None = None,
    letters: Sequence[str | None] | None = None,
    **trainer_extras: Any,
) -> list[float | None]:
    """2.0 when the grader's outcome is ``correct`` — the benchmark's own accuracy decision, which reads the
    answer region only (``"Yes."``, ``"$1,234"`` and ``"(B)"`` count; an answer only in the reasoning or in
    text outside the layout does not, and a region naming two options — ``"B or C"``, an echoed option list,
    answer blocks that disagree — is no answer). ``None`` for ``free`` rows (they need a judge: see
    :class:`GradeReward`)."""
    n = len(completions)
    received = _received(trainer_extras, answer=answer, answer_type=answer_type, letters=letters)
    targets = _column("answer", answer, n, "correctness_reward", received)
    kinds = _column("answer_type", answer_type, n, "correctness_reward", received)
    records = grade_completions(completions, targets, kinds, letters, reward="correctness_reward")
    return [None if r is None else (CORRECT_REWARD if r.correct else 0.0) for r in records]


#: The GRPO recipe's reward functions, in its order: ``GRPOTrainer(reward_funcs=list(RECIPE_REWARDS))``.
RECIPE_REWARDS: tuple[RewardFunc, ...] = (
    xmlcount_reward,
    soft_format_reward,
    strict_format_reward,
    answer_type_reward,
    correctness_reward,
)


# ---------------------------------------------------------------------------------------------------------
# Your own reward from any field of the grade record
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradeReward:
    """A TRL reward computed from the grade record of each completion: the way to reward anything the
    benchmark reports (the think layout, strict correctness, a free-text judge's verdict…).

    Args:
        name: the name TRL logs the reward under.
        score: ``GradeRecord -> float`` (or ``None`` for "not applicable"); a module-level function keeps the
            reward picklable.
        layout: ``"xml"`` or ``"think"``.
        answer_type: used when the dataset has no ``answer_type`` column.
        think_prefilled: the prompt already opened ``<think>`` (think layout).
        judge: for ``free`` rows (e.g. ``medbench.tasks.judge.default_judge()``); without one they score
            ``None``.

    Example::

        think_ok = GradeReward("think_ok", lambda rec: 1.0 if rec.think_ok else 0.0, layout="think",
                               answer_type="yesno")
    """

    name: str
    score: Callable[[GradeRecord], float | None]
    layout: Layout = RECIPE_LAYOUT
    answer_type: str | None = None
    think_prefilled: bool = True
    judge: Judge | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "__name__", self.name)  # TRL names the reward by ``__name__``

    def __call__(
        self,
        completions: Sequence[Completion],
        answer: Sequence[str] | None = None,
        answer_type: Sequence[str] | None = None,
        letters: Sequence[str | None] | None = None,
        **trainer_extras: Any,
    ) -> list[float | None]:
        n = len(completions)
        received = _received(trainer_extras, answer=answer, answer_type=answer_type, letters=letters)
        targets = _column("answer", answer, n, self.name, received)
        if answer_type is None and self.answer_type is not None:
            answer_type = [self.answer_type] * n
        kinds = _column("answer_type", answer_type, n, self.name, received)
        records = grade_completions(completions, targets, kinds, letters, layout=self.layout,
                                    think_prefilled=self.think_prefilled, judge=self.judge, reward=self.name)
        return [None if r is None else self.score(r) for r in records]
