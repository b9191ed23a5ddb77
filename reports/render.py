"""Render one or more run directories to ONE self-contained HTML file.

The page opens with the answer: per checkpoint and task family, what got better or worse and whether it is
significant (against the base and against the checkpoint's parent), with a pooled task group such as
Health_Benchmarks as one row that expands to its specialties; then a heatmap of the group's members, the
figures, the per-task details, the sample browser and the run's metadata.

Numbers come from the run directory (read only through :func:`medbench.harness.run.rundir.load_run`) and from
the comparisons the harness computed (:func:`medbench.harness.stats.compare.report_stats`, passed in by the CLI,
the composition root, as ``stats``); this module computes no statistic and grades nothing. Rendered without
``stats`` the page still shows metrics.json's comparisons with the base, without significance marks, and says so.

The file opens offline and can be e-mailed or attached to a CI run: the stylesheet and the script are inlined,
figures are inline SVG, and a strict Content-Security-Policy (hashes of exactly the inlined style and script,
``default-src 'none'``) means nothing is fetched and nothing else runs.

Safety: jinja2 autoescapes every value and the SVG writer escapes every text. Model and dataset text for the
sample browser travels as gzip-compressed JSON, base64-encoded (no ``<`` can appear in it), inside a
non-executed ``<script type="application/octet-stream">`` block; the browser script decompresses it and puts
text on the page with ``textContent`` only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from medbench.harness.run.records import OUTCOMES
from medbench.harness.run.rundir import Run, load_run
from medbench.tasks.errors import MedbenchError

from . import figures as figs

STATIC = Path(__file__).parent / "static"
TEMPLATES = Path(__file__).parent / "templates"

Progress = Callable[[str], None]

#: How task families and groups are named on the page (the run's own names are shown beside them).
FAMILY_LABELS = {"pubmedqa": "PubMedQA", "health": "Health_Benchmarks", "gsm8k": "GSM8K",
                 "medical_cot": "medical-o1 CoT", "medmcqa": "MedMCQA", "medqa": "MedQA",
                 "mmlu_medical": "MMLU medical"}
GROUP_LABELS = {"medbench_health": "Health_Benchmarks", "medbench_mcq": "Medical MCQ"}
SHOWCASE_CAVEAT = (
    "The SFT recipe's own before/after question (the cystometry example of the Unsloth notebook): the SFT "
    "checkpoint was trained on it, so a right answer here shows the recipe took, not that the model "
    "generalises. It is pinned for a visual check and never counted in any number of this report."
)


class ReportError(MedbenchError):
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


def _is_overall(row: Mapping[str, Any]) -> bool:
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
    """JSON that can sit inside a ``<script>`` data block: no ``<``/``>``/``&`` (so no ``</script>`` or
    ``<!--``), and nothing outside ASCII (U+2028/2029 among it) but ``\\u`` escapes. Parses back to ``obj``."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def encode_payload(obj: Any) -> str:
    """The sample browser's data as base64 of gzip-compressed UTF-8 JSON: a fifth of the plain JSON's size
    for chain-of-thought text, and an alphabet (A–Z a–z 0–9 + / =) that cannot close the script block.

    The JSON is made in pieces (:func:`_json_pieces`) and each piece is compressed on a second thread while
    the next is encoded: zlib lets go of the interpreter while it compresses, so the two overlap on two cores
    (issue 14). Deflate's output depends only on the bytes fed to it, not on how they are split, so the
    stream is the one a single ``compress`` call gives."""
    # wbits 31: a gzip stream (DecompressionStream("gzip")). Level 3, not zlib's default 6: on the 30,000-sample
    # report fixture 0.45 s instead of 1.1 s for 10% more bytes (benchmarks/cpu_postprocess.py, issue 14)
    packer = zlib.compressobj(3, zlib.DEFLATED, 31)
    with ThreadPoolExecutor(max_workers=1) as pool:  # one worker: the pieces are compressed in order
        parts = [pool.submit(packer.compress, piece.encode("utf-8")) for piece in _json_pieces(obj)]
        packed = b"".join(part.result() for part in parts)
    return base64.b64encode(packed + packer.flush()).decode("ascii")


def _json_pieces(obj: Any, per_piece: int = 1000) -> Iterator[str]:
    """Texts that join to ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)``: a
    payload's ``questions`` list (its last key) ``per_piece`` questions at a time, anything else whole."""
    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)

    keys = list(obj) if isinstance(obj, dict) else []
    if not keys or keys[-1] != "questions" or not isinstance(obj["questions"], list) \
            or not all(isinstance(k, str) for k in keys):
        yield dumps(obj)
        return
    head = dumps({k: obj[k] for k in keys[:-1]})
    yield (head[:-1] + ",") if len(keys) > 1 else "{"
    yield '"questions":['
    questions = obj["questions"]
    for start in range(0, len(questions), per_piece):
        yield ("," if start else "") + dumps(questions[start : start + per_piece])[1:-1]
    yield "]}"


def decode_payload(text: str) -> Any:
    """The inverse of :func:`encode_payload` (for tests and tools reading a report back)."""
    return json.loads(zlib.decompress(base64.b64decode(text), 31).decode("utf-8"))


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


#: A character that takes two UTF-16 units (outside the Basic Multilingual Plane: an emoji), or a lone surrogate.
_TWO_UNITS_OR_SURROGATE = re.compile("[\U00010000-\U0010FFFF\ud800-\udfff]")
_TWO_UNITS = re.compile("[\U00010000-\U0010FFFF]")


def _utf16_offsets(text: str) -> Callable[[int], int]:
    """Python indexes code points; JavaScript strings index UTF-16 units, where a character outside the Basic
    Multilingual Plane (an emoji) takes two. Returns a converter for offsets into ``text``, for the browser.

    A regex scan finds those characters without encoding the text (issue 14: encoding every completion to
    UTF-16 was a third of the sample browser's time); an offset is then ``i`` plus the two-unit characters
    before it. A text with a lone surrogate takes the encoding path (which raises on it, as it always did)."""
    if text.isascii():
        return lambda i: i
    found = _TWO_UNITS_OR_SURROGATE.search(text)
    if found is None:  # no character takes two units
        return lambda i: i
    if any("\ud800" <= c <= "\udfff" for c in _TWO_UNITS_OR_SURROGATE.findall(text, found.start())):
        if len(text.encode("utf-16-le")) == 2 * len(text):  # the encoding path, as before
            return lambda i: i
        return lambda i: len(text[:i].encode("utf-16-le")) // 2
    return lambda i: i + len(_TWO_UNITS.findall(text, 0, i))


def browser_href(**params: Any) -> str:
    """A link that opens the sample browser filtered (``#samples?task=…&ck=…``); the page script reads it."""
    clean = {k: str(v) for k, v in params.items() if v not in (None, "")}
    return "#samples" + ("?" + urlencode(clean, quote_via=quote) if clean else "")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in str(text))


# -- run facts and checkpoints -------------------------------------------------------------------------------------


@dataclass
class CheckpointView:
    key: str  # unique across the report: the checkpoint name, or "<run-id>/<name>" when comparing runs
    name: str
    run_id: str
    run_index: int
    role: str
    source: str
    provenance: list[tuple[str, str]]  # the facts worth a glance: parent, recipe, data, steps, …
    provenance_json: str  # everything, for a collapsible block
    content_hash: str
    colour: str
    index: int = 0
    parent: str | None = None  # the parent's key (None for a root)
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
    task_meta: dict[str, dict[str, Any]]  # task → its run.json entry (first run holding it)
    task_rows: list[dict[str, Any]]  # overall per (checkpoint key, task)
    subgroup_rows: list[dict[str, Any]]
    group_rows: list[dict[str, Any]]  # per_group records, keyed by checkpoint key
    samples: Any  # pandas DataFrame with a "ck" column (the checkpoint key)
    warnings: list[str] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [c.key for c in self.checkpoints]

    def key_of(self, run_index: int, name: str) -> str:
        return self.runs[run_index].prefix + str(name)


def _first(d: Mapping[str, Any], *keys: str) -> Any:
    """The first present value among dotted key paths (run.json nests some facts, e.g. environment.git.sha)."""
    for k in keys:
        cur: Any = d
        for part in k.split("."):
            cur = cur.get(part) if isinstance(cur, Mapping) else None
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
    if isinstance(v, Mapping):
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
    if not isinstance(timings, Mapping):
        return None, []
    total, parts = 0.0, []
    for ck, steps in timings.items():
        if isinstance(steps, Mapping):
            seconds = sum(v for v in (_num(x) for x in steps.values()) if v is not None)
            total += seconds
            parts.append(f"{ck} {_fmt_duration(seconds)}")
    return (total if parts else None), parts


def _fmt_hardware(hw: Any) -> str | None:
    if not isinstance(hw, Mapping):
        return None if hw in (None, "", {}) else _fmt_value(hw)
    gpus = hw.get("gpus") or []
    if gpus:
        names: dict[str, int] = {}
        for g in gpus:
            label = _fmt_value(g.get("name", g)) if isinstance(g, Mapping) else str(g)
            if isinstance(g, Mapping) and g.get("memory_gib"):
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


def _run_facts(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The key facts of run.json. It nests them (environment.packages, settings.backend, …); older or
    hand-written runs may keep them flat, so both are read."""
    facts: list[tuple[str, str]] = []
    started = _first(meta, "started_at", "created_at", "timings.started_at")
    ended = _first(meta, "finished_at", "updated_at", "timings.finished_at")
    wall = _first(meta, "timings.duration_s", "duration_s") or _seconds_between(started, ended)
    eval_total, eval_parts = _eval_seconds(meta.get("timings"))
    git = _first(meta, "environment.git", "git")
    if isinstance(git, Mapping):
        git = (str(git.get("sha") or "unknown")[:12] + (" (with uncommitted changes)" if git.get("dirty") else ""))
    git = git or _first(meta, "git_sha")
    packages = _first(meta, "environment.packages", "versions", "package_versions")
    if isinstance(packages, Mapping):
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
        ("settings", {k: v for k, v in settings.items() if k != "backend"} if isinstance(settings, Mapping)
         else settings),
        ("command", meta.get("command")),
    ]
    for label, value in rows:
        if value not in (None, "", [], {}):
            facts.append((label, _fmt_value(value)))
    return facts


def _describe_data(data: Any) -> str:
    """A training-data provenance entry ({sources: [{dataset, split, n_rows}], n_rows, sha256}) in one line."""
    if not isinstance(data, Mapping):
        return _fmt_value(data)
    parts = []
    for src in data.get("sources") or []:
        if isinstance(src, Mapping):
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


def _checkpoint_view(c: Mapping[str, Any], key: str, run_id: str, run_index: int, index: int) -> CheckpointView:
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
        key=key, name=str(c["name"]), run_id=run_id, run_index=run_index, role=str(c.get("role") or prov.get("role") or ""),
        source=source, provenance=inline,
        provenance_json=json.dumps(prov, indent=1, default=str, ensure_ascii=False) if set(prov) - {"role"} else "",
        content_hash=str(c.get("content_hash") or c.get("hash") or ""), colour=figs.checkpoint_colour(index),
        index=index, warnings=[str(w) for w in c.get("warnings") or []],
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
    group_rows: list[dict[str, Any]] = []
    task_meta: dict[str, dict[str, Any]] = {}
    frames = []
    warnings: list[str] = []
    versions: dict[str, set[str]] = {}
    for ri, (run, rid) in enumerate(zip(runs, run_ids)):
        prefix = f"{rid}/" if multi else ""
        for c in run.checkpoints:
            checkpoints.append(_checkpoint_view(c, prefix + str(c["name"]), rid, ri, len(checkpoints)))
        tasks_meta = [dict(t) for t in run.tasks if t.get("name") in shared] or [{"name": t} for t in shared]
        for t in tasks_meta:
            versions.setdefault(t["name"], set()).add(str(t.get("version", "?")))
            task_meta.setdefault(t["name"], t)
        run_views.append(RunView(run, rid, prefix, _run_facts(run.meta), tasks_meta))
        for r in run.task_metrics():
            if r.get("task") not in shared:
                continue
            row = {**r, "checkpoint": prefix + str(r["checkpoint"])}
            (task_rows if _is_overall(r) else subgroup_rows).append(row)
        for g in run.metrics.get("per_group") or []:
            members = [t for t in (g.get("tasks") or []) if t in shared]
            if members and len(members) == len(g.get("tasks") or []):
                group_rows.append({**g, "checkpoint": prefix + str(g["checkpoint"]), "tasks": list(members)})
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
    samples = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return Combined(run_views, checkpoints, shared, dropped, task_meta, task_rows, subgroup_rows, group_rows,
                    samples, warnings)


# -- comparisons (computed by the harness, shown here) -------------------------------------------------------------


@dataclass
class DiffView:
    """A paired comparison as display strings; coloured only when the harness marked it significant."""

    reference: str  # key
    checkpoint: str  # key
    unit: str
    value: float | None
    low: float | None
    high: float | None
    text: str
    ci: str
    p: str
    cls: str
    marker: str
    significant: bool
    proxy: bool
    n_paired: int
    n_fixed: int
    n_broken: int
    fixed_rate: float | None
    broken_rate: float | None
    reference_accuracy: str
    checkpoint_accuracy: str
    title: str
    fixed: tuple[str, ...] = ()
    broken: tuple[str, ...] = ()


def _p_text(c: Any) -> str:
    raw, adj = _num(getattr(c, "p_value", None)), _num(getattr(c, "p_adjusted", None))
    if raw is None:
        return "—"

    def fmt(p: float) -> str:
        return f"={p:.3f}" if p >= 0.001 else "<0.001"

    return f"p{fmt(raw)}" + (f", adj. p{fmt(adj)}" if adj is not None else "")


def _diff_view(c: Any, key: str, ref_key: str, *, marks: bool) -> DiffView:
    d, lo, hi = _num(c.diff), _num(c.ci_low), _num(c.ci_high)
    sig = bool(marks and c.significant)
    proxy = bool(getattr(c, "proxy", False))
    up = (d or 0) > 0
    if proxy:
        cls, marker = ("proxy-sig" if sig else "ns proxy"), ("△" if up else "▽") if sig else ""
    elif sig:
        cls, marker = ("sig-up" if up else "sig-down"), ("▲" if up else "▼")
    else:
        cls, marker = "ns", ""
    n = int(c.n_paired or 0)
    title = (f"{key} vs {ref_key} on {n} paired questions: fixed {c.n_fixed}, broken {c.n_broken}; "
             f"{_p_text(c)} (exact McNemar" + (", Holm-adjusted" if _num(getattr(c, 'p_adjusted', None)) is not None
                                                 else "") + ")" + ("; judged by an offline proxy" if proxy else ""))
    return DiffView(
        reference=ref_key, checkpoint=key, unit=c.unit, value=d, low=lo, high=hi, text=pts(d).replace(" pts", ""),
        ci=f"[{pts(lo).replace(' pts', '')}, {pts(hi).replace(' pts', '')}]" if lo is not None and hi is not None
        else "", p=_p_text(c), cls=cls, marker=marker, significant=sig, proxy=proxy, n_paired=n,
        n_fixed=int(c.n_fixed or 0), n_broken=int(c.n_broken or 0),
        fixed_rate=c.n_fixed / n if n else None, broken_rate=c.n_broken / n if n else None,
        reference_accuracy=pct(c.reference_accuracy), checkpoint_accuracy=pct(c.checkpoint_accuracy), title=title,
        fixed=tuple(getattr(c, "fixed", ()) or ()), broken=tuple(getattr(c, "broken", ()) or ()),
    )


@dataclass(frozen=True)
class _MetricsComparison:
    """A metrics.json pair read as a comparison, for a report rendered without the harness's ``stats``."""

    unit: str
    kind: str
    run: int
    checkpoint: str
    reference_run: int
    reference: str
    n_paired: int
    reference_accuracy: Any
    checkpoint_accuracy: Any
    diff: Any
    ci_low: Any
    ci_high: Any
    p_value: Any
    n_fixed: int
    n_broken: int
    fixed: tuple[str, ...]
    broken: tuple[str, ...]
    vs_base: bool = True
    vs_parent: bool = False
    p_adjusted: Any = None
    significant: bool = False
    proxy: bool = False
    family: str = "summary"


def _comparisons_from_metrics(c: Combined) -> list[_MetricsComparison]:
    out = []
    for ri, rv in enumerate(c.runs):
        records = [(p, "task", p.get("task")) for p in rv.run.pair_metrics()]
        records += [(p, "group", p.get("group")) for p in rv.run.metrics.get("group_pairs") or []]
        for p, kind, unit in records:
            if kind == "task" and unit not in c.tasks:
                continue
            out.append(_MetricsComparison(
                unit=str(unit), kind=kind, run=ri, checkpoint=str(p["checkpoint"]), reference_run=ri,
                reference=str(p["reference"]), n_paired=int(p.get("n_paired") or 0),
                reference_accuracy=p.get("reference_accuracy"), checkpoint_accuracy=p.get("checkpoint_accuracy"),
                diff=p.get("accuracy_diff"), ci_low=p.get("diff_ci_low"), ci_high=p.get("diff_ci_high"),
                p_value=p.get("mcnemar_p"), n_fixed=int(p.get("n_fixed") or 0), n_broken=int(p.get("n_broken") or 0),
                fixed=tuple(str(k) for k in p.get("fixed") or ()), broken=tuple(str(k) for k in p.get("broken") or ()),
            ))
    return out


@dataclass
class Comparisons:
    """The harness's comparisons keyed for display: (unit, checkpoint key, "base" | "parent") → DiffView."""

    by: dict[tuple[str, str, str], DiffView]
    across: list[DiffView]
    method: str
    marks: bool  # significance marks shown (stats given)
    family_size: int


def index_comparisons(c: Combined, stats: Any | None) -> Comparisons:
    """Attach parents to the checkpoints and key every comparison by the report's checkpoint keys."""
    marks = stats is not None
    raw = list(stats.comparisons) if marks else _comparisons_from_metrics(c)
    if marks:
        for ck in c.checkpoints:
            parent = stats.parents[ck.run_index].get(ck.name) if ck.run_index < len(stats.parents) else None
            ck.parent = c.key_of(ck.run_index, parent) if parent else None
    else:
        for ck in c.checkpoints:
            refs = {p.reference for p in raw if p.run == ck.run_index and p.checkpoint == ck.name}
            ck.parent = c.key_of(ck.run_index, refs.pop()) if len(refs) == 1 else None
    by: dict[tuple[str, str, str], DiffView] = {}
    across: list[DiffView] = []
    for cmp in raw:
        if cmp.run >= len(c.runs) or cmp.reference_run >= len(c.runs):
            continue
        key, ref = c.key_of(cmp.run, cmp.checkpoint), c.key_of(cmp.reference_run, cmp.reference)
        view = _diff_view(cmp, key, ref, marks=marks)
        if cmp.run != cmp.reference_run:
            across.append(view)
            continue
        if cmp.vs_base:
            by[(cmp.unit, key, "base")] = view
        if cmp.vs_parent:
            by[(cmp.unit, key, "parent")] = view
    if marks:
        method = stats.method
        size = int(stats.family_sizes.get("summary", 0))
    else:
        method = ("Rendered without the harness's comparisons (use `medbench report`): differences against the "
                  "base from metrics.json, raw exact McNemar p, no significance marks, no comparison with a "
                  "parent.")
        size = 0
    return Comparisons(by, across, method, marks, size)


# -- units: what a row of the summary is -----------------------------------------------------------------------


@dataclass
class Unit:
    """A row of the summary: a task, a pooled task group (its members as children), or a task's subgroup."""

    name: str  # the comparison unit (task, group, "task / subgroup")
    kind: str  # "task" | "group" | "subgroup"
    label: str
    title: str  # the run's own name(s)
    family: str  # family key (browser filter)
    task: str | None
    href: str
    loglik: bool = False
    children: list[Unit] = field(default_factory=list)
    metrics: dict[str, Mapping[str, Any]] = field(default_factory=dict)  # checkpoint key → record

    @property
    def slug(self) -> str:
        return "u-" + _slug(self.name)

    def proxy(self, key: str) -> bool:
        return (self.metrics.get(key) or {}).get("judge_kind") in ("proxy", "mixed")


def _is_loglik(meta: Mapping[str, Any]) -> bool:
    return meta.get("output_type") not in (None, "generate_until") or meta.get("layout") == "loglikelihood"


def task_label(task: str, meta: Mapping[str, Any], family_sizes: Mapping[str, int]) -> str:
    """How a task is named on the page: its specialty or subject, else its family when the family has only
    this task in the report, else its name without the ``medbench_`` prefix."""
    if meta.get("subgroup"):
        return str(meta["subgroup"]).replace("_", " ")
    family = meta.get("family")
    if family and family_sizes.get(str(family), 0) == 1:
        return FAMILY_LABELS.get(str(family), str(family))
    return task.removeprefix("medbench_")


def build_units(c: Combined, cmp: Comparisons) -> list[Unit]:
    """Top-level rows in task order: a pooled group (metrics.json per_group with two or more of the report's
    tasks) with its tasks as children, else each task (with its subgroups as children when it has them)."""
    metas = c.task_meta
    families = {t: str(metas.get(t, {}).get("family") or t) for t in c.tasks}
    family_sizes: dict[str, int] = {}
    for f in families.values():
        family_sizes[f] = family_sizes.get(f, 0) + 1
    task_rec: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in c.task_rows:
        task_rec.setdefault(r["task"], {})[r["checkpoint"]] = r
    sub_rec: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for r in c.subgroup_rows:
        sub_rec.setdefault((r["task"], str(r["subgroup"])), {})[r["checkpoint"]] = r
    groups: dict[str, list[str]] = {}
    group_rec: dict[str, dict[str, Mapping[str, Any]]] = {}
    for g in c.group_rows:
        if len(g["tasks"]) >= 2:
            groups.setdefault(str(g["group"]), list(g["tasks"]))
            group_rec.setdefault(str(g["group"]), {})[g["checkpoint"]] = g
    group_of = {t: name for name, members in groups.items() for t in members}

    def task_unit(task: str, kind: str = "task") -> Unit:
        meta = metas.get(task, {})
        u = Unit(task, kind, task_label(task, meta, family_sizes), task, families[task], task,
                 browser_href(task=task), loglik=_is_loglik(meta), metrics=task_rec.get(task, {}))
        subs = sorted({s for (t, s) in sub_rec if t == task})
        for s in subs:
            name = f"{task} / {s}"
            u.children.append(Unit(name, "subgroup", s.replace("_", " "), name, families[task], task,
                                   browser_href(task=task, subgroup=s), loglik=u.loglik,
                                   metrics=sub_rec[(task, s)]))
        return u

    units: list[Unit] = []
    done: set[str] = set()
    for task in c.tasks:
        if task in done:
            continue
        group = group_of.get(task)
        if group is None:
            units.append(task_unit(task))
            done.add(task)
            continue
        members = [t for t in c.tasks if group_of.get(t) == group]
        fams = {families[t] for t in members}
        family = fams.pop() if len(fams) == 1 else group
        label = GROUP_LABELS.get(group) or FAMILY_LABELS.get(family) or group
        u = Unit(group, "group", f"{label} · pooled", f"{group}: {len(members)} tasks pooled", family, None,
                 browser_href(family=family), loglik=all(_is_loglik(metas.get(t, {})) for t in members),
                 metrics=group_rec.get(group, {}))
        u.children = [task_unit(t, "task") for t in members]
        units.append(u)
        done.update(members)
    _sort_children(units, c, cmp)
    return units


def _last_change(unit: Unit, c: Combined, cmp: Comparisons) -> float:
    """The change that orders a group's members: the last checkpoint with a parent, against that parent."""
    for ck in reversed(c.checkpoints):
        view = cmp.by.get((unit.name, ck.key, "parent")) or cmp.by.get((unit.name, ck.key, "base"))
        if view is not None and view.value is not None:
            return view.value
    return 0.0


def _sort_children(units: list[Unit], c: Combined, cmp: Comparisons) -> None:
    for u in units:
        if len(u.children) > 1:
            u.children.sort(key=lambda ch: (-_last_change(ch, c, cmp), ch.label))


# -- the answer: headline and summary matrix ---------------------------------------------------------------------


def _cell(unit: Unit, ck: CheckpointView, cmp: Comparisons) -> dict[str, Any]:
    r = unit.metrics.get(ck.key)
    if r is None:
        return {"missing": True}
    lo, hi = _num(r.get("accuracy_ci_low")), _num(r.get("accuracy_ci_high"))
    lines = []
    parent_view = cmp.by.get((unit.name, ck.key, "parent"))
    base_view = cmp.by.get((unit.name, ck.key, "base"))
    if parent_view is not None:
        lines.append(parent_view)
    if base_view is not None and (parent_view is None or base_view.reference != parent_view.reference):
        lines.append(base_view)
    return {
        "missing": False, "accuracy": pct(r.get("accuracy")), "n": r.get("n"),
        "ci": f"{lo * 100:.1f}–{hi * 100:.1f}" if lo is not None and hi is not None else "",
        "proxy": unit.proxy(ck.key), "lines": lines, "is_root": ck.parent is None,
    }


def _headline(units: list[Unit], c: Combined, cmp: Comparisons) -> list[dict[str, Any]]:
    """Per checkpoint with a parent or base: what changed against each, significant first."""
    out = []
    for ck in c.checkpoints:
        relations = []
        seen_refs: set[str] = set()
        for rel in ("parent", "base"):
            views = [(u, cmp.by.get((u.name, ck.key, rel))) for u in units]
            views = [(u, v) for u, v in views if v is not None]
            if not views or views[0][1].reference in seen_refs:
                continue
            ref = views[0][1].reference
            seen_refs.add(ref)
            better = [(u, v) for u, v in views if v.significant and not v.proxy and (v.value or 0) > 0]
            worse = [(u, v) for u, v in views if v.significant and not v.proxy and (v.value or 0) < 0]
            proxy = [(u, v) for u, v in views if v.proxy and v.significant]  # indicative, never a plain gain
            unchanged = [(u, v) for u, v in views if not v.significant]
            inner = []  # significant changes inside a pooled group
            for u in units:
                kids = [(k, cmp.by.get((k.name, ck.key, rel))) for k in u.children]
                kids = [(k, v) for k, v in kids if v is not None]
                sig = [(k, v) for k, v in kids if v.significant and not v.proxy]
                if kids:
                    inner.append({"unit": u, "n": len(kids), "better": [x for x in sig if (x[1].value or 0) > 0],
                                  "worse": [x for x in sig if (x[1].value or 0) < 0]})
            rest = []
            if not (better or worse):
                rest.append(f"no significant change in {len(unchanged)} task "
                            f"famil{'y' if len(unchanged) == 1 else 'ies'}")
            elif unchanged:
                rest.append(f"{len(unchanged)} other{'s' if len(unchanged) != 1 else ''} not significant")
            for g in inner:
                if not (g["better"] or g["worse"]):
                    who = "specialties" if g["unit"].family == "health" else g["unit"].label.split(" · ")[0] + " members"
                    rest.append(f"{who}: 0 of {g['n']} significant")
            relations.append({
                "relation": rel, "reference": ref, "rest": " · ".join(rest),
                "also_base": rel == "parent" and any(cmp.by.get((u.name, ck.key, "base")) is v for u, v in views),
                "better": sorted(better, key=lambda x: -(x[1].value or 0)),
                "worse": sorted(worse, key=lambda x: x[1].value or 0), "proxy": proxy, "unchanged": unchanged,
                "inner": inner,
            })
        if relations:
            out.append({"ck": ck, "relations": relations})
    return out


def answer_view(c: Combined, units: list[Unit], cmp: Comparisons) -> dict[str, Any]:
    rows = []
    for u in units:
        rows.append({"unit": u, "child": False, "cells": [_cell(u, ck, cmp) for ck in c.checkpoints]})
        for ch in u.children:
            rows.append({"unit": ch, "child": True, "parent": u,
                         "cells": [_cell(ch, ck, cmp) for ck in c.checkpoints]})
    return {"rows": rows, "headline": _headline(units, c, cmp), "method": cmp.method, "marks": cmp.marks,
            "family_size": cmp.family_size}


# -- heatmaps ------------------------------------------------------------------------------------------------------


def _bucket(value: float | None) -> str:
    """A colour class for a change in points: hm-n4 … hm-p4 in 5-point steps (± 20 and beyond saturate)."""
    if value is None:
        return "hm-na"
    b = max(-4, min(4, round(value * 100 / 5)))
    return f"hm-{'n' if b < 0 else 'p'}{abs(b)}"


def heatmaps(c: Combined, units: list[Unit], cmp: Comparisons) -> list[dict[str, Any]]:
    """A heatmap per unit with several members (a pooled group's tasks, a task's subgroups): accuracy and n
    per cell, coloured by the change against the checkpoint's parent."""
    out = []
    for u in units:
        if len(u.children) < 2:
            continue
        rows = []
        for ch in u.children:
            cells = []
            for ck in c.checkpoints:
                r = ch.metrics.get(ck.key)
                if r is None:
                    cells.append({"missing": True})
                    continue
                view = cmp.by.get((ch.name, ck.key, "parent")) or cmp.by.get((ch.name, ck.key, "base"))
                cells.append({
                    "missing": False, "accuracy": pct(r.get("accuracy"), 0), "n": r.get("n"), "view": view,
                    "cls": _bucket(view.value) if view else "hm-root",
                    "href": browser_href(task=ch.task, subgroup=ch.name.split(" / ", 1)[1] if ch.kind == "subgroup"
                                         else None, ck=ck.key),
                })
            rows.append({"unit": ch, "cells": cells})
        ns = sorted({int(r["n"]) for ch in u.children for r in ch.metrics.values() if r.get("n") is not None})
        n_text = (f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}–{ns[-1]}") if ns else "n unknown"
        out.append({"unit": u, "rows": rows, "id": "heat-" + _slug(u.name), "n_text": n_text})
    return out


# -- figures -------------------------------------------------------------------------------------------------------


def _legend(c: Combined) -> list[tuple[str, str]]:
    return [(ck.colour, ck.key) for ck in c.checkpoints]


def _flat_rows(units: list[Unit]) -> list[tuple[Unit, str]]:
    """Figure rows: a header per multi-row family, pooled rows, members indented."""
    out: list[tuple[Unit, str]] = []
    for u in units:
        if u.children:
            out.append((u, "group"))
            out.extend((ch, "child") for ch in u.children)
        else:
            out.append((u, "task"))
    return out


def tasks_figure(c: Combined, units: list[Unit], cmp: Comparisons) -> figs.FigureSpec | None:
    """One row per task (pooled groups first, members sorted by change): accuracy with its CI, the change
    against the base and against the parent with their CIs; filled dots are significant."""
    rows: list[figs.Row] = []
    deltas: list[float] = []
    has_parent = any(rel == "parent" and view.reference != getattr(cmp.by.get((unit, key, "base")), "reference", None)
                     for (unit, key, rel), view in cmp.by.items())
    rels = ["base", "parent"] if has_parent else ["base"]
    for u, kind in _flat_rows(units):
        acc: list[figs.Point] = []
        panels: list[list[figs.Point]] = [[] for _ in rels]
        for ck in c.checkpoints:
            r = u.metrics.get(ck.key)
            a = _num(r.get("accuracy")) if r else None
            if a is not None:
                lo, hi = _num(r.get("accuracy_ci_low")), _num(r.get("accuracy_ci_high"))
                acc.append(figs.Point(ck.index, a * 100, lo * 100 if lo is not None else None,
                                      hi * 100 if hi is not None else None, True,
                                      f"{ck.key}: {pct(a)} (n={r.get('n')})" + (" · proxy" if u.proxy(ck.key) else "")))
            for pi, rel in enumerate(rels):
                v = cmp.by.get((u.name, ck.key, rel))
                if v is None or v.value is None:
                    continue
                rec = _ci_of(v)
                deltas += [x for x in (v.value * 100, rec[0], rec[1]) if x is not None]
                panels[pi].append(figs.Point(ck.index, v.value * 100, rec[0], rec[1], v.significant and not v.proxy,
                                             f"{ck.key} vs {v.reference}: {v.text} pts {v.ci} {v.p}"
                                             + (" · proxy-judged" if v.proxy else "")))
        label = u.label + (" · proxy" if any(u.proxy(ck.key) for ck in c.checkpoints) else "")
        rows.append(figs.Row(label, kind, u.href, u.title, (tuple(acc), *[tuple(p) for p in panels])))
    half = figs.symmetric_domain(deltas)
    panels = [figs.Panel("accuracy (%) · 95% CI", 0, 100)]
    names = {"base": "change vs base (pts)", "parent": "change vs parent (pts)"}
    panels += [figs.Panel(names[rel], -half, half, zero=0, unit="pts") for rel in rels]
    n_tasks = len(c.tasks)
    return figs.rows_figure(
        "fig-tasks", f"Accuracy and change per task ({n_tasks} task{'s' if n_tasks != 1 else ''})",
        "One row per task; a pooled group comes first, its members below it sorted by change. Left: accuracy "
        "with its 95% Wilson interval. Right: the paired difference against the base"
        + (" and against the checkpoint's parent" if has_parent else "")
        + " with its 95% bootstrap interval; a filled dot is significant (Holm-adjusted exact McNemar), a "
        "hollow one is not. Proxy-judged rows are never filled. Click a row to browse its questions.",
        rows, panels, "accuracy and paired change per task and checkpoint", _legend(c),
    )


def _ci_of(v: DiffView) -> tuple[float | None, float | None]:
    """The CI bounds of a DiffView, in points."""
    if v.low is None or v.high is None:
        return None, None
    return v.low * 100, v.high * 100


def format_rows(c: Combined, units: list[Unit]) -> list[figs.StackRow]:
    rows = []
    for u in units:
        if u.loglik:
            rows.append(figs.StackRow(u.label, u.href, note="— not applicable: scored by loglikelihood, nothing "
                                                            "is generated", title=u.title))
            continue
        bars = []
        for ck in c.checkpoints:
            r = u.metrics.get(ck.key) or {}
            strict, soft = _num(r.get("format_strict_rate")), _num(r.get("format_soft_rate"))
            if strict is not None and soft is not None:
                bars.append((ck.index, ck.key, strict, soft))
        rows.append(figs.StackRow(u.label, u.href, tuple(bars), title=u.title))
    return rows


def flip_rows(c: Combined, units: list[Unit], cmp: Comparisons, flip_ids: Mapping[tuple[str, str, str], str]
              ) -> list[figs.FlipRow]:
    rows = []
    for u in units:
        for ck in c.checkpoints:
            v = cmp.by.get((u.name, ck.key, "parent")) or cmp.by.get((u.name, ck.key, "base"))
            if v is None or not v.n_paired:
                continue
            params = {"task": u.task} if u.kind == "task" else {"family": u.family}
            rows.append(figs.FlipRow(
                f"{u.label}: {ck.key} vs {v.reference}",
                browser_href(**params, flip=flip_ids.get(("fixed", ck.key, v.reference))),
                browser_href(**params, flip=flip_ids.get(("broken", ck.key, v.reference))),
                v.fixed_rate or 0.0, v.broken_rate or 0.0, v.n_fixed, v.n_broken, v.n_paired, u.title,
            ))
    return rows


def length_rows(c: Combined, units: list[Unit], stats: Any | None) -> tuple[list[figs.BoxRow], str]:
    if stats is None:
        return [], "tokens"
    by = {(s.run, s.checkpoint, s.unit, s.kind): s for s in stats.lengths}
    unit_name = next((s.length_unit for s in stats.lengths), "tokens")
    rows = []
    for u in units:
        if u.loglik or u.kind == "subgroup":
            continue
        boxes = []
        for ck in c.checkpoints:
            s = by.get((ck.run_index, ck.name, u.name, "group" if u.kind == "group" else "task"))
            if s is not None:
                boxes.append((ck.index, ck.key, tuple(s.quantiles), s.n))
        rows.append(figs.BoxRow(u.label, u.href, tuple(boxes), u.title))
    return rows, unit_name


def bin_panels(c: Combined, units: list[Unit], stats: Any | None) -> tuple[list[figs.BinPanel], str, int]:
    if stats is None:
        return [], "tokens", 0
    by = {(b.run, b.unit, b.kind): b for b in stats.length_bins}
    panels = []
    unit_name, n_bins = "tokens", 0
    for u in units:
        if u.loglik:
            continue
        lines = []
        x_high = 0.0
        for ri in sorted({ck.run_index for ck in c.checkpoints}):
            b = by.get((ri, u.name, "group" if u.kind == "group" else "task"))
            if b is None:
                continue
            unit_name, n_bins = b.length_unit, len(b.edges) - 1
            x_high = max(x_high, b.edges[-1])
            for ck in c.checkpoints:
                if ck.run_index == ri and ck.name in b.points:
                    lines.append((ck.index, ck.key, tuple(b.points[ck.name])))
        panels.append(figs.BinPanel(u.label, u.href, tuple(lines), x_high,
                                    any(u.proxy(ck.key) for ck in c.checkpoints)))
    return panels, unit_name, n_bins


# -- per-task details ----------------------------------------------------------------------------------------------


def _rate_level(x: Any, warn: float = 0.05, bad: float = 0.20) -> str:
    v = _num(x)
    if v is None:
        return ""
    return "bad" if v >= bad else ("warn" if v >= warn else "")


def _detail_row(u: Unit, ck: CheckpointView, cmp: Comparisons) -> dict[str, Any] | None:
    r = u.metrics.get(ck.key)
    if r is None:
        return None
    na = u.loglik  # nothing generated: format, truncation and lengths do not apply

    def gen(x: Any) -> str:
        return "—" if na else pct(x)

    lo, hi = _num(r.get("accuracy_ci_low")), _num(r.get("accuracy_ci_high"))
    strict = _num(r.get("format_strict_rate"))
    median = _num(r.get("reasoning_tokens_median"))
    base = cmp.by.get((u.name, ck.key, "base"))
    parent = cmp.by.get((u.name, ck.key, "parent")) or base
    return {
        "ck": ck, "n": r.get("n"), "accuracy": pct(r.get("accuracy")), "proxy": u.proxy(ck.key),
        "ci": f"{lo * 100:.1f}–{hi * 100:.1f}" if lo is not None and hi is not None else "",
        "parent": parent, "base": base if base is not None and (parent is None or base.reference != parent.reference)
        else None,
        "flexible": pct(r.get("flexible_accuracy")),
        "strict": gen(r.get("format_strict_rate")), "soft": gen(r.get("format_soft_rate")),
        "strict_cls": "" if na or strict is None else _rate_level(1 - strict, 0.2, 0.5),
        "think": gen(r.get("think_ok_rate")),
        "unparseable": gen(r.get("unparseable_rate")), "unparseable_cls": "" if na else _rate_level(r.get("unparseable_rate")),
        "truncation": gen(r.get("truncation_rate")), "truncation_cls": "" if na else _rate_level(r.get("truncation_rate")),
        "median_tokens": "—" if na or median is None else f"{median:.0f}",
        "length_unit": r.get("reasoning_length_unit") or "tokens",
        "judge": pct(r.get("judge_agreement")), "judge_kind": r.get("judge_kind") or "",
    }


def details_view(c: Combined, units: list[Unit], cmp: Comparisons) -> dict[str, Any]:
    """Per top-level unit a table of its tasks (and the pooled row) × checkpoints, with every metric."""
    sections = []
    all_rows: list[dict[str, Any]] = []
    for u in units:
        members = ([u] + u.children) if u.children else [u]
        groups = []
        for m in members:
            rows = [row for ck in c.checkpoints if (row := _detail_row(m, ck, cmp)) is not None]
            if rows:
                groups.append({"unit": m, "rows": rows})
                all_rows += rows
        if groups:
            sections.append({"unit": u, "groups": groups, "open": len(members) <= 3,
                             "n_tasks": len(u.children) if u.kind == "group" else 1})
    records = [r for r in c.task_rows] + [g for g in c.group_rows]
    return {
        "sections": sections,
        "has_judge": any(_num(r.get("judge_agreement")) is not None for r in records),
        "has_think": any(_num(r.get("think_ok_rate")) is not None for r in records),
        "has_flexible": any(_num(r.get("flexible_accuracy")) is not None for r in records),
        "has_base_column": any(r["base"] is not None for r in all_rows),
    }


# -- sample browser payload ----------------------------------------------------------------------------------------


def _spans(completion: str, reasoning_spans: Any, answer_span: Any) -> tuple[Any, Any]:
    """(reasoning span, answer span) in UTF-16 offsets, for the browser to collapse and highlight.

    The spans are where the grader found the regions (the record's ``reasoning_spans`` / ``answer_span``,
    code-point offsets). A run written before records carried them has none: its completions are shown
    without collapsing or highlighting (the report never grades). The reasoning is collapsible only when it
    is one block (several blocks are left inline).
    """
    if not completion:
        return None, None
    missing_r = reasoning_spans is None or (isinstance(reasoning_spans, float) and math.isnan(reasoning_spans))
    missing_a = answer_span is None or (isinstance(answer_span, float) and math.isnan(answer_span))
    if missing_r and missing_a:
        return None, None
    r_span = a_span = None
    to_js = _utf16_offsets(completion)
    if not missing_r and len(reasoning_spans) == 1:
        start, end = int(reasoning_spans[0][0]), int(reasoning_spans[0][1])
        if end > start:
            r_span = [to_js(start), to_js(end)]
    if not missing_a and len(answer_span) == 2:
        start, end = int(answer_span[0]), int(answer_span[1])
        if end > start:
            a_span = [to_js(start), to_js(end)]
    return r_span, a_span


def _column(df: Any, col: str) -> list[Any]:
    """A samples column as Python values (None where the run has no such column)."""
    return df[col].tolist() if col in df else [None] * len(df)


def _flag_column(df: Any, col: str) -> list[int | None]:
    """A flag column as 1 / 0, None where it does not apply (e.g. format of a loglikelihood task)."""
    if col not in df:
        return [None] * len(df)
    try:
        values = df[col].astype("boolean")
    except (TypeError, ValueError):
        return [_flag(v) for v in df[col].tolist()]
    missing = values.isna().to_numpy()
    return [None if m else v for v, m in zip(values.fillna(False).astype(int).tolist(), missing)]


def _length_column(df: Any) -> list[int | None]:
    """Reasoning length per sample: tokens where counted, else words, else None."""
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


def flip_labels(c: Combined, cmp: Comparisons) -> tuple[list[str], dict[tuple[str, str, str], str]]:
    """Browser flip filters: one per (fixed|broken, checkpoint, reference) the page compares."""
    labels: list[str] = []
    ids: dict[tuple[str, str, str], str] = {}
    views = sorted({(v.checkpoint, v.reference): v for v in list(cmp.by.values()) + cmp.across}.values(),
                   key=lambda v: (c.keys.index(v.checkpoint) if v.checkpoint in c.keys else 99,
                                  c.keys.index(v.reference) if v.reference in c.keys else 99))
    for v in views:
        for kind in ("fixed", "broken"):
            label = f"{kind} by {v.checkpoint} (vs {v.reference})"
            if label not in labels:
                labels.append(label)
                ids[(kind, v.checkpoint, v.reference)] = label
    return labels, ids


def browser_payload(c: Combined, cmp: Comparisons | None = None) -> dict[str, Any]:
    """Questions (one per task × document) with every checkpoint's completion, for the client-side browser.

    Column-wise where it can be (flags, lengths, outcomes); the one per-row step is building each cell. The
    reasoning / answer spans come from the grader's record, so no completion is parsed.
    """
    cmp = cmp if cmp is not None else index_comparisons(c, None)
    keys = c.keys
    ck_index = {k: i for i, k in enumerate(keys)}
    task_index = {t: i for i, t in enumerate(c.tasks)}
    outcome_index = {o: i for i, o in enumerate(OUTCOMES)}

    labels, ids = flip_labels(c, cmp)
    label_index = {label: i for i, label in enumerate(labels)}
    flip_of: dict[tuple[str, str], set[int]] = {}
    task_views = [v for (unit, _, _), v in cmp.by.items() if unit in task_index] + \
                 [v for v in cmp.across if v.unit in task_index]
    for v in task_views:
        for kind, docs in (("fixed", v.fixed), ("broken", v.broken)):
            li = label_index[ids[(kind, v.checkpoint, v.reference)]]
            for doc in docs:
                flip_of.setdefault((v.unit, str(doc)), set()).add(li)

    df = c.samples
    questions: dict[tuple[str, str], dict[str, Any]] = {}
    order: list[tuple[str, str]] = []
    outcomes = [outcome_index.get(o, 2) for o in _column(df, "outcome")]
    lengths = _length_column(df) if len(df) else []
    flags = {col: _flag_column(df, col) for col in ("format_strict", "format_soft", "truncated")}
    showcase = [_flag(v) for v in _column(df, "showcase")]
    judge_cols = [_column(df, col) for col in ("judge_agree", "judge_score", "judge_rationale", "judge_model")]
    notes_of: dict[str, Any] = {}  # notes are JSON text, mostly "[]": decode each distinct value once
    rows = zip(
        range(len(df)), _column(df, "ck"), _column(df, "task"), _column(df, "doc_id"), _column(df, "doc_key"),
        _column(df, "completion"), _column(df, "reasoning_spans"), _column(df, "answer_span"),
        _column(df, "extracted"), _column(df, "answer_source"), _column(df, "judge_kind"), _column(df, "notes"),
    )
    question_col, prompt_col, target_col, subgroup_col = (
        _column(df, col) for col in ("question", "prompt", "target", "subgroup"))
    for i, ck, task, doc_id, doc_key, text, r_spans, a_span, extracted, source, jk, notes in rows:
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
                "g": sub if isinstance(sub, str) and sub else None, "s": showcase[i], "f": [],
                "c": [None] * len(keys),
            }
            questions[qkey] = q
            order.append(qkey)
        text = text if isinstance(text, str) else ""
        r_span, a_span = _spans(text, r_spans, a_span)
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
    for (task, ident), q in questions.items():
        q["f"] = sorted(flip_of.get((task, ident), ()))
    length_unit = "tokens" if "reasoning_tokens" in df and df["reasoning_tokens"].notna().any() else "words"
    ordered = [questions[k] for k in order]
    ordered.sort(key=lambda q: (-q["s"], q["t"]))  # showcase first, then task order (stable within)
    families = list(dict.fromkeys(str(c.task_meta.get(t, {}).get("family") or t) for t in c.tasks))
    family_sizes = {f: sum(1 for t in c.tasks if str(c.task_meta.get(t, {}).get("family") or t) == f)
                    for f in families}
    return {
        "checkpoints": keys, "tasks": c.tasks,
        "taskLabels": [task_label(t, c.task_meta.get(t, {}), family_sizes) for t in c.tasks],
        "taskFamily": [families.index(str(c.task_meta.get(t, {}).get("family") or t)) for t in c.tasks],
        "families": families, "outcomes": list(OUTCOMES), "flips": labels, "lengthUnit": length_unit,
        "questions": ordered,
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


def build_html(runs: Sequence[Run], *, stats: Any | None = None, title: str | None = None,
               progress: Progress | None = None) -> str:
    """The report for already-loaded runs, as one HTML string. ``stats`` is what
    :func:`medbench.harness.stats.compare.report_stats` returned for these runs (in this order)."""
    say = progress or (lambda _msg: None)
    t0 = time.perf_counter()
    combined = combine_runs(runs)
    n = len(combined.samples)
    say(f"loaded {len(runs)} run(s): {len(combined.checkpoints)} checkpoints, {len(combined.tasks)} tasks, "
        f"{n:,} samples ({time.perf_counter() - t0:.1f}s)")
    cmp = index_comparisons(combined, stats)
    units = build_units(combined, cmp)
    labels, flip_ids = flip_labels(combined, cmp)

    t = time.perf_counter()
    legend = _legend(combined)
    figures: list[figs.FigureSpec] = []
    missing: list[str] = []
    lengths, length_unit = length_rows(combined, units, stats)
    panels, bin_unit, n_bins = bin_panels(combined, units, stats)
    builders: list[tuple[str, Callable[[], figs.FigureSpec | None]]] = [
        ("accuracy and change per task", lambda: tasks_figure(combined, units, cmp)),
        ("flips", lambda: figs.flips_figure(flip_rows(combined, units, cmp, flip_ids),
                                            "fixed and broken questions per checkpoint against its parent")),
        ("format compliance", lambda: figs.format_figure(format_rows(combined, units),
                                                         "format compliance per task family and checkpoint")),
        ("reasoning length", lambda: figs.length_figure(lengths, length_unit, "reasoning length per task family")),
        ("accuracy vs reasoning length", lambda: figs.accuracy_vs_length_figure(panels, bin_unit, n_bins, legend)),
    ]
    for name, build in builders:
        fig = build()
        (figures.append(fig) if fig is not None else missing.append(name))
    say(f"figures: {len(figures)} ({time.perf_counter() - t:.2f}s)")

    t = time.perf_counter()
    payload = browser_payload(combined, cmp)
    data = encode_payload(payload)
    say(f"sample browser: {len(payload['questions']):,} questions, {len(data) / 1e6:.1f} MB compressed "
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
    from markupsafe import Markup

    showcase = [q for q in payload["questions"] if q["s"]]
    families = payload["families"]
    html = _environment().get_template("report.html.j2").render(
        title=title, csp=csp, css=Markup(css), js=Markup(js), data=Markup(data),
        combined=combined, multi=len(combined.runs) > 1, answer=answer_view(combined, units, cmp),
        heatmaps=heatmaps(combined, units, cmp), details=details_view(combined, units, cmp), figures=figures,
        missing_figures=missing, n_questions=len(payload["questions"]), n_samples=n, across=cmp.across,
        has_showcase=bool(showcase), showcase_caveat=SHOWCASE_CAVEAT, flip_labels=labels,
        families=[(f, FAMILY_LABELS.get(f, f)) for f in families],
        task_options=list(zip(combined.tasks, payload["taskLabels"])),
        subgroups=sorted({str(r["subgroup"]) for r in combined.subgroup_rows}),
        outcomes=list(OUTCOMES), generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    )
    say(f"rendered in {time.perf_counter() - t0:.1f}s")
    return html


def default_output(run_dirs: Sequence[str | os.PathLike[str]]) -> Path:
    return Path(run_dirs[0]) / "report.html"


def write_html(html: str, out: Path) -> Path:
    """Write atomically (temp file + rename): a failed render never leaves half a report in place of a good one."""
    if out.is_dir():
        out = out / "report.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out


def render_report(
    run_dirs: Sequence[str | os.PathLike[str] | Run],
    output: str | os.PathLike[str] | None = None,
    *,
    stats: Any | None = None,
    title: str | None = None,
    progress: Progress | None = _stderr_progress,
) -> Path:
    """Render ``run_dirs`` (directories or loaded runs: one run, or several to compare) to one HTML file and
    return its path. ``stats``: the harness's comparisons for these runs (``medbench report`` computes them;
    without them the page shows metrics.json's comparisons with the base and no significance marks).

    The default output is ``<first run>/report.html``.
    """
    if not run_dirs:
        raise ReportError("no run directories given: pass at least one RUN_DIR written by `medbench bench`")
    runs = [p if isinstance(p, Run) else load_run(p) for p in run_dirs]
    html = build_html(runs, stats=stats, title=title, progress=progress)
    out = write_html(html, Path(output) if output is not None else runs[0].root / "report.html")
    if progress:
        progress(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return out
