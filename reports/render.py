"""Render one or more run directories to ONE self-contained HTML file.

The file opens offline and can be e-mailed or attached to a CI run: the stylesheet and the script are inlined,
figures are inline SVG data URIs, and a strict Content-Security-Policy (hashes of exactly the inlined style and
script, ``default-src 'none'``) means nothing is fetched and nothing else runs.

Safety: jinja2 autoescapes every value; model and dataset text for the sample browser travels as JSON inside a
``<script type="application/json">`` block (with ``<``, ``>``, ``&`` and the JS line separators escaped, so no
text can close the block) and is put on the page by the browser script with ``textContent`` only.

Runs are read only through :func:`medbench.harness.run.rundir.load_run`; statistics come from metrics.json as the
bench wrote them. Where a per-sample view is needed (the browser, length distributions) the samples table is read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.harness.run.rundir import Run, load_run

from . import figures as figs

ALPHA = 0.05  #: significance level used to mark paired differences in the summary table
STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"
OUTCOMES = ("correct", "wrong", "unparseable")

Progress = Callable[[str], None]


class ReportError(ValueError):
    """The runs cannot be rendered together (e.g. they share no task); the message says what to change."""


def _stderr_progress(msg: str) -> None:
    print(f"[report] {msg}", file=sys.stderr, flush=True)


# -- small value helpers -------------------------------------------------------------------------------------------


def _num(x: Any) -> float | None:
    """A finite float, or None for missing / NaN / non-numeric values (metrics may leave fields out)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _is_overall(row: dict[str, Any]) -> bool:
    sub = row.get("subgroup")
    return sub is None or sub == "" or (isinstance(sub, float) and math.isnan(sub))


def _flag(v: Any) -> int:
    """1 for a true flag (bool, numpy bool, 1), 0 for false or missing (None, NaN, pandas NA)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return 0
    try:
        return 1 if bool(v) else 0
    except TypeError:  # pandas NA refuses bool()
        return 0


def pct(x: Any, digits: int = 1) -> str:
    v = _num(x)
    return "—" if v is None else f"{v * 100:.{digits}f}%"


def pts(x: Any) -> str:
    """A difference of proportions in percentage points, signed."""
    v = _num(x)
    return "—" if v is None else f"{v * 100:+.1f} pts"


def _clean(v: Any) -> Any:
    """JSON-safe: NaN / pandas NA → None, numpy scalars → Python, sequences → lists."""
    if type(v) is str:
        return v
    if v is None or type(v).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            return _clean(v.item())
        except (ValueError, AttributeError):
            pass
    if isinstance(v, (list, tuple)) or (hasattr(v, "tolist") and not isinstance(v, (str, bytes))):
        return [_clean(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]
    return v


def safe_json_for_script(obj: Any) -> str:
    """JSON that can sit inside ``<script type="application/json">``: no ``<``/``>``/``&`` (so no
    ``</script>`` or ``<!--``), and nothing outside ASCII (U+2028/2029 among it) but ``\\u`` escapes. The result
    parses back to ``obj`` with JSON.parse.

    ASCII output is also the fast one: for a 3 × 10,000-sample report (24 MB) ``ensure_ascii=False`` plus
    escaping took 1.8 s against 0.5 s, for 3% more bytes.
    """
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def _utf16_offsets(text: str) -> Callable[[int], int]:
    """Python indexes code points; JavaScript strings index UTF-16 units, where a character outside the Basic
    Multilingual Plane (an emoji) takes two. Returns a converter for offsets into ``text``, for the browser."""
    if text.isascii() or len(text.encode("utf-16-le")) == 2 * len(text):  # no character takes two units
        return lambda i: i
    return lambda i: len(text[:i].encode("utf-16-le")) // 2


# -- combining runs ------------------------------------------------------------------------------------------------


@dataclass
class CheckpointView:
    key: str  # unique across the report: the checkpoint name, or "<run-id>/<name>" when comparing runs
    name: str
    run_id: str
    role: str
    source: str
    provenance: list[tuple[str, str]]  # the facts worth a glance: parent, recipe, data, steps, …
    provenance_json: str  # everything, for a collapsible block
    content_hash: str
    colour: str
    warnings: list[str] = field(default_factory=list)


@dataclass
class RunView:
    run: Run
    run_id: str
    prefix: str  # "" for a single run, "<run-id>/" when comparing runs
    facts: list[tuple[str, str]]
    tasks: list[dict[str, Any]]


@dataclass
class Combined:
    runs: list[RunView]
    checkpoints: list[CheckpointView]
    tasks: list[str]
    dropped_tasks: list[str]
    task_rows: list[dict[str, Any]]  # overall per (checkpoint key, task)
    subgroup_rows: list[dict[str, Any]]
    pairs: list[dict[str, Any]]
    samples: Any  # pandas DataFrame with a "ck" column (the checkpoint key)
    warnings: list[str] = field(default_factory=list)
    cross_pairs: list[dict[str, Any]] = field(default_factory=list)  # same checkpoint, earlier run → later run

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.checkpoints]


def _first(d: dict[str, Any], *keys: str) -> Any:
    """The first present value among dotted key paths (run.json nests some facts, e.g. environment.git.sha)."""
    for k in keys:
        cur: Any = d
        for part in k.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur not in (None, "", [], {}):
            return cur
    return None


def _fmt_duration(seconds: Any) -> str | None:
    s = _num(seconds)
    if s is None:
        return None
    h, rem = divmod(round(s), 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h {m:02d}m {sec:02d}s" if h else (f"{m}m {sec:02d}s" if m else f"{s:.1f}s")


def _fmt_value(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt_value(x)}" for k, x in v.items() if x not in (None, "", [], {}))
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt_value(x) for x in v)
    return str(v)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds_between(start: Any, end: Any) -> float | None:
    from datetime import datetime

    try:
        return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()
    except (TypeError, ValueError):
        return None


def _eval_seconds(timings: Any) -> tuple[float | None, list[str]]:
    """Total and per-checkpoint evaluation time from run.json's ``timings`` ({checkpoint: {step: seconds}})."""
    if not isinstance(timings, dict):
        return None, []
    total, parts = 0.0, []
    for ck, steps in timings.items():
        if isinstance(steps, dict):
            seconds = sum(v for v in (_num(x) for x in steps.values()) if v is not None)
            total += seconds
            parts.append(f"{ck} {_fmt_duration(seconds)}")
    return (total if parts else None), parts


def _fmt_hardware(hw: Any) -> str | None:
    if not isinstance(hw, dict):
        return None if hw in (None, "", {}) else _fmt_value(hw)
    gpus = hw.get("gpus") or []
    if gpus:
        names: dict[str, int] = {}
        for g in gpus:
            label = _fmt_value(g.get("name", g)) if isinstance(g, dict) else str(g)
            if isinstance(g, dict) and g.get("memory_gib"):
                label += f" ({g['memory_gib']} GiB)"
            names[label] = names.get(label, 0) + 1
        text = ", ".join(f"{n}× {label}" for label, n in names.items())
        if hw.get("cuda"):
            text += f", CUDA {hw['cuda']}"
    else:
        cpu = hw.get("processor") or hw.get("cpu") or hw.get("machine") or "CPU"
        text = f"{cpu}" + (f", {hw['cpu_count']} cores" if hw.get("cpu_count") else "")
    if hw.get("memory_gib"):
        text += f", {hw['memory_gib']} GiB RAM"
    known = {"gpus", "cuda", "processor", "cpu", "machine", "cpu_count", "memory_gib"}
    rest = {k: v for k, v in hw.items() if k not in known}
    return text + (f" · {_fmt_value(rest)}" if rest else "")


def _run_facts(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """The header's key facts. run.json nests them (environment.packages, settings.backend, …); older or
    hand-written runs may keep them flat, so both are read."""
    facts: list[tuple[str, str]] = []
    started = _first(meta, "started_at", "created_at", "timings.started_at")
    ended = _first(meta, "finished_at", "updated_at", "timings.finished_at")
    wall = _first(meta, "timings.duration_s", "duration_s") or _seconds_between(started, ended)
    eval_total, eval_parts = _eval_seconds(meta.get("timings"))
    git = _first(meta, "environment.git", "git")
    if isinstance(git, dict):
        git = (str(git.get("sha") or "unknown")[:12] + (" (with uncommitted changes)" if git.get("dirty") else ""))
    git = git or _first(meta, "git_sha")
    packages = _first(meta, "environment.packages", "versions", "package_versions")
    if isinstance(packages, dict):
        packages = {k: v for k, v in packages.items() if v is not None}
    settings = _first(meta, "settings") or {
        k: v for k, v in (meta.get("spec") or {}).items() if not isinstance(v, (dict, list)) and k != "backend"
    }
    rows = [
        ("status", meta.get("status")),
        ("backend", _first(meta, "settings.backend", "backend", "spec.backend")),
        ("started", started),
        ("duration", _fmt_duration(wall)),
        ("evaluation time", f"{_fmt_duration(eval_total)} ({', '.join(eval_parts)})" if eval_total else None),
        ("hardware", _fmt_hardware(_first(meta, "environment.hardware", "hardware"))),
        ("versions", packages),
        ("git", git),
        ("settings", {k: v for k, v in settings.items() if k != "backend"} if isinstance(settings, dict) else settings),
        ("command", meta.get("command")),
    ]
    for label, value in rows:
        if value not in (None, "", [], {}):
            facts.append((label, _fmt_value(value)))
    return facts


def _describe_data(data: Any) -> str:
    """A training-data provenance entry ({sources: [{dataset, split, n_rows}], n_rows, sha256}) in one line."""
    if not isinstance(data, dict):
        return _fmt_value(data)
    parts = []
    for src in data.get("sources") or []:
        if isinstance(src, dict):
            name = src.get("dataset") or src.get("name") or src.get("from") or "?"
            split = f"[{src['split']}]" if src.get("split") else ""
            parts.append(f"{name}{split}" + (f" ({src['n_rows']})" if src.get("n_rows") is not None else ""))
        else:
            parts.append(str(src))
    head = f"{data['n_rows']} rows" if data.get("n_rows") is not None else ""
    return ": ".join(p for p in (head, ", ".join(parts)) if p) or _fmt_value(data)


#: Provenance fields shown inline (the rest, e.g. the full recipe config, is in the collapsible block).
_PROVENANCE_INLINE = ("parent", "recipe", "backend", "steps", "data", "config_source", "train_runtime_s",
                      "created_at")


def _checkpoint_view(c: dict[str, Any], key: str, run_id: str, colour: str) -> CheckpointView:
    prov = dict(c.get("provenance") or {})
    source = str(c.get("model") or c.get("source") or c.get("path") or "")
    if c.get("revision"):
        source += f"@{c['revision']}"
    if c.get("adapter"):
        source += f" + adapter {c['adapter']} (not merged)"
    if c.get("kind"):
        source = f"{source} [{c['kind']}]"
    inline: list[tuple[str, str]] = []
    for k in _PROVENANCE_INLINE:
        v = prov.get(k)
        if v in (None, "", [], {}):
            continue
        text = _describe_data(v) if k == "data" else (_fmt_duration(v) if k == "train_runtime_s" else _fmt_value(v))
        inline.append(("train time" if k == "train_runtime_s" else k, _short(str(text))))
    if not prov.get("parent") and c.get("parent"):
        inline.insert(0, ("parent", str(c["parent"])))
    return CheckpointView(
        key=key, name=str(c["name"]), run_id=run_id, role=str(c.get("role") or prov.get("role") or ""),
        source=source, provenance=inline,
        provenance_json=json.dumps(prov, indent=1, default=str, ensure_ascii=False) if set(prov) - {"role"} else "",
        content_hash=str(c.get("content_hash") or c.get("hash") or ""), colour=colour,
        warnings=[str(w) for w in c.get("warnings") or []],
    )


def combine_runs(runs: Sequence[Run]) -> Combined:
    """One view over several runs: checkpoints prefixed by run id, only the tasks every run has."""
    import pandas as pd

    if not runs:
        raise ReportError("no run directories given: pass at least one RUN_DIR written by `medbench bench`")
    multi = len(runs) > 1
    seen: dict[str, int] = {}
    run_ids = []
    for run in runs:
        rid = run.run_id
        seen[rid] = seen.get(rid, 0) + 1
        run_ids.append(rid if seen[rid] == 1 else f"{rid}#{seen[rid]}")

    task_lists = [run.task_names or sorted({r["task"] for r in run.task_metrics()}) for run in runs]
    shared = [t for t in task_lists[0] if all(t in tl for tl in task_lists[1:])]
    if not shared:
        detail = "; ".join(f"{rid}: {', '.join(tl) or 'no tasks'}" for rid, tl in zip(run_ids, task_lists))
        raise ReportError(
            f"the runs share no task, so there is nothing to compare ({detail}). "
            "Compare runs that evaluated at least one common task, or render each run on its own."
        )
    dropped = sorted({t for tl in task_lists for t in tl} - set(shared))

    checkpoints: list[CheckpointView] = []
    run_views: list[RunView] = []
    task_rows: list[dict[str, Any]] = []
    subgroup_rows: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    frames = []
    warnings: list[str] = []
    versions: dict[str, set[str]] = {}
    for run, rid in zip(runs, run_ids):
        prefix = f"{rid}/" if multi else ""
        for c in run.checkpoints:
            checkpoints.append(_checkpoint_view(c, prefix + str(c["name"]), rid,
                                                figs.checkpoint_colour(len(checkpoints))))
        tasks_meta = [t for t in run.tasks if t.get("name") in shared] or [{"name": t} for t in shared]
        for t in tasks_meta:
            versions.setdefault(t["name"], set()).add(str(t.get("version", "?")))
        run_views.append(RunView(run, rid, prefix, _run_facts(run.meta), tasks_meta))
        for r in run.task_metrics():
            if r.get("task") not in shared:
                continue
            row = {**r, "checkpoint": prefix + str(r["checkpoint"])}
            (task_rows if _is_overall(r) else subgroup_rows).append(row)
        for p in run.pair_metrics():
            if p.get("task") in shared:
                pairs.append({**p, "checkpoint": prefix + str(p["checkpoint"]),
                              "reference": prefix + str(p["reference"])})
        df = run.samples()
        df = df[df["task"].isin(shared)].copy()
        df["ck"] = prefix + df["checkpoint"].astype(str)
        df["run"] = rid
        frames.append(df)
    for rv in run_views:
        status = rv.run.meta.get("status")
        if status and status != "complete":
            warnings.append(f"run {rv.run_id} is {status}: its numbers cover only what finished.")
        for ck, msg in (rv.run.meta.get("errors") or {}).items():
            warnings.append(f"run {rv.run_id}: checkpoint {ck} failed: {msg}")
    for task, vs in versions.items():
        if len(vs) > 1:
            warnings.append(
                f"task {task!r} has different versions across runs ({', '.join(sorted(vs))}): its prompt or "
                "grader changed, so accuracy differences across those runs are not like for like."
            )
    if dropped:
        warnings.append(f"tasks not in every run are left out of the comparison: {', '.join(dropped)}.")
    order = {ck.key: i for i, ck in enumerate(checkpoints)}
    task_order = {t: i for i, t in enumerate(shared)}
    pairs.sort(key=lambda p: (task_order[p["task"]], order.get(p["reference"], 99), order.get(p["checkpoint"], 99)))
    samples = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    combined = Combined(run_views, checkpoints, shared, dropped, task_rows, subgroup_rows, pairs, samples, warnings)
    if multi:
        combined.cross_pairs = cross_run_pairs(combined)
    return combined


def _matching_checkpoints(c: Combined) -> list[tuple[CheckpointView, CheckpointView]]:
    """(first run's checkpoint, later run's checkpoint) pairs to compare across runs: same name, else same
    role when the role is unique in both runs (e.g. last week's "grpo-v1" against today's "grpo-v2")."""
    first = [ck for ck in c.checkpoints if ck.run_id == c.runs[0].run_id]
    out = []
    for rv in c.runs[1:]:
        later = [ck for ck in c.checkpoints if ck.run_id == rv.run_id]
        for ck in later:
            match = next((f for f in first if f.name == ck.name), None)
            if match is None and ck.role:
                same_role = [f for f in first if f.role == ck.role]
                if len(same_role) == 1 and sum(1 for x in later if x.role == ck.role) == 1:
                    match = same_role[0]
            if match is not None:
                out.append((match, ck))
    return out


def cross_run_pairs(c: Combined) -> list[dict[str, Any]]:
    """Paired comparisons of the same checkpoint across runs, on the documents both runs scored.

    metrics.json only compares checkpoints within one run, so these are computed here — by
    :func:`medbench.harness.stats.metrics.compute_metrics`, the same code that wrote every other number in the report.
    """
    from medbench.harness.stats.metrics import compute_metrics

    out: list[dict[str, Any]] = []
    for ref, ck in _matching_checkpoints(c):
        frame = c.samples[c.samples["ck"].isin([ref.key, ck.key])].copy()
        frame["checkpoint"] = frame["ck"]
        if frame.empty:
            continue
        result = compute_metrics(frame, [ref.key, ck.key], reference=ref.key)
        out.extend(p for p in result["pairs"] if p.get("n_paired"))
    task_order = {t: i for i, t in enumerate(c.tasks)}
    out.sort(key=lambda p: task_order.get(p["task"], 99))
    return out


# -- summary table -------------------------------------------------------------------------------------------------


def _rate_level(x: Any, warn: float = 0.05, bad: float = 0.20) -> str:
    v = _num(x)
    if v is None:
        return ""
    return "bad" if v >= bad else ("warn" if v >= warn else "")


def _diff_view(p: dict[str, Any]) -> dict[str, Any]:
    """A paired comparison (metrics.json ``pairs`` record) as display strings, coloured only when significant."""
    d, lo, hi, pv = (_num(p.get(k)) for k in ("accuracy_diff", "diff_ci_low", "diff_ci_high", "mcnemar_p"))
    sig = pv is not None and pv < ALPHA
    return {
        "reference": p["reference"], "checkpoint": p["checkpoint"], "task": p["task"], "value": d, "text": pts(d),
        "ci": f"[{pts(lo).replace(' pts', '')}, {pts(hi).replace(' pts', '')}]"
        if lo is not None and hi is not None else "",
        "p": "—" if pv is None else (f"p={pv:.3f}" if pv >= 0.001 else "p<0.001"),
        "p_value": pv, "significant": sig,
        "cls": ("sig-up" if (d or 0) > 0 else "sig-down") if sig else "ns",
        "marker": ("▲" if (d or 0) > 0 else "▼") if sig else "",
        "n_paired": p.get("n_paired"), "n_fixed": p.get("n_fixed"), "n_broken": p.get("n_broken"),
        "reference_accuracy": pct(p.get("reference_accuracy")), "checkpoint_accuracy": pct(p.get("checkpoint_accuracy")),
    }


def summary_table(c: Combined) -> dict[str, Any]:
    """Rows per task × checkpoint with display strings and the CSS classes that colour them."""
    by = {(r["checkpoint"], r["task"]): r for r in c.task_rows}
    pair_by = {(p["checkpoint"], p["task"]): p for p in c.pairs}
    has_judge = any(_num(r.get("judge_agreement")) is not None for r in c.task_rows)
    has_think = any(_num(r.get("think_ok_rate")) is not None for r in c.task_rows)
    groups = []
    for task in c.tasks:
        rows = []
        for ck in c.checkpoints:
            r = by.get((ck.key, task))
            if r is None:
                continue
            p = pair_by.get((ck.key, task))
            diff = None if p is None else _diff_view(p)
            lo, hi = r.get("accuracy_ci_low"), r.get("accuracy_ci_high")
            judge_kind = r.get("judge_kind")
            rows.append({
                "ck": ck, "n": r.get("n"), "accuracy": pct(r.get("accuracy")), "accuracy_value": _num(r.get("accuracy")),
                "ci": f"{_num(lo) * 100:.1f}–{_num(hi) * 100:.1f}" if _num(lo) is not None and _num(hi) is not None
                else "",
                "diff": diff,
                "strict": pct(r.get("format_strict_rate")), "soft": pct(r.get("format_soft_rate")),
                "strict_cls": _rate_level(1 - (_num(r.get("format_strict_rate")) or 0), 0.2, 0.5)
                if _num(r.get("format_strict_rate")) is not None else "",
                "think": pct(r.get("think_ok_rate")),
                "unparseable": pct(r.get("unparseable_rate")), "unparseable_cls": _rate_level(r.get("unparseable_rate")),
                "truncation": pct(r.get("truncation_rate")), "truncation_cls": _rate_level(r.get("truncation_rate")),
                "median_tokens": "—" if _num(r.get("reasoning_tokens_median")) is None
                else f"{_num(r.get('reasoning_tokens_median')):.0f}",
                "length_unit": r.get("reasoning_length_unit") or "tokens",
                "judge": pct(r.get("judge_agreement")) if _num(r.get("judge_agreement")) is not None else "—",
                "judge_kind": judge_kind or "",
            })
        if rows:
            groups.append({"task": task, "rows": rows})
    reference_keys = {p["reference"] for p in c.pairs}
    for g in groups:
        for row in g["rows"]:
            row["is_reference"] = row["ck"].key in reference_keys
    references = sorted({p["reference"] for p in c.pairs})
    return {"groups": groups, "has_judge": has_judge, "has_think": has_think, "alpha": ALPHA,
            "reference": references[0] if len(references) == 1 else None,
            "cross": [_diff_view(p) for p in c.cross_pairs]}


# -- sample browser payload ----------------------------------------------------------------------------------------


def _spans(completion: str, layout: Any, reasoning_spans: Any, answer_span: Any) -> tuple[Any, Any]:
    """(reasoning span, answer span) in UTF-16 offsets, for the browser to collapse and highlight.

    The spans are where the grader found the regions (the record's ``reasoning_spans`` / ``answer_span``,
    code-point offsets); runs written before records carried them are parsed again with the grader's own
    layout parser. The reasoning is collapsible only when it is one block (several blocks are left inline).
    """
    if layout not in ("xml", "think") or not completion:
        return None, None
    if reasoning_spans is None or (isinstance(reasoning_spans, float) and math.isnan(reasoning_spans)):
        from medbench.tasks.graders import parse_layout

        parsed = parse_layout(completion, layout)
        reasoning_spans, answer_span = parsed.reasoning_spans, parsed.answer_span
    r_span = a_span = None
    to_js = _utf16_offsets(completion)
    if len(reasoning_spans) == 1:
        start, end = int(reasoning_spans[0][0]), int(reasoning_spans[0][1])
        if end > start:
            r_span = [to_js(start), to_js(end)]
    if answer_span is not None and not (isinstance(answer_span, float) and math.isnan(answer_span)):
        start, end = int(answer_span[0]), int(answer_span[1])
        if end > start:
            a_span = [to_js(start), to_js(end)]
    return r_span, a_span


def _column(df: Any, col: str) -> list[Any]:
    """A samples column as Python values (None where the run has no such column)."""
    return df[col].tolist() if col in df else [None] * len(df)


def _flag_column(df: Any, col: str) -> list[int]:
    """:func:`_flag` over a whole column, vectorised when the column is boolean-like."""
    if col not in df:
        return [0] * len(df)
    try:
        return df[col].astype("boolean").fillna(False).astype(int).tolist()
    except (TypeError, ValueError):
        return [_flag(v) for v in df[col].tolist()]


def _length_column(df: Any) -> list[int | None]:
    """Reasoning length per sample: tokens where counted, else words, else None (as :func:`_num` reads them)."""
    import numpy as np
    import pandas as pd

    def numeric(col: str) -> Any:
        if col not in df:
            return pd.Series(np.nan, index=df.index)
        values = pd.to_numeric(df[col], errors="coerce").astype(float)
        return values.where(np.isfinite(values))

    tokens, words = numeric("reasoning_tokens"), numeric("reasoning_words")
    lengths = tokens.where(tokens.notna(), words)
    return [None if math.isnan(v) else int(v) for v in lengths.tolist()]


def browser_payload(c: Combined) -> dict[str, Any]:
    """Questions (one per task × document) with every checkpoint's completion, for the client-side browser.

    Column-wise where it can be (flags, lengths, outcomes); the one per-row step is building each cell. The
    reasoning / answer spans come from the grader's record, so no completion is parsed again.
    """
    keys = c.keys
    ck_index = {k: i for i, k in enumerate(keys)}
    task_index = {t: i for i, t in enumerate(c.tasks)}
    outcome_index = {o: i for i, o in enumerate(OUTCOMES)}

    # Flips are keyed by doc_key (metrics.json lists doc_keys); within-run flips apply to that run's copy of a
    # document, cross-run flips to the document as both runs scored it (one question in the browser).
    flip_labels: list[str] = []
    flip_of: dict[tuple[str, str], list[int]] = {}
    for p, cross in [(p, False) for p in c.pairs] + [(p, True) for p in c.cross_pairs]:
        for kind in ("fixed", "broken"):
            label = f"{kind} by {p['checkpoint']} (vs {p['reference']})"
            if label not in flip_labels:
                flip_labels.append(label)
            li = flip_labels.index(label)
            run_prefix = p["checkpoint"].rsplit("/", 1)[0] + "/" if "/" in p["checkpoint"] and not cross else ""
            for doc in p.get(kind) or []:
                flip_of.setdefault((p["task"], run_prefix + str(doc)), []).append(li)

    df = c.samples
    questions: dict[tuple[str, str], dict[str, Any]] = {}
    order: list[tuple[str, str]] = []
    multi = len(c.runs) > 1
    outcomes = [outcome_index.get(o, 2) for o in _column(df, "outcome")]
    lengths = _length_column(df) if len(df) else []
    flags = {col: _flag_column(df, col) for col in ("showcase", "format_strict", "format_soft", "truncated")}
    judge_cols = [_column(df, col) for col in ("judge_agree", "judge_score", "judge_rationale", "judge_model")]
    notes_of: dict[str, Any] = {}  # notes are JSON text, mostly "[]": decode each distinct value once
    rows = zip(
        range(len(df)), _column(df, "ck"), _column(df, "task"), _column(df, "doc_id"), _column(df, "doc_key"),
        _column(df, "completion"), _column(df, "layout"), _column(df, "reasoning_spans"),
        _column(df, "answer_span"), _column(df, "extracted"), _column(df, "answer_source"),
        _column(df, "judge_kind"), _column(df, "notes"),
    )
    question_col, prompt_col, target_col, subgroup_col = (
        _column(df, col) for col in ("question", "prompt", "target", "subgroup"))
    for i, ck, task, doc_id, doc_key, text, layout, r_spans, a_span, extracted, source, jk, notes in rows:
        ident = str(doc_key if isinstance(doc_key, str) and doc_key else doc_id)
        qkey = (task, ident)
        q = questions.get(qkey)
        if q is None:
            question = question_col[i]
            if not isinstance(question, str) or not question:
                question = prompt_col[i] if isinstance(prompt_col[i], str) else ""
            sub = subgroup_col[i]
            q = {
                "t": task_index[task], "id": ident, "q": question, "y": _clean(target_col[i]),
                "g": sub if isinstance(sub, str) and sub else None, "s": flags["showcase"][i], "f": [],
                "c": [None] * len(keys),
            }
            questions[qkey] = q
            order.append(qkey)
        text = text if isinstance(text, str) else ""
        r_span, a_span = _spans(text, layout, r_spans, a_span)
        judge = None
        if isinstance(jk, str) and jk:
            agree, score, rationale, model = (col[i] for col in judge_cols)
            judge = [jk, _clean(agree), _clean(score), _clean(rationale) or "", _clean(model) or ""]
        if isinstance(notes, str):
            if notes not in notes_of:
                try:
                    notes_of[notes] = _clean(json.loads(notes)) or []
                except json.JSONDecodeError:
                    notes_of[notes] = [notes]
            notes = notes_of[notes]
        else:
            notes = _clean(notes) or []
        q["c"][ck_index[ck]] = {
            "o": outcomes[i], "x": _clean(extracted), "src": _clean(source),
            "txt": text, "r": r_span, "a": a_span,
            "fs": flags["format_strict"][i], "fo": flags["format_soft"][i], "tr": flags["truncated"][i],
            "len": lengths[i], "j": judge, "n": notes,
        }
    prefixes = [""] + ([f"{rv.run_id}/" for rv in c.runs] if multi else [])
    for (task, ident), q in questions.items():
        q["f"] = sorted({li for pre in prefixes for li in flip_of.get((task, pre + ident), [])})
    length_unit = "tokens" if "reasoning_tokens" in df and df["reasoning_tokens"].notna().any() else "words"
    ordered = [questions[k] for k in order]
    ordered.sort(key=lambda q: (-q["s"], q["t"]))  # showcase first, then task order (stable within)
    return {
        "checkpoints": keys, "colours": [ck.colour for ck in c.checkpoints], "tasks": c.tasks,
        "outcomes": list(OUTCOMES), "flips": flip_labels, "lengthUnit": length_unit, "questions": ordered,
    }


# -- rendering -----------------------------------------------------------------------------------------------------


def _environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value is HTML-escaped unless it is explicitly Markup
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = pct
    env.filters["fmt"] = _fmt_value
    return env


def build_html(runs: Sequence[Run], *, title: str | None = None, progress: Progress | None = None) -> str:
    """The report for already-loaded runs, as one HTML string."""
    from markupsafe import Markup

    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    combined = combine_runs(runs)
    n = len(combined.samples)
    say(f"loaded {len(runs)} run(s): {len(combined.checkpoints)} checkpoints, {len(combined.tasks)} tasks, "
        f"{n:,} samples ({time.perf_counter() - t0:.1f}s)")

    keys = combined.keys
    figures: list[figs.FigureSpec] = []
    missing: list[str] = []
    builders: list[tuple[str, Callable[[], Any]]] = [
        ("accuracy", lambda: figs.accuracy_figure(combined.task_rows, keys, combined.tasks)),
        ("format compliance", lambda: figs.format_figure(combined.task_rows, keys, combined.tasks)),
        ("reasoning length", lambda: figs.reasoning_length_figure(combined.samples, keys, combined.tasks)),
        ("accuracy vs reasoning length", lambda: figs.accuracy_vs_length_figure(combined.samples, keys,
                                                                                 combined.tasks)),
    ]
    for task in combined.tasks:
        if any(r["task"] == task for r in combined.subgroup_rows):
            builders.append((f"{task} subgroups", lambda task=task: figs.subgroup_heatmap_figure(
                combined.subgroup_rows, keys, task)))
    builders.append(("flips", lambda: figs.flips_figure(combined.pairs + combined.cross_pairs)))
    for name, build in builders:
        t = time.perf_counter()
        fig = build()
        if fig is None:
            missing.append(name)
        else:
            figures.append(fig)
        say(f"figure: {name} ({time.perf_counter() - t:.1f}s)")
    if not any(f.id.startswith("fig-subgroups") for f in figures):
        missing.append("per-subgroup heatmap (no task in these runs reports subgroups)")

    t = time.perf_counter()
    payload = browser_payload(combined)
    data_json = safe_json_for_script(payload)
    say(f"sample browser: {len(payload['questions']):,} questions, {len(data_json) / 1e6:.1f} MB "
        f"({time.perf_counter() - t:.1f}s)")

    css = (STATIC / "report.css").read_text(encoding="utf-8")
    js = (STATIC / "report.js").read_text(encoding="utf-8")
    if "</script" in js.lower() or "</style" in css.lower():
        raise RuntimeError("the report's static script or stylesheet contains a closing tag; it cannot be inlined")
    csp = (
        "default-src 'none'; img-src data:; "
        f"style-src {csp_hash(css)}; script-src {csp_hash(js)}; "
        "base-uri 'none'; form-action 'none'"
    )
    if title is None:
        title = "medbench report: " + " vs ".join(rv.run_id for rv in combined.runs)
    showcase = [q for q in payload["questions"] if q["s"]]
    html = _environment().get_template("report.html.j2").render(
        title=title, csp=csp, css=Markup(css), js=Markup(js), data_json=Markup(data_json),
        combined=combined, multi=len(combined.runs) > 1, summary=summary_table(combined), figures=figures,
        missing_figures=missing, n_questions=len(payload["questions"]), n_samples=n,
        has_showcase=bool(showcase), flip_labels=payload["flips"],
        subgroups=sorted({q["g"] for q in payload["questions"] if q["g"]}),
        generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    )
    say(f"rendered in {time.perf_counter() - t0:.1f}s")
    return html


def default_output(run_dirs: Sequence[str | os.PathLike[str]]) -> Path:
    return Path(run_dirs[0]) / "report.html"


def render_report(
    run_dirs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    progress: Progress | None = _stderr_progress,
) -> Path:
    """Render ``run_dirs`` (one run, or several to compare) to one HTML file and return its path.

    The default output is ``<first run>/report.html``. The file is written atomically (temp file + rename), so
    a failed render never leaves a half-written report in place of a good one.
    """
    if not run_dirs:
        raise ReportError("no run directories given: pass at least one RUN_DIR written by `medbench bench`")
    runs = [load_run(p) for p in run_dirs]
    html = build_html(runs, title=title, progress=progress)
    out = Path(output) if output is not None else default_output(run_dirs)
    if out.is_dir():
        out = out / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    if progress:
        progress(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out
