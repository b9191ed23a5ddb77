"""The regression gate: check a candidate run against a baseline under rules (see rules.py).

    candidate = load_scored("runs/pr"); baseline = load_scored("baselines/main.json")
    result = evaluate_gate(candidate, baseline, load_rules("gate-rules.yaml"),
                           choose_checkpoints(candidate, baseline))
    result.exit_code   # 0 pass, 1 regression or nothing to vouch for

The gate **fails closed**: a pass means every required check ran and held. Each of these is a failure
(:class:`Closed`, exit 1) with a message naming what is missing: a gated checkpoint that failed in its run (or
has no results), a task the rules name or that one side has and the other lacks (unless the rules say
``allow_missing: true`` for it), a candidate run that did not finish, and zero applicable checks. Numbers that
disagree with their documents (metrics.json against samples.parquet) are a damaged input
(:class:`~medbench.harness.gate.baseline.InconsistentRunError`, exit 2): no verdict is given.

Statistical checks are paired when both sides scored exactly the same documents of a task (by ``doc_key``),
unpaired otherwise, and every verdict says which. Metric values come from each side's metrics.json records
(or the baseline file's copy of them); statistical checks use the per-document indicators behind those rates.
Renderers (terminal, Markdown, JUnit XML) live in :mod:`medbench.harness.gate.outputs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from medbench.harness.gate.baseline import ScoredRun
from medbench.harness.gate.rules import GateConfigError, GateRules, Rule
from medbench.harness.stats import paired as stats

#: Slack for comparing thresholds with rates computed as k / n (so 0.5 >= 0.5 never fails on rounding).
EPS = 1e-9


@dataclass
class RuleResult:
    """One rule applied to one task of one candidate checkpoint."""

    candidate_checkpoint: str
    baseline_checkpoint: str
    task: str
    rule: Rule
    status: str  # "pass" | "fail" | "skip"
    detail: str
    candidate_value: float | None = None
    baseline_value: float | None = None
    unit: str | None = None  # "tokens"/"words" for length metrics
    test: stats.RegressionTest | None = None
    p_adjusted: float | None = None  # Holm-adjusted p when Holm is on
    #: the metric is an accuracy that rests on the offline similarity proxy judge on either side: labelled so
    proxy: bool = False


@dataclass(frozen=True)
class Closed:
    """Why the gate cannot vouch for a candidate although no rule regressed: the gate fails closed."""

    candidate_checkpoint: str | None
    baseline_checkpoint: str | None
    task: str | None  # the task (or group) concerned; None for the whole run or checkpoint
    message: str


@dataclass
class GateResult:
    candidate: ScoredRun
    baseline: ScoredRun
    rules: GateRules
    holm: bool
    checkpoint_pairs: list[tuple[str, str]]
    results: list[RuleResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    closed: list[Closed] = field(default_factory=list)

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.results if r.status == "fail"]

    @property
    def checked(self) -> list[RuleResult]:
        """Rule checks that ran (passed or failed; not the skipped ones)."""
        return [r for r in self.results if r.status != "skip"]

    @property
    def passed(self) -> bool:
        return not self.failures and not self.closed

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1


def _same_source(a: ScoredRun, b: ScoredRun) -> bool:
    return a.source.resolve() == b.source.resolve()


def choose_checkpoints(
    candidate: ScoredRun,
    baseline: ScoredRun,
    candidate_checkpoint: str | None = None,
    baseline_checkpoint: str | None = None,
    all_checkpoints: bool = False,
) -> list[tuple[str, str]]:
    """Which (candidate, baseline) checkpoints to compare.

    Default candidate: the last in lineage order (the most trained). Default baseline: the reference (base)
    checkpoint when both sides are the same run; else the baseline checkpoint of the same name; else the
    baseline's only checkpoint. ``all_checkpoints`` pairs every candidate checkpoint with the same-named one.
    """
    if all_checkpoints:
        if candidate_checkpoint or baseline_checkpoint:
            raise GateConfigError("--all-checkpoints pairs checkpoints by name: drop --candidate/--baseline-checkpoint")
        shared = [c for c in candidate.checkpoints if c in baseline.checkpoints]
        if not shared:
            raise GateConfigError(
                f"--all-checkpoints: no checkpoint name is in both runs (candidate: {candidate.checkpoints}, "
                f"baseline: {baseline.checkpoints}); pass --candidate-checkpoint and --baseline-checkpoint"
            )
        if _same_source(candidate, baseline):
            raise GateConfigError("--all-checkpoints compares two different runs; candidate and baseline are the same")
        return [(c, c) for c in shared]
    if not candidate.checkpoints:
        raise GateConfigError(f"{candidate.describe()} has no checkpoints")
    cand = candidate.require_checkpoint(candidate_checkpoint) if candidate_checkpoint else candidate.checkpoints[-1]
    if baseline_checkpoint:
        base = baseline.require_checkpoint(baseline_checkpoint)
    elif _same_source(candidate, baseline):
        base = baseline.reference
    elif cand in baseline.checkpoints:
        base = cand
    elif len(baseline.checkpoints) == 1:
        base = baseline.checkpoints[0]
    else:
        raise GateConfigError(
            f"the baseline has checkpoints {baseline.checkpoints} and none is named {cand!r}: "
            f"pass --baseline-checkpoint NAME"
        )
    if base is None or (base == cand and _same_source(candidate, baseline)):
        raise GateConfigError(
            f"candidate and baseline are the same run and the same checkpoint ({cand!r}): pass "
            f"--candidate-checkpoint / --baseline-checkpoint to pick two of {candidate.checkpoints}"
        )
    return [(cand, base)]


class _NotApplicable(Exception):
    """A rule cannot be evaluated for this task; skipped for "*" rules, a configuration error otherwise."""


#: Metrics that read the judge's verdicts where a task's answers are free text: proxy-labelled when it is the proxy.
JUDGED_METRICS: frozenset[str] = frozenset({"accuracy", "flexible_accuracy", "strict_accuracy", "judge_agreement"})
PROXY_NOTE = "proxy: judged by the offline similarity proxy, not an LLM judge; indicative only"


def format_rate(value: float) -> str:
    return f"{100 * value:.1f}%"


def format_value(rule: Rule, value: float | None, unit: str | None = None) -> str:
    if value is None:
        return "n/a"
    if rule.spec.is_rate:
        return format_rate(value)
    return f"{value:.1f}" + (f" {unit}" if unit else "")


def format_delta(rule: Rule, delta: float, unit: str | None = None) -> str:
    if rule.spec.is_rate:
        return f"{100 * delta:+.1f} pts"
    return f"{delta:+.1f}" + (f" {unit}" if unit else "")


def _values(rule: Rule, cand_rec: dict[str, Any], base_rec: dict[str, Any] | None, relative: bool):
    value = cand_rec.get(rule.metric)
    if value is None:
        raise _NotApplicable(f"{rule.metric} is not measured for this task")
    unit = cand_rec.get("reasoning_length_unit" if rule.metric.startswith("reasoning") else "answer_length_unit")
    unit = None if rule.spec.is_rate else unit
    if not relative:
        return float(value), None, unit
    if base_rec is None:
        raise _NotApplicable("the baseline has no results for this task")
    base_value = base_rec.get(rule.metric)
    if base_value is None:
        raise _NotApplicable(f"the baseline did not measure {rule.metric} for this task")
    if not rule.spec.is_rate:
        base_unit = base_rec.get("reasoning_length_unit" if rule.metric.startswith("reasoning") else "answer_length_unit")
        if base_unit != unit:
            raise _NotApplicable(f"lengths differ in unit (candidate {unit}, baseline {base_unit})")
    return float(value), float(base_value), unit


def _same_keys(a, b) -> bool:
    """Whether two doc_key indexes hold the same documents (keys are unique per checkpoint × task)."""
    return len(a) == len(b) and bool(a.isin(b).all())


@dataclass
class _TaskComparison:
    """One task (or task group) of one candidate checkpoint against one baseline checkpoint."""

    candidate: ScoredRun
    cand_ck: str
    baseline: ScoredRun
    base_ck: str
    task: str

    def __post_init__(self) -> None:
        self.candidate.verify(self.cand_ck, self.task)  # InconsistentRunError (exit 2): no verdict on such numbers
        self.baseline.verify(self.base_ck, self.task)
        self.cand_rec = self.candidate.record(self.cand_ck, self.task)
        self.base_rec = self.baseline.record(self.base_ck, self.task)
        self.cand_docs = self.candidate.task_documents(self.cand_ck, self.task)
        self.base_docs = self.baseline.task_documents(self.base_ck, self.task)
        self.paired = _same_keys(self.cand_docs.index, self.base_docs.index)

    def pairing_note(self) -> str:
        if self.paired:
            return f"{self.task}: paired on the {len(self.cand_docs)} documents both runs scored"
        shared = int(self.cand_docs.index.isin(self.base_docs.index).sum())
        return (
            f"{self.task}: UNPAIRED: the runs scored different documents (candidate {len(self.cand_docs)}, baseline "
            f"{len(self.base_docs)}, {shared} shared), so statistical checks use an unpaired test and have less power"
        )

    def regression_test(self, rule: Rule) -> stats.RegressionTest:
        cand = self.cand_docs[rule.spec.indicator].dropna()
        base = self.base_docs[rule.spec.indicator].dropna()
        if cand.empty or base.empty:
            raise _NotApplicable(f"{rule.metric} has no per-document values on one side")
        # Every test asks "worse by more than the margin" on a higher-is-better scale.
        if not rule.spec.higher_is_better:
            cand, base = 1.0 - cand, 1.0 - base
        if self.paired and _same_keys(cand.index, base.index):
            return stats.paired_regression_test(base.loc[cand.index].to_numpy(), cand.to_numpy(), rule.threshold)
        return stats.unpaired_regression_test(base.to_numpy(), cand.to_numpy(), rule.threshold)

    def changed_documents(self, rule: Rule) -> list[str]:
        """Document keys whose indicator differs between the runs (defined vs undefined counts too)."""
        cand = self.cand_docs[rule.spec.indicator]
        c = cand.to_numpy(dtype=float)
        b = self.base_docs[rule.spec.indicator].loc[cand.index].to_numpy(dtype=float)
        differs = ~((c == b) | (np.isnan(c) & np.isnan(b)))
        return [str(k) for k in cand.index[differs]]


def _evaluate(rule: Rule, alpha: float, cmp: _TaskComparison) -> RuleResult:
    result = RuleResult(cmp.cand_ck, cmp.base_ck, cmp.task, rule, "pass", "")
    result.proxy = rule.metric in JUDGED_METRICS and any(
        bool(rec is not None and rec.accuracy_proxy) for rec in (cmp.cand_rec, cmp.base_rec))
    check, thr = rule.check, rule.threshold
    value, base_value, unit = _values(rule, cmp.cand_rec, cmp.base_rec, relative=check not in ("min", "max"))
    result.candidate_value, result.baseline_value, result.unit = value, base_value, unit
    if check == "min":
        ok = value >= thr - EPS
        result.detail = f"{format_value(rule, value, unit)} {'≥' if ok else '<'} min {format_value(rule, thr, unit)}"
    elif check == "max":
        ok = value <= thr + EPS
        result.detail = f"{format_value(rule, value, unit)} {'≤' if ok else '>'} max {format_value(rule, thr, unit)}"
    elif check in ("max_drop", "max_increase", "max_change"):
        moved = {"max_drop": base_value - value, "max_increase": value - base_value}.get(check, abs(value - base_value))
        ok = moved <= thr + EPS
        allowed = {"max_drop": "drop", "max_increase": "rise"}.get(check, "change")
        result.detail = (
            f"{format_value(rule, base_value, unit)} → {format_value(rule, value, unit)} "
            f"({format_delta(rule, value - base_value, unit)}; allowed {allowed} "
            f"{format_delta(rule, thr, unit).lstrip('+')}; point estimates, no test)"
        )
    elif check == "max_changed_documents":
        if not cmp.paired:  # a different document set is itself a change
            ok = False
            result.detail = "the runs scored different documents, so outcomes cannot be compared document by document"
        else:
            changed = cmp.changed_documents(rule)
            ok = len(changed) <= thr
            shown = ", ".join(changed[:5]) + (", …" if len(changed) > 5 else "")
            result.detail = f"{len(changed)} document(s) changed {rule.spec.indicator} (allowed {int(thr)})" + (
                f": {shown}" if changed else "")
    else:  # non_inferiority_margin
        result.test = cmp.regression_test(rule)
        ok = result.test.p_value > alpha  # Holm, when on, re-decides on the adjusted p-value
        result.detail = _test_detail(rule, result.test, alpha, None)
    result.status = "pass" if ok else "fail"
    if result.proxy:
        result.detail += f" [{PROXY_NOTE}]"
    return result


def _test_detail(rule: Rule, test: stats.RegressionTest, alpha: float, p_adjusted: float | None) -> str:
    sign = 1.0 if rule.spec.higher_is_better else -1.0  # back to the metric's own scale
    lo, hi = test.ci_low, test.ci_high
    ci = ""
    if lo is not None and hi is not None:
        lo, hi = sorted((sign * lo, sign * hi))
        ci = f" [{round(test.confidence * 100)}% CI {100 * lo:+.1f}, {100 * hi:+.1f}: for scale, the test decides]"
    p = test.p_value if p_adjusted is None else p_adjusted
    p_text = f"p={test.p_value:.3g}" + (f", Holm-adjusted {p_adjusted:.3g}" if p_adjusted is not None else "")
    n = f"n={test.n_candidate}" if test.paired else f"n={test.n_candidate} vs {test.n_reference}"
    return (
        f"Δ {100 * sign * test.diff:+.1f} pts{ci}; test for a {'drop' if sign > 0 else 'rise'} of more than "
        f"{100 * test.margin:.1f} pts: {p_text} {'≤' if p <= alpha else '>'} α={alpha:g} ({test.method}, {n})"
    )


def _closed_checkpoint(side: ScoredRun, checkpoint: str, which: str) -> str | None:
    """Why one gated checkpoint cannot be vouched for (it failed in its run, or has no results), or None."""
    if checkpoint in side.errors:
        return (f"{which} checkpoint {checkpoint!r} failed in its run ({side.errors[checkpoint]}): fix it and run "
                f"the same `medbench bench` command again to resume")
    if not side.tasks(checkpoint):
        return (f"{which} checkpoint {checkpoint!r} has no results in {side.describe()} (did it fail to load? see "
                f"run.json's errors and errors.log)")
    return None


def evaluate_gate(
    candidate: ScoredRun,
    baseline: ScoredRun,
    rules: GateRules,
    checkpoint_pairs: list[tuple[str, str]],
    holm: bool = False,
) -> GateResult:
    """Apply every rule to every task of each candidate checkpoint, failing closed (module docstring).

    Raises GateConfigError (exit 2) on rules that name a task neither run has, or explicit (non-"*") rules
    that cannot be evaluated; InconsistentRunError (exit 2) on metrics that disagree with their documents.
    """
    holm = holm or rules.holm
    notes = rules.check_tasks(list(dict.fromkeys(candidate.tasks() + candidate.groups() + baseline.tasks()
                                                 + baseline.groups())), "either run")
    gate = GateResult(candidate, baseline, rules, holm, checkpoint_pairs, notes=notes)
    if candidate.status == "running":
        gate.closed.append(Closed(None, None, None, (
            f"the candidate run {candidate.describe()} did not finish (run.json status 'running': interrupted?): "
            f"run the same `medbench bench` command again to finish it")))
    for cand_ck, base_ck in checkpoint_pairs:
        prefix = f"{cand_ck} vs {base_ck}: " if len(checkpoint_pairs) > 1 else ""
        dead = [m for m in (_closed_checkpoint(candidate, cand_ck, "candidate"),
                            _closed_checkpoint(baseline, base_ck, "baseline")) if m]
        for message in dead:
            gate.closed.append(Closed(cand_ck, base_ck, None, message))
        if dead:
            continue  # a failed checkpoint is not compared task by task: the run has to be finished first
        cand_tasks, cand_groups = candidate.tasks(cand_ck), candidate.groups(cand_ck)
        base_tasks, base_groups = baseline.tasks(base_ck), baseline.groups(base_ck)
        explicit = rules.tasks
        # every task the rules name, or one side has, must be on both sides (unless allowed to be missing)
        every_task = any(r.from_wildcard for r in rules.rules)  # "*": every task either side has is gated
        wanted = list(dict.fromkeys(explicit + (cand_tasks + base_tasks if every_task else [])))
        missing_in_base: set[str] = set()
        for task in wanted:
            in_cand = task in cand_tasks or task in cand_groups
            in_base = task in base_tasks or task in base_groups
            named = "the rules name" if task in explicit else "the other side has"
            if in_cand and in_base:
                continue
            if rules.missing_allowed(task):
                skipped = "rules are skipped" if not in_cand else "checks against the baseline are skipped"
                gate.notes.append(f"{prefix}{task}: not in the {'candidate' if not in_cand else 'baseline'} "
                                  f"checkpoint; allowed by allow_missing, so its {skipped}")
                if in_cand:
                    missing_in_base.add(task)
                continue
            if not in_cand:
                gate.closed.append(Closed(cand_ck, base_ck, task, (
                    f"candidate checkpoint {cand_ck!r} has no results for task {task!r}, which {named}"
                    f"{' (and the baseline has)' if in_base and task in explicit else ''}: run it, or set "
                    f"allow_missing: true on {task!r} in the rules")))
            else:
                gate.closed.append(Closed(cand_ck, base_ck, task, (
                    f"baseline checkpoint {base_ck!r} has no results for task {task!r}, which {named}: nothing to "
                    f"compare with (re-save the baseline from a run with this task, or set allow_missing: true "
                    f"on {task!r} in the rules)")))
        # "*" rules apply to tasks; a group (pooled over its tasks) is checked only when the rules name it.
        for task in cand_tasks + [g for g in cand_groups if g in explicit]:
            applicable = rules.for_task(task, is_group=task not in cand_tasks)
            if not applicable:
                continue
            has_base = task in base_tasks or task in base_groups
            if not has_base and task not in missing_in_base:
                continue  # already a closed failure above (or no rule reaches it)
            cmp = _TaskComparison(candidate, cand_ck, baseline, base_ck, task)
            if cmp.base_rec is not None:
                gate.notes.append(prefix + cmp.pairing_note())
                cv, bv = cmp.cand_rec.get("task_version"), cmp.base_rec.get("task_version")
                if cv != bv:
                    gate.notes.append(
                        f"{prefix}{task}: task version differs (candidate {cv}, baseline {bv}): prompts or grading "
                        f"changed, so differences may not be the model's"
                    )
            for rule in applicable:
                if cmp.base_rec is None and rule.check not in ("min", "max"):
                    gate.results.append(RuleResult(cand_ck, base_ck, task, rule, "skip",
                                                   "not applicable: the baseline lacks this task (allow_missing)"))
                    continue
                try:
                    gate.results.append(_evaluate(rule, rules.alpha, cmp))
                except _NotApplicable as e:
                    if not rule.from_wildcard:
                        raise GateConfigError(
                            f"{rules.source}: {rule.where} cannot be checked for checkpoint {cand_ck!r}: {e}"
                        ) from None
                    gate.results.append(RuleResult(cand_ck, base_ck, task, rule, "skip", f"not applicable: {e}"))
    if not gate.checked and not gate.closed:
        skipped = len(gate.results)
        gate.closed.append(Closed(None, None, None, (
            f"no rule check applied ({skipped} skipped as not applicable): nothing was verified, so nothing "
            f"passed; check that {rules.source} names metrics the runs measure")))
    _apply_holm(gate)
    return gate


def _apply_holm(gate: GateResult) -> None:
    tested = [r for r in gate.results if r.test is not None]
    if not gate.holm or not tested:
        return
    adjusted = stats.holm_adjust([r.test.p_value for r in tested])
    for r, p in zip(tested, adjusted):
        r.p_adjusted = p
        r.status = "pass" if p > gate.rules.alpha else "fail"
        r.detail = _test_detail(r.rule, r.test, gate.rules.alpha, p) + (f" [{PROXY_NOTE}]" if r.proxy else "")
    gate.notes.append(f"Holm correction across {len(tested)} statistical checks (family-wise α={gate.rules.alpha:g})")


__all__ = ["EPS", "Closed", "GateResult", "RuleResult", "choose_checkpoints", "evaluate_gate"]
