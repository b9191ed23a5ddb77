"""Answer layouts: where the reasoning and the answer sit in a raw completion.

Two layouts come from the recipes medbench reproduces:

* ``xml`` — the GRPO recipe's ``<reasoning>\\n…\\n</reasoning>\\n<answer>\\n…\\n</answer>``.
* ``think`` — the SFT recipe's ``<think>…</think>`` followed by the answer. The SFT prompt ends with an open
  ``<think>`` (the recipe pre-fills it), so a completion normally holds only the closing tag;
  ``think_prefilled`` says which case applies.

Parsing uses plain string scanning (``str.find``), not backtracking regexes, so a 100k-character completion
or one with hundreds of repeated tags is parsed in linear time. Multi-line reasoning is the normal case:
the GRPO recipe's own regexes (``re.match`` without ``re.DOTALL``) reject it — the soft one even rejects the
system prompt's own layout, which puts a newline right after ``<reasoning>`` — these parsers do not.
"""

from __future__ import annotations

from dataclasses import dataclass

REASONING_OPEN, REASONING_CLOSE = "<reasoning>", "</reasoning>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def _strict_xml(text: str) -> tuple[str, str] | None:
    """(reasoning, answer) when ``text`` is exactly the GRPO recipe's layout, else ``None``.

    The layout is the recipe's system prompt, ``<reasoning>\\n…\\n</reasoning>\\n<answer>\\n…\\n</answer>``,
    with the reasoning (and answer) free to span lines, each of the four tags exactly once, both regions
    non-blank, and only whitespace around the whole. Checked with string operations rather than a regex:
    ``.*?\\S.*?`` under ``fullmatch`` backtracks quadratically, and a truncated 100k-character completion that
    opens ``<reasoning>`` took over a minute to reject.
    """
    body = text.strip()
    head, sep, tail = REASONING_OPEN + "\n", "\n" + REASONING_CLOSE + "\n" + ANSWER_OPEN + "\n", "\n" + ANSWER_CLOSE
    if not (body.startswith(head) and body.endswith(tail)):
        return None
    if any(body.count(tag) != 1 for tag in (REASONING_OPEN, REASONING_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)):
        return None
    inner = body[len(head) : len(body) - len(tail)]
    if inner.count(sep) != 1:
        return None
    reasoning, answer = inner.split(sep)
    if not reasoning.strip() or not answer.strip():
        return None
    return reasoning, answer


@dataclass(frozen=True)
class LayoutParse:
    """What a layout parser found. ``answer`` is ``None`` when the layout gave no answer region."""

    reasoning: str
    answer: str | None
    answer_source: str  # "answer_tag" | "unclosed_answer_tag" | "after_think" | "none"
    format_strict: bool
    format_soft: bool
    text_outside_tags: bool
    unclosed: bool  # a tag was opened and never closed (a format fact; truncation is the runner's to say)
    think_ok: bool | None = None
    strict_answer: str | None = None  # the answer region only when the layout is strictly followed
    #: Where ``reasoning`` and ``answer`` are in the completion (code-point offsets, stripped): one span per
    #: reasoning block (``reasoning`` is their texts joined with newlines, see :func:`join_spans`), and the
    #: answer region's span (``None`` when there is no answer region). Reports highlight them and the harness
    #: cuts the texts back out to count their tokens in one batch, without parsing the completion again.
    reasoning_spans: tuple[tuple[int, int], ...] = ()
    answer_span: tuple[int, int] | None = None
    #: Every answer region, in order, as (span, source): each closed ``<answer>`` block outside the reasoning
    #: and an unclosed ``<answer>``'s tail (xml), or the text after the last ``</think>`` (think). Blank ones are
    #: left out. ``answer``/``answer_span`` are the last of them (what the answer lengths measure); the grader
    #: reads them all, and they must agree.
    answer_regions: tuple[tuple[tuple[int, int], str], ...] = ()
    #: The tags that were opened and never closed, e.g. ``("<answer>",)``.
    unclosed_tags: tuple[str, ...] = ()
    #: The text outside the layout (outside every block and tag), stripped, one span per stretch: where a reply
    #: that ignores the layout is, for the flexible reading.
    outside_spans: tuple[tuple[int, int], ...] = ()


Span = tuple[int, int]


def _stripped_span(text: str, start: int, end: int) -> Span:
    """The span of ``text[start:end].strip()`` inside ``text`` (an empty span at ``start`` when it is blank)."""
    seg = text[start:end]
    core = seg.strip()
    if not core:
        return (start, start)
    i = start + len(seg) - len(seg.lstrip())
    return (i, i + len(core))


def _text_spans(text: str, gaps: list[Span]) -> tuple[Span, ...]:
    """The non-blank stretches among ``gaps``, stripped."""
    return tuple(sp for sp in (_stripped_span(text, s, e) for s, e in gaps if e > s) if sp[0] < sp[1])


def join_spans(text: str, spans: tuple[Span, ...]) -> str:
    """The reasoning a parser reports: the texts at ``spans``, joined with newlines (one line per block)."""
    return "\n".join(text[s:e] for s, e in spans)


def _shift(span: Span, offset: int) -> Span:
    return (span[0] - offset, span[1] - offset)


def _blocks(text: str, open_tag: str, close_tag: str) -> tuple[list[tuple[int, int, int, int]], bool]:
    """Non-overlapping ``open…close`` blocks as (open_start, content_start, content_end, close_end).

    Returns the blocks and whether a final open tag was left unclosed.
    """
    blocks: list[tuple[int, int, int, int]] = []
    pos = 0
    while True:
        start = text.find(open_tag, pos)
        if start < 0:
            return blocks, False
        content_start = start + len(open_tag)
        end = text.find(close_tag, content_start)
        if end < 0:
            return blocks, True
        blocks.append((start, content_start, end, end + len(close_tag)))
        pos = end + len(close_tag)


def parse_xml(text: str) -> LayoutParse:
    """Parse the GRPO recipe's ``<reasoning>/<answer>`` layout.

    * strict: the whole completion is one reasoning block then one answer block, each tag on its own line,
      both non-empty, nothing but whitespace around them;
    * soft: a closed reasoning block followed (whitespace between) by a closed answer block, anywhere;
    * the answer regions are every closed answer block that is not inside a closed reasoning block (a draft
      ``<answer>`` inside ``<reasoning>`` is reasoning), then the text after an unclosed ``<answer>``; the
      grader reads them all and they must agree. ``answer`` is the last one;
    * the reasoning is every closed reasoning block, joined (or an unclosed block's tail).
    """
    r_blocks, r_unclosed = _blocks(text, REASONING_OPEN, REASONING_CLOSE)
    a_blocks, a_unclosed = _blocks(text, ANSWER_OPEN, ANSWER_CLOSE)

    strict_parts = _strict_xml(text)
    format_strict = strict_parts is not None

    format_soft = False
    for _, _, _, r_end in r_blocks:
        nxt = text.find(ANSWER_OPEN, r_end)
        if nxt >= 0 and not text[r_end:nxt].strip() and any(a[0] == nxt for a in a_blocks):
            format_soft = True
            break

    # Text outside the tags: blank every closed block out and see what is left.
    covered = [(b[0], b[3]) for b in r_blocks] + [(b[0], b[3]) for b in a_blocks]
    # An unclosed tag covers the rest of the text: that is truncation, not text outside the layout.
    if r_unclosed:
        covered.append((text.rfind(REASONING_OPEN), len(text)))
    if a_unclosed:
        covered.append((text.rfind(ANSWER_OPEN), len(text)))
    covered.sort()
    gaps, last = [], 0
    for s, e in covered:
        if s >= last:
            gaps.append((last, s))
        last = max(last, e)
    gaps.append((last, len(text)))
    outside_spans = _text_spans(text, gaps)
    text_outside = bool(outside_spans)

    # Every reasoning block counts towards the reasoning (and its length), not only the first.
    r_spans = tuple(_stripped_span(text, cs, ce) for _, cs, ce, _ in r_blocks)
    if not r_blocks and r_unclosed:
        r_spans = (_stripped_span(text, text.find(REASONING_OPEN) + len(REASONING_OPEN), len(text)),)
    # The answer regions: closed answer blocks outside every closed reasoning block, then an unclosed tail.
    regions: list[tuple[Span, str]] = []
    r_i = 0
    for a_start, cs, ce, a_end in a_blocks:
        while r_i < len(r_blocks) and r_blocks[r_i][3] <= a_start:
            r_i += 1
        if r_i < len(r_blocks) and r_blocks[r_i][0] < a_start and a_end <= r_blocks[r_i][3]:
            continue  # a draft answer inside the reasoning
        regions.append((_stripped_span(text, cs, ce), "answer_tag"))
    if a_unclosed:
        regions.append((_stripped_span(text, text.rfind(ANSWER_OPEN) + len(ANSWER_OPEN), len(text)),
                        "unclosed_answer_tag"))
    regions = [(span, src) for span, src in regions if span[0] < span[1]]
    a_span: Span | None
    if regions:
        a_span, source = regions[-1]
    else:
        a_span, source = None, "none"
    return LayoutParse(
        reasoning=join_spans(text, r_spans),
        answer=None if a_span is None else text[a_span[0] : a_span[1]],
        answer_source=source,
        format_strict=format_strict,
        format_soft=format_soft,
        text_outside_tags=text_outside,
        unclosed=r_unclosed or a_unclosed,
        strict_answer=strict_parts[1].strip() if strict_parts is not None else None,
        reasoning_spans=r_spans,
        answer_span=a_span,
        answer_regions=tuple(regions),
        outside_spans=outside_spans,
        unclosed_tags=tuple(t for t, u in ((REASONING_OPEN, r_unclosed), (ANSWER_OPEN, a_unclosed)) if u),
    )


def parse_think(text: str, *, think_prefilled: bool = True) -> LayoutParse:
    """Parse the SFT recipe's think-then-answer layout.

    With ``think_prefilled`` the prompt already opened ``<think>``, so the completion is treated as if it
    started with it. ``think_ok`` means exactly one think block, closed. Strict additionally asks for
    non-empty reasoning, a non-empty answer after ``</think>`` and no stray think tags; soft only asks for a
    closed think block with some answer after it. The answer is what follows the last ``</think>``; the
    reasoning is every think block, joined, so a model that thinks twice has both counted in its length.
    """
    full = (THINK_OPEN + text) if think_prefilled else text
    offset = len(full) - len(text)  # spans are reported in the completion's own offsets
    n_open, n_close = full.count(THINK_OPEN), full.count(THINK_CLOSE)
    blocks, unclosed = _blocks(full, THINK_OPEN, THINK_CLOSE)
    think_ok = n_open == 1 and n_close == 1 and len(blocks) == 1
    if not blocks:
        r_spans = (
            (_shift(_stripped_span(full, full.find(THINK_OPEN) + len(THINK_OPEN), len(full)), offset),)
            if n_open else ()
        )
        # Without a think block the text before an unclosed <think> (or all of it, when none was opened) is
        # outside the layout.
        first_open = full.find(THINK_OPEN)
        plain = _text_spans(text, [(0, len(text) if first_open < 0 else max(first_open - offset, 0))])
        return LayoutParse(
            reasoning=join_spans(text, r_spans),
            answer=None,
            answer_source="none",
            format_strict=False,
            format_soft=False,
            text_outside_tags=bool(full.replace(THINK_OPEN, "").strip()) and not n_open,
            unclosed=unclosed,
            think_ok=False,
            reasoning_spans=r_spans,
            outside_spans=plain,
            unclosed_tags=(THINK_OPEN,) if unclosed else (),
        )
    start = blocks[0][0]
    # The answer is what follows the *last* closing tag: a model that re-opens thinking answers after it.
    last_close = full.rfind(THINK_CLOSE)
    a_span = _shift(_stripped_span(full, last_close + len(THINK_CLOSE), len(full)), offset)
    answer = text[a_span[0] : a_span[1]]
    # Every think block counts towards the reasoning (and its length), not only the first.
    r_spans = tuple(_shift(_stripped_span(full, cs, ce), offset) for _, cs, ce, _ in blocks)
    reasoning = join_spans(text, r_spans)
    before = full[:start].strip()
    format_soft = bool(answer)
    format_strict = think_ok and bool(reasoning) and bool(answer) and not before
    return LayoutParse(
        reasoning=reasoning,
        answer=answer or None,
        answer_source="after_think" if answer else "none",
        format_strict=format_strict,
        format_soft=format_soft,
        text_outside_tags=bool(before),
        unclosed=unclosed,
        think_ok=think_ok,
        strict_answer=answer if format_strict else None,
        reasoning_spans=r_spans,
        answer_span=a_span if answer else None,
        answer_regions=((a_span, "after_think"),) if answer else (),
        unclosed_tags=(THINK_OPEN,) if unclosed else (),
        outside_spans=_text_spans(text, [(0, max(start - offset, 0))]),
    )


def xml_tag_score(text: str) -> float:
    """The GRPO recipe's ``count_xml`` score, number for number (the recipe's XML-count reward).

    0.125 for each of ``<reasoning>\\n``, ``\\n</reasoning>\\n``, ``\\n<answer>\\n`` and ``\\n</answer>`` when it
    occurs exactly once, minus 0.001 per character after the answer. Reproduced with the recipe's quirks,
    so a run trained with medbench gets the recipe's rewards:

    * the third term subtracts the length of whatever follows ``\\n</answer>\\n``; when the completion ends
      right after ``</answer>`` with no newline, that is the *whole* completion (a 400-character completion
      loses 0.4);
    * the fourth term subtracts ``len(tail) - 1``, so a completion ending exactly at ``\\n</answer>`` gains
      0.001.

    A perfect ``<reasoning>\\n…\\n</reasoning>\\n<answer>\\n…\\n</answer>\\n`` scores 0.5 whatever the
    reasoning's length or number of lines.
    """
    score = 0.0
    if text.count(REASONING_OPEN + "\n") == 1:
        score += 0.125
    if text.count("\n" + REASONING_CLOSE + "\n") == 1:
        score += 0.125
    if text.count("\n" + ANSWER_OPEN + "\n") == 1:
        score += 0.125
        score -= len(text.split("\n" + ANSWER_CLOSE + "\n")[-1]) * 0.001
    if text.count("\n" + ANSWER_CLOSE) == 1:
        score += 0.125
        score -= (len(text.split("\n" + ANSWER_CLOSE)[-1]) - 1) * 0.001
    return score
