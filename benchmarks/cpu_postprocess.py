"""CPU post-processing of an evaluation: grading and metrics for 3 checkpoints x 10,000 samples (target: <= 5 s).

The completions come from the report test fixture (tests/report_fixture.py: PubMedQA, Health_Benchmarks,
GSM8K and a free-text chain-of-thought task, both layouts, every outcome), built untimed. Timed:

- ``grade`` of every completion exactly as the runner calls it (harness/sample_rows.py), once with the
  fixture's word-based token count and once with the evaluated model's tokenizer as counter (the real Qwen2 BPE,
  what the runner passes), plus the completion's own token count for the "hit the token limit" flag;
- ``compute_metrics`` over the 30,000 rows (per task, per subgroup, paired bootstrap and McNemar per pair).

The report itself is timed by benchmarks/report_scale.py (the report's owner). Writes
benchmarks/results/cpu_postprocess.json::

    python benchmarks/cpu_postprocess.py
    python benchmarks/cpu_postprocess.py --per-checkpoint 1000   # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fixture is shared with the report tests
QWEN = REPO.parent / "shared" / "realdata" / "tokenizers" / "Qwen2-1.5B-Instruct_via_Qwen2-Boundless"


def token_counter(kind: str):
    if kind == "words":
        from report_fixture import count_tokens

        return count_tokens
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.environ.get("MEDBENCH_TOKENIZER", str(QWEN)))

    def count(text: str) -> int:  # = medbench.harness.lm_backends.count_tokens_fn
        return len(tok(text, add_special_tokens=False)["input_ids"]) if text else 0

    return count


def grade_all(rows, count, judge) -> tuple[list[dict], float]:
    """Grade every row as harness/sample_rows.py does; returns the graded rows and the seconds it took."""
    from medbench.tasks.graders import grade

    t0 = time.perf_counter()
    graded = []
    for row in rows:
        completion_tokens = count(row["completion"])
        rec = grade(row["completion"], row["target"], layout=row["layout"], answer=row["answer_type"],
                    count_tokens=count, hit_token_limit=row["truncated"],
                    judge=judge if row["answer_type"] == "free" else None)
        graded.append({**row, **rec.to_dict(), "completion_tokens": completion_tokens})
    return graded, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-checkpoint", type=int, default=10_000, help="documents per checkpoint")
    ap.add_argument("--counters", default="words,tokenizer",
                    help="token counters to time grade with: words (the fixture's count), tokenizer (the model's "
                         "tokenizer, as the runner passes it)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cpu_postprocess.json"),
                    help="results JSON path")
    args = ap.parse_args(argv)

    import pandas as pd
    from medbench.harness.metrics import compute_metrics
    from report_fixture import DEFAULT_SIZES, build_samples, overlap_judge

    scale = args.per_checkpoint / sum(DEFAULT_SIZES.values())
    sizes = {k: round(v * scale) for k, v in DEFAULT_SIZES.items()}
    t0 = time.perf_counter()
    rows = build_samples(sizes)
    build_s = time.perf_counter() - t0
    result: dict = {
        "benchmark": "cpu_postprocess",
        "what": "grade (as the runner calls it) + compute_metrics for 3 checkpoints; report: see report_scale.json",
        "command": " ".join([sys.executable, *sys.argv]),
        "device": {"cpu": platform.processor() or platform.machine(), "usable_cpus": len(os.sched_getaffinity(0)),
                   "load_average_1m_at_start": os.getloadavg()[0]},
        "versions": {"python": platform.python_version(), "pandas": pd.__version__},
        "samples": len(rows), "per_task_per_checkpoint": sizes,
        "fixture_build_s_not_timed": round(build_s, 2), "grade": {}, "target_s": 5.0,
    }
    graded = rows
    for counter in [c.strip() for c in args.counters.split(",") if c.strip()]:
        graded, seconds = grade_all(rows, token_counter(counter), overlap_judge)
        result["grade"][counter] = {"seconds": round(seconds, 3),
                                    "us_per_sample": round(1e6 * seconds / len(rows), 1)}
        print(counter, result["grade"][counter], flush=True)
    frame = pd.DataFrame(graded)
    times = []
    for _ in range(2):  # the first call also pays scipy/statsmodels' lazy imports
        t0 = time.perf_counter()
        metrics = compute_metrics(frame, ["base", "sft", "grpo"])
        times.append(time.perf_counter() - t0)
    result["metrics"] = {"first_s": round(times[0], 3), "second_s": round(times[1], 3),
                         "per_task_records": len(metrics["per_task"]), "pair_records": len(metrics["pairs"])}
    result["totals_s"] = {c: round(g["seconds"] + times[0], 3) for c, g in result["grade"].items()}
    result["met"] = {c: t <= 5.0 for c, t in result["totals_s"].items()}
    result["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("samples", "grade", "metrics", "totals_s", "met")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
