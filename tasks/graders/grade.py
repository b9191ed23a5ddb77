"""``grade``: one raw completion in, one :class:`GradeRecord` out.

This is the single source of truth for "was this answer right, and was it given in the asked format".
lm-eval's ``process_results`` hooks, medbench's run directory and the GRPO rewards all call it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Literal

from .answers import AnswerType, answer_type
from .layouts import LayoutParse, join_spans, parse_think, parse_xml
from .record import GradeRecord, JudgeVerdict

Layout = Literal["xml", "think"]
TokenCounter = Callable[[str], int]
Judge = Callable[[str, str], JudgeVerdict]  # (answer, reference) -> verdict


def as_text(completion: str | bytes | None) -> str:
    """Completions are text; bytes that are not valid UTF-8 are decoded with replacement characters rather
    than crashing a whole evaluation run."""
    if completion is None:
        return ""
    if isinstance(completion, bytes):
        return completion.decode("utf-8", errors="replace")
    return completion


def parse_layout(completion: str, layout: Layout, *, think_prefilled: bool = True) -> LayoutParse:
    if layout == "xml":
        return parse_xml(completion)
    if layout == "think":
        return parse_think(completion, think_prefilled=think_prefilled)
    raise ValueError(f"unknown layout {layout!r}; known: 'xml', 'think'")


@lru_cache(maxsize=64)
def _named_kind(answer: str, letters: str) -> AnswerType:
    return answer_type(answer, letters=letters)  # answer types are frozen dataclasses: safe to share


def _kind(answer: str | AnswerType, letters: str) -> AnswerType:
    return answer if not isinstance(answer, str) else _named_kind(answer, letters)


def _region_strict(kind: AnswerType, parsed: LayoutParse) -> str | None:
    """The answer region read strictly (exactly one well-typed answer, nothing else), whatever the layout."""
    return kind.strict(parsed.answer) if parsed.answer else None


def region_answer(
    completion: str | bytes | None,
    *,
    layout: Layout,
    answer: str | AnswerType,
    letters: str = "ABCD",
    think_prefilled: bool = True,
) -> str | None:
    """What the answer region says when it holds exactly one answer of the asked type (``"yes"``, ``"B"``,
    ``"18"``), else ``None`` — whether or not the rest of the layout is followed.

    This is the GRPO recipe's answer-type validity check (its ``int_reward_func`` asks whether the text
    inside ``<answer>`` is a bare number). :func:`grade` uses the same reading for ``strict_extracted``,
    which additionally requires the strict layout, so ``grade(...).strict_extracted == region_answer(...)``
    whenever ``format_strict`` holds.
    """
    kind = _kind(answer, letters)
    return _region_strict(kind, parse_layout(as_text(completion), layout, think_prefilled=think_prefilled))


def _words(s: str) -> int:
    return len(s.split())


def measured_texts(completion: str | bytes | None, record: GradeRecord) -> tuple[str, str]:
    """``(reasoning, answer)``: the texts whose lengths ``record`` reports (``reasoning_words`` /
    ``reasoning_tokens``, ``answer_words`` / ``answer_tokens``), cut out of ``completion`` at the record's
    spans — what the layout parser found, not a second reading of the text.

    The harness grades without a token counter, then counts these texts for a whole task in one tokenizer
    call; ``grade(..., count_tokens=f)`` records ``f(reasoning)`` and ``f(answer)`` for the same texts.
    """
    text = as_text(completion)
    span = record.answer_span
    return join_spans(text, record.reasoning_spans), (text[span[0] : span[1]] if span else "")


def grade(
    completion: str | bytes | None,
    target: str,
    *,
    layout: Layout,
    answer: str | AnswerType,
    letters: str = "ABCD",
    think_prefilled: bool = True,
    count_tokens: TokenCounter | None = None,
    hit_token_limit: bool | None = None,
    judge: Judge | None = None,
) -> GradeRecord:
    """Grade one raw completion against its target.

    Args:
        completion: the model's raw output, whole (think blocks included).
        target: the dataset's answer (``"yes"``, ``"B"``, ``"B. text"``, ``"#### 18"``, a reference text).
        layout: ``"xml"`` (``<reasoning>/<answer>``) or ``"think"`` (``<think>…</think>`` then the answer).
        answer: the answer type name (``yesno``, ``choice``, ``number``, ``free``) or an :class:`AnswerType`.
        letters: valid letters for ``choice`` (``"ABCDE"`` for 5-option MedQA).
        think_prefilled: the prompt already opened ``<think>`` (the SFT recipe's inference prompt does).
        count_tokens: the evaluated model's tokenizer as a counter, for lengths in tokens.
        hit_token_limit: the generation stopped at ``max_gen_toks`` (known to the runner, not the text).
        judge: decides agreement of a free-text answer with the reference (an LLM judge or the offline
            proxy, see :mod:`medbench.tasks.judge`); required for ``free`` answers.

    Where the answer is read from (``answer_source``), in order:

    1. the answer region (the last closed ``<answer>`` block, an unclosed ``<answer>``'s tail, or the text
       after the last ``</think>``), read leniently. If the region is there but unreadable ("unclear"),
       the sample is unparseable: a readable answer in the reasoning does not rescue it. A *blank* region
       counts as no region.
    2. no region: an explicit phrase ("the answer is B", "#### 18") anywhere, labelled ``reasoning`` when
       it is inside the reasoning / think block;
    3. no region, no phrase: a last line that is exactly an answer ("B"), labelled ``text`` — never for a
       truncated completion (an unclosed tag: its last line is mid-thought) and never for free text.

    ``strict_extracted`` is the region read strictly *and* the layout strictly followed; the region read
    strictly whatever the layout is :func:`region_answer`.
    """
    text = as_text(completion)
    kind = _kind(answer, letters)
    if kind.name == "free" and judge is None:
        raise ValueError("free-text answers need a judge: pass judge=medbench.tasks.judge.default_judge()")
    gold = kind.normalize_target(target)
    parsed = parse_layout(text, layout, think_prefilled=think_prefilled)
    notes: list[str] = []

    # A blank answer region ("<answer>\n\n</answer>") gives no answer: look elsewhere, as if it were absent.
    region = parsed.answer or None
    # Strict extraction: the answer region is exactly a well-typed answer *and* the layout is strictly followed.
    strict = _region_strict(kind, parsed) if parsed.format_strict else None

    lenient: str | None = None
    source = "none"
    if region is not None:
        # The model gave an answer region: read it, and nothing else (a readable answer in the reasoning
        # does not rescue an unreadable one in the answer region).
        lenient = kind.lenient(region)
        if lenient is not None:
            source = parsed.answer_source
        else:
            lenient = kind.from_phrase(region)
            source = "answer_phrase" if lenient is not None else "none"
    else:
        # No answer region: an explicit phrase ("the answer is B") in the reasoning or the plain text.
        lenient = kind.from_phrase(text)
        if lenient is not None:
            in_reasoning = bool(parsed.reasoning) and kind.from_phrase(parsed.reasoning) == lenient
            source = "reasoning" if in_reasoning else "answer_phrase"
            notes.append("answer found outside the answer region")
        elif not parsed.unclosed and kind.name != "free":
            # Last resort, conservative: a final line that is exactly an answer ("B", "yes", "18"). Not for a
            # truncated completion (its last line is mid-thought) and not for free text (read only from the
            # answer region: any last line would otherwise be sent to the judge as "the answer").
            lines = [ln for ln in text.strip().splitlines() if ln.strip()]
            lenient = kind.strict(lines[-1]) if lines else None
            if lenient is not None:
                source = "text"
                notes.append("answer taken from the last line of untagged text")

    truncated = bool(hit_token_limit) or parsed.unclosed
    judge_verdict: JudgeVerdict | None = None
    if kind.name == "free":
        if lenient is None:
            outcome = "unparseable"
        else:
            assert judge is not None
            judge_verdict = judge(lenient, gold)
            outcome = "correct" if judge_verdict.agree else "wrong"
        strict_correct = outcome == "correct" and strict is not None
    else:
        if lenient is None:
            outcome = "unparseable"
        else:
            outcome = "correct" if kind.equal(lenient, gold) else "wrong"
        strict_correct = strict is not None and kind.equal(strict, gold)

    answer_text = parsed.answer or ""
    return GradeRecord(
        outcome=outcome,
        target=gold,
        extracted=lenient,
        answer_source=source,  # type: ignore[arg-type]
        strict_extracted=strict,
        lenient_extracted=lenient,
        strict_correct=strict_correct,
        layout=layout,
        answer_type=kind.name,
        format_strict=parsed.format_strict,
        format_soft=parsed.format_soft,
        think_ok=parsed.think_ok,
        text_outside_tags=parsed.text_outside_tags,
        truncated=truncated,
        reasoning_words=_words(parsed.reasoning),
        answer_words=_words(answer_text),
        reasoning_tokens=count_tokens(parsed.reasoning) if count_tokens else None,
        answer_tokens=count_tokens(answer_text) if count_tokens else None,
        completion_chars=len(text),
        notes=tuple(notes),
        judge=judge_verdict,
        reasoning_spans=parsed.reasoning_spans,
        answer_span=parsed.answer_span,
    )
