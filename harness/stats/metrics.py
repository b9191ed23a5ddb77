"""Per-sample grades → the numbers in metrics.json: per (checkpoint, task[, subgroup]) and per checkpoint pair.

``compute_metrics(samples, checkpoints_in_order, reference=None)`` returns
``{"methods": {...}, "per_task": [...], "pairs": [...], "per_group": [...], "group_pairs": [...]}``;
``RunWriter.write_metrics`` adds ``schema_version``. Showcase samples (``showcase == True``) are excluded from
every number. ``methods`` names the interval and test methods and the reference checkpoint.

``per_task`` records (one per checkpoint × task with ``subgroup = None`` for the whole task, then one per
subgroup, e.g. a Health_Benchmarks specialty):

=========================== ============================================================================
field                       meaning
=========================== ============================================================================
checkpoint, task, group     identity (``group``: the task's group column, may be None)
subgroup                    None = the whole task; else the subgroup value (no subgroup records when one
                            subgroup covers the whole task, as for the per-specialty Health tasks)
task_version                the task version the samples were graded with
n                           documents scored
n_correct, n_wrong,         outcome counts; the three add up to n. **Unparseable is its own outcome**:
n_unparseable               it counts against accuracy but is shown apart, never folded into "wrong"
accuracy                    n_correct / n (lenient extraction: what the model meant)
accuracy_ci_low/high        95% Wilson score interval of accuracy (see ``medbench.harness.stats.paired``)
strict_accuracy             share correct *and* given exactly in the asked layout (grader's strict_correct)
unparseable_rate            n_unparseable / n
format_strict_rate          share with the strict layout (grader's format_strict)
format_soft_rate            share with the lenient layout (format_soft)
think_ok_rate               share with exactly one closed think block; None unless the task uses a think layout
truncation_rate             share of completions cut off by the token limit
reasoning_length_unit       "tokens", or "words" when any sample of the group lacks reasoning_tokens
reasoning_tokens_mean,      reasoning length summary, in ``reasoning_length_unit``
reasoning_tokens_median,
reasoning_tokens_p90
answer_length_unit          "tokens" or "words" (same rule)
answer_tokens_mean          mean answer length in ``answer_length_unit``
judge_agreement             share of judged samples the judge agreed with; None when no judge ran
judge_kind                  "llm", "proxy" (an offline similarity proxy: label it so), "mixed" or None
n_judged                    samples with a judge verdict
=========================== ============================================================================

``pairs`` records (each checkpoint against the reference, per task, on documents both scored, matched by
``doc_key``):

=========================== ============================================================================
task, reference, checkpoint identity; ``reference`` is the ``reference`` argument, else the checkpoint whose
                            role is "base", else the first
n_paired                    documents both checkpoints scored
n_reference_only,           documents only one side scored (left out of the paired numbers)
n_checkpoint_only
reference_accuracy,         accuracies on the paired documents
checkpoint_accuracy
accuracy_diff               checkpoint_accuracy - reference_accuracy (= (n_fixed - n_broken) / n_paired)
diff_ci_low, diff_ci_high   95% paired bootstrap percentile CI (2000 resamples, seeded: reproducible)
mcnemar_p                   two-sided exact McNemar p-value
n_fixed, fixed              documents (doc_keys, in the reference's sample order) wrong/unparseable for the
                            reference, correct for the checkpoint
n_broken, broken            documents correct for the reference, not any more
=========================== ============================================================================

``per_group`` / ``group_pairs``: the same numbers pooled over every document of a task group (the samples'
``group`` column, e.g. ``medbench_health`` over its per-specialty tasks), i.e. the size-weighted mean that
lm-eval reports for a group. A per_group record has ``group`` and ``tasks`` (its member tasks present)
instead of ``task``; a group_pairs record has ``group`` instead of ``task`` and no ``fixed``/``broken`` lists
(they are in the member tasks' pairs). They are kept apart from per_task so that summing per_task never
counts a document twice.

Undefined numbers (no documents, no think layout, no judge) are ``None``, never a made-up 0.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medbench.harness.stats import paired as stats

#: Rate metrics and the per-document indicator each is the mean of (over documents where it is defined).
#: The gate tests the same indicators, so a rate means the same thing in metrics.json and in a gate verdict.
RATE_INDICATORS: dict[str, str] = {
    "accuracy": "correct",
    "strict_accuracy": "strict_correct",
    "unparseable_rate": "unparseable",
    "format_strict_rate": "format_strict",
    "format_soft_rate": "format_soft",
    "think_ok_rate": "think_ok",
    "truncation_rate": "truncated",
    "judge_agreement": "judge_agree",
}

#: Sample columns compute_metrics needs (a subset of medbench.harness.run.rundir.SAMPLE_COLUMNS).
REQUIRED_COLUMNS: tuple[str, ...] = (
    "checkpoint", "task", "doc_key", "outcome", "strict_correct", "format_strict", "format_soft", "think_ok",
    "truncated", "reasoning_tokens", "reasoning_words", "answer_tokens", "answer_words",
)
OUTCOMES = ("correct", "wrong", "unparseable")
#: Every sample column compute_metrics reads. The rest (prompts, completions, …) is dropped before any row
#: selection, so that selecting the rows of a (checkpoint, task) never copies 30,000 completions.
READ_COLUMNS: frozenset[str] = frozenset(
    (*REQUIRED_COLUMNS, "showcase", "subgroup", "group", "task_version", "judge_agree", "judge_kind")
)


def closest(name: str, options: Sequence[str]) -> str:
    """' (closest: X)' for an error message, or '' when nothing is close."""
    match = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=0.5)
    return f" (closest: {match[0]!r})" if match else ""


def _flags(series) -> np.ndarray:
    """True/False/None → 1.0/0.0/nan."""
    return series.astype("boolean").to_numpy(dtype=float, na_value=np.nan)


def document_indicators(samples):  # (pandas.DataFrame) -> pandas.DataFrame
    """One row per sample: identity columns plus the 0/1/NaN indicator behind every rate metric.

    Columns: checkpoint, task, doc_key (+ subgroup when present) and the values of :data:`RATE_INDICATORS`.
    NaN means "not applicable" (think_ok outside think layouts, judge_agree where no judge ran).
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
    for col in ("strict_correct", "format_strict", "format_soft", "think_ok", "truncated", "judge_agree"):
        out[col] = _flags(samples[col]) if col in samples.columns else np.nan
    return out


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else None


def _lengths(rows, token_col: str, word_col: str) -> tuple[str, np.ndarray]:
    tokens = rows[token_col]
    if len(rows) and tokens.notna().all():
        return "tokens", tokens.to_numpy(dtype=float)
    return "words", rows[word_col].to_numpy(dtype=float)


def _judge_kind(kinds) -> str | None:
    kinds = sorted({str(k) for k in kinds.dropna().unique()})
    if not kinds:
        return None
    return kinds[0] if len(kinds) == 1 else "mixed"


def _summary(rows, ind, confidence: float) -> dict[str, Any]:
    """Metrics of some samples (one checkpoint × task, a subgroup of it, or a task group)."""
    n = len(rows)
    n_correct = int(ind["correct"].sum())
    n_unparseable = int(ind["unparseable"].sum())
    ci = stats.wilson_interval(n_correct, n, confidence)
    reasoning_unit, reasoning = _lengths(rows, "reasoning_tokens", "reasoning_words")
    answer_unit, answer = _lengths(rows, "answer_tokens", "answer_words")
    reasoning = reasoning[~np.isnan(reasoning)]
    answer = answer[~np.isnan(answer)]
    judged = ind["judge_agree"].notna()
    record: dict[str, Any] = {
        "task_version": _first(rows, "task_version"),
        "n": n,
        "n_correct": n_correct,
        "n_wrong": n - n_correct - n_unparseable,
        "n_unparseable": n_unparseable,
        "accuracy": n_correct / n if n else None,
        "accuracy_ci_low": ci[0] if ci else None,
        "accuracy_ci_high": ci[1] if ci else None,
    }
    for metric, column in RATE_INDICATORS.items():
        if metric != "accuracy":
            record[metric] = _mean(ind[column].to_numpy())
    record.update(
        reasoning_length_unit=reasoning_unit,
        reasoning_tokens_mean=float(reasoning.mean()) if reasoning.size else None,
        reasoning_tokens_median=float(np.median(reasoning)) if reasoning.size else None,
        reasoning_tokens_p90=float(np.percentile(reasoning, 90)) if reasoning.size else None,
        answer_length_unit=answer_unit,
        answer_tokens_mean=float(answer.mean()) if answer.size else None,
        judge_kind=_judge_kind(rows["judge_kind"]) if "judge_kind" in rows.columns else None,
        n_judged=int(judged.sum()),
    )
    return record


def _first(rows, column: str) -> Any:
    if column not in rows.columns:
        return None
    values = rows[column].dropna()
    return _plain(values.iloc[0]) if len(values) else None


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


def compute_metrics(
    samples,
    checkpoints_in_order: Sequence[str | Mapping[str, Any]],
    reference: str | None = None,
    *,
    confidence: float = stats.DEFAULT_CONFIDENCE,
    n_resamples: int = stats.DEFAULT_RESAMPLES,
    seed: int = stats.DEFAULT_SEED,
) -> dict[str, Any]:
    """Compute metrics.json's ``per_task`` and ``pairs`` records (fields: see the module docstring).

    ``samples`` is a samples.parquet frame; ``checkpoints_in_order`` is run.json's "checkpoints" (dicts with
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

    names, roles = _checkpoint_order(checkpoints_in_order)
    present = [str(c) for c in frame["checkpoint"].drop_duplicates()]
    names = [n for n in names if n in present] + [c for c in present if c not in names]
    ref = pick_reference(names, roles, reference)  # names holds only checkpoints that have samples
    tasks = [str(t) for t in frame["task"].drop_duplicates()]

    per_task: list[dict[str, Any]] = []
    for checkpoint in names:
        for task in tasks:
            mask = ((frame["checkpoint"] == checkpoint) & (frame["task"] == task)).to_numpy()
            if not mask.any():
                continue
            rows, ind = frame[mask], indicators[mask]
            base = {"checkpoint": checkpoint, "task": task, "group": _first(rows, "group")}
            per_task.append({**base, "subgroup": None, **_summary(rows, ind, confidence)})
            for sub in _subgroups(rows):
                sub_mask = (rows["subgroup"] == sub).to_numpy()
                per_task.append({**base, "subgroup": sub, **_summary(rows[sub_mask], ind[sub_mask], confidence)})

    groups = _groups(frame, tasks)
    per_group: list[dict[str, Any]] = []
    for checkpoint in names:
        for group_name, members in groups.items():
            mask = ((frame["checkpoint"] == checkpoint) & frame["task"].isin(members)).to_numpy()
            if mask.any():
                in_group = [t for t in members if t in set(frame.loc[mask, "task"])]
                per_group.append({"checkpoint": checkpoint, "group": group_name, "tasks": in_group, "subgroup": None,
                                  **_summary(frame[mask], indicators[mask], confidence)})

    pairs: list[dict[str, Any]] = []
    group_pairs: list[dict[str, Any]] = []
    if ref is not None:
        for checkpoint in [n for n in names if n != ref]:
            for task in tasks:
                record = _pair(indicators, [task], ref, checkpoint, confidence, n_resamples, seed)
                if record is not None:
                    pairs.append({"task": task, **record})
            for group_name, members in groups.items():
                record = _pair(indicators, members, ref, checkpoint, confidence, n_resamples, seed)
                if record is not None:
                    del record["fixed"], record["broken"]  # listed per task in "pairs"
                    group_pairs.append({"group": group_name, **record})
        order = {t: i for i, t in enumerate(tasks)}
        pairs.sort(key=lambda r: order[r["task"]])
        group_names = list(groups)
        group_pairs.sort(key=lambda r: group_names.index(r["group"]))

    return {
        "methods": {
            "confidence": confidence,
            "accuracy_ci": "Wilson score interval",
            "diff_ci": f"paired bootstrap percentile interval, {n_resamples} resamples, seed {seed}",
            "pair_test": "exact McNemar test, two-sided",
            "reference": ref,
        },
        "per_task": per_task,
        "pairs": pairs,
        "per_group": per_group,
        "group_pairs": group_pairs,
    }


def _subgroups(rows) -> list[Any]:
    """Subgroup values of one task's rows, sorted; none when one subgroup covers the whole task (as for a
    per-specialty Health task), since its record would repeat the task's."""
    if "subgroup" not in rows.columns:
        return []
    values = sorted({_plain(s) for s in rows["subgroup"].dropna().unique()}, key=str)
    if len(values) == 1 and rows["subgroup"].notna().all():
        return []
    return values


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


def _pair(indicators, tasks: list[str], ref: str, checkpoint: str, confidence: float, n_resamples: int, seed: int):
    """Paired comparison on the documents (task, doc_key) both checkpoints scored in ``tasks``."""
    in_tasks = indicators[indicators["task"].isin(tasks)]
    cols = ["task", "doc_key", "correct"]
    left = in_tasks[in_tasks["checkpoint"] == ref][cols]
    right = in_tasks[in_tasks["checkpoint"] == checkpoint][cols]
    if left.empty or right.empty:
        return None
    merged = left.merge(right, on=["task", "doc_key"], suffixes=("_ref", "_ck"))
    n = len(merged)
    ref_ok = merged["correct_ref"].to_numpy()
    ck_ok = merged["correct_ck"].to_numpy()
    fixed = [_plain(k) for k in merged.loc[(ref_ok == 0) & (ck_ok == 1), "doc_key"]]
    broken = [_plain(k) for k in merged.loc[(ref_ok == 1) & (ck_ok == 0), "doc_key"]]
    ci = stats.paired_bootstrap_diff_ci(ref_ok, ck_ok, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return {
        "reference": ref,
        "checkpoint": checkpoint,
        "n_paired": n,
        "n_reference_only": len(left) - n,
        "n_checkpoint_only": len(right) - n,
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


def metrics_for_run(run, reference: str | None = None) -> dict[str, Any]:
    """:func:`compute_metrics` over a loaded :class:`~medbench.harness.run.rundir.Run` (its samples, its order)."""
    return compute_metrics(run.samples(), run.checkpoints, reference)


__all__ = [
    "RATE_INDICATORS",
    "REQUIRED_COLUMNS",
    "closest",
    "compute_metrics",
    "document_indicators",
    "metrics_for_run",
    "pick_reference",
]
