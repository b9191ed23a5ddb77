"""How often does `medbench gate` cry wolf, and how often does it catch a real 5-point drop?

    python benchmarks/gate_simulation.py                 # 2000 trials per scenario, n = 500 (about a minute)
    python benchmarks/gate_simulation.py --trials 200    # quick look

Model: each of n questions has its own chance p_i of being answered correctly, p_i ~ Beta with mean
``--accuracy`` and concentration ``--concentration`` (small = questions are mostly always-right or always-wrong,
as for a real model). Every trial draws fresh per-question outcomes for the baseline and the candidate:

* identical checkpoints: both draw from the same p_i (sampling noise only: the "resampled outcomes" case);
* a true 5-point drop: the candidate draws from p_i shifted on the logit scale so that its expected accuracy is
  exactly 5 points lower.

Paired scenarios score the same n questions on both sides; unpaired ones draw a separate set of n questions
for the candidate. Every trial goes through the real gate (``evaluate_gate`` on in-memory runs) with these rules
on accuracy: ``non_inferiority_margin: 0`` and ``0.02`` (statistical) and ``max_drop: 0.02`` (point estimate,
for contrast). Writes benchmarks/results/gate_simulation.json with versions and this command.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special, stats as sps

from medbench.harness.baseline import ScoredRun
from medbench.harness.gate import evaluate_gate
from medbench.harness.gate_rules import parse_rules
from medbench.harness.metrics import RATE_INDICATORS
from medbench.harness.stats import wilson_interval

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
        f = lambda p: special.expit(special.logit(p) - s) * sps.beta.pdf(p, a, b)  # noqa: E731
        return integrate.quad(f, 0, 1, limit=200)[0]

    return optimize.brentq(lambda s: mean_after(s) - target, 0.0, 5.0)


def scored(name: str, keys: np.ndarray, correct: np.ndarray) -> ScoredRun:
    """An in-memory run with one task: the same shape load_scored gives the gate, built without parquet."""
    documents = pd.DataFrame({"checkpoint": "model", "task": "sim", "doc_key": pd.Series(keys, dtype=object)})
    for column in INDICATOR_COLUMNS:
        documents[column] = np.nan
    documents["correct"] = correct.astype(float)
    documents["unparseable"] = 0.0
    record = {"checkpoint": "model", "task": "sim", "subgroup": None, "task_version": 1, "n": len(keys),
              "accuracy": float(correct.mean())}
    return ScoredRun(source=Path(name), kind="simulated run", run_id=name, checkpoints=["model"], roles={},
                     per_task=[record], documents=documents)


def run_scenario(rng, trials, n, a, b, shift, paired, rules):
    fails = {label: 0 for label in RULES}
    discordance = []
    keys_base = np.array([f"q{i}" for i in range(n)])
    keys_other = np.array([f"r{i}" for i in range(n)])
    for _ in range(trials):
        p_base = rng.beta(a, b, size=n)
        p_cand_docs = p_base if paired else rng.beta(a, b, size=n)
        p_cand = special.expit(special.logit(p_cand_docs) - shift) if shift else p_cand_docs
        base = rng.random(n) < p_base
        cand = rng.random(n) < p_cand
        if paired:
            discordance.append(float((base != cand).mean()))
        candidate = scored("candidate", keys_base if paired else keys_other, cand)
        baseline = scored("baseline", keys_base, base)
        verdicts = [r for rule_set in rules for r in evaluate_gate(candidate, baseline, rule_set, [("model", "model")]).results]
        for r in verdicts:
            if r.status == "fail":
                fails[CHECK_OF[r.rule.check][r.rule.threshold]] += 1
            assert r.test is None or r.test.paired == paired
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
    ap.add_argument("--concentration", type=float, default=1.0,
                    help="Beta concentration of per-question difficulty (smaller = more consistent model)")
    ap.add_argument("--drop", type=float, default=0.05, help="true accuracy drop of the regressed candidate")
    ap.add_argument("--alpha", type=float, default=0.05, help="one-sided level of the statistical rules")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gate_simulation.json"),
                    help="JSON file to write")
    args = ap.parse_args(argv)

    a, b = args.accuracy * args.concentration, (1 - args.accuracy) * args.concentration
    shift = logit_shift_for_drop(a, b, args.drop)
    # Two rule files (one task can hold one margin): the gate is evaluated once per file and trial.
    rules = [
        parse_rules({"alpha": args.alpha, "rules": {"sim": {"accuracy": {"non_inferiority_margin": 0.0, "max_drop": 0.02}}}}),
        parse_rules({"alpha": args.alpha, "rules": {"sim": {"accuracy": {"non_inferiority_margin": 0.02}}}}),
    ]
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    results, discordance = {}, {}
    for scenario, sh in (("identical", 0.0), (f"drop_{round(args.drop * 100)}_points", shift)):
        for paired in (True, False):
            key = f"{scenario}/{'paired' if paired else 'unpaired'}"
            print(f"{key}: {args.trials} trials at n={args.n} ...", file=sys.stderr, flush=True)
            results[key], disc = run_scenario(rng, args.trials, args.n, a, b, sh, paired, rules)
            if disc is not None:
                discordance[key] = round(disc, 4)
    elapsed = time.perf_counter() - started

    statistical = [label for label in RULES if "statistical" in label]
    false_alarm_ok = all(
        results[f"identical/{p}"][label]["fail_rate"] <= args.alpha for p in ("paired", "unpaired") for label in statistical
    )
    report = {
        "benchmark": "gate_simulation",
        "command": "python benchmarks/gate_simulation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                   "python": platform.python_version()},
        "versions": {p: version(p) for p in ("medbench", "numpy", "scipy", "statsmodels", "pandas")},
        "parameters": {"n": args.n, "trials": args.trials, "alpha_one_sided": args.alpha,
                       "baseline_accuracy": args.accuracy, "concentration": args.concentration,
                       "true_drop": args.drop, "logit_shift": round(shift, 5), "seed": args.seed},
        "mean_discordance": discordance,
        "results": results,
        "false_alarm_rate_of_statistical_rules_le_alpha": false_alarm_ok,
        "elapsed_s": round(elapsed, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for key, by_rule in results.items():
        for label, r in by_rule.items():
            print(f"{key:28s} {label:32s} fail rate {r['fail_rate']:.3f}  95% CI {r['fail_rate_ci95']}")
    print(f"wrote {out} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
