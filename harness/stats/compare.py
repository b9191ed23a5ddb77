"""The comparisons a report shows, computed on the harness side: vs base, vs parent, across runs, Holm-adjusted.

metrics.json compares every checkpoint with the run's reference (the base). A report also answers "what did
this training step do?" (GRPO against its parent SFT) and "did last week's GRPO get better?" (the same
checkpoint across runs), and it shows 100+ comparisons at once (52 Health specialties × 2 checkpoints), so a
"significant" mark must survive multiplicity. This module computes those with the code that wrote
metrics.json (:func:`medbench.harness.stats.metrics.compute_metrics`) and hands the report plain, typed
records; the report renders them and decides nothing.

One rule drives every significance mark: the exact McNemar p-value, **Holm-adjusted** across all comparisons
of one table (:data:`SUMMARY_FAMILY` for the within-run table, :data:`ACROSS_RUNS_FAMILY` for runs compared),
significant when the adjusted p is ≤ ``alpha`` (the gate's convention). The interval shown beside it is the
paired bootstrap 95% CI, unadjusted, from metrics.json; the report says which one drives the colour. A
comparison whose accuracy is judged by an offline proxy (``judge_kind`` "proxy" or "mixed") is flagged
``proxy``: the report labels it and never shows it as a plain significant gain.

Units compared: each task, each task group pooled (``per_group`` of metrics.json, e.g. ``medbench_health`` over
its 52 specialty tasks) and each subgroup of a task that reports subgroups (e.g. MMLU subjects).

Also here, so the report computes no statistic: reasoning-length quantiles per (checkpoint, unit) and
accuracy within reasoning-length bins, for the report's length figures.

    stats = report_stats([load_run("runs/today")])
    stats.comparisons            # tuple[Comparison, ...]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from medbench.harness.run.records import LENGTH_UNITS, length_column
from medbench.harness.stats import paired
from medbench.harness.stats.metrics import checkpoint_parents, compute_metrics

ALPHA = 0.05  #: family-wise significance level of the report's marks
SUMMARY_FAMILY = "summary"  #: the Holm family of every within-run comparison a report shows
ACROSS_RUNS_FAMILY = "across runs"  #: the Holm family of the same checkpoint compared across runs
#: Quantiles of reasoning length drawn by the report (box: 25–75, whiskers: 5–95, line: median).
LENGTH_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SUBGROUP_SEP = " / "  #: a subgroup unit is named "<task> / <subgroup>"


@dataclass(frozen=True)
class Comparison:
    """One paired comparison of two checkpoints on one unit (task, pooled group or subgroup)."""

    unit: str  #: the task name, the group name, or "<task> / <subgroup>"
    kind: str  #: "task" | "group" | "subgroup"
    task: str | None  #: the task of a task or subgroup unit (None for a group)
    subgroup: str | None  #: the subgroup value of a subgroup unit
    run: int  #: index (in the runs given) of the run holding ``checkpoint``
    checkpoint: str  #: checkpoint name as in run.json
    reference_run: int  #: index of the run holding ``reference`` (== run unless across runs)
    reference: str  #: the checkpoint compared against
    vs_base: bool  #: the reference is the run's reference checkpoint (the base)
    vs_parent: bool  #: the reference is the checkpoint's parent in the lineage
    family: str  #: the Holm family this comparison is adjusted in
    n_paired: int  #: documents both checkpoints scored
    reference_accuracy: float | None
    checkpoint_accuracy: float | None
    diff: float | None  #: checkpoint − reference accuracy on the paired documents
    ci_low: float | None  #: 95% paired bootstrap interval of ``diff`` (unadjusted)
    ci_high: float | None
    p_value: float | None  #: exact McNemar, two-sided, raw
    p_adjusted: float | None  #: Holm-adjusted across the ``family``
    significant: bool  #: p_adjusted ≤ alpha
    proxy: bool  #: accuracy judged by an offline proxy on either side: indicative, never a plain gain
    n_fixed: int  #: wrong/unparseable for the reference, correct for the checkpoint
    n_broken: int  #: correct for the reference, not for the checkpoint
    fixed: tuple[str, ...] = ()  #: doc_keys of fixed documents (task units only)
    broken: tuple[str, ...] = ()

    @property
    def fixed_rate(self) -> float | None:
        """Fixed documents per paired document (comparable across tasks of very different sizes)."""
        return self.n_fixed / self.n_paired if self.n_paired else None

    @property
    def broken_rate(self) -> float | None:
        return self.n_broken / self.n_paired if self.n_paired else None


@dataclass(frozen=True)
class LengthSummary:
    """Reasoning-length quantiles (:data:`LENGTH_QUANTILES`) of one checkpoint on one unit (showcase excluded)."""

    run: int
    checkpoint: str
    unit: str
    kind: str  #: "task" | "group"
    length_unit: str  #: "tokens" | "words"
    n: int
    quantiles: tuple[float, ...]


@dataclass(frozen=True)
class LengthBins:
    """Accuracy within reasoning-length bins of one unit; the bin edges are pooled over checkpoints, so a bin
    means the same lengths for every checkpoint. ``points`` per checkpoint: (median length, accuracy, n) per
    bin holding at least ``min_n`` completions."""

    run: int
    unit: str
    kind: str
    length_unit: str
    edges: tuple[float, ...]
    points: Mapping[str, tuple[tuple[float, float, int], ...]]


@dataclass(frozen=True)
class ReportStats:
    """Everything statistical a report shows beyond metrics.json's per-task records."""

    alpha: float
    method: str  #: one sentence: which test and adjustment drive the marks, which interval is shown
    comparisons: tuple[Comparison, ...]
    family_sizes: Mapping[str, int]  #: comparisons per Holm family
    parents: tuple[Mapping[str, str | None], ...]  #: per run: checkpoint name → parent name (None: a root)
    references: tuple[str | None, ...]  #: per run: the reference (base) checkpoint
    lengths: tuple[LengthSummary, ...] = ()
    length_bins: tuple[LengthBins, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


# -- comparisons ---------------------------------------------------------------------------------------------------


def _judge_kinds(run: Any) -> dict[tuple[str, str], str | None]:
    """(checkpoint, unit) → judge_kind, from metrics.json's per-task and per-group records."""
    out: dict[tuple[str, str], str | None] = {}
    for r in run.task_metrics():
        unit = r["task"] if r.get("subgroup") is None else f"{r['task']}{SUBGROUP_SEP}{r['subgroup']}"
        out[(str(r["checkpoint"]), unit)] = r.get("judge_kind")
    for r in run.metrics.get("per_group", []) or []:
        out[(str(r["checkpoint"]), str(r["group"]))] = r.get("judge_kind")
    return out


def _raw(record: Mapping[str, Any], kind: str, unit: str, task: str | None, subgroup: str | None) -> dict[str, Any]:
    return {
        "unit": unit, "kind": kind, "task": task, "subgroup": subgroup,
        "checkpoint": str(record["checkpoint"]), "reference": str(record["reference"]),
        "n_paired": int(record.get("n_paired") or 0),
        "reference_accuracy": record.get("reference_accuracy"), "checkpoint_accuracy": record.get("checkpoint_accuracy"),
        "diff": record.get("accuracy_diff"), "ci_low": record.get("diff_ci_low"), "ci_high": record.get("diff_ci_high"),
        "p_value": record.get("mcnemar_p"), "n_fixed": int(record.get("n_fixed") or 0),
        "n_broken": int(record.get("n_broken") or 0),
        "fixed": tuple(str(k) for k in record.get("fixed") or ()), "broken": tuple(str(k) for k in record.get("broken") or ()),
    }


def _records(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    """metrics.json-shaped pairs and group_pairs as unit records."""
    out = [_raw(p, "task", str(p["task"]), str(p["task"]), None) for p in metrics.get("pairs", []) or []]
    out += [_raw(p, "group", str(p["group"]), None, None) for p in metrics.get("group_pairs", []) or []]
    return out


def _subgroup_frame(samples: Any, tasks_with_subgroups: set[str]) -> Any:
    """The samples of tasks that report subgroups, with each subgroup as its own "task" (and no group), so
    compute_metrics pairs them subgroup by subgroup."""
    frame = samples[samples["task"].isin(tasks_with_subgroups) & samples["subgroup"].notna()].copy()
    frame["task"] = frame["task"].astype(str) + SUBGROUP_SEP + frame["subgroup"].astype(str)
    frame["subgroup"] = None
    frame["group"] = None
    return frame


def _stored_pairs(metrics: Mapping[str, Any], reference: str, checkpoint: str) -> dict[str, Any] | None:
    """metrics.json's own ``parent_pairs`` / ``parent_group_pairs`` of ``checkpoint`` against ``reference``
    (written by the same :func:`compute_metrics`, on the same documents), or None when the file has none (a
    file written before it compared parents, or a parent it did not pick): then they are computed here."""
    def of(key: str) -> list[Any]:
        return [p for p in metrics.get(key, ()) or ()
                if str(p["reference"]) == reference and str(p["checkpoint"]) == checkpoint]

    pairs, group_pairs = of("parent_pairs"), of("parent_group_pairs")
    return {"pairs": pairs, "group_pairs": group_pairs} if pairs or group_pairs else None


def _pairs_between(samples: Any, reference: str, checkpoint: str, roles: Mapping[str, Any]) -> dict[str, Any]:
    frame = samples[samples["checkpoint"].isin([reference, checkpoint])]
    if frame.empty or frame["checkpoint"].nunique() < 2:
        return {"pairs": [], "group_pairs": []}
    order = [{"name": reference, "role": roles.get(reference)}, {"name": checkpoint, "role": roles.get(checkpoint)}]
    return compute_metrics(frame, order, reference=reference)


def _within_run(index: int, run: Any, parents: Mapping[str, str | None]) -> list[dict[str, Any]]:
    """metrics.json's comparisons with the reference, plus each checkpoint against its parent where that is
    another checkpoint, plus both per subgroup of tasks that report subgroups."""
    names = [str(c["name"]) for c in run.checkpoints]
    roles = {str(c["name"]): c.get("role") for c in run.checkpoints}
    reference = (run.metrics.get("methods") or {}).get("reference")
    records = _records(run.metrics)
    if reference is None and records:
        reference = records[0]["reference"]
    samples = None
    sub_tasks = {str(r["task"]) for r in run.task_metrics() if r.get("subgroup") is not None}
    present = {(r["reference"], r["checkpoint"]) for r in records}
    needed: list[tuple[str, str, dict[str, Any] | None]] = []
    for name in names:
        parent = parents.get(name)
        if parent is not None and parent != reference and (parent, name) not in present:
            needed.append((parent, name, _stored_pairs(run.metrics, parent, name)))
    if any(stored is None for _, _, stored in needed) or sub_tasks:
        samples = run.samples()
    for parent, name, stored in needed:
        records += _records(stored if stored is not None else _pairs_between(samples, parent, name, roles))
    if sub_tasks:
        frame = _subgroup_frame(samples, sub_tasks)
        pairs_needed = [(reference, n) for n in names if reference is not None and n != reference]
        pairs_needed += [(parents[n], n) for n in names if parents.get(n) not in (None, reference)]
        for ref, name in pairs_needed:
            for r in _records(_pairs_between(frame, ref, name, roles)):
                task, sub = r["unit"].split(SUBGROUP_SEP, 1)
                records.append({**r, "kind": "subgroup", "task": task, "subgroup": sub})
    for r in records:
        r.update(run=index, reference_run=index, vs_base=r["reference"] == reference,
                 vs_parent=parents.get(r["checkpoint"]) == r["reference"], family=SUMMARY_FAMILY)
    return records


def matching_checkpoints(runs: Sequence[Any]) -> list[tuple[tuple[int, str], tuple[int, str]]]:
    """((0, first run's checkpoint), (i, later run's checkpoint)) pairs to compare across runs: same name,
    else same role when the role is unique in both runs (e.g. last week's "grpo-v1" against today's "grpo-v2")."""
    first = runs[0].checkpoints
    out = []
    for i, run in enumerate(runs[1:], start=1):
        later = run.checkpoints
        for ck in later:
            match = next((f for f in first if f["name"] == ck["name"]), None)
            if match is None and ck.get("role"):
                same_role = [f for f in first if f.get("role") == ck["role"]]
                if len(same_role) == 1 and sum(1 for x in later if x.get("role") == ck["role"]) == 1:
                    match = same_role[0]
            if match is not None:
                out.append(((0, str(match["name"])), (i, str(ck["name"]))))
    return out


def _across_runs(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """The same checkpoint in the first run and a later one, paired on the documents both scored."""
    import pandas as pd

    out: list[dict[str, Any]] = []
    for (ri, ref), (ci, ck) in matching_checkpoints(runs):
        a = runs[ri].samples()
        b = runs[ci].samples()
        shared = set(a["task"]) & set(b["task"])
        left = a[(a["checkpoint"] == ref) & a["task"].isin(shared)].assign(checkpoint="\x00ref")
        right = b[(b["checkpoint"] == ck) & b["task"].isin(shared)].assign(checkpoint="\x00ck")
        if left.empty or right.empty:
            continue
        result = compute_metrics(pd.concat([left, right], ignore_index=True), ["\x00ref", "\x00ck"],
                                 reference="\x00ref")
        for r in _records(result):
            if r["n_paired"]:
                r.update(checkpoint=ck, reference=ref, run=ci, reference_run=ri, vs_base=False, vs_parent=False,
                         family=ACROSS_RUNS_FAMILY)
                out.append(r)
    return out


def _adjust(records: list[dict[str, Any]], alpha: float) -> dict[str, int]:
    """Holm-adjust each family's p-values in place; returns the family sizes."""
    sizes: dict[str, int] = {}
    for fam in dict.fromkeys(r["family"] for r in records):
        members = [r for r in records if r["family"] == fam and r["p_value"] is not None]
        adjusted = paired.holm_adjust([float(r["p_value"]) for r in members])
        for r, p in zip(members, adjusted):
            r["p_adjusted"] = p
        sizes[fam] = len(members)
    for r in records:
        r.setdefault("p_adjusted", None)
        r["significant"] = r["p_adjusted"] is not None and r["p_adjusted"] <= alpha
    return sizes


# -- reasoning length ----------------------------------------------------------------------------------------------


def _length_frame(run: Any) -> tuple[Any, str] | None:
    """(samples of generative tasks with a length, not showcase; unit) or None when there is nothing to draw."""
    import pandas as pd

    samples = run.samples()
    loglik = {t["name"] for t in run.tasks if t.get("output_type") not in (None, "generate_until")}
    frame = samples[~samples["task"].isin(loglik)]
    if "showcase" in frame:
        frame = frame[~frame["showcase"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    if frame.empty:
        return None
    # the run's one length unit (metrics.json ``length_unit``): tokens when every generated sample has them
    unit = getattr(run, "length_unit", None)
    if unit not in LENGTH_UNITS:
        tokens = frame.get("reasoning_tokens")
        unit = "tokens" if tokens is not None and tokens.notna().all() else "words"
    column = length_column("reasoning", unit)
    if column not in frame:
        return None
    length = pd.to_numeric(frame[column], errors="coerce")
    out = pd.DataFrame({"checkpoint": frame["checkpoint"].astype(str), "task": frame["task"].astype(str),
                        "group": frame.get("group"), "length": length,
                        "correct": (frame["outcome"] == "correct").to_numpy()})
    out = out[out["length"].notna()]
    return (out, unit) if len(out) else None


def _lengths(index: int, run: Any, *, bins: int, min_n: int) -> tuple[list[LengthSummary], list[LengthBins]]:
    got = _length_frame(run)
    if got is None:
        return [], []
    frame, unit = got
    summaries: list[LengthSummary] = []
    binned: list[LengthBins] = []
    views = [("task", frame, "task")]
    grouped = frame[frame["group"].notna()]
    if len(grouped):
        views.append(("group", grouped.assign(group=grouped["group"].astype(str)), "group"))
    for kind, part, column in views:
        for (ck, name), g in part.groupby(["checkpoint", column], sort=False):
            q = np.quantile(g["length"].to_numpy(dtype=float), LENGTH_QUANTILES)
            summaries.append(LengthSummary(index, str(ck), str(name), kind, unit, len(g), tuple(float(x) for x in q)))
        for name, g in part.groupby(column, sort=False):
            lengths = g["length"].to_numpy(dtype=float)
            if len(lengths) < 2 * min_n:
                continue
            edges = np.unique(np.quantile(lengths, np.linspace(0, 1, bins + 1)))
            if len(edges) < 2:
                continue
            points: dict[str, tuple[tuple[float, float, int], ...]] = {}
            for ck, h in g.groupby("checkpoint", sort=False):
                x = h["length"].to_numpy(dtype=float)
                ok = h["correct"].to_numpy(dtype=bool)
                idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
                pts = []
                for b in range(len(edges) - 1):
                    m = idx == b
                    if m.sum() >= min_n:
                        pts.append((float(np.median(x[m])), float(ok[m].mean()), int(m.sum())))
                if pts:
                    points[str(ck)] = tuple(pts)
            if points:
                binned.append(LengthBins(index, str(name), kind, unit, tuple(float(e) for e in edges), points))
    return summaries, binned


# -- entry point ---------------------------------------------------------------------------------------------------


def report_stats(runs: Sequence[Any], *, alpha: float = ALPHA, length_bins: int = 5, min_bin_n: int = 5) -> ReportStats:
    """The comparisons and length summaries a report of ``runs`` (loaded :class:`~medbench.harness.run.rundir.Run`
    objects, the first the earliest) shows. Holm families: every within-run comparison together; the
    across-runs comparisons together."""
    parents = [checkpoint_parents(run.checkpoints) for run in runs]
    references: list[str | None] = []
    records: list[dict[str, Any]] = []
    lengths: list[LengthSummary] = []
    bins: list[LengthBins] = []
    for i, run in enumerate(runs):
        within = _within_run(i, run, parents[i])
        references.append((run.metrics.get("methods") or {}).get("reference")
                          or (within[0]["reference"] if within else None))
        kinds = _judge_kinds(run)
        for r in within:
            r["proxy"] = any(kinds.get((ck, r["unit"])) in ("proxy", "mixed") for ck in (r["checkpoint"], r["reference"]))
        records += within
        s, b = _lengths(i, run, bins=length_bins, min_n=min_bin_n)
        lengths += s
        bins += b
    if len(runs) > 1:
        across = _across_runs(runs)
        for r in across:
            kinds_a, kinds_b = _judge_kinds(runs[r["reference_run"]]), _judge_kinds(runs[r["run"]])
            r["proxy"] = (kinds_a.get((r["reference"], r["unit"])) in ("proxy", "mixed")
                          or kinds_b.get((r["checkpoint"], r["unit"])) in ("proxy", "mixed"))
        records += across
    sizes = _adjust(records, alpha)
    method = (f"Marks: exact McNemar test, Holm-adjusted across the {sizes.get(SUMMARY_FAMILY, 0)} comparisons of "
              f"the summary (significant when the adjusted p ≤ {alpha:g}); intervals: paired bootstrap 95% CI, "
              "unadjusted.")
    if sizes.get(ACROSS_RUNS_FAMILY):
        method += f" Across runs: Holm over its own {sizes[ACROSS_RUNS_FAMILY]} comparisons."
    return ReportStats(
        alpha=alpha, method=method, comparisons=tuple(Comparison(**r) for r in records), family_sizes=sizes,
        parents=tuple(parents), references=tuple(references), lengths=tuple(lengths), length_bins=tuple(bins),
    )


__all__ = [
    "ACROSS_RUNS_FAMILY",
    "ALPHA",
    "LENGTH_QUANTILES",
    "SUBGROUP_SEP",
    "SUMMARY_FAMILY",
    "Comparison",
    "LengthBins",
    "LengthSummary",
    "ReportStats",
    "checkpoint_parents",
    "matching_checkpoints",
    "report_stats",
]
