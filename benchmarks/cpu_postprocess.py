"""CPU post-processing of an evaluation, end to end: 3 checkpoints x 10,000 samples in <= 5 s (issues 7, 14).

What ``medbench bench`` does on the CPU once the model has answered, and ``medbench report`` after it, timed
as one number against the target:

1. **grade**: ``harness.run.sample_rows.rows_from_samples`` per (checkpoint, task), exactly as the runner calls
   it, on lm-eval-shaped sample logs, with the evaluated model's tokenizer as the counter (the real Qwen2 BPE,
   through ``TokenizerCounter``): reasoning and answer tokens and the grade record of each document. The
   completion's token count, "hit the token limit" and where each token lies in the text come from the
   backend's generated ids (``generated=``, what ``hf`` and ``medbench-fast`` record, ``GeneratedTokens``; built
   here before the clock starts, the completions' tokenizer ids standing in for the generated ones), so the
   reasoning and answer regions are counted in those ids; with ``--no-generated`` the completions and regions
   are re-counted from the text (the fallback for vLLM);
2. **run directory**: the runner's write of each pair (``RunWriter.write_pair``) and ``finalize``'s read-back
   (``done_rows``: the writer's own files are not parsed again), the rows' DataFrame (built once, as finalize
   builds it, for samples.parquet and compute_metrics) and ``write_samples`` (samples.parquet);
3. **metrics**: ``compute_metrics`` (per task, per group, paired bootstrap and McNemar per pair) and
   ``write_metrics``;
4. **report**: ``medbench report``'s path (``harness.cli.report.render_runs``: load, comparisons vs base and
   parent with Holm, figures, sample-browser data, template, write).

The completions are the report test fixture's (tests/report_fixture.py: the realistic layout, PubMedQA, the 52
Health_Benchmarks specialty tasks, GSM8K and the free-text chain-of-thought task, scaled to 10,000 documents a
checkpoint; real PubMedQA / GSM8K text; both layouts, every outcome), turned into lm-eval sample logs of the
real medbench task specs; building them is not timed. The free-text task is judged by the
fixture's word-overlap proxy (the embedding proxy or an LLM judge is a model call, not post-processing).

Also measured, to say where the time goes: the tokenizer library's own time for exactly the texts counted
(one bare batched call, no medbench code), and with ``--per-text`` the old way (one tokenizer call per text).

    python benchmarks/cpu_postprocess.py                      # writes benchmarks/results/cpu_postprocess.json
    python benchmarks/cpu_postprocess.py --per-checkpoint 1000 --repeat 1 --out /tmp/quick.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medbench.harness.run.runner import PlannedTask

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fixture is shared with the report tests
QWEN = REPO.parent / "shared" / "realdata" / "tokenizers" / "Qwen2-1.5B-Instruct_via_Qwen2-Boundless"
TARGET_S = 5.0


def _task_name(row: dict[str, Any]) -> str:
    return str(row["task"])  # the fixture uses the real registry's task names


def _doc(family: str, row: dict[str, Any]) -> dict[str, Any]:
    """The document as medbench's loaders shape it for ``family`` (what scoring.doc_info reads)."""
    doc: dict[str, Any] = {"doc_key": row["doc_key"], "target": row["target"], "showcase": row["showcase"]}
    question_field = {"pubmedqa": "QUESTION", "health": "Questions", "medical_cot": "Question"}.get(family,
                                                                                                   "question")
    doc[question_field] = row["question"]
    if family == "health":
        doc["specialty"] = row["subgroup"]
    return doc


def lm_eval_logs(rows: list[dict[str, Any]]) -> list[tuple[str, PlannedTask, list[dict[str, Any]]]]:
    """The fixture's completions as lm-eval per-sample logs, one list per (checkpoint, task)."""
    from medbench.harness.run.runner import PlannedTask
    from medbench.tasks.registry import get_task

    logs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    specs: dict[str, Any] = {}
    prompts: set[tuple[str, str, str]] = set()
    for row in rows:
        name = _task_name(row)
        spec = specs.setdefault(name, get_task(name))
        # The fixture reuses its real questions to reach 10,000 documents; a real evaluation's documents have
        # prompts of their own, and the backend's counts are keyed by request: a repeated prompt is made unique.
        prompt = row["prompt"]
        if (row["checkpoint"], name, prompt) in prompts:
            prompt = f"{prompt}\n(document {row['doc_key']})"
        prompts.add((row["checkpoint"], name, prompt))
        logs.setdefault((row["checkpoint"], name), []).append({
            "doc_id": len(logs.get((row["checkpoint"], name), [])), "doc": _doc(spec.family, row),
            "arguments": [[prompt, {"until": ["</answer>"], "max_gen_toks": spec.max_gen_toks}]],
            "resps": [[row["completion"]]], "filtered_resps": [row["completion"]], "doc_hash": row["doc_key"],
        })
    return [(ck, PlannedTask(specs[name], specs[name].max_gen_toks, chat_template=True, chat_template_explicit=False), samples) for (ck, name), samples in logs.items()]


def run_meta(logs: list[tuple[str, PlannedTask, list[dict[str, Any]]]]) -> dict[str, Any]:
    """run.json as the runner writes it, for the fixture's checkpoints and these tasks."""
    from report_fixture import fixture_meta

    meta = fixture_meta("cpu-postprocess")
    specs = {task.name: task.spec for _, task, _ in logs}
    meta["tasks"] = [{"name": s.name, "family": s.family, "group": s.group, "subgroup": s.subgroup,
                      "version": s.version, "output_type": s.output_type, "layout": s.layout, "answer": s.answer,
                      "letters": s.letters, "max_gen_toks": s.max_gen_toks, "chat_template": s.layout == "xml"}
                     for s in specs.values()]
    return meta


def _tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(os.environ.get("MEDBENCH_TOKENIZER", str(QWEN)))


def generated_counts(logs: list[tuple[str, PlannedTask, list[dict[str, Any]]]], tokenizer: Any
                     ) -> dict[tuple[str, str], dict[str, Any]]:
    """What the backend records while generating (how many ids it generated, whether it hit the limit, where
    each id lies in the text: ``GeneratedTokenCounts.count_generation``), per (checkpoint, task) and request
    key: the completions' tokenizer ids stand in for the generated ones, before the clock starts."""
    from medbench.harness.backends.lm_backends import generated_token_chars
    from medbench.harness.run.records import GeneratedTokens
    from medbench.harness.run.sample_rows import request_key

    out: dict[tuple[str, str], dict[str, Any]] = {}
    for ck, task, samples in logs:
        texts = [s["resps"][0][0] for s in samples]
        ids = tokenizer(texts, add_special_tokens=False, return_attention_mask=False,
                        return_token_type_ids=False)["input_ids"]
        limit = task.max_gen_toks
        out[(ck, task.name)] = {
            request_key(s["arguments"][0]): GeneratedTokens(len(row), bool(limit and len(row) >= limit),
                                                            generated_token_chars(row, tokenizer))
            for s, row in zip(samples, ids)
        }
    return out


def end_to_end(logs: list[tuple[str, PlannedTask, list[dict[str, Any]]]], tokenizer: Any, root: Path,
               generated: dict[tuple[str, str], dict[str, Any]] | None = None) -> dict[str, Any]:
    """One timed pass: grade every pair, write the run directory, compute metrics, render the report."""
    import pandas as pd
    from medbench.harness.cli.report import render_runs
    from medbench.harness.run.rundir import RunWriter
    from medbench.harness.run.sample_rows import TokenizerCounter, rows_from_samples
    from medbench.harness.stats.metrics import compute_metrics
    from report_fixture import CHECKPOINTS, overlap_judge

    class TimedCounter(TokenizerCounter):
        seconds = 0.0
        texts = 0

        def many(self, texts: Any) -> list[int]:
            t = time.perf_counter()
            out = super().many(texts)
            self.seconds += time.perf_counter() - t
            self.texts += len(texts)
            return out

    counter = TimedCounter(tokenizer)
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    writer = RunWriter(root)
    writer.write_meta(run_meta(logs))
    n = 0
    for ck, task, samples in logs:
        rows = rows_from_samples(samples, checkpoint=ck, task=task, count_tokens=counter,
                                 seconds_for=lambda kind, args: 0.01, judge=overlap_judge,
                                 generated=None if generated is None else generated[(ck, task.name)])
        n += len(rows)
        t = time.perf_counter()
        writer.write_pair(ck, task.name, rows)
        stages["run_dir_io"] = stages.get("run_dir_io", 0.0) + time.perf_counter() - t
    stages["grade_total"] = time.perf_counter() - t0 - stages["run_dir_io"]
    stages["grade_tokenizer_calls"] = counter.seconds
    stages["grade_without_tokenizer"] = stages["grade_total"] - counter.seconds

    t = time.perf_counter()
    rows = [r for ck, task, _ in logs for r in writer.done_rows(ck, task.name) or []]
    frame = pd.DataFrame(rows)  # as finalize does: one frame for samples.parquet and compute_metrics
    writer.write_samples(rows, frame)
    stages["run_dir_io"] += time.perf_counter() - t

    t = time.perf_counter()
    order = [{"name": c["name"], "role": c["role"]} for c in CHECKPOINTS]
    writer.write_metrics(compute_metrics(frame, order))
    stages["metrics"] = time.perf_counter() - t

    t = time.perf_counter()
    log: list[str] = []
    report = render_runs([root], root / "report.html", progress=log.append)
    stages["report"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    return {"total_s": round(total, 3), "samples": n, "texts_counted": counter.texts,
            "stages_s": {k: round(v, 3) for k, v in stages.items()}, "report_stages": log,
            "report_mb": round(report.stat().st_size / 1e6, 1)}


def tokenizer_floor(logs: list[tuple[str, PlannedTask, list[dict[str, Any]]]], tokenizer: Any) -> dict[str, Any]:
    """The tokenizer library alone on exactly the texts medbench counts: one bare batched call over the
    distinct non-empty completions and measured reasoning / answer texts (what no medbench change can save)."""
    from medbench.tasks import scoring
    from medbench.tasks.graders import measured_texts
    from report_fixture import overlap_judge

    texts: list[str] = []
    for _, task, samples in logs:
        for s in samples:
            completion = s["resps"][0][0]
            rec = scoring.grade_doc(task.spec, s["doc"], completion, judge=overlap_judge)
            texts.append(completion)
            texts.extend(measured_texts(completion, rec))
    distinct = [t for t in dict.fromkeys(texts) if t]
    t0, c0 = time.perf_counter(), time.process_time()
    tokenizer(distinct, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "texts": len(distinct),
            "mega_chars": round(sum(map(len, distinct)) / 1e6, 2),
            "mb_per_s": round(sum(len(t.encode()) for t in distinct) / 1e6 / wall, 2)}


def per_text_grading(logs: list[tuple[str, PlannedTask, list[dict[str, Any]]]], tokenizer: Any) -> dict[str, Any]:
    """The old way, for comparison: rows_from_samples with a counter that can only count one text a call."""
    from medbench.harness.run.sample_rows import TokenizerCounter, rows_from_samples
    from report_fixture import overlap_judge

    one = TokenizerCounter(tokenizer)
    t = time.perf_counter()
    for ck, task, samples in logs:
        rows_from_samples(samples, checkpoint=ck, task=task, count_tokens=lambda text: one(text),
                          seconds_for=lambda kind, args: 0.01, judge=overlap_judge)
    return {"seconds": round(time.perf_counter() - t, 3)}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("tokenizers", "transformers", "pandas", "pyarrow", "numpy", "matplotlib", "jinja2"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-checkpoint", type=int, default=10_000, help="documents per checkpoint")
    ap.add_argument("--repeat", type=int, default=3, help="end-to-end passes; the median is the headline")
    ap.add_argument("--no-generated", action="store_true",
                    help="re-count every completion with the tokenizer (vLLM's fallback) instead of taking the "
                         "backend's generated-id counts")
    ap.add_argument("--per-text", action="store_true",
                    help="also time grading with one tokenizer call per text (the old way; slow)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cpu_postprocess.json"),
                    help="results JSON path")
    ap.add_argument("--keep-run", metavar="DIR",
                    help="also keep the last pass's run directory in DIR (to compare outputs across code changes: "
                         "benchmarks/compare_rundirs.py)")
    ap.add_argument("--profile", metavar="FILE",
                    help="profile the last pass with cProfile and write its stats to FILE (pstats format)")
    args = ap.parse_args(argv)

    from report_fixture import REALISTIC, build_samples, health_specialties

    per_family = {k: v * (len(health_specialties()) if k == "health" else 1)
                  for k, v in REALISTIC.items() if k != "pubmedqa_ll"}
    scale = args.per_checkpoint / sum(per_family.values())
    sizes = {k: max(1, round(v * scale)) for k, v in REALISTIC.items() if k != "pubmedqa_ll"}
    t0 = time.perf_counter()
    logs = lm_eval_logs(build_samples(sizes))
    tokenizer = _tokenizer()
    generated = None if args.no_generated else generated_counts(logs, tokenizer)
    build_s = time.perf_counter() - t0
    print(f"fixture: {sum(len(s) for _, _, s in logs):,} samples in {len(logs)} (checkpoint, task) logs "
          f"({build_s:.1f}s, not timed)", file=sys.stderr, flush=True)
    load_start = os.getloadavg()[0]

    runs = []
    for i in range(args.repeat):
        last = i == args.repeat - 1
        with tempfile.TemporaryDirectory(prefix="medbench-cpu-postprocess-") as tmp:
            root = Path(args.keep_run) if last and args.keep_run else Path(tmp) / "run"
            if root.exists() and any(root.iterdir()):
                raise SystemExit(f"--keep-run {root} exists and is not empty: give a new directory")
            if last and args.profile:
                import cProfile

                profiler = cProfile.Profile()
                runs.append(profiler.runcall(end_to_end, logs, tokenizer, root, generated))
                profiler.dump_stats(args.profile)
            else:
                runs.append(end_to_end(logs, tokenizer, root, generated))
        print(f"end to end {i + 1}/{args.repeat}: {runs[-1]['total_s']:.2f}s {runs[-1]['stages_s']}",
              file=sys.stderr, flush=True)
    floor = tokenizer_floor(logs, tokenizer)
    print(f"tokenizer alone: {floor}", file=sys.stderr, flush=True)

    totals = [r["total_s"] for r in runs]
    median = statistics.median(totals)
    headline = min(runs, key=lambda r: abs(r["total_s"] - median))
    stages = headline["stages_s"]
    medbench_only = round(median - stages["grade_tokenizer_calls"], 3)
    result: dict[str, Any] = {
        "benchmark": "cpu_postprocess",
        "what": "grading (rows_from_samples with the model's tokenizer, as the runner calls it) + run-directory "
                "writes + compute_metrics + medbench report (comparisons + render), end to end, for 3 checkpoints",
        "completion_tokens_from": "the tokenizer (re-counted text, vLLM's fallback)" if args.no_generated
        else "the backend's generated ids (hf, medbench-fast), and the reasoning/answer regions counted in them "
             "(GeneratedTokens.token_chars; the completions' tokenizer ids stand in for the generated ones)",
        "sizes_per_family": sizes,
        "command": " ".join(["python", str(Path(__file__).relative_to(REPO)),
                             *(argv if argv is not None else sys.argv[1:])]),
        "device": {"cpu": _cpu(), "usable_cpus": len(os.sched_getaffinity(0)),
                   "load_average_1m_at_start": round(load_start, 2),
                   "note": "a machine shared with other engineers: a load above 2 makes every number pessimistic"},
        "versions": _versions(),
        "samples": headline["samples"],
        "target_s": TARGET_S,
        "end_to_end_s": {"median": median, "all": totals},
        "met": median <= TARGET_S,
        "breakdown_s_median_run": stages,
        "share_of_median_run": {
            "tokenizer_calls": round(stages["grade_tokenizer_calls"] / median, 3),
            "grading_without_tokenizer": round(stages["grade_without_tokenizer"] / median, 3),
            "run_dir_io": round(stages["run_dir_io"] / median, 3),
            "metrics": round(stages["metrics"] / median, 3),
            "report": round(stages["report"] / median, 3),
        },
        "without_tokenizer_calls_s": medbench_only,
        "met_without_tokenizer_calls": medbench_only <= TARGET_S,
        "tokenizer_alone": floor,
        "texts_counted": headline["texts_counted"],
        "report_stages_median_run": headline["report_stages"],
        "report_mb": headline["report_mb"],
        "fixture_build_s_not_timed": round(build_s, 2),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if args.per_text:
        result["grade_per_text_calls_s"] = per_text_grading(logs, tokenizer)["seconds"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps({k: result[k] for k in ("samples", "end_to_end_s", "met", "breakdown_s_median_run",
                                             "share_of_median_run", "without_tokenizer_calls_s",
                                             "tokenizer_alone")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
