"""The terminal summary printed at the end of ``medbench bench`` / ``medbench demo``.

It shows metrics.json as computed (no statistic is recomputed here): per task and checkpoint, accuracy with
its 95% CI, the difference to the reference with its paired CI and McNemar p, and the rates that tell a
format failure apart from a reasoning failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}%"


def _pp(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}"


def _length(rec: dict[str, Any]) -> str:
    med = rec.get("reasoning_tokens_median")
    if med is None:
        return "-"
    unit = "tok" if rec.get("reasoning_length_unit", "tokens") == "tokens" else "words"
    return f"{med:.0f} {unit}"


def summary_rows(metrics: dict[str, Any], checkpoints: Sequence[str]) -> list[list[str]]:
    per_task = [r for r in metrics.get("per_task", []) if r.get("subgroup") is None]
    pairs = {(p["task"], p["checkpoint"]): p for p in metrics.get("pairs", [])}
    tasks: list[str] = []
    for r in per_task:
        if r["task"] not in tasks:
            tasks.append(r["task"])
    order = {c: i for i, c in enumerate(checkpoints)}
    rows = []
    for task in tasks:
        recs = sorted((r for r in per_task if r["task"] == task), key=lambda r: order.get(r["checkpoint"], 99))
        for i, r in enumerate(recs):
            acc = r.get("accuracy")
            ci = (f" [{_pct(r.get('accuracy_ci_low'), 0)}, {_pct(r.get('accuracy_ci_high'), 0)}]"
                  if r.get("accuracy_ci_low") is not None else "")
            p = pairs.get((task, r["checkpoint"]))
            if p is None:
                diff = "ref" if any(q["reference"] == r["checkpoint"] for q in pairs.values()) else ""
            else:
                dci = (f" [{_pp(p.get('diff_ci_low'))}, {_pp(p.get('diff_ci_high'))}]"
                       if p.get("diff_ci_low") is not None else "")
                pval = f" p={p['mcnemar_p']:.2g}" if p.get("mcnemar_p") is not None else ""
                diff = f"{_pp(p.get('accuracy_diff'))}{dci}{pval}"
            rows.append([
                task if i == 0 else "", r["checkpoint"], str(r.get("n", "")), _pct(acc) + ci, diff,
                _pct(r.get("unparseable_rate")), _pct(r.get("format_strict_rate")),
                _pct(r.get("truncation_rate")), _length(r),
            ])
    return rows


HEADER = ["task", "checkpoint", "n", "accuracy [95% CI]", "diff vs ref, pp [CI] p", "unparseable",
          "strict format", "truncated", "median reasoning"]


def format_summary(metrics: dict[str, Any], checkpoints: Sequence[str]) -> str:
    """A plain-text table (fits a CI log; no colour codes)."""
    rows = summary_rows(metrics, checkpoints)
    if not rows:
        return "no finished (checkpoint, task) pairs: nothing to summarise"
    widths = [max(len(HEADER[i]), *(len(r[i]) for r in rows)) for i in range(len(HEADER))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(HEADER, widths)), line]
    for r in rows:
        out.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    methods = metrics.get("methods") or {}
    if methods.get("reference"):
        out.append(f"reference: {methods['reference']}; accuracy CI: {methods.get('accuracy_ci', '?')}; "
                   f"diff CI: {methods.get('diff_ci', '?')}; p: {methods.get('pair_test', '?')}")
    return "\n".join(out)
