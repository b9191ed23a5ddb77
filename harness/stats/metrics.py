"""Per-sample grades → the numbers in metrics.json: per (checkpoint, task[, subgroup]) and per checkpoint pair.

``compute_metrics(samples, checkpoints_in_order, reference=None)`` returns a
:class:`~medbench.harness.run.records.RunMetrics` (``methods``, ``length_unit``, ``per_task``, ``pairs``,
``per_group``, ``group_pairs``), which ``RunWriter.write_metrics`` stores. Showcase samples
(``showcase == True``) are excluded from every number. What each field means is documented on the records
(:class:`~medbench.harness.run.records.TaskMetrics`, :class:`~medbench.harness.run.records.PairMetrics`, …)
and each metric's meaning in :data:`~medbench.harness.run.records.METRICS`, the one list of metric names.

``per_task``: one record per checkpoint × task (``subgroup`` None, the whole task), then one per subgroup
(e.g. a Health_Benchmarks specialty; none when one subgroup covers the whole task). ``per_group`` /
``group_pairs``: the same numbers pooled over every document of a task group (the samples' ``group`` column,
e.g. ``medbench_health`` over its per-specialty tasks), i.e. the size-weighted mean that lm-eval reports for a
group; kept apart from per_task so that summing per_task never counts a document twice.

``pairs``: each checkpoint against the reference (the ``reference`` argument, else the checkpoint whose role
is "base", else the first), per task, on the documents both scored (matched by ``doc_key``): accuracies,
their difference with a 95% paired bootstrap percentile CI (2000 resamples, seeded: reproducible), the exact
two-sided McNemar p-value, and the fixed / broken documents. ``parent_pairs`` / ``parent_group_pairs``: the
same for each checkpoint against its parent in the lineage (:func:`checkpoint_parents`: GRPO against SFT)
where the parent is not the reference, so "what did this training step do?" has its own number.

One statistic decides, everywhere (:data:`DECISION`): a difference is ``significant`` when its exact McNemar
p-value, **Holm-adjusted across every comparison of the file** (a realistic run makes 100+: 52 Health
specialties × 2 checkpoints, plus groups and parents), is ≤ :data:`ALPHA`. The raw p stays beside the adjusted
one; the bootstrap interval is shown for scale, unadjusted, and never decides (it can exclude 0 where the
exact test does not: 8 of 110 cells of a realistic run). A comparison whose accuracy rests on the offline
similarity proxy judge (``accuracy_proxy``) is indicative only: a reader labels it "proxy" and never shows it
as a plain significant gain.

Rules decided here, once:

* **Accuracy is the primary reading** (the answer region only); the flexible reading is ``flexible_accuracy``
  beside it. Unparseable is its own outcome: it counts against accuracy but is shown apart.
* **Not applicable is null.** A loglikelihood task (``layout == "loglikelihood"``: its answer is chosen, not
  generated) has no format, truncation, flexible reading or lengths: those are ``None``, never 100% or 0.
  The same holds per document (:func:`document_indicators`), so the gate sees what metrics.json says.
* **One length unit per run** (:func:`length_unit`): "tokens" when every generated sample has its token
  counts, else "words"; every length of every record is in it, and metrics.json records it.

Undefined numbers (no documents, no think layout, no judge) are ``None``, never a made-up 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from medbench.harness.run.records import (
    METRICS,
    OUTCOMES,
    GroupMetrics,
    GroupPairMetrics,
    LengthUnit,
    Methods,
    PairMetrics,
    RunMetrics,
    TaskMetrics,
    is_proxy_judge,
    length_column,
)
from medbench.harness.stats import paired as stats
from medbench.tasks.errors import did_you_mean

#: Rate metrics and the per-document indicator each is the mean of (over documents where it is defined),
#: from :data:`~medbench.harness.run.records.METRICS`. The gate tests the same indicators, so a rate means the
#: same thing in metrics.json and in a gate verdict.
RATE_INDICATORS: dict[str, str] = {m.name: m.indicator for m in METRICS if m.kind == "rate" and m.indicator}
#: Indicators that only generated text has: not applicable (NaN) on a loglikelihood task's documents.
GENERATED_ONLY_INDICATORS: frozenset[str] = frozenset(
    m.indicator for m in METRICS if m.kind == "rate" and m.indicator and m.generated_only
)
#: The layout value a grader gives a loglikelihood task's records (nothing generated).
LOGLIKELIHOOD_LAYOUT = "loglikelihood"

#: Sample columns compute_metrics needs (a subset of medbench.harness.run.records.SAMPLE_COLUMNS).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "checkpoint", "task", "doc_key", "outcome", "strict_correct", "format_strict", "format_soft", "think_ok",
    "truncated", "reasoning_tokens", "reasoning_words", "answer_tokens", "answer_words",
)
#: Columns read when present (older runs lack some; what they lack is not applicable).
OPTIONAL_COLUMNS: tuple[str, ...] = (
    "showcase", "subgroup", "group", "task_version", "judge_agree", "judge_kind", "layout", "flexible_outcome",
    "unclosed_tag", "completion_tokens", "completion_words",
)
#: Every sample column compute_metrics reads. The rest (prompts, completions, …) is dropped before any row
#: selection, so that selecting the rows of a (checkpoint, task) never copies 30,000 completions.
READ_COLUMNS: frozenset[str] = frozenset((*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS))
#: The flag columns behind the rate indicators that are a sample's own boolean.
_FLAG_INDICATORS = ("strict_correct", "format_strict", "format_soft", "think_ok", "unclosed_tag", "truncated",
                    "judge_agree")
#: The sample columns :func:`document_indicators` computes every indicator from (what a gate baseline keeps
#: per document, so it can still run paired tests).
INDICATOR_SOURCE_COLUMNS: tuple[str, ...] = ("outcome", "flexible_outcome", *_FLAG_INDICATORS, "layout")

#: " (did you mean 'x'?)" for an error message: medbench's one "did you mean" (kept under this name for the gate).
closest = did_you_mean

#: The level a Holm-adjusted McNemar p must reach for ``significant`` (two-sided).
ALPHA = 0.05
#: What decides ``significant``, in words (metrics.json ``methods.decision``; the summary and report say it).
DECISION = (f"significant = exact McNemar p (two-sided), Holm-adjusted across every comparison of this file, "
            f"<= {ALPHA:g}; the paired bootstrap interval is unadjusted, shown for scale, and does not decide; "
            f"a comparison whose accuracy rests on the offline proxy judge (accuracy_proxy) is indicative only")


def _flags(series) -> np.ndarray:
    """True/False/None → 1.0/0.0/nan."""
    return series.astype("boolean").to_numpy(dtype=float, na_value=np.nan)


def generated_mask(samples) -> np.ndarray:
    """Which samples are generated text (everything but a loglikelihood task's)."""
    if "layout" not in samples.columns:
        return np.ones(len(samples), dtype=bool)
    return (samples["layout"] != LOGLIKELIHOOD_LAYOUT).fillna(True).to_numpy(dtype=bool)


def document_indicators(samples):  # (pandas.DataFrame) -> pandas.DataFrame
    """One row per sample: identity columns plus the 0/1/NaN indicator behind every rate metric.

    Columns: checkpoint, task, doc_key (+ subgroup when present) and the values of :data:`RATE_INDICATORS`.
    NaN means "not applicable": think_ok outside think layouts, judge_agree where no judge ran, the flexible
    reading, format, unclosed-tag and truncation flags of a loglikelihood task, a column an older run lacks.
    """
    import pandas as pd

    outcome = samples["outcome"]
    bad = sorted(set(outcome.dropna().unique()) - set(OUTCOMES))
    if bad or outcome.isna().any():
        raise ValueError(
            f"samples have outcome values {bad or [None]}; every sample's outcome must be one of {OUTCOMES}"
        )
    out = pd.DataFrame({c: samples[c] for c in ("checkpoint", "task", "doc_key") if c in samples.columns})
    if "subgroup" in samples.columns:
        out["subgroup"] = samples["subgroup"]
    out["correct"] = (outcome == "correct").astype(float).to_numpy()
    out["unparseable"] = (outcome == "unparseable").astype(float).to_numpy()
    if "flexible_outcome" in samples.columns:
        flexible = samples["flexible_outcome"]
        out["flexible_correct"] = np.where(flexible.isna(), np.nan, (flexible == "correct").astype(float))
    else:
        out["flexible_correct"] = np.nan
    for col in _FLAG_INDICATORS:
        out[col] = _flags(samples[col]) if col in samples.columns else np.nan
    chosen = ~generated_mask(samples)
    if chosen.any():
        for col in GENERATED_ONLY_INDICATORS:
            out.loc[chosen, col] = np.nan
    return out


def length_unit(samples) -> LengthUnit | None:
    """The run's one length unit: "tokens" when every generated sample has its reasoning, answer and
    completion token counts, else "words"; ``None`` when nothing was generated (loglikelihood tasks only)."""
    generated = samples[generated_mask(samples)]
    if not len(generated):
        return None
    columns = [length_column(part, "tokens") for part in ("reasoning", "answer", "completion")]
    if all(c in generated.columns and generated[c].notna().all() for c in columns):
        return "tokens"
    return "words"


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def _stat(values: np.ndarray, fn) -> float | None:
    return float(fn(values)) if values.size else None


def _plain(value: Any) -> Any:
    """numpy scalars → Python scalars, so metrics.json stays plain JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _checkpoint_order(checkpoints_in_order: Sequence[str | Mapping[str, Any]]) -> tuple[list[str], dict[str, str]]:
    names: list[str] = []
    roles: dict[str, str] = {}
    for entry in checkpoints_in_order:
        if isinstance(entry, Mapping):
            name = str(entry["name"])
            if entry.get("role"):
                roles[name] = str(entry["role"])
        else:
            name = str(entry)
        names.append(name)
    return names, roles


def _norm_ref(ref: Any) -> str:
    return str(ref).rstrip("/").lower() if ref else ""


def checkpoint_parents(checkpoints: Sequence[str | Mapping[str, Any]]) -> dict[str, str | None]:
    """Each checkpoint's parent among ``checkpoints`` (run.json's entries, or names, in lineage order).

    The parent is the checkpoint that the entry's ``parent`` (or its provenance's) names, by name, model path or
    adapter path; a checkpoint whose parent is not in the run (or that names none) falls back on lineage: an SFT
    checkpoint's parent is the base, a GRPO checkpoint's the only SFT checkpoint (else the base). The base (and
    a checkpoint without a role) has none. The one rule for "compare with its parent"
    (``harness/stats/compare.py`` holds the same rule for the report; it should import this one).
    """
    entries = [dict(c) if isinstance(c, Mapping) else {"name": str(c)} for c in checkpoints]
    by_ref: dict[str, str] = {}
    for c in entries:
        # an adapter checkpoint's "model" is the base it is applied to: it is named by its adapter path
        for key in ("name", "adapter") if c.get("adapter") else ("name", "model", "path"):
            if c.get(key):
                by_ref.setdefault(_norm_ref(c[key]), str(c["name"]))
    roles = {str(c["name"]): c.get("role") for c in entries}
    bases = [n for n, r in roles.items() if r == "base"]
    sfts = [n for n, r in roles.items() if r == "sft"]
    out: dict[str, str | None] = {}
    for c in entries:
        name = str(c["name"])
        declared = c.get("parent") or (c.get("provenance") or {}).get("parent")
        parent = by_ref.get(_norm_ref(declared)) if declared else None
        if parent == name:
            parent = None
        if parent is None and roles[name] != "base":
            if roles[name] == "grpo" and len(sfts) == 1:
                parent = sfts[0]
            elif roles[name] in ("sft", "grpo") and bases:
                parent = bases[0]
        out[name] = parent
    return out


def pick_reference(names: Sequence[str], roles: Mapping[str, str], reference: str | None = None) -> str | None:
    """The reference checkpoint: ``reference`` if given, else the one whose role is base, else the first."""
    if reference is not None:
        if reference not in names:
            raise ValueError(
                f"reference checkpoint {reference!r} has no samples; checkpoints with samples: {list(names)}"
                f"{closest(reference, names)}"
            )
        return reference
    bases = [n for n in names if roles.get(n) == "base"]
    if bases:
        return bases[0]
    return names[0] if names else None


class _Columns:
    """The frame's columns as numpy arrays and the row positions of each (checkpoint, task), found once: a
    summary of some rows is then a few array reductions over their positions (in frame order, so every number
    is what the same reductions over a filtered frame give; issue 14: filtering the frame per task and per pair
    took most of compute_metrics' time)."""

    def __init__(self, frame, indicators, unit: LengthUnit | None) -> None:
        self.frame = frame
        self.unit = unit
        self.at: dict[tuple[str, str], np.ndarray] = {
            (str(k[0]), str(k[1])): v for k, v in frame.groupby(["checkpoint", "task"], sort=False).indices.items()}
        self.task_values = frame["task"].to_numpy(dtype=object)
        self.doc_keys = frame["doc_key"].to_numpy(dtype=object)
        self.indicator = {c: indicators[c].to_numpy(dtype=float) for c in
                          {"correct", "unparseable", *RATE_INDICATORS.values()} if c in indicators.columns}
        self.correct = self.indicator["correct"]
        self.judged = indicators["judge_agree"].notna().to_numpy()
        self.generated = generated_mask(frame)
        self.lengths = {}
        for part in ("reasoning", "answer", "completion"):
            column = length_column(part, unit) if unit is not None else None
            if column is not None and column in frame.columns:
                self.lengths[part] = frame[column].to_numpy(dtype=float, na_value=np.nan)
        self._valid: dict[str, np.ndarray] = {}
        if "judge_kind" in frame.columns:
            kinds = frame["judge_kind"]
            self.judge_kinds = np.where(kinds.notna().to_numpy(), kinds.to_numpy(dtype=object), None)
        else:
            self.judge_kinds = None

    def first(self, column: str, idx: np.ndarray) -> Any:
        """The first non-null value of ``column`` among the rows at ``idx`` (a plain Python value)."""
        if column not in self.frame.columns:
            return None
        valid = self._valid.get(column)
        if valid is None:
            valid = self._valid[column] = self.frame[column].notna().to_numpy()
        hits = np.flatnonzero(valid[idx])
        return _plain(self.frame[column].iloc[int(idx[hits[0]])]) if len(hits) else None

    def _lengths(self, part: str, idx: np.ndarray) -> np.ndarray:
        values = self.lengths.get(part)
        if values is None:
            return np.array([])
        values = values[idx][self.generated[idx]]
        return values[~np.isnan(values)]

    def summary(self, idx: np.ndarray, confidence: float) -> dict[str, Any]:
        """The numbers of the rows at ``idx`` (one checkpoint × task, a subgroup of it, or a task group): the
        fields of :class:`~medbench.harness.run.records.TaskMetrics` after its identity."""
        n = len(idx)
        n_correct = int(self.correct[idx].sum())
        n_unparseable = int(self.indicator["unparseable"][idx].sum())
        ci = stats.wilson_interval(n_correct, n, confidence)
        reasoning = self._lengths("reasoning", idx)
        answer = self._lengths("answer", idx)
        completion = self._lengths("completion", idx)
        measured_unit = self.unit if self.generated[idx].any() else None
        record: dict[str, Any] = {
            "task_version": self.first("task_version", idx),
            "n": n,
            "n_correct": n_correct,
            "n_wrong": n - n_correct - n_unparseable,
            "n_unparseable": n_unparseable,
            "accuracy": n_correct / n if n else None,
            "accuracy_ci_low": ci[0] if ci else None,
            "accuracy_ci_high": ci[1] if ci else None,
        }
        for metric_name, column in RATE_INDICATORS.items():
            if metric_name != "accuracy":
                record[metric_name] = _mean(self.indicator[column][idx])
        if self.judge_kinds is None:
            judge_kind = None
        else:
            kinds = sorted({str(k) for k in self.judge_kinds[idx] if k is not None})
            judge_kind = None if not kinds else kinds[0] if len(kinds) == 1 else "mixed"
        record.update(
            reasoning_length_unit=measured_unit,
            reasoning_tokens_mean=_stat(reasoning, np.mean),
            reasoning_tokens_median=_stat(reasoning, np.median),
            reasoning_tokens_p90=_stat(reasoning, lambda v: np.percentile(v, 90)),
            answer_length_unit=measured_unit,
            answer_tokens_mean=_stat(answer, np.mean),
            completion_tokens_mean=_stat(completion, np.mean),
            completion_tokens_median=_stat(completion, np.median),
            judge_kind=judge_kind,
            n_judged=int(self.judged[idx].sum()),
        )
        record["accuracy_proxy"] = is_proxy_judge(record["judge_kind"])
        return record

    def subgroups(self, idx: np.ndarray) -> list[tuple[Any, np.ndarray]]:
        """Subgroup values of one task's rows at ``idx``, sorted, each with its rows' positions; none when one
        subgroup covers the whole task (as for a per-specialty Health task), since its record would repeat the
        task's."""
        if "subgroup" not in self.frame.columns:
            return []
        rows = self.frame["subgroup"].iloc[idx]
        values = sorted({_plain(s) for s in rows.dropna().unique()}, key=str)
        if len(values) == 1 and rows.notna().all():
            return []
        return [(sub, idx[(rows == sub).to_numpy(dtype=bool, na_value=False)]) for sub in values]


def compute_metrics(
    samples,
    checkpoints_in_order: Sequence[str | Mapping[str, Any]],
    reference: str | None = None,
    *,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
) -> RunMetrics:
    """Compute metrics.json (see the module docstring and :mod:`medbench.harness.run.records`).

    ``samples`` is a samples.parquet frame; ``checkpoints_in_order`` is run.json's "checkpoints" (entries with
    name and optional role) or plain names, in display order. Checkpoints found in the samples but not listed
    come last, in order of appearance. Raises ValueError on missing columns, unknown outcomes, an unknown
    reference or a document scored twice for one checkpoint and task.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in samples.columns]
    if missing:
        raise ValueError(f"samples lack columns {missing}; expected the samples.parquet schema (SAMPLE_COLUMNS)")
    frame = samples[[c for c in samples.columns if c in READ_COLUMNS]]
    if "showcase" in frame.columns:
        frame = frame[~frame["showcase"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    frame = frame.reset_index(drop=True)
    if frame["doc_key"].isna().any():
        raise ValueError("some samples have no doc_key; every scored sample needs a stable doc_key")
    dupes = frame[frame.duplicated(["checkpoint", "task", "doc_key"], keep=False)]
    if len(dupes):
        first = dupes.iloc[0]
        raise ValueError(
            f"{len(dupes)} samples share a (checkpoint, task, doc_key), e.g. {first['checkpoint']!r}, "
            f"{first['task']!r}, {first['doc_key']!r}: each document must be scored once per checkpoint"
        )
    indicators = document_indicators(frame)
    unit = length_unit(frame)

    names, roles = _checkpoint_order(checkpoints_in_order)
    present = [str(c) for c in frame["checkpoint"].drop_duplicates()]
    names = [n for n in names if n in present] + [c for c in present if c not in names]
    ref = pick_reference(names, roles, reference)  # names holds only checkpoints that have samples
    tasks = [str(t) for t in frame["task"].drop_duplicates()]

    cols = _Columns(frame, indicators, unit)
    per_task: list[TaskMetrics] = []
    for checkpoint in names:
        for task in tasks:
            idx = cols.at.get((checkpoint, task))
            if idx is None:
                continue
            base = {"checkpoint": checkpoint, "task": task, "group": cols.first("group", idx)}
            per_task.append(TaskMetrics(**base, subgroup=None, **cols.summary(idx, confidence)))
            for sub, sub_idx in cols.subgroups(idx):
                per_task.append(TaskMetrics(**base, subgroup=sub, **cols.summary(sub_idx, confidence)))

    groups = _groups(frame, tasks)
    per_group: list[GroupMetrics] = []
    for checkpoint in names:
        for group_name, members in groups.items():
            in_group = tuple(t for t in members if (checkpoint, t) in cols.at)
            if in_group:
                idx = np.sort(np.concatenate([cols.at[(checkpoint, t)] for t in in_group]))
                per_group.append(GroupMetrics(checkpoint=checkpoint, group=group_name, tasks=in_group, subgroup=None,
                                              **cols.summary(idx, confidence)))

    proxy = {(r.checkpoint, r.task): bool(r.accuracy_proxy) for r in per_task if r.subgroup is None}
    proxy.update({(g.checkpoint, g.group): bool(g.accuracy_proxy) for g in per_group})
    parents = checkpoint_parents(checkpoints_in_order)
    comparisons: dict[str, list[dict[str, Any]]] = {"pairs": [], "group_pairs": [], "parent_pairs": [],
                                                    "parent_group_pairs": []}
    if ref is not None:
        against = [(ref, n, "") for n in names if n != ref]
        against += [(parents[n], n, "parent_") for n in names
                    if parents.get(n) not in (None, ref) and parents[n] in names]
        for against_ck, checkpoint, kind in against:
            for task in tasks:
                numbers = _pair(cols, [task], against_ck, checkpoint, confidence, n_resamples, seed)
                if numbers is not None:
                    numbers["accuracy_proxy"] = (proxy.get((against_ck, task), False)
                                                 or proxy.get((checkpoint, task), False))
                    comparisons[kind + "pairs"].append({"task": task, **numbers})
            for group_name, members in groups.items():
                numbers = _pair(cols, members, against_ck, checkpoint, confidence, n_resamples, seed)
                if numbers is not None:
                    del numbers["fixed"], numbers["broken"]  # listed per task in "pairs"
                    numbers["accuracy_proxy"] = (proxy.get((against_ck, group_name), False)
                                                 or proxy.get((checkpoint, group_name), False))
                    comparisons[kind + "group_pairs"].append({"group": group_name, **numbers})
    # Holm across every comparison of the file: one family, whatever table a reader draws from it
    family = [c for kind in comparisons.values() for c in kind if c["mcnemar_p"] is not None]
    for c, adjusted in zip(family, stats.holm_adjust([c["mcnemar_p"] for c in family])):
        c["mcnemar_p_adjusted"], c["significant"] = adjusted, adjusted <= ALPHA
    order = {t: i for i, t in enumerate(tasks)}
    group_names = list(groups)
    pairs = sorted((PairMetrics(**c) for c in comparisons["pairs"]), key=lambda r: order[r.task])
    group_pairs = sorted((GroupPairMetrics(**c) for c in comparisons["group_pairs"]),
                         key=lambda r: group_names.index(r.group))
    parent_pairs = sorted((PairMetrics(**c) for c in comparisons["parent_pairs"]), key=lambda r: order[r.task])
    parent_group_pairs = sorted((GroupPairMetrics(**c) for c in comparisons["parent_group_pairs"]),
                                key=lambda r: group_names.index(r.group))

    return RunMetrics(
        methods=Methods(
            confidence=confidence,
            accuracy_ci="Wilson score interval",
            diff_ci=f"paired bootstrap percentile interval, {n_resamples} resamples, seed {seed} (unadjusted; "
                    f"does not decide significance)",
            pair_test="exact McNemar test, two-sided",
            reference=ref,
            alpha=ALPHA,
            multiplicity=f"Holm across the {len(family)} comparisons of this file: pairs, group_pairs, "
                         f"parent_pairs, parent_group_pairs",
            decision=DECISION,
        ),
        length_unit=unit,
        per_task=tuple(per_task),
        pairs=tuple(pairs),
        per_group=tuple(per_group),
        group_pairs=tuple(group_pairs),
        parent_pairs=tuple(parent_pairs),
        parent_group_pairs=tuple(parent_group_pairs),
    )


def _groups(frame, tasks: list[str]) -> dict[str, list[str]]:
    """group name -> its tasks (in task order), from the samples' ``group`` column."""
    if "group" not in frame.columns:
        return {}
    pairs = frame[["task", "group"]].dropna().drop_duplicates()
    out: dict[str, list[str]] = {}
    for task in tasks:
        for group_name in pairs.loc[pairs["task"] == task, "group"]:
            out.setdefault(str(group_name), []).append(task)
    return out


def _pair(cols: _Columns, tasks: list[str], ref: str, checkpoint: str, confidence: float, n_resamples: int,
          seed: int) -> dict[str, Any] | None:
    """Paired comparison on the documents (task, doc_key) both checkpoints scored in ``tasks``: the fields of
    :class:`~medbench.harness.run.records.PairMetrics` after ``task``. The documents are paired in the
    reference's sample order (an inner join on (task, doc_key), as ``DataFrame.merge`` orders it)."""
    left = [cols.at[(ref, t)] for t in tasks if (ref, t) in cols.at]
    right = [cols.at[(checkpoint, t)] for t in tasks if (checkpoint, t) in cols.at]
    if not left or not right:
        return None
    left_idx = np.sort(np.concatenate(left))
    right_idx = np.concatenate(right)
    task_of, key_of = cols.task_values, cols.doc_keys
    position = {(task_of[j], key_of[j]): j for j in right_idx.tolist()}
    pairs = [(i, position.get((task_of[i], key_of[i]))) for i in left_idx.tolist()]
    matched = [(i, j) for i, j in pairs if j is not None]
    n = len(matched)
    li = np.fromiter((i for i, _ in matched), dtype=np.intp, count=n)
    ri = np.fromiter((j for _, j in matched), dtype=np.intp, count=n)
    ref_ok = cols.correct[li]
    ck_ok = cols.correct[ri]
    keys = key_of[li]
    fixed = tuple(_plain(k) for k in keys[(ref_ok == 0) & (ck_ok == 1)])
    broken = tuple(_plain(k) for k in keys[(ref_ok == 1) & (ck_ok == 0)])
    left_n, right_n = len(left_idx), len(right_idx)
    ci = stats.paired_bootstrap_diff_ci(ref_ok, ck_ok, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {
        "reference": ref,
        "checkpoint": checkpoint,
        "n_paired": n,
        "n_reference_only": left_n - n,
        "n_checkpoint_only": right_n - n,
        "reference_accuracy": float(ref_ok.mean()) if n else None,
        "checkpoint_accuracy": float(ck_ok.mean()) if n else None,
        "accuracy_diff": float(ck_ok.mean() - ref_ok.mean()) if n else None,
        "diff_ci_low": ci[0] if ci else None,
        "diff_ci_high": ci[1] if ci else None,
        "mcnemar_p": stats.mcnemar_exact_p(len(fixed), len(broken)) if n else None,
        "n_fixed": len(fixed),
        "n_broken": len(broken),
        "fixed": fixed,
        "broken": broken,
    }


def metrics_for_run(run, reference: str | None = None) -> RunMetrics:
    """:func:`compute_metrics` over a loaded :class:`~medbench.harness.run.rundir.Run` (its samples, its order)."""
    return compute_metrics(run.samples(), run.checkpoints, reference)


__all__ = [
    "ALPHA",
    "DECISION",
    "GENERATED_ONLY_INDICATORS",
    "INDICATOR_SOURCE_COLUMNS",
    "RATE_INDICATORS",
    "REQUIRED_COLUMNS",
    "checkpoint_parents",
    "closest",
    "compute_metrics",
    "document_indicators",
    "generated_mask",
    "length_unit",
    "metrics_for_run",
    "pick_reference",
]
