"""``grade``: one raw completion in, one :class:`GradeRecord` out.

This is the single source of truth for "was this answer right, and was it given in the asked format".
lm-eval's ``process_results`` hooks, medbench's run directory and the GRPO rewards all call it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Literal

from .answers import DEFAULT_LETTERS, NOTHING, AnswerType, Reading, and_list, answer_type, merge
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


#: Markup or code inside an answer region: an HTML/XML tag, an HTML comment or a code fence. The answer
#: region is plain text; an answer wrapped in markup is no answer (markdown emphasis such as **B** is fine).
_MARKUP = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>|<!--|```|~~~")
#: A tag in text read by the flexible reading: read as a space.
_TAG = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>")


def _readable_end(text: str, hit_token_limit: bool | None) -> int:
    """Where reading stops. A completion cut at the token limit may end in the middle of a word ("…the answer
    is 10" of "100", "no" of "not"): when it ends in a letter or digit, its last word is not read."""
    end = len(text)
    if hit_token_limit and text and text[-1].isalnum():
        while end > 0 and not text[end - 1].isspace():
            end -= 1
    return end


def _short(value: str, width: int = 40) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def _read_regions(kind: AnswerType, text: str, parsed: LayoutParse, end: int) -> tuple[Reading, str]:
    """The primary reading: every answer region, each read on its own, and the options they name together
    (disagreeing answer blocks name two options). Returns the reading and where its answer was found."""
    readings: list[tuple[Reading, str]] = []
    for (s, e), source in parsed.answer_regions:
        chunk = text[s : min(e, end)]
        if not chunk.strip():
            continue
        markup = _MARKUP.search(chunk)
        if markup:
            reading = Reading(problem=f"the answer region holds markup or code ({_short(markup.group(), 20)!r}): "
                                      "not read as an answer")
        else:
            reading = kind.read(chunk)
        readings.append((reading, source))
    if not readings:
        where = "text after </think>" if parsed.think_ok is not None else "<answer>…</answer>"  # think_ok: think only
        return Reading(problem=f"no answer region ({where})"), "none"
    merged = merge([r for r, _ in readings])
    if merged.answer is None:
        return merged, "none"
    return merged, next(src for r, src in readings if merged.answer in r.named)


def _read_elsewhere(kind: AnswerType, text: str, parsed: LayoutParse, end: int, cut: bool) -> tuple[Reading, str]:
    """The flexible reading where the answer region gave none: what a reply outside the layout commits to,
    else what the reasoning commits to (answer phrases, a last line that is exactly an answer, …)."""
    reading = NOTHING
    for where, spans in (("text", parsed.outside_spans), ("reasoning", parsed.reasoning_spans)):
        chunk = "\n".join(text[s : min(e, end)] for s, e in spans if s < end)
        if not chunk.strip():
            continue
        reading = kind.find(_TAG.sub(" ", chunk), cut=cut)
        if reading.named:
            return reading, where
    return reading, "none"


def region_answer(
    completion: str | bytes | None,
    *,
    layout: Layout,
    answer: str | AnswerType,
    letters: str = DEFAULT_LETTERS,
    think_prefilled: bool = True,
) -> str | None:
    """What the answer region says when it is exactly one answer of the asked type (``"yes"``, ``"B"``,
    ``"18"``) and names no other, else ``None`` — whether or not the rest of the layout is followed.

    This is the GRPO recipe's answer-type validity check (its ``int_reward_func`` asks whether the text
    inside ``<answer>`` is a bare number). :func:`grade` uses the same reading for ``strict_extracted``,
    which additionally requires the strict layout, so ``grade(...).strict_extracted == region_answer(...)``
    whenever ``format_strict`` holds.
    """
    kind = _kind(answer, letters)
    text = as_text(completion)
    parsed = parse_layout(text, layout, think_prefilled=think_prefilled)
    return _strict_of(kind, parsed, _read_regions(kind, text, parsed, len(text))[0].answer)


def _strict_of(kind: AnswerType, parsed: LayoutParse, value: str | None) -> str | None:
    """The region read strictly, when that is the primary answer (a bare "B", not "B or C")."""
    if value is None or not parsed.answer:
        return None
    strict = kind.strict(parsed.answer)
    return strict if strict == value else None


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
    letters: str = DEFAULT_LETTERS,
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
        hit_token_limit: the generation stopped at ``max_gen_toks``, counted from the generated token ids
            (known to the runner, not the text); ``None`` when unknown.
        judge: decides agreement of a free-text answer with the reference (an LLM judge or the offline
            proxy, see :mod:`medbench.tasks.judge`); required for ``free`` answers.

    The primary reading (``outcome``, ``extracted``, ``answer_source``) reads the layout's answer regions
    only: every closed ``<answer>`` block outside the reasoning and an unclosed ``<answer>``'s tail (xml), or
    the text after the last ``</think>`` (think). Each region is read by the answer type
    (:mod:`~medbench.tasks.graders.answers`); the options they name together must be exactly one — two or
    more (a hedge, an echoed option list, answer blocks that disagree) is ``unparseable`` with a note saying
    so. A region holding markup or code is no answer. No region, or an unreadable one, is ``unparseable``.

    The flexible reading (``flexible_*``) is the primary answer when there is one. When the region gave
    none (and was not ambiguous) it is what the completion commits to elsewhere: a reply outside the layout
    first, then the reasoning — an answer phrase ("The answer is "yes""), for numbers the last number, for
    yes/no the reply's opening word, or a last line that is exactly an answer.

    When the generation hit the token limit (``hit_token_limit``), the completion's last word is not read
    (it may be cut: "10" of "100") and nothing is read from its last line or last number. ``truncated`` is
    ``hit_token_limit`` itself; an unclosed tag is ``unclosed_tag``, a format fact.

    ``strict_extracted`` is the primary answer when the layout is strictly followed and the region is
    exactly that answer; the region read strictly whatever the layout is :func:`region_answer`.
    """
    text = as_text(completion)
    kind = _kind(answer, letters)
    if kind.name == "free" and judge is None:
        raise ValueError("free-text answers need a judge: pass judge=medbench.tasks.judge.default_judge()")
    gold = kind.normalize_target(target)
    parsed = parse_layout(text, layout, think_prefilled=think_prefilled)
    notes: list[str] = []
    end = _readable_end(text, hit_token_limit)
    if end < len(text):
        notes.append(f"last word {_short(text[end:], 20)!r} cut at the token limit: not read")
    if parsed.unclosed_tags:
        notes.append(f"{' and '.join(parsed.unclosed_tags)} never closed")

    primary, source = _read_regions(kind, text, parsed, end)
    value = primary.answer
    if value is None:
        notes.append(primary.why_none())
    strict = _strict_of(kind, parsed, value) if parsed.format_strict else None

    # The flexible reading: the primary answer, else what the completion commits to elsewhere. A hedge in
    # the answer region stays a hedge.
    if value is not None or primary.ambiguous or kind.name == "free":
        flex_value, flex_source = value, source
    else:
        found, flex_source = _read_elsewhere(kind, text, parsed, end, cut=bool(hit_token_limit))
        flex_value = found.answer
        if flex_value is not None:
            notes.append(f"flexible reading: {flex_value!r} from the {flex_source}")
        else:
            flex_source = "none"
            if found.ambiguous:
                notes.append("flexible reading " + found.why_none())
            elif found.rejected:
                notes.append(f"flexible reading: the answer phrase rejects {and_list(found.rejected)}")

    judge_verdict: JudgeVerdict | None = None
    if kind.name == "free":
        if value is None:
            outcome = "unparseable"
        else:
            assert judge is not None
            judge_verdict = judge(value, gold)
            outcome = "correct" if judge_verdict.agree else "wrong"
        flex_outcome = outcome
        strict_correct = outcome == "correct" and strict is not None
    else:
        outcome = "unparseable" if value is None else ("correct" if kind.equal(value, gold) else "wrong")
        flex_outcome = ("unparseable" if flex_value is None else
                        ("correct" if kind.equal(flex_value, gold) else "wrong"))
        strict_correct = strict is not None and kind.equal(strict, gold)

    answer_text = parsed.answer or ""
    return GradeRecord(
        outcome=outcome,
        target=gold,
        extracted=value,
        answer_source=source,  # type: ignore[arg-type]
        strict_extracted=strict,
        lenient_extracted=value,
        strict_correct=strict_correct,
        flexible_outcome=flex_outcome,  # type: ignore[arg-type]
        flexible_extracted=flex_value,
        flexible_source=flex_source,  # type: ignore[arg-type]
        layout=layout,
        answer_type=kind.name,
        format_strict=parsed.format_strict,
        format_soft=parsed.format_soft,
        think_ok=parsed.think_ok,
        text_outside_tags=parsed.text_outside_tags,
        truncated=None if hit_token_limit is None else bool(hit_token_limit),
        unclosed_tag=parsed.unclosed,
        reasoning_words=_words(parsed.reasoning),
        answer_words=_words(answer_text),
        reasoning_tokens=count_tokens(parsed.reasoning) if count_tokens else None,
        answer_tokens=count_tokens(answer_text) if count_tokens else None,
        completion_chars=len(text),
        completion_words=_words(text),
        notes=tuple(notes),
        judge=judge_verdict,
        reasoning_spans=parsed.reasoning_spans,
        answer_span=parsed.answer_span,
    )
