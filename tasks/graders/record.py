"""The grade record: what a grader decided about one raw completion, and why.

A grader never answers with a bare bool. The report needs to show *why* a sample failed (no answer tag?
answer only inside the reasoning? right letter but wrong layout?), the gate needs format rates apart from
accuracy, and the GRPO rewards need the same facts. All of them read this record.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

Outcome = Literal["correct", "wrong", "unparseable"]
OUTCOMES: tuple[Outcome, ...] = ("correct", "wrong", "unparseable")

#: Where the scored answer was found. Ordered from "the model did what we asked" to "we dug it out".
AnswerSource = Literal[
    "answer_tag",  # inside a closed <answer>...</answer> block
    "unclosed_answer_tag",  # after an <answer> that was never closed (usually truncation)
    "after_think",  # after the closing </think> (think-then-answer layout)
    "answer_phrase",  # "The answer is B" / "Answer: yes" anywhere in the completion
    "reasoning",  # only inside the reasoning / think block
    "text",  # the completion had no usable tags; found in the plain text
    "none",  # nothing extractable
]


@dataclass(frozen=True)
class JudgeVerdict:
    """Agreement of a free-text answer with a reference answer.

    ``kind`` says who decided: ``"llm"`` (an LLM judge over HTTP) or ``"proxy"`` (an offline similarity
    proxy, which must be labelled as such wherever it is shown).
    """

    agree: bool
    score: float
    kind: Literal["llm", "proxy"]
    rationale: str = ""
    model: str = ""


@dataclass(frozen=True)
class GradeRecord:
    """Everything a grader extracted from one completion.

    ``outcome`` is decided on the *lenient* extraction (what the model meant); ``strict_correct`` says
    whether the answer was also given exactly as asked. A format failure is therefore visible apart from a
    reasoning failure, and "unparseable" is never folded into "wrong".
    """

    outcome: Outcome
    target: str
    extracted: str | None
    answer_source: AnswerSource
    strict_extracted: str | None
    lenient_extracted: str | None
    strict_correct: bool
    layout: str
    answer_type: str
    # format flags
    format_strict: bool
    format_soft: bool
    think_ok: bool | None  # exactly one closed think block (think layout only)
    text_outside_tags: bool
    truncated: bool
    # lengths
    reasoning_words: int
    answer_words: int
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    completion_chars: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    judge: JudgeVerdict | None = None
    # where the measured texts are in the completion (code-point offsets; see LayoutParse): one span per
    # reasoning block, and the answer region's span (None without one). The reasoning is the blocks' texts
    # joined with newlines (medbench.tasks.graders.measured_texts cuts both back out).
    reasoning_spans: tuple[tuple[int, int], ...] = ()
    answer_span: tuple[int, int] | None = None

    @property
    def correct(self) -> bool:
        return self.outcome == "correct"

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON/parquet-friendly dict (judge fields prefixed ``judge_``, spans as lists).

        Built field by field rather than with ``dataclasses.asdict`` (which deep-copies every value): the
        harness converts tens of thousands of records per run.
        """
        d = {name: getattr(self, name) for name in _PLAIN_FIELDS}
        d["notes"] = list(self.notes)
        d["reasoning_spans"] = [list(span) for span in self.reasoning_spans]
        d["answer_span"] = None if self.answer_span is None else list(self.answer_span)
        judge = self.judge
        for key in _JUDGE_FIELDS:
            d[f"judge_{key}"] = None if judge is None else getattr(judge, key)
        return d


_JUDGE_FIELDS = tuple(f.name for f in fields(JudgeVerdict))
_PLAIN_FIELDS = tuple(
    f.name for f in fields(GradeRecord) if f.name not in ("notes", "judge", "reasoning_spans", "answer_span")
)
