"""The report's figures: inline SVG written directly (no plotting library), sized for 1 to 60 tasks.

Every figure draws numbers already computed — accuracies and intervals from metrics.json, paired differences,
significance, flips and length summaries from :mod:`medbench.harness.stats.compare` — that
:mod:`medbench.reports.render` lays out as rows. Nothing here computes a statistic.

Design rules, from what broke at 55 tasks: one row per task on one axes (never one panel per task), families
grouped and a pooled group's members sorted by change, flips as rates per paired document (a 30-question
specialty next to 1,319 GSM8K questions), checkpoint names only in HTML legends or truncated labels with the
full name in a tooltip (a long name never squeezes a panel), and links from rows into the sample browser.

The SVG sits inline in the page under a strict CSP: presentation attributes only (no ``style`` attribute),
every text escaped. Each builder returns ``None`` when there is nothing to draw, so the page can say why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from markupsafe import Markup

#: Okabe–Ito palette: distinguishable with the common colour-vision deficiencies. Checkpoint i gets colour i
#: everywhere (table swatches, every figure), so a colour always means the same checkpoint.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FORMAT_COLOURS = {"strict": "#1b6e5a", "soft only": "#7cc4ae", "none": "#e3a59a"}
FIXED_COLOUR, BROKEN_COLOUR = "#1a7f37", "#cf222e"
GRID, AXIS, MUTED = "#e6e6e6", "#888888", "#666666"
LABEL_W = 240  #: width of the row-label column
ROW_H = 16
FONT = 11


@dataclass(frozen=True)
class FigureSpec:
    """One rendered figure: an anchor id, a title, a caption that says how to read it, the inline SVG (or
    several, for small multiples) and an HTML legend (colour, label)."""

    id: str
    title: str
    caption: str
    svgs: tuple[Markup, ...]
    alt: str
    legend: tuple[tuple[str, str], ...] = ()
    wide: bool = False  #: keep a readable minimum width (the figure box scrolls on a phone, the page does not)
    multiples: bool = False


@dataclass(frozen=True)
class Point:
    """One checkpoint's value on one row of a dot panel: the value, its interval, filled when significant."""

    ck: int  #: checkpoint index (colour)
    value: float
    low: float | None = None
    high: float | None = None
    filled: bool = True
    title: str = ""


@dataclass(frozen=True)
class Row:
    """One row of a row-per-task figure."""

    label: str
    kind: str = "task"  #: "header" (a family title line), "group" (pooled), "task", "child" (indented)
    href: str | None = None
    title: str = ""
    values: tuple[tuple[Point, ...], ...] = ()  #: per panel
    note: str = ""  #: drawn instead of values (e.g. "not applicable")


@dataclass(frozen=True)
class Panel:
    title: str
    low: float
    high: float
    zero: float | None = None  #: draw a reference line here
    unit: str = ""


def checkpoint_colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _e(text: Any) -> str:
    return escape(str(text), quote=True)


def _n(x: float) -> str:
    """A coordinate: short and deterministic."""
    return f"{x:.1f}".rstrip("0").rstrip(".")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"


def _svg(width: float, height: float, body: list[str], label: str, cls: str = "") -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(width)} {_n(height)}" width="{_n(width)}" '
        f'height="{_n(height)}" role="img" aria-label="{_e(label)}" font-size="{FONT}"'
        f'{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}>' + "".join(body) + "</svg>"
    )


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: float | None = None, fill: str = "#222",
          weight: str | None = None, title: str | None = None) -> str:
    attrs = f'x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" fill="{fill}"'
    if size:
        attrs += f' font-size="{_n(size)}"'
    if weight:
        attrs += f' font-weight="{weight}"'
    inner = _e(text) + (f"<title>{_e(title)}</title>" if title else "")
    return f"<text {attrs}>{inner}</text>"


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = GRID, width: float = 1.0,
          dash: str | None = None) -> str:
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" stroke="{stroke}" '
            f'stroke-width="{_n(width)}"{d}/>')


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str | None = None, extra: str = "") -> str:
    inner = f"<title>{_e(title)}</title>" if title else ""
    return (f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(max(0.0, w))}" height="{_n(h)}" fill="{fill}"{extra}>'
            f"{inner}</rect>")


def _link(href: str | None, inner: str) -> str:
    return f'<a href="{_e(href)}">{inner}</a>' if href else inner


def nice_ticks(low: float, high: float, target: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    span = high - low
    if span <= 0:
        return [low]
    raw = span / target
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    v = first
    while v <= high + 1e-9:
        ticks.append(round(v, 10))
        v += step
    return ticks


def symmetric_domain(values: Sequence[float], *, floor: float = 5.0, step: float = 5.0, cap: float = 100.0) -> float:
    """Half-width of a symmetric axis holding ``values`` (percentage points), rounded up to ``step``."""
    top = max([abs(v) for v in values if v is not None and math.isfinite(v)] + [floor])
    return min(cap, math.ceil(top / step) * step)


def _fmt_tick(v: float, unit: str) -> str:
    text = f"{v:+g}" if unit == "pts" and v else f"{v:g}"
    return text


def _label_cell(row: Row, y: float) -> str:
    indent = {"header": 0, "group": 4, "task": 4, "child": 16}.get(row.kind, 4)
    weight = "bold" if row.kind in ("header", "group") else None
    fill = "#222" if row.kind != "header" else "#444"
    limit = (LABEL_W - indent - 8) // 6
    text = _text(indent + 2, y + 4, truncate(row.label, int(limit)), weight=weight, fill=fill,
                 title=row.title or row.label)
    return _link(row.href, text)


def rows_figure(
    fig_id: str, title: str, caption: str, rows: Sequence[Row], panels: Sequence[Panel], alt: str,
    legend: Sequence[tuple[str, str]] = (), *, panel_w: float = 280,
) -> FigureSpec | None:
    """Dot panels sharing one row per task: a value with its interval per checkpoint, filled when
    significant (hollow otherwise). Header rows carry a family's title, a pooled group row its members."""
    if not rows or not any(p for r in rows for panel in r.values for p in panel):
        return None
    gap, top = 26.0, 34.0
    width = LABEL_W + len(panels) * (panel_w + gap)
    heights = [20.0 if r.kind == "header" else ROW_H for r in rows]
    height = top + sum(heights) + 24
    body: list[str] = []
    x0 = [LABEL_W + i * (panel_w + gap) for i in range(len(panels))]

    def sx(pi: int, v: float) -> float:
        p = panels[pi]
        return x0[pi] + (min(max(v, p.low), p.high) - p.low) / (p.high - p.low) * panel_w

    # panel titles, grids, ticks
    bottom = top + sum(heights)
    for pi, p in enumerate(panels):
        body.append(_text(x0[pi] + panel_w / 2, 13, p.title, anchor="middle", weight="bold"))
        for t in nice_ticks(p.low, p.high):
            x = sx(pi, t)
            body.append(_line(x, top - 4, x, bottom))
            body.append(_text(x, top - 8, _fmt_tick(t, p.unit), anchor="middle", size=9, fill=MUTED))
            body.append(_text(x, bottom + 12, _fmt_tick(t, p.unit), anchor="middle", size=9, fill=MUTED))
        if p.zero is not None:
            body.append(_line(sx(pi, p.zero), top - 4, sx(pi, p.zero), bottom, stroke="#555", width=1))
    y = top
    stripe = False
    for row, h in zip(rows, heights):
        mid = y + h / 2
        if row.kind == "header":
            body.append(_line(0, y + 2, width, y + 2, stroke="#cccccc"))
            body.append(_label_cell(row, mid + 2))
            y += h
            continue
        stripe = not stripe
        if stripe:
            body.append(_rect(0, y, width, h, "#f7f7f7"))
        body.append(_label_cell(row, mid))
        if row.note:
            body.append(_text(x0[0] + 4, mid + 4, row.note, fill=MUTED, size=10))
        for pi, points in enumerate(row.values):
            k = len(points)
            for j, pt in enumerate(points):
                dy = (j - (k - 1) / 2) * min(4.0, 10.0 / max(k, 1))
                colour = checkpoint_colour(pt.ck)
                if pt.low is not None and pt.high is not None:
                    body.append(_line(sx(pi, pt.low), mid + dy, sx(pi, pt.high), mid + dy, stroke=colour, width=1.4))
                fill = colour if pt.filled else "#ffffff"
                body.append(
                    f'<circle cx="{_n(sx(pi, pt.value))}" cy="{_n(mid + dy)}" r="3.6" fill="{fill}" '
                    f'stroke="{colour}" stroke-width="1.5"><title>{_e(pt.title)}</title></circle>'
                )
        y += h
    return FigureSpec(fig_id, title, caption, (_svg(width, height, body, alt),), alt, tuple(legend), wide=True)


@dataclass(frozen=True)
class StackRow:
    """A unit's block in the format figure: per checkpoint (index, name, strict, soft) rates, or a note."""

    label: str
    href: str | None
    bars: tuple[tuple[int, str, float, float], ...] = ()
    note: str = ""
    title: str = ""


def format_figure(rows: Sequence[StackRow], alt: str) -> FigureSpec | None:
    """Strict / soft-only / no layout per checkpoint, one block per task family (pooled), stacked to 100%."""
    if not any(r.bars for r in rows):
        return None
    bar_w, bar_h, name_w = 420.0, 10.0, 150.0
    x_bar = LABEL_W
    width = x_bar + bar_w + 60
    body: list[str] = []
    y = 22.0
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        body.append(_text(x_bar + frac * bar_w, 12, f"{frac * 100:g}%", anchor="middle", size=9, fill=MUTED))
    for r in rows:
        body.append(_link(r.href, _text(2, y + 10, truncate(r.label, 40), weight="bold", title=r.title or r.label)))
        y += 15
        if r.note:
            body.append(_text(x_bar, y + 7, r.note, fill=MUTED, size=10))
            y += 18
            continue
        for ci, name, strict, soft in r.bars:
            soft = max(soft, strict)  # soft compliance includes strict
            parts = (("strict", strict), ("soft only", soft - strict), ("none", 1 - soft))
            body.append(_text(x_bar - 6, y + bar_h - 1, truncate(name, int(name_w // 6)), anchor="end", size=10,
                              fill=checkpoint_colour(ci), title=name))
            x = x_bar
            for part, value in parts:
                w = value * bar_w
                body.append(_rect(x, y, w, bar_h, FORMAT_COLOURS[part],
                                  title=f"{name}: {part} {value * 100:.1f}%"))
                x += w
            body.append(_text(x_bar + bar_w + 6, y + bar_h - 1, f"{strict * 100:.0f}% strict", size=9, fill=MUTED))
            y += bar_h + 4
        y += 8
    legend = tuple((c, name) for name, c in FORMAT_COLOURS.items())
    return FigureSpec(
        "fig-format", "Format compliance",
        "Per task family (a pooled group counts every member's completions) and checkpoint. Strict: exactly the "
        "layout the prompt asked for. Soft only: the tags are there, with extra text or spacing. None: no "
        "usable layout. Tasks scored by loglikelihood generate nothing, so format does not apply (—).",
        (_svg(width, y + 4, body, alt),), alt, legend, wide=True,
    )


@dataclass(frozen=True)
class FlipRow:
    label: str
    href_fixed: str | None
    href_broken: str | None
    fixed_rate: float
    broken_rate: float
    n_fixed: int
    n_broken: int
    n_paired: int
    title: str = ""


def flips_figure(rows: Sequence[FlipRow], alt: str) -> FigureSpec | None:
    """Per (family, checkpoint vs its parent): share of paired questions fixed (right) and broken (left)."""
    if not rows:
        return None
    half = 220.0
    centre = LABEL_W + 70 + half
    width = centre + half + 80
    top = 30.0
    span = max([r.fixed_rate for r in rows] + [r.broken_rate for r in rows] + [0.05])
    span = math.ceil(span * 20) / 20  # 5-point steps
    body = [_text(centre - half / 2, 12, "broken (right → wrong)", anchor="middle", fill=BROKEN_COLOUR, size=10),
            _text(centre + half / 2, 12, "fixed (wrong → right)", anchor="middle", fill=FIXED_COLOUR, size=10)]
    y = top
    for t in nice_ticks(0, span * 100, 4):
        for sign in (-1, 1):
            x = centre + sign * t / (span * 100) * half
            body.append(_line(x, top - 6, x, top + len(rows) * 20))
            body.append(_text(x, top - 8, f"{t:g}%", anchor="middle", size=9, fill=MUTED))
    for r in rows:
        mid = y + 10
        body.append(_text(2, mid + 4, truncate(r.label, 52), title=r.title or r.label))
        wb = r.broken_rate / span * half
        wf = r.fixed_rate / span * half
        body.append(_link(r.href_broken, _rect(centre - wb, mid - 6, wb, 12, BROKEN_COLOUR,
                                               title=f"broken: {r.n_broken} of {r.n_paired} paired questions")))
        body.append(_link(r.href_fixed, _rect(centre, mid - 6, wf, 12, FIXED_COLOUR,
                                              title=f"fixed: {r.n_fixed} of {r.n_paired} paired questions")))
        body.append(_text(centre - wb - 4, mid + 4, f"{r.broken_rate * 100:.1f}% ({r.n_broken})", anchor="end",
                          size=9))
        body.append(_text(centre + wf + 4, mid + 4, f"{r.fixed_rate * 100:.1f}% ({r.n_fixed})", size=9))
        y += 20
    body.append(_line(centre, top - 6, centre, y, stroke="#333"))
    return FigureSpec(
        "fig-flips", "Questions fixed and broken, per checkpoint against its parent",
        "Share of the paired questions of a task family that a checkpoint fixed (its parent was wrong or "
        "unparseable, it is right) and broke (the parent was right, it is not), with the counts. Rates, so a "
        "30-question specialty reads next to a 1,319-question task. A net gain with many broken questions is a "
        "trade, not a free improvement: click a bar to browse those questions.",
        (_svg(width, y + 8, body, alt),), alt, wide=True,
    )


@dataclass(frozen=True)
class BoxRow:
    label: str
    href: str | None
    boxes: tuple[tuple[int, str, tuple[float, ...], int], ...]  # (checkpoint index, name, quantiles, n)
    title: str = ""


def length_figure(rows: Sequence[BoxRow], length_unit: str, alt: str) -> FigureSpec | None:
    """Reasoning length per task family and checkpoint: 5th–95th percentile whiskers, 25th–75th box, median."""
    rows = [r for r in rows if r.boxes]
    if not rows:
        return None
    plot_w = 440.0
    x0 = LABEL_W
    high = max(q[-1] for r in rows for _, _, q, _ in r.boxes) or 1.0
    ticks = nice_ticks(0, high, 5)
    high = max(ticks[-1], high)
    width = x0 + plot_w + 40

    def sx(v: float) -> float:
        return x0 + v / high * plot_w

    body: list[str] = []
    y = 22.0
    blocks_h = sum(15 + 14 * len(r.boxes) + 8 for r in rows)
    for t in ticks:
        body.append(_line(sx(t), 16, sx(t), 22 + blocks_h))
        body.append(_text(sx(t), 12, f"{t:g}", anchor="middle", size=9, fill=MUTED))
    for r in rows:
        body.append(_link(r.href, _text(2, y + 10, truncate(r.label, 40), weight="bold", title=r.title or r.label)))
        y += 15
        for ci, name, q, n in r.boxes:
            colour = checkpoint_colour(ci)
            mid = y + 5
            p5, p25, p50, p75, p95 = q
            body.append(_text(x0 - 6, mid + 4, truncate(name, 24), anchor="end", size=10, fill=colour, title=name))
            body.append(_line(sx(p5), mid, sx(p95), mid, stroke=colour, width=1.2))
            body.append(_rect(sx(p25), mid - 4, sx(p75) - sx(p25), 8, colour,
                              title=f"{name}: median {p50:g}, 25–75% {p25:g}–{p75:g}, 5–95% {p5:g}–{p95:g} "
                                    f"{length_unit} (n={n})", extra=' fill-opacity="0.55"'))
            body.append(_line(sx(p50), mid - 5, sx(p50), mid + 5, stroke="#111", width=1.6))
            y += 14
        y += 8
    return FigureSpec(
        "fig-length", "Reasoning length",
        f"Reasoning {length_unit} per completion, per task family (pooled) and checkpoint: the box spans the "
        "25th–75th percentile, the dark line is the median, the whiskers the 5th–95th percentile. A GRPO "
        "checkpoint that 'learned to think' shows here first. Loglikelihood tasks generate nothing and are "
        "left out.",
        (_svg(width, y + 4, body, alt),), alt, wide=True,
    )


@dataclass(frozen=True)
class BinPanel:
    label: str
    href: str | None
    lines: tuple[tuple[int, str, tuple[tuple[float, float, int], ...]], ...]  # (ck index, name, points)
    x_high: float
    proxy: bool = False


def accuracy_vs_length_figure(panels: Sequence[BinPanel], length_unit: str, bins: int,
                              legend: Sequence[tuple[str, str]]) -> FigureSpec | None:
    """Small multiples, one per task family: accuracy within reasoning-length bins, one line per checkpoint."""
    panels = [p for p in panels if p.lines]
    if not panels:
        return None
    svgs = []
    w, h, left, bottom, top = 300.0, 190.0, 38.0, 30.0, 22.0
    pw, ph = w - left - 10, h - top - bottom
    for p in panels:
        high = p.x_high or 1.0
        ticks = nice_ticks(0, high, 4)
        high = max(high, ticks[-1])

        def sx(v: float, high: float = high) -> float:
            return left + v / high * pw

        def sy(acc: float) -> float:
            return top + (1 - acc) * ph

        body = [_link(p.href, _text(left, 13, truncate(p.label + (" (proxy)" if p.proxy else ""), 44),
                                    weight="bold", title=p.label))]
        for a in (0, 0.25, 0.5, 0.75, 1.0):
            body.append(_line(left, sy(a), left + pw, sy(a)))
            body.append(_text(left - 4, sy(a) + 3, f"{a * 100:g}%", anchor="end", size=9, fill=MUTED))
        for t in ticks:
            body.append(_text(sx(t), top + ph + 12, f"{t:g}", anchor="middle", size=9, fill=MUTED))
        body.append(_text(left + pw / 2, h - 4, f"reasoning {length_unit}", anchor="middle", size=9, fill=MUTED))
        for ci, name, points in p.lines:
            colour = checkpoint_colour(ci)
            coords = " ".join(f"{_n(sx(x))},{_n(sy(a))}" for x, a, _ in points)
            body.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
            for x, a, n in points:
                body.append(f'<circle cx="{_n(sx(x))}" cy="{_n(sy(a))}" r="3" fill="{colour}">'
                            f"<title>{_e(name)}: {a * 100:.0f}% of {n} completions around {x:g} "
                            f"{_e(length_unit)}</title></circle>")
        svgs.append(_svg(w, h, body, f"accuracy against reasoning length, {p.label}"))
    return FigureSpec(
        "fig-acc-length", "Accuracy against reasoning length",
        f"Each task family's completions are split into {bins} bins by reasoning {length_unit} (the same edges "
        "for every checkpoint); a dot is a checkpoint's accuracy in a bin, placed at the bin's median length. "
        "Bins with few completions are left out.",
        tuple(svgs), "accuracy per reasoning-length bin, per checkpoint and task family", tuple(legend),
        multiples=True,
    )

