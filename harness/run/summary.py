"""The terminal summary printed at the end of ``medbench bench`` / ``medbench demo``.

It shows metrics.json as computed (no statistic is recomputed here): per task and checkpoint, accuracy (the
primary reading) with its 95% CI and the flexible reading beside it, the difference to the reference with its
paired CI, raw and Holm-adjusted McNemar p, the difference to the checkpoint's parent (GRPO against SFT) where
the parent is not the reference, the rates that tell a format failure apart from a reasoning failure, and the
median reasoning and completion lengths in the run's one length unit. A number that does not apply (the format
rates of a loglikelihood task, the flexible reading of an older run) shows as "—", never as 100% or 0.

One statistic marks a difference: ``*`` when metrics.json says ``significant`` (the Holm-adjusted exact
McNemar p, :data:`medbench.harness.stats.metrics.DECISION`); the interval beside it is for scale and does not
decide, and the footer says so. An accuracy that rests on the offline proxy judge is labelled ``proxy``, and a
comparison of one is never starred: it shows ``proxy`` where the star would be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medbench.harness.run.records import GroupPairMetrics, PairMetrics, RunMetrics, TaskMetrics

#: What a number that does not apply (or was not measured) shows as.
NOT_APPLICABLE = "—"
_UNIT_SHORT = {"tokens": "tok", "words": "words"}


def _pct(x: float | None, digits: int = 1) -> str:
    return NOT_APPLICABLE if x is None else f"{100 * x:.{digits}f}%"


def _pp(x: float | None) -> str:
    return NOT_APPLICABLE if x is None else f"{100 * x:+.1f}"


#: Marks a comparison metrics.json calls significant; a proxy-judged one shows PROXY instead, never the star.
SIGNIFICANT = "*"
PROXY = "proxy"


def _p(x: float | None) -> str:
    return NOT_APPLICABLE if x is None else f"{x:.2g}"


def _comparison(p: PairMetrics | GroupPairMetrics, with_ci: bool = True) -> str:
    """``+5.0 [+1.0, +9.0] p=0.01 adj=0.04 *``: the difference, its (unadjusted) interval, raw and Holm-adjusted
    p, and the mark (``*`` significant; ``proxy`` for a proxy-judged accuracy, whatever its p)."""
    dci = f" [{_pp(p.diff_ci_low)}, {_pp(p.diff_ci_high)}]" if with_ci and p.diff_ci_low is not None else ""
    pval = f" p={_p(p.mcnemar_p)}" if p.mcnemar_p is not None else ""
    adj = f" adj={_p(p.mcnemar_p_adjusted)}" if p.mcnemar_p_adjusted is not None else ""
    mark = f" {PROXY}" if p.accuracy_proxy else (f" {SIGNIFICANT}" if p.significant else "")
    return f"{_pp(p.accuracy_diff)}{dci}{pval}{adj}{mark}"


def _length(value: float | None, unit: str | None) -> str:
    if value is None or unit is None:
        return NOT_APPLICABLE
    return f"{value:.0f} {_UNIT_SHORT.get(unit, unit)}"


def summary_rows(metrics: RunMetrics | Mapping[str, Any], checkpoints: Sequence[str]) -> list[list[str]]:
    """One row of display strings per (task, checkpoint), tasks in metrics order, checkpoints in the order
    given; columns as :data:`HEADER`."""
    if not isinstance(metrics, RunMetrics):
        metrics = RunMetrics.from_dict(metrics, "metrics")
    per_task = [r for r in metrics.per_task if r.subgroup is None]
    pairs = {(p.task, p.checkpoint): p for p in metrics.pairs}
    parent_pairs = {(p.task, p.checkpoint): p for p in metrics.parent_pairs}
    references = {p.reference for p in metrics.pairs}
    tasks = list(dict.fromkeys(r.task for r in per_task))
    order = {c: i for i, c in enumerate(checkpoints)}
    rows = []
    for task in tasks:
        recs: list[TaskMetrics] = sorted((r for r in per_task if r.task == task),
                                         key=lambda r: order.get(r.checkpoint, len(order)))
        for i, r in enumerate(recs):
            ci = (f" [{_pct(r.accuracy_ci_low, 0)}, {_pct(r.accuracy_ci_high, 0)}]"
                  if r.accuracy_ci_low is not None else "")
            p = pairs.get((task, r.checkpoint))
            if p is None:
                diff = "ref" if r.checkpoint in references else ""
            else:
                diff = _comparison(p)
            parent = parent_pairs.get((task, r.checkpoint))
            vs_parent = f"{parent.reference}: {_comparison(parent, with_ci=False)}" if parent is not None else ""
            unit = r.reasoning_length_unit
            proxy = f" {PROXY}" if r.accuracy_proxy else ""
            rows.append([
                task if i == 0 else "", r.checkpoint, str(r.n), _pct(r.accuracy) + ci + proxy,
                _pct(r.flexible_accuracy), diff, vs_parent, _pct(r.unparseable_rate), _pct(r.format_strict_rate),
                _pct(r.truncation_rate), _length(r.reasoning_tokens_median, unit),
                _length(r.completion_tokens_median, unit),
            ])
    return rows


HEADER = ["task", "checkpoint", "n", "accuracy [95% CI]", "flexible", "diff vs ref, pp [CI] p", "vs parent, pp p",
          "unparseable", "strict format", "truncated", "median reasoning", "median completion"]


def format_summary(metrics: RunMetrics | Mapping[str, Any], checkpoints: Sequence[str]) -> str:
    """A plain-text table (fits a CI log; no colour codes)."""
    if not isinstance(metrics, RunMetrics):
        metrics = RunMetrics.from_dict(metrics, "metrics")
    rows = summary_rows(metrics, checkpoints)
    if not rows:
        return "no finished (checkpoint, task) pairs: nothing to summarise"
    widths = [max(len(HEADER[i]), *(len(r[i]) for r in rows)) for i in range(len(HEADER))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths)), line]
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    methods = metrics.methods
    if methods.reference:
        out.append(f"reference: {methods.reference}; accuracy CI: {methods.accuracy_ci or '?'}; "
                   f"diff CI: {methods.diff_ci or '?'}; p: {methods.pair_test or '?'}")
    if metrics.all_pairs():
        alpha = methods.alpha if methods.alpha is not None else 0.05
        out.append(f"{SIGNIFICANT} = significant: adj (the exact McNemar p, {methods.multiplicity or 'Holm'}) "
                   f"<= {alpha:g}; this test alone decides, the interval is unadjusted and shown for scale")
    if any(r.accuracy_proxy for r in metrics.per_task) or any(p.accuracy_proxy for p in metrics.all_pairs()):
        out.append(f"{PROXY} = accuracy judged by the offline similarity proxy (no LLM judge): indicative only, "
                   f"never marked significant")
    out.append(f"accuracy reads the answer region only; flexible also reads an answer given elsewhere; "
               f"{NOT_APPLICABLE} = does not apply")
    return "\n".join(out)
