"""The gate's rules file: which metrics of which tasks must hold, and how they are checked.

Example (``examples/gate-rules.yaml`` is the annotated version)::

    alpha: 0.05              # one-sided level of every statistical check
    holm: false              # Holm-correct the statistical checks across all rules (also: --holm)
    rules:
      "*":                   # every task of the candidate
        accuracy: {non_inferiority_margin: 0.0}
        truncation_rate: {max: 0.05}
      pubmedqa_medbench:     # a task's own rules override "*" for the same metric and check
        accuracy: {min: 0.45, max_drop: 0.05, non_inferiority_margin: 0.02}
        reasoning_tokens_median: {max: 400}
      medbench_health:       # a task group: pooled over its tasks (metrics.json per_group); "*" skips groups
        accuracy: {non_inferiority_margin: 0.0}
      medbench_gsm8k:
        allow_missing: true  # this task may be absent from either run (default: a missing task fails)
        accuracy: {min: 0.2}

The gate fails closed: nothing checked is not a pass. A gated checkpoint that failed in its run, a task that
the rules name or that one side has and the other lacks, and zero applicable checks are each a failure with
a message (exit 1) unless ``allow_missing: true`` is set on that task (or on ``"*"``: any task); a
metrics.json that disagrees with its samples.parquet is a damaged input (exit 2).

Checks:

``min`` / ``max``
    absolute bounds on the candidate's value.
``max_drop`` (higher-is-better metrics) / ``max_increase`` (lower-is-better metrics)
    the candidate's point estimate may move against the baseline by at most this much. Simple, but a point
    estimate: on small samples it fires on noise (benchmarks/gate_simulation.py measures how often).
``max_change``
    the point estimate may move at most this much in either direction (``0`` pins a metric exactly).
``max_changed_documents`` (per-document 0/1 metrics)
    at most this many documents may change their indicator (e.g. correct ↔ not correct) between the two
    runs; needs both runs to have scored the same documents. ``0`` makes the gate a determinism check: a
    change to grading or prompts that moves any answer fails until the baseline is re-saved on purpose.
``non_inferiority_margin``
    the statistical twin of max_drop, for per-document 0/1 metrics (accuracy, format rates, …): a one-sided
    test at level ``alpha`` of H0 "the candidate is at most ``margin`` worse" against H1 "it is worse by more
    than ``margin``". The rule fails only when H0 is rejected, i.e. when the data show a regression beyond the
    margin; the burden of proof is on the regression, which is what keeps false alarms on identical
    checkpoints at or below ``alpha``. Its p-value is the larger of the exact test of "worse at all" (McNemar
    paired, Fisher unpaired) and, above margin 0, the score test at the margin (Tango paired,
    Miettinen-Nurminen unpaired), so a wider margin never fails what a narrower one passes
    (:mod:`medbench.harness.stats.paired`). Paired when both runs scored the same documents, unpaired otherwise.

Rates and margins are fractions (0.05 = 5 points), lengths are in the run's reasoning-length unit (tokens, or
words where tokens were not recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.harness.run.records import METRICS
from medbench.harness.run.spec import yaml_load_unique
from medbench.harness.stats.metrics import closest
from medbench.tasks.errors import MedbenchError

WILDCARD = "*"
CHECKS: tuple[str, ...] = (
    "min", "max", "max_drop", "max_increase", "max_change", "max_changed_documents", "non_inferiority_margin",
)
TOP_LEVEL_KEYS: tuple[str, ...] = ("alpha", "holm", "rules")
#: Keys a task's entry may hold beside its metrics: options about the task itself.
TASK_OPTIONS: tuple[str, ...] = ("allow_missing",)
DEFAULT_ALPHA = 0.05


class GateConfigError(MedbenchError):
    """The rules, the chosen checkpoints or the runs don't fit together; the message names the fix."""


@dataclass(frozen=True)
class MetricSpec:
    """A metric the gate can check: a field of a metrics.json per_task record."""

    name: str
    higher_is_better: bool
    indicator: str | None  # per-document 0/1 column behind a rate; None for length summaries

    @property
    def is_rate(self) -> bool:
        return self.indicator is not None


#: Every metric of :data:`medbench.harness.run.records.METRICS` (the one list of metric names), checkable.
GATE_METRICS: dict[str, MetricSpec] = {
    m.name: MetricSpec(m.name, m.higher_is_better, m.indicator if m.kind == "rate" else None) for m in METRICS
}


@dataclass(frozen=True)
class Rule:
    task: str  # a task name or "*"
    metric: str
    check: str
    threshold: float

    @property
    def spec(self) -> MetricSpec:
        return GATE_METRICS[self.metric]

    @property
    def from_wildcard(self) -> bool:
        return self.task == WILDCARD

    @property
    def where(self) -> str:
        return f"rules.{self.task}.{self.metric}.{self.check}"


@dataclass(frozen=True)
class GateRules:
    source: Path
    alpha: float
    holm: bool
    rules: tuple[Rule, ...]
    #: Tasks (or "*": every task) that may be absent from either run; any other missing task fails the gate.
    allow_missing: frozenset[str] = frozenset()

    @property
    def tasks(self) -> list[str]:
        """Task names the rules mention (without "*")."""
        return list(dict.fromkeys(r.task for r in self.rules if not r.from_wildcard))

    def missing_allowed(self, task: str) -> bool:
        """Whether ``task`` may be absent from the candidate or the baseline (``allow_missing: true`` on it or
        on "*"); by default a missing task fails the gate."""
        return task in self.allow_missing or WILDCARD in self.allow_missing

    def for_task(self, task: str, is_group: bool = False) -> list[Rule]:
        """Rules that apply to ``task``: its own, plus "*" rules it does not override (same metric and
        check). A task group gets only its own rules ("*" means every task, and a group pools tasks)."""
        own = [r for r in self.rules if r.task == task]
        if is_group:
            return own
        overridden = {(r.metric, r.check) for r in own}
        inherited = [r for r in self.rules if r.from_wildcard and (r.metric, r.check) not in overridden]
        return inherited + own

    def check_tasks(self, known: list[str], where: str) -> list[str]:
        """Raise GateConfigError for rules naming a task not in ``known`` (a typo, most likely), except a task
        allowed to be missing; returns a note for each of those not in ``known`` (so a misspelled optional
        task is still pointed out)."""
        notes = []
        for task in self.tasks:
            if task not in known and self.missing_allowed(task):
                notes.append(f"rules name task {task!r} (allow_missing), which {where} does not have"
                             f"{closest(task, known)}")
            elif task not in known:
                raise GateConfigError(
                    f"{self.source}: rules name task {task!r}, which {where} does not have{closest(task, known)}; "
                    f"tasks and task groups there: {known} (or use \"*\" for every task)"
                )
        return notes


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GateConfigError(f"{where} must be a number, got {value!r}")
    return float(value)


def _check_rule(rule: Rule, source: Path) -> None:
    spec, value, at = rule.spec, rule.threshold, f"{source}: {rule.where}"
    if rule.check == "max_drop" and not spec.higher_is_better:
        raise GateConfigError(f"{at}: {rule.metric} is lower-is-better, so it cannot drop; use max_increase")
    if rule.check == "max_increase" and spec.higher_is_better:
        raise GateConfigError(f"{at}: {rule.metric} is higher-is-better; use max_drop for how far it may fall")
    if rule.check == "max_changed_documents":
        if not spec.is_rate:
            raise GateConfigError(f"{at}: documents can only change a per-document 0/1 metric; {rule.metric} is a "
                                  f"length summary (use max_change)")
        if value < 0 or value != int(value):
            raise GateConfigError(f"{at}: a number of documents (an integer >= 0), got {value}")
        return
    if rule.check == "non_inferiority_margin":
        if not spec.is_rate:
            raise GateConfigError(
                f"{at}: statistical checks need per-document 0/1 outcomes; {rule.metric} is a length summary "
                f"(use max or max_increase). Rate metrics: {[m for m, s in GATE_METRICS.items() if s.is_rate]}"
            )
        if not 0.0 <= value < 1.0:
            raise GateConfigError(f"{at}: a margin is a fraction in [0, 1) (0.02 = 2 points), got {value}")
        return
    if value < 0:
        raise GateConfigError(f"{at}: must be >= 0, got {value}")
    if spec.is_rate and value > 1.0:
        raise GateConfigError(f"{at}: rates are fractions in [0, 1] (write 0.8 for 80%), got {value}")


def parse_rules(data: Any, source: str | Path = "<rules>") -> GateRules:
    """Validate a parsed rules document; raises GateConfigError naming the bad key and what exists."""
    source = Path(source)
    if not isinstance(data, dict):
        raise GateConfigError(f"{source}: expected a mapping with keys {list(TOP_LEVEL_KEYS)}, got {type(data).__name__}")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise GateConfigError(f"{source}: unknown key {key!r}{closest(str(key), TOP_LEVEL_KEYS)}; keys: {list(TOP_LEVEL_KEYS)}")
    alpha = _number(data.get("alpha", DEFAULT_ALPHA), f"{source}: alpha")
    if not 0.0 < alpha <= 0.5:
        raise GateConfigError(f"{source}: alpha is a one-sided significance level in (0, 0.5], got {alpha}")
    holm = data.get("holm", False)
    if not isinstance(holm, bool):
        raise GateConfigError(f"{source}: holm must be true or false, got {holm!r}")
    by_task = data.get("rules")
    if not isinstance(by_task, dict) or not by_task:
        raise GateConfigError(
            f"{source}: 'rules' must map task names (or \"*\") to metrics, e.g. rules: {{'*': {{accuracy: "
            f"{{non_inferiority_margin: 0.0}}}}}}"
        )
    rules: list[Rule] = []
    allow_missing: set[str] = set()
    for task, metrics in by_task.items():
        if not isinstance(metrics, dict) or not metrics:
            raise GateConfigError(f"{source}: rules.{task} must map metric names to checks, got {metrics!r}")
        if "allow_missing" in metrics:
            flag = metrics["allow_missing"]
            if not isinstance(flag, bool):
                raise GateConfigError(f"{source}: rules.{task}.allow_missing must be true or false, got {flag!r}")
            if flag:
                allow_missing.add(str(task))
            if len(metrics) == 1 and task != WILDCARD:
                raise GateConfigError(f"{source}: rules.{task} holds only allow_missing; name the metrics to check "
                                      f"when the task is there, e.g. accuracy: {{min: 0.5}}")
        for metric, checks in metrics.items():
            if metric in TASK_OPTIONS:
                continue
            if metric not in GATE_METRICS:
                raise GateConfigError(
                    f"{source}: rules.{task}: unknown metric {metric!r}"
                    f"{closest(str(metric), [*GATE_METRICS, *TASK_OPTIONS])}; metrics: {list(GATE_METRICS)} "
                    f"(and the task option {', '.join(TASK_OPTIONS)})"
                )
            if not isinstance(checks, dict) or not checks:
                raise GateConfigError(
                    f"{source}: rules.{task}.{metric} must map checks to numbers, e.g. {{min: 0.5}}; checks: {list(CHECKS)}"
                )
            for check, threshold in checks.items():
                if check not in CHECKS:
                    raise GateConfigError(
                        f"{source}: rules.{task}.{metric}: unknown check {check!r}{closest(str(check), CHECKS)}; "
                        f"checks: {list(CHECKS)}"
                    )
                rule = Rule(str(task), str(metric), str(check), _number(threshold, f"{source}: rules.{task}.{metric}.{check}"))
                _check_rule(rule, source)
                rules.append(rule)
    if not rules:
        raise GateConfigError(f"{source}: the rules name no check: add at least one metric with a check, e.g. "
                              f"rules: {{'*': {{accuracy: {{non_inferiority_margin: 0.0}}}}}}")
    return GateRules(source=source, alpha=alpha, holm=holm, rules=tuple(rules),
                     allow_missing=frozenset(allow_missing))


def load_rules(path: str | Path) -> GateRules:
    """Read and validate a rules YAML file."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise GateConfigError(f"cannot read rules file {path}: {e.strerror or e}") from e
    try:
        data = yaml_load_unique(text)  # a key given twice is an error, not a silently dropped rule
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise GateConfigError(f"{path} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from e
    return parse_rules(data, path)
