"""A synthetic but realistic run directory, for the report tests and the report scale benchmark.

Three checkpoints with lineage provenance (base → SFT → GRPO), the task families the recipes evaluate
(PubMedQA, Health_Benchmarks specialties, GSM8K, a free-text medical chain-of-thought task with the recipe's
cystometry question as showcase), completions in both layouts with every outcome (correct, wrong,
unparseable, truncated), judge rationales from a *proxy* judge, non-ASCII text, and one completion that
tries ``<script>alert(1)</script>``.

The completions are scripted, but every grade record is made by the real grader
(:func:`medbench.tasks.graders.grade`) and the run directory is written only through
:class:`medbench.harness.run.rundir.RunWriter`, so the report sees exactly what ``medbench bench`` writes.
Metrics come from :mod:`medbench.harness.stats.metrics` (the stats engineer's module) — the single source of truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medbench.harness.run.rundir import RunWriter
from medbench.tasks.graders import JudgeVerdict, grade
from medbench.tasks.prompts import CYSTOMETRY_QUESTION, SYSTEM_PROMPT, sft_inference_prompt

XSS = "<script>alert(1)</script>"
SPECIALTIES = ("Cardiology", "Dermatology", "Neurology", "Oncology", "Pediatrics")
CYSTOMETRY_TARGET = (
    "Cystometry would most likely show a normal post-void residual volume and no involuntary detrusor "
    "contractions, consistent with stress urinary incontinence."
)

def _provenance(role: str, parent: str, recipe: str, sources: list[dict[str, Any]], steps: int) -> dict[str, Any]:
    """A provenance record shaped like trainers/provenance.py writes it (medbench_provenance.json)."""
    return {
        "role": role, "parent": parent, "recipe": recipe,
        "config": {"learning_rate": 2e-4 if recipe == "sft" else 5e-6, "lora_r": 16, "max_steps": steps},
        "config_source": f"trainers/configs/{recipe}.yaml", "config_sha256": "0" * 64, "backend": "trl",
        "data": {"sources": sources, "n_rows": sum(s["n_rows"] for s in sources), "sha256": "1" * 64},
        "steps": steps, "adjustments": [], "versions": {"trl": "1.15.0"}, "created_at": "2026-03-01T18:00:00+00:00",
        "train_runtime_s": 5400.0 if recipe == "sft" else 12600.0, "eval_metrics": None, "schema_version": 1,
    }


#: Checkpoints as the bench runner records them (ResolvedCheckpoint.to_meta), in deliberately scrambled order:
#: the report must re-order them by lineage.
CHECKPOINTS: list[dict[str, Any]] = [
    {
        "name": "grpo", "kind": "adapter", "model": "Qwen/Qwen2.5-3B-Instruct", "adapter": "runs/ckpt/grpo-lora",
        "revision": None, "tokenizer": None, "adapter_rank": 16, "warnings": [], "files": {},
        "content_hash": "sha256:9c1f0e5b7a", "role": "grpo", "parent": "runs/ckpt/sft-merged",
        "provenance": _provenance("grpo", "runs/ckpt/sft-merged", "grpo", [
            {"dataset": "qiaojin/PubMedQA", "split": "train", "n_rows": 1000},
            {"dataset": "openai/gsm8k", "split": "train", "n_rows": 1000},
            {"dataset": "yesilhealth/Health_Benchmarks", "split": "train", "n_rows": 800}], 250),
    },
    {
        "name": "base", "kind": "hub", "model": "Qwen/Qwen2.5-3B-Instruct", "adapter": None, "revision": "main",
        "tokenizer": None, "adapter_rank": None, "warnings": [], "files": {},
        "content_hash": "sha256:41aa03de77", "role": "base", "parent": None, "provenance": {"role": "base"},
    },
    {
        "name": "sft", "kind": "local", "model": "runs/ckpt/sft-merged", "adapter": None, "revision": None,
        "tokenizer": None, "adapter_rank": None, "content_hash": "sha256:d0c3b1f2e4", "files": {},
        "warnings": ["the tokenizer has no chat template; tasks that ask for it ran on the plain prompt"],
        "role": "sft", "parent": "Qwen/Qwen2.5-3B-Instruct",
        "provenance": _provenance("sft", "Qwen/Qwen2.5-3B-Instruct", "sft", [
            {"dataset": "FreedomIntelligence/medical-o1-reasoning-SFT", "split": "train[0:500]", "n_rows": 500}], 60),
    },
]

#: Chance of a correct answer per checkpoint and task family: SFT and GRPO improve, GRPO breaks some.
SKILL = {"base": 0.45, "sft": 0.58, "grpo": 0.68}
#: Chance of each completion style per checkpoint (the rest is the strict layout).
STYLE = {
    "base": {"phrase": 0.20, "soft": 0.15, "unparseable": 0.12, "truncated": 0.05},
    "sft": {"phrase": 0.08, "soft": 0.15, "unparseable": 0.05, "truncated": 0.06},
    "grpo": {"phrase": 0.02, "soft": 0.05, "unparseable": 0.02, "truncated": 0.03},
}
REASONING_WORDS = {"base": 40, "sft": 110, "grpo": 70}
_TEXT = (
    "the patient presents with findings consistent with a history of chronic symptoms; laboratory values "
    "suggest that the mechanism involves reduced clearance, and the β-adrenergic pathway is relevant while "
    "considering differential diagnoses such as infection inflammation malignancy or drug effect therefore "
    "we weigh the evidence from the trial and the cohort before concluding 🩺"
)
_WORDS = tuple(_TEXT.split())


@dataclass(frozen=True)
class FixtureTask:
    name: str
    layout: str  # "xml" | "think"
    answer: str  # "yesno" | "choice" | "number" | "free"
    version: int = 1


TASKS = (
    FixtureTask("pubmedqa", "xml", "yesno"),
    FixtureTask("health_benchmarks", "xml", "choice"),
    FixtureTask("gsm8k", "xml", "number"),
    FixtureTask("medical_cot", "think", "free", version=2),
)
DEFAULT_SIZES = {"pubmedqa": 40, "health_benchmarks": 60, "gsm8k": 30, "medical_cot": 20}


def count_tokens(text: str) -> int:
    """A stand-in tokenizer (≈1.3 tokens per word); real runs count with the evaluated model's tokenizer."""
    return round(len(text.split()) * 1.3)


def overlap_judge(answer: str, reference: str) -> JudgeVerdict:
    """An offline *proxy* judge (word overlap), labelled as such, like medbench's embedding proxy."""
    a, r = set(answer.lower().split()), set(reference.lower().split())
    score = len(a & r) / max(1, len(a | r))
    agree = score >= 0.5
    return JudgeVerdict(
        agree=agree,
        score=round(score, 3),
        kind="proxy",
        rationale=f"word overlap {score:.2f} with the reference {'≥' if agree else '<'} 0.50 threshold",
        model="fixture-overlap",
    )


def _reasoning(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(max(3, n_words))]
    return " ".join(words).capitalize() + "."


def _doc(task: FixtureTask, i: int, rng: random.Random) -> dict[str, Any]:
    """One dataset document: question, target, a wrong alternative, subgroup, showcase flag."""
    if task.name == "pubmedqa":
        target = rng.choice(["yes", "no", "maybe"])
        wrong = rng.choice([x for x in ("yes", "no", "maybe") if x != target])
        q = f"Does treatment {i} reduce 30-day mortality in adults with sepsis? (abstract #{i})"
        return {"question": q, "target": target, "wrong": wrong, "subgroup": None}
    if task.name == "health_benchmarks":
        spec = SPECIALTIES[i % len(SPECIALTIES)]
        target = "ABCD"[rng.randrange(4)]
        wrong = rng.choice([x for x in "ABCD" if x != target])
        q = (f"[{spec}] Question {i}: which is the most appropriate next step?\n"
             "A. Observe\nB. Start a β-blocker\nC. Order an MRI\nD. Refer")
        return {"question": q, "target": target, "wrong": wrong, "subgroup": spec}
    if task.name == "gsm8k":
        a, b = rng.randint(2, 40), rng.randint(2, 40)
        return {"question": f"A ward has {a} beds and gets {b} more. How many beds now?",
                "target": f"#### {a + b}", "wrong": str(a + b + rng.choice([-2, -1, 1, 3])), "subgroup": None,
                "right": str(a + b)}
    if i == 0:
        return {"question": CYSTOMETRY_QUESTION, "target": CYSTOMETRY_TARGET,
                "wrong": "Cystometry would show an increased residual volume with involuntary detrusor "
                         "overactivity typical of urge incontinence.",
                "subgroup": None, "showcase": True}
    target = f"The most likely diagnosis is condition {i} treated with first-line therapy {i % 7}."
    return {"question": f"Clinical vignette {i}: a 45-year-old presents with fatigue. What is the diagnosis?",
            "target": target, "wrong": f"Probably a viral illness number {i} that needs rest.", "subgroup": None}


def _answer_text(task: FixtureTask, doc: dict[str, Any], correct: bool) -> str:
    if task.answer == "free":
        return doc["target"] if correct else doc["wrong"]
    if task.answer == "number":
        return doc["right"] if correct else doc["wrong"]
    return doc["target"] if correct else doc["wrong"]


def _completion(task: FixtureTask, style: str, reasoning: str, answer: str) -> str:
    if task.layout == "think":  # the prompt pre-fills <think>
        if style == "truncated":
            return reasoning + " and then"
        if style == "unparseable":
            return reasoning + "\n</think>\n"
        return f"{reasoning}\n</think>\n{answer}"
    if style == "phrase":
        return f"{reasoning} So the answer is {answer}."
    if style == "soft":
        return f"Sure, let me think.\n<reasoning>{reasoning}</reasoning> <answer>{answer}</answer>"
    if style == "unparseable":
        return f"<reasoning>\n{reasoning}\n</reasoning>\nI cannot decide."
    if style == "truncated":
        return f"<reasoning>\n{reasoning} and then"
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>"


def build_samples(sizes: dict[str, int] | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """All sample rows (one per checkpoint × task × doc), graded by the real grader.

    The documents depend only on the task (the same doc_key is the same question in every fixture run, as in
    real runs over one dataset); ``seed`` changes only how the checkpoints answer.
    """
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for ti, task in enumerate(TASKS):
        doc_rng = random.Random(1000 + ti)
        for i in range(sizes[task.name]):
            doc = _doc(task, i, doc_rng)
            difficulty = rng.random()
            prompt = (sft_inference_prompt(doc["question"]) if task.layout == "think"
                      else SYSTEM_PROMPT + "\n" + doc["question"])
            for ck in ("base", "sft", "grpo"):
                correct = difficulty + rng.gauss(0, 0.2) < SKILL[ck]
                if doc.get("showcase"):
                    correct = ck != "base"  # the recipe's before/after
                r = rng.random()
                style = "strict"
                for name, p in STYLE[ck].items():
                    if r < p:
                        style = name
                        break
                    r -= p
                if doc.get("showcase"):
                    style = "strict"
                reasoning = _reasoning(rng, int(rng.gauss(REASONING_WORDS[ck], REASONING_WORDS[ck] / 4)))
                if task.name == "pubmedqa" and ck == "sft" and i == 1:
                    reasoning = f"I will inject {XSS} into the page. " + reasoning
                completion = _completion(task, style, reasoning, _answer_text(task, doc, correct))
                rec = grade(
                    completion, doc["target"], layout=task.layout, answer=task.answer,
                    count_tokens=count_tokens, hit_token_limit=style == "truncated",
                    judge=overlap_judge if task.answer == "free" else None,
                )
                row = rec.to_dict()
                row.update(
                    checkpoint=ck, task=task.name, group=task.name, subgroup=doc["subgroup"], doc_id=i,
                    doc_key=f"{task.name}:{i:05d}", showcase=bool(doc.get("showcase")),
                    task_version=task.version, prompt=prompt, completion=completion,
                    question=doc["question"], completion_tokens=count_tokens(completion),
                    gen_time_s=round(0.01 * count_tokens(completion), 3),
                )
                rows.append(row)
    return rows


def fixture_meta(run_id: str) -> dict[str, Any]:
    """run.json as the bench runner writes it (harness/run/runner.py: write_meta)."""
    settings = {"limit": None, "seed": 1234, "dtype": "bfloat16", "load_in_4bit": False, "backend": "hf",
                "max_new_tokens": {"gsm8k": 512}, "chat_template": None}
    return {
        "run_id": run_id,
        "status": "complete",
        "started_at": "2026-03-02T09:15:00+00:00",
        "updated_at": "2026-03-02T09:47:12+00:00",
        "command": "medbench bench --spec bench.yaml --output runs/" + run_id,
        "spec": {"backend": "hf", "output": "runs/" + run_id, "seed": 1234},
        "settings": settings,
        "checkpoints": CHECKPOINTS,
        "tasks": [{"name": t.name, "family": t.name, "group": t.name, "subgroup": None, "version": t.version,
                   "output_type": "generate_until", "layout": t.layout, "answer": t.answer, "letters": None,
                   "max_gen_toks": 512, "chat_template": t.layout == "xml"} for t in TASKS],
        "environment": {
            "packages": {"medbench": "0.1.0", "lm-eval": "0.4.13", "transformers": "5.17.0", "torch": "2.13.0",
                         "vllm": None},
            "git": {"sha": "e697b79c0ffee0000000000000000000000000000", "dirty": True},
            "hardware": {"platform": "Linux-6.1-x86_64", "machine": "x86_64", "processor": None, "cpu_count": 16,
                         "memory_gib": 125.7, "python": "3.11.7",
                         "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.1}], "cuda": "12.8"},
        },
        "timings": {"base": {"load_s": 12.0, "pubmedqa": 300.5, "gsm8k": 250.0},
                    "sft": {"load_s": 10.0, "pubmedqa": 420.0, "gsm8k": 330.2},
                    "grpo": {"load_s": 14.0, "pubmedqa": 380.0, "gsm8k": 210.0}},
        "errors": {},
    }


def build_fixture_run(
    root: Path, *, run_id: str = "fixture-run", sizes: dict[str, int] | None = None, seed: int = 0
) -> Path:
    """Write the fixture run directory to ``root`` and return it."""
    from medbench.harness.stats import metrics as metrics_mod

    rows = build_samples(sizes, seed)
    writer = RunWriter(Path(root))
    writer.write_meta(fixture_meta(run_id))
    writer.write_samples(rows)
    import pandas as pd

    writer.write_metrics(metrics_mod.compute_metrics(pd.DataFrame(rows), CHECKPOINTS))
    return Path(root)
