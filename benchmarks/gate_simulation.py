"""How often does `medbench gate` cry wolf, and how often does it catch a real 5-point drop?

    python benchmarks/gate_simulation.py                 # 2000 trials per scenario, n = 500 (a few minutes)
    python benchmarks/gate_simulation.py --trials 200    # quick look

Model: each of n questions has its own chance p_i of being answered correctly, p_i ~ Beta with mean
``--accuracy`` and concentration ``--concentration`` (small = questions are mostly always-right or always-wrong,
as for a real model). Every trial draws fresh per-question outcomes for the baseline and the candidate:

* identical checkpoints: both draw from the same p_i (sampling noise only: the "resampled outcomes" case);
* a true 5-point drop: the candidate draws from p_i shifted on the logit scale so that its expected accuracy is
  exactly 5 points lower.

Paired scenarios score the same n questions on both sides; unpaired ones draw a separate set of n questions
for the candidate. Rules on accuracy: ``non_inferiority_margin: 0`` and ``0.02`` (statistical) and
``max_drop: 0.02`` (point estimate, for contrast). The statistical rule's p-value is the larger of the exact
test of "worse at all" and, above margin 0, the score test at the margin (monotone in the margin). Each trial's verdicts come from the same stats calls the gate
makes; the first ``--gate-trials`` trials of every scenario also go through the whole gate (``evaluate_gate``
on in-memory runs) and must give identical verdicts (the run stops otherwise), so the numbers are the gate's.
Writes benchmarks/results/gate_simulation.json with versions and this command.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from medbench.harness.gate.baseline import ScoredRun
from medbench.harness.gate.evaluate import EPS, evaluate_gate
from medbench.harness.gate.rules import parse_rules
from medbench.harness.stats import paired as stats
from medbench.harness.stats.metrics import RATE_INDICATORS
from medbench.harness.stats.paired import wilson_interval
from scipy import integrate, optimize, special
from scipy import stats as sps

RULES = {
    "NI margin 0 (statistical)": {"non_inferiority_margin": 0.0},
    "NI margin 0.02 (statistical)": {"non_inferiority_margin": 0.02},
    "max_drop 0.02 (point estimate)": {"max_drop": 0.02},
}
INDICATOR_COLUMNS = tuple(RATE_INDICATORS.values())
CHECK_OF = {"non_inferiority_margin": {0.0: "NI margin 0 (statistical)", 0.02: "NI margin 0.02 (statistical)"},
            "max_drop": {0.02: "max_drop 0.02 (point estimate)"}}


def logit_shift_for_drop(a: float, b: float, drop: float) -> float:
    """Shift s such that E[expit(logit(p) - s)] = E[p] - drop for p ~ Beta(a, b)."""
    target = a / (a + b) - drop

    def mean_after(s: float) -> float:
        f = lambda p: special.expit(special.logit(p) - s) * sps.beta.pdf(p, a, b)
        return integrate.quad(f, 0, 1, limit=200)[0]

    return optimize.brentq(lambda s: mean_after(s) - target, 0.0, 5.0)


def scored(name: str, keys: np.ndarray, correct: np.ndarray) -> ScoredRun:
    """An in-memory run with one task: the same shape load_scored gives the gate, built without parquet."""
    documents = pd.DataFrame({"checkpoint": "model", "task": "sim", "doc_key": pd.Series(keys, dtype=object)})
    for column in INDICATOR_COLUMNS:
        documents[column] = np.nan
    documents["correct"] = correct.astype(float)
    documents["unparseable"] = 0.0
    # the record agrees with the documents, as the gate checks (ScoredRun.verify): counts and every rate
    record = {"checkpoint": "model", "task": "sim", "subgroup": None, "task_version": 1, "n": len(keys),
              "n_correct": int(correct.sum()), "n_wrong": int(len(keys) - correct.sum()), "n_unparseable": 0,
              "accuracy": float(correct.mean()), "unparseable_rate": 0.0}
    return ScoredRun(source=Path(name), kind="simulated run", run_id=name, checkpoints=["model"], roles={},
                     per_task=[record], documents=documents)


def direct_verdicts(base: np.ndarray, cand: np.ndarray, paired: bool, alpha: float) -> dict[str, bool]:
    """Whether each rule fails, by the very calls the gate makes (medbench.harness.gate.evaluate._evaluate)."""
    test = stats.paired_regression_test if paired else stats.unpaired_regression_test
    b, c = base.astype(float), cand.astype(float)
    return {
        "NI margin 0 (statistical)": bool(test(b, c, 0.0).p_value <= alpha),
        "NI margin 0.02 (statistical)": bool(test(b, c, 0.02).p_value <= alpha),
        "max_drop 0.02 (point estimate)": bool(b.mean() - c.mean() > 0.02 + EPS),
    }


def gate_verdicts(base, cand, keys_base, keys_cand, rules, paired) -> dict[str, bool]:
    """The same verdicts through the whole gate (evaluate_gate on in-memory runs)."""
    candidate, baseline = scored("candidate", keys_cand, cand), scored("baseline", keys_base, base)
    out = {}
    for rule_set in rules:
        for r in evaluate_gate(candidate, baseline, rule_set, [("model", "model")]).results:
            assert r.test is None or r.test.paired == paired
            out[CHECK_OF[r.rule.check][r.rule.threshold]] = bool(r.status == "fail")
    return out


def run_scenario(rng, trials, n, a, b, shift, paired, rules, alpha, gate_trials):
    fails = {label: 0 for label in RULES}
    discordance = []
    keys_base = np.array([f"q{i}" for i in range(n)])
    keys_cand = keys_base if paired else np.array([f"r{i}" for i in range(n)])
    for trial in range(trials):
        p_base = rng.beta(a, b, size=n)
        p_cand_docs = p_base if paired else rng.beta(a, b, size=n)
        p_cand = special.expit(special.logit(p_cand_docs) - shift) if shift else p_cand_docs
        base = rng.random(n) < p_base
        cand = rng.random(n) < p_cand
        if paired:
            discordance.append(float((base != cand).mean()))
        verdicts = direct_verdicts(base, cand, paired, alpha)
        if trial < gate_trials:  # the shortcut must agree with the real gate, verdict for verdict
            full = gate_verdicts(base, cand, keys_base, keys_cand, rules, paired)
            if full != verdicts:
                raise AssertionError(f"trial {trial}: gate {full} != direct {verdicts}")
        for label, failed in verdicts.items():
            fails[label] += failed
    out = {}
    for label, k in fails.items():
        low, high = wilson_interval(k, trials)
        out[label] = {"fail_rate": k / trials, "fail_rate_ci95": [round(low, 4), round(high, 4)], "fails": k}
    return out, (float(np.mean(discordance)) if discordance else None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=2000, help="trials per scenario (>= 1000 for the README numbers)")
    ap.add_argument("--n", type=int, default=500, help="questions per run")
    ap.add_argument("--accuracy", type=float, default=0.6, help="baseline expected accuracy")
    ap.add_argument("--concentration", type=float, nargs="+", default=[1.0, 0.25],
                    help="Beta concentration(s) of per-question difficulty: smaller = a more consistent model, "
                         "fewer questions that flip between runs (1.0: ~24%% flip; 0.25: ~10%%)")
    ap.add_argument("--drop", type=float, default=0.05, help="true accuracy drop of the regressed candidate")
    ap.add_argument("--alpha", type=float, default=0.05, help="one-sided level of the statistical rules")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--gate-trials", type=int, default=100,
                    help="trials per scenario also run through the whole gate (evaluate_gate) to prove the fast "
                         "path gives the same verdicts")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gate_simulation.json"),
                    help="JSON file to write")
    args = ap.parse_args(argv)

    # Two rule files (one task can hold one margin): the gate is evaluated once per file and trial.
    rules = [
        parse_rules({"alpha": args.alpha, "rules": {"sim": {"accuracy": {"non_inferiority_margin": 0.0, "max_drop": 0.02}}}}),
        parse_rules({"alpha": args.alpha, "rules": {"sim": {"accuracy": {"non_inferiority_margin": 0.02}}}}),
    ]
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    settings = []
    for concentration in args.concentration:
        a, b = args.accuracy * concentration, (1 - args.accuracy) * concentration
        shift = logit_shift_for_drop(a, b, args.drop)
        results, discordance = {}, None
        for scenario, sh in (("identical", 0.0), (f"drop_{round(args.drop * 100)}_points", shift)):
            for paired in (True, False):
                key = f"{scenario}/{'paired' if paired else 'unpaired'}"
                print(f"concentration {concentration} {key}: {args.trials} trials at n={args.n} ...",
                      file=sys.stderr, flush=True)
                results[key], disc = run_scenario(rng, args.trials, args.n, a, b, sh, paired, rules, args.alpha,
                                                  args.gate_trials)
                if key == "identical/paired":
                    discordance = round(disc, 4)
        settings.append({
            "concentration": concentration, "logit_shift_for_drop": round(shift, 5),
            "mean_discordance_identical": discordance, "results": results,
        })
    elapsed = time.perf_counter() - started

    statistical = [label for label in RULES if "statistical" in label]
    false_alarm_ok = all(
        s["results"][f"identical/{p}"][label]["fail_rate"] <= args.alpha
        for s in settings for p in ("paired", "unpaired") for label in statistical
    )
    report = {
        "benchmark": "gate_simulation",
        "command": " ".join(["python benchmarks/gate_simulation.py", *(argv if argv is not None else sys.argv[1:])]),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "device": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                   "python": platform.python_version()},
        "versions": {p: version(p) for p in ("medbench", "numpy", "scipy", "statsmodels", "pandas")},
        "parameters": {"n": args.n, "trials_per_scenario": args.trials, "alpha_one_sided": args.alpha,
                       "baseline_accuracy": args.accuracy, "true_drop": args.drop, "seed": args.seed,
                       "trials_checked_through_evaluate_gate": min(args.gate_trials, args.trials)},
        "settings": settings,
        "false_alarm_rate_of_statistical_rules_le_alpha": false_alarm_ok,
        "elapsed_s": round(elapsed, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for setting in settings:
        print(f"concentration {setting['concentration']} "
              f"(identical checkpoints disagree on {setting['mean_discordance_identical']:.0%} of questions)")
        for key, by_rule in setting["results"].items():
            for label, r in by_rule.items():
                print(f"  {key:28s} {label:32s} fail rate {r['fail_rate']:.3f}  95% CI {r['fail_rate_ci95']}")
    print(f"wrote {out} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
