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

#: Where an answer was found. The primary reading (``answer_source``) only ever reads the layout's answer
#: region; the flexible reading (``flexible_source``) may also find it in the reasoning or in plain text.
AnswerSource = Literal[
    "answer_tag",  # inside a closed <answer>...</answer> block (every such block outside the reasoning)
    "unclosed_answer_tag",  # after an <answer> that was never closed
    "after_think",  # after the closing </think> (think-then-answer layout)
    "reasoning",  # flexible only: inside the reasoning / think block
    "text",  # flexible only: in text outside the layout (a reply that ignores it)
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
    """Everything a grader decided about one completion, and why.

    Three readings of the answer, reported side by side (as lm-eval reports strict-match beside
    flexible-extract), never folded into one another:

    * **primary** (``outcome``, ``extracted``, ``answer_source``): the layout's answer region only, read
      leniently about case, whitespace and punctuation. This is the benchmark's accuracy and the GRPO
      correctness reward. A region that names two or more options is ``unparseable`` (``notes`` says so).
    * **strict** (``strict_extracted``, ``strict_correct``): the primary answer, given exactly as asked (a
      bare answer in the strictly followed layout).
    * **flexible** (``flexible_*``): the primary answer when there is one; otherwise an answer the completion
      commits to elsewhere — an answer phrase in the reasoning, a plain-text reply that ignores the layout.
      A hedge stays a hedge: an ambiguous answer region is not rescued.

    "Unparseable" is its own outcome, never folded into "wrong". Fields that do not apply are ``None``
    (the format and truncation flags of a loglikelihood task, whose answer is chosen, not generated).
    """

    outcome: Outcome
    target: str
    extracted: str | None
    answer_source: AnswerSource
    strict_extracted: str | None
    #: Always equal to ``extracted`` (kept for the run directory's current columns; slated for removal).
    lenient_extracted: str | None
    strict_correct: bool
    #: The flexible reading (``None`` where nothing was generated: loglikelihood tasks).
    flexible_outcome: Outcome | None
    flexible_extracted: str | None
    flexible_source: AnswerSource | None
    layout: str
    answer_type: str
    # format flags
    format_strict: bool | None
    format_soft: bool | None
    think_ok: bool | None  # exactly one closed think block (think layout only)
    text_outside_tags: bool
    #: The generation hit the token limit (from the generated token ids, as the runner knows it); ``None``
    #: when the caller did not say (lm-eval's ``process_results`` hook sees only text).
    truncated: bool | None
    #: A layout tag was opened and never closed (``<reasoning>``, ``<answer>``, the think block): a format
    #: fact, whatever stopped the generation.
    unclosed_tag: bool | None
    # lengths
    reasoning_words: int
    answer_words: int
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    completion_chars: int = 0
    #: Words in the whole completion: the length of a reply that ignores the layout (its reasoning is 0).
    completion_words: int = 0
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

    @property
    def flexible_correct(self) -> bool:
        return self.flexible_outcome == "correct"

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
