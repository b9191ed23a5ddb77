"""A synthetic but realistic run directory, for the report tests and the report benchmarks.

The layout of a real `medbench bench` run of the recipes' evaluation: three checkpoints with lineage
provenance (base → SFT → GRPO, recorded in scrambled order), PubMedQA, **the 52 Health_Benchmarks specialty
tasks of the real registry** (``medbench.tasks.registry``: one task each, grouped as ``medbench_health``), GSM8K
and the free-text medical chain-of-thought task (medical-o1) with the SFT recipe's cystometry question as
showcase; optionally the loglikelihood PubMedQA task. :data:`REALISTIC` sizes are the real ones (500, 52 × 30,
1,319, 200: 3 × 3,579 samples); tests use :data:`SMALL` (all 52 specialties, a few documents each).

Completions are scripted in both layouts with every outcome (correct, wrong, unparseable, truncated), some
carry XSS payloads, text is non-ASCII (β, 🩺). Questions and reasoning are real public text where
../shared/realdata has it (PubMedQA abstracts and questions, GSM8K problems), so sizes are realistic; the
Health questions are synthetic (the dataset is not in realdata). Every grade record is made by the real grader
(:func:`medbench.tasks.graders.grade`, the free-text task judged by a word-overlap *proxy*), the directory is
written by :class:`medbench.harness.run.rundir.RunWriter` and metrics come from
:func:`medbench.harness.stats.metrics.compute_metrics`: the report sees exactly what ``medbench bench`` writes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from medbench.harness.run.rundir import RunWriter
from medbench.tasks.graders import JudgeVerdict, grade
from medbench.tasks.prompts import CYSTOMETRY_QUESTION, SYSTEM_PROMPT, sft_inference_prompt

XSS = "<script>alert(1)</script>"
#: Further payloads planted in completions and questions; none may ever become markup.
XSS_MORE = ('<img src=x onerror="alert(2)">', "</script><script>alert(3)</script>", '"><svg onload=alert(4)>')
CYSTOMETRY_TARGET = (
    "Cystometry would most likely show a normal post-void residual volume and no involuntary detrusor "
    "contractions, consistent with stress urinary incontinence."
)
#: Documents per family (Health: per specialty task).
REALISTIC = {"pubmedqa": 500, "health": 30, "gsm8k": 1319, "medical_cot": 200, "pubmedqa_ll": 500}
SMALL = {"pubmedqa": 40, "health": 6, "gsm8k": 30, "medical_cot": 20, "pubmedqa_ll": 20}
#: A checkpoint name long enough to break a figure that sizes panels by label.
LONG_NAME = "qwen2.5-3b-instruct-grpo-medical-reasoning-lr5e-6-beta0.04-step250-final"


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


def checkpoints(names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Checkpoints as the bench runner records them (ResolvedCheckpoint.to_meta), in deliberately scrambled
    order (the report must re-order them by lineage); ``names`` renames base/sft/grpo."""
    n = {"base": "base", "sft": "sft", "grpo": "grpo", **(names or {})}
    return [
        {
            "name": n["grpo"], "kind": "adapter", "model": "Qwen/Qwen2.5-3B-Instruct",
            "adapter": "runs/ckpt/grpo-lora", "revision": None, "tokenizer": None, "adapter_rank": 16,
            "warnings": [], "files": {}, "content_hash": "sha256:9c1f0e5b7a", "role": "grpo",
            "parent": "runs/ckpt/sft-merged",
            "provenance": _provenance("grpo", "runs/ckpt/sft-merged", "grpo", [
                {"dataset": "qiaojin/PubMedQA", "split": "train", "n_rows": 1000},
                {"dataset": "openai/gsm8k", "split": "train", "n_rows": 1000},
                {"dataset": "yesilhealth/Health_Benchmarks", "split": "train", "n_rows": 800}], 250),
        },
        {
            "name": n["base"], "kind": "hub", "model": "Qwen/Qwen2.5-3B-Instruct", "adapter": None,
            "revision": "main", "tokenizer": None, "adapter_rank": None, "warnings": [], "files": {},
            "content_hash": "sha256:41aa03de77", "role": "base", "parent": None, "provenance": {"role": "base"},
        },
        {
            "name": n["sft"], "kind": "local", "model": "runs/ckpt/sft-merged", "adapter": None, "revision": None,
            "tokenizer": None, "adapter_rank": None, "content_hash": "sha256:d0c3b1f2e4", "files": {},
            "warnings": ["the tokenizer has no chat template; tasks that ask for it ran on the plain prompt"],
            "role": "sft", "parent": "Qwen/Qwen2.5-3B-Instruct",
            "provenance": _provenance("sft", "Qwen/Qwen2.5-3B-Instruct", "sft", [
                {"dataset": "FreedomIntelligence/medical-o1-reasoning-SFT", "split": "train[0:500]",
                 "n_rows": 500}], 60),
        },
    ]


CHECKPOINTS = checkpoints()

#: Chance of a correct answer per role and family. SFT helps everywhere; GRPO helps GSM8K and Health and
#: loses PubMedQA against its parent (the significant regression a report must show first).
SKILL = {
    "base": {"pubmedqa": 0.60, "health": 0.50, "gsm8k": 0.36, "medical_cot": 0.35, "pubmedqa_ll": 0.55},
    "sft": {"pubmedqa": 0.66, "health": 0.53, "gsm8k": 0.38, "medical_cot": 0.48, "pubmedqa_ll": 0.56},
    "grpo": {"pubmedqa": 0.47, "health": 0.57, "gsm8k": 0.52, "medical_cot": 0.52, "pubmedqa_ll": 0.56},
}
#: Specialties where GRPO does much worse or better than elsewhere (a heatmap must show them).
SPECIALTY_SHIFT = {"Cardiology": -0.40, "Dermatology": 0.25}
#: Chance of each completion style per role (the rest is the strict layout).
STYLE = {
    "base": {"phrase": 0.06, "soft": 0.15, "unparseable": 0.05, "truncated": 0.03},
    "sft": {"phrase": 0.04, "soft": 0.10, "unparseable": 0.04, "truncated": 0.05},
    "grpo": {"phrase": 0.01, "soft": 0.04, "unparseable": 0.02, "truncated": 0.02},
}
REASONING_WORDS = {"base": 40, "sft": 110, "grpo": 70}  #: mean words of reasoning (× reasoning_scale)
#: Real public text (../shared/realdata): PubMedQA abstracts and questions, GSM8K problems, so completions
#: and questions have the size and entropy of real ones (the sample browser's file size depends on it).
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
_TEXT = (
    "the patient presents with findings consistent with a history of chronic symptoms; laboratory values "
    "suggest that the mechanism involves reduced clearance, and the β-adrenergic pathway is relevant while "
    "considering differential diagnoses such as infection inflammation malignancy or drug effect therefore "
    "we weigh the evidence from the trial and the cohort before concluding 🩺"
)
_WORDS = tuple(_TEXT.split())


@dataclass(frozen=True)
class FixtureTask:
    """A real registry task as the fixture uses it."""

    name: str
    family: str  # pubmedqa | health | gsm8k | medical_cot | pubmedqa_ll (the loglikelihood PubMedQA)
    meta: dict[str, Any]  # run.json's task entry (PlannedTask.to_meta)

    @property
    def layout(self) -> str | None:
        return self.meta["layout"]

    @property
    def answer(self) -> str:
        return self.meta["answer"]

    @property
    def subgroup(self) -> str | None:
        return self.meta["subgroup"]


@lru_cache(maxsize=1)
def _registry() -> dict[str, Any]:
    from medbench.tasks.registry import list_tasks

    return {t.name: t for t in list_tasks()}


def _meta(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "family": spec.family, "group": spec.group, "subgroup": spec.subgroup,
            "version": spec.version, "output_type": spec.output_type, "layout": spec.layout, "answer": spec.answer,
            "letters": spec.letters or None, "max_gen_toks": spec.max_gen_toks,
            "chat_template": spec.layout == "xml"}


def health_specialties() -> list[str]:
    """The Health_Benchmarks specialty task names of the real registry (52)."""
    return sorted(n for n, t in _registry().items() if t.family == "health")


def fixture_tasks(*, specialties: int | None = None, loglikelihood: bool = False) -> list[FixtureTask]:
    """PubMedQA, the Health specialty tasks (all 52, or the first ``specialties``), GSM8K, medical CoT."""
    reg = _registry()
    health = health_specialties()[: specialties if specialties is not None else None]
    out = [FixtureTask("medbench_pubmedqa", "pubmedqa", _meta(reg["medbench_pubmedqa"]))]
    out += [FixtureTask(n, "health", _meta(reg[n])) for n in health]
    out += [FixtureTask("medbench_gsm8k", "gsm8k", _meta(reg["medbench_gsm8k"])),
            FixtureTask("medbench_medical_cot", "medical_cot", _meta(reg["medbench_medical_cot"]))]
    if loglikelihood:
        out.append(FixtureTask("medbench_pubmedqa_ll", "pubmedqa_ll", _meta(reg["medbench_pubmedqa_ll"])))
    return out


def count_tokens(text: str) -> int:
    """A stand-in tokenizer (≈1.3 tokens per word); real runs count with the evaluated model's tokenizer."""
    return round(len(text.split()) * 1.3)


def overlap_judge(answer: str, reference: str) -> JudgeVerdict:
    """An offline *proxy* judge (word overlap), labelled as such, like medbench's embedding proxy."""
    a, r = set(answer.lower().split()), set(reference.lower().split())
    score = len(a & r) / max(1, len(a | r))
    agree = score >= 0.5
    return JudgeVerdict(
        agree=agree, score=round(score, 3), kind="proxy",
        rationale=f"word overlap {score:.2f} with the reference {'≥' if agree else '<'} 0.50 threshold",
        model="fixture-overlap",
    )


@lru_cache(maxsize=1)
def _real_text() -> tuple[tuple[str, ...], tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """(abstract sentences, PubMedQA (question, abstract), GSM8K (question, answer number)); empty when the
    real data is not there (then the built-in word list is used)."""
    import json

    sentences: list[str] = []
    pubmed: list[tuple[str, str]] = []
    gsm: list[tuple[str, str]] = []
    try:
        data = json.loads((REALDATA / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
        for item in data.values():
            context = " ".join(item["CONTEXTS"])
            pubmed.append((item["QUESTION"], context))
            sentences.extend(x.strip() + "." for x in context.split(". ") if len(x.split()) > 4)
        for line in (REALDATA / "gsm8k" / "test.jsonl").read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            gsm.append((item["question"], item["answer"].rsplit("####", 1)[-1].strip().replace(",", "")))
    except (OSError, ValueError, KeyError):
        return (), (), ()
    return tuple(sentences), tuple(pubmed), tuple(gsm)


def _reasoning(rng: random.Random, n_words: int) -> str:
    sentences = _real_text()[0]
    if not sentences:
        words = [rng.choice(_WORDS) for _ in range(max(3, n_words))]
        return " ".join(words).capitalize() + "."
    out: list[str] = []
    count = 0
    while count < max(3, n_words):
        sentence = rng.choice(sentences)
        out.append(sentence)
        count += len(sentence.split())
    return " ".join(out) + (" 🩺" if rng.random() < 0.2 else "")


def _doc(task: FixtureTask, i: int, rng: random.Random) -> dict[str, Any]:
    """One dataset document: question, target, a wrong alternative, showcase flag."""
    if task.family in ("pubmedqa", "pubmedqa_ll"):
        target = rng.choice(["yes", "no", "maybe"])
        wrong = rng.choice([x for x in ("yes", "no", "maybe") if x != target])
        real = _real_text()[1]
        if real:
            question, context = real[i % len(real)]
            q = f"{context}\n\nQuestion: {question}"
        else:
            q = f"Does treatment {i} reduce 30-day mortality in adults with sepsis? (abstract #{i})"
        if i == 3:
            q += " " + XSS_MORE[2]
        return {"question": q, "target": target, "wrong": wrong}
    if task.family == "health":
        target = "ABCD"[rng.randrange(4)]
        wrong = rng.choice([x for x in "ABCD" if x != target])
        q = (f"[{task.subgroup}] Question {i}: which is the most appropriate next step?\n"
             "A. Observe\nB. Start a β-blocker\nC. Order an MRI\nD. Refer")
        return {"question": q, "target": target, "wrong": wrong}
    if task.family == "gsm8k":
        real = _real_text()[2]
        if real and real[i % len(real)][1].lstrip("-").isdigit():
            question, answer = real[i % len(real)]
            n = int(answer)
        else:
            a, b = rng.randint(2, 40), rng.randint(2, 40)
            question, n = f"A ward has {a} beds and gets {b} more. How many beds now?", a + b
        return {"question": question, "target": f"#### {n}", "wrong": str(n + rng.choice([-2, -1, 1, 3])),
                "right": str(n)}
    if i == 0:
        return {"question": CYSTOMETRY_QUESTION, "target": CYSTOMETRY_TARGET,
                "wrong": "Cystometry would show an increased residual volume with involuntary detrusor "
                         "overactivity typical of urge incontinence.", "showcase": True}
    target = f"The most likely diagnosis is condition {i} treated with first-line therapy {i % 7}."
    return {"question": f"Clinical vignette {i}: a 45-year-old presents with fatigue. What is the diagnosis?",
            "target": target, "wrong": f"Probably a viral illness number {i} that needs rest."}


def _answer_text(task: FixtureTask, doc: dict[str, Any], correct: bool) -> str:
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


def _loglikelihood_row(task: FixtureTask, doc: dict[str, Any], correct: bool) -> dict[str, Any]:
    from medbench.tasks.scoring import grade_loglikelihood

    spec = _registry()[task.name]
    choices = ["yes", "no", "maybe"]
    best = doc["target"] if correct else doc["wrong"]
    lls = [-0.5 if c == best else -2.0 - k for k, c in enumerate(choices)]
    rec = grade_loglikelihood(spec, {"doc_key": "x", "QUESTION": doc["question"], "target": doc["target"]}, lls)
    return {**rec.to_dict(), "completion": str(rec.extracted)}


def build_samples(
    sizes: Mapping[str, int] | None = None, seed: int = 0, *, specialties: int | None = None,
    loglikelihood: bool = False, names: Mapping[str, str] | None = None, reasoning_scale: float = 1.0,
) -> list[dict[str, Any]]:
    """All sample rows (one per checkpoint × task × doc), graded by the real grader.

    The documents depend only on the task (the same doc_key is the same question in every fixture run, as in
    real runs over one dataset); ``seed`` changes only how the checkpoints answer.
    """
    sizes = {**SMALL, **(sizes or {})}
    n = {"base": "base", "sft": "sft", "grpo": "grpo", **(names or {})}
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    xss_at = {("medbench_pubmedqa", 1, "sft"): XSS, ("medbench_gsm8k", 2, "grpo"): XSS_MORE[1]}
    tasks = fixture_tasks(specialties=specialties, loglikelihood=loglikelihood)
    first_health = next((t.name for t in tasks if t.family == "health"), None)
    xss_at[(first_health, 0, "base")] = XSS_MORE[0]
    for ti, task in enumerate(tasks):
        doc_rng = random.Random(1000 + ti)
        shift = SPECIALTY_SHIFT.get(task.subgroup or "", 0.0)
        for i in range(sizes[task.family]):
            doc = _doc(task, i, doc_rng)
            difficulty = rng.random()
            prompt = (sft_inference_prompt(doc["question"]) if task.layout == "think"
                      else SYSTEM_PROMPT + "\n" + doc["question"])
            for role in ("base", "sft", "grpo"):
                skill = SKILL[role][task.family] + (shift if role == "grpo" else 0.0)
                correct = difficulty + rng.gauss(0, 0.12) < skill
                if doc.get("showcase"):
                    correct = role != "base"  # the recipe's before/after
                r = rng.random()
                style = "strict"
                for name, p in STYLE[role].items():
                    if r < p:
                        style = name
                        break
                    r -= p
                if doc.get("showcase"):
                    style = "strict"
                if task.family == "pubmedqa_ll":
                    row = _loglikelihood_row(task, doc, correct)
                    completion = row["completion"]
                else:
                    mean = REASONING_WORDS[role] * reasoning_scale
                    reasoning = _reasoning(rng, int(rng.gauss(mean, mean / 4)))
                    payload = xss_at.get((task.name, i, role))
                    if payload:  # in the strict layout, so the page must escape it inside the collapsed reasoning
                        reasoning = f"I will inject {payload} into the page. " + reasoning
                        style = "strict"
                    completion = _completion(task, style, reasoning, _answer_text(task, doc, correct))
                    rec = grade(
                        completion, doc["target"], layout=task.layout, answer=task.answer,
                        count_tokens=count_tokens, hit_token_limit=style == "truncated",
                        judge=overlap_judge if task.answer == "free" else None,
                    )
                    row = rec.to_dict()
                row.update(
                    checkpoint=n[role], task=task.name, group=task.meta["group"], subgroup=task.subgroup,
                    doc_id=i, doc_key=f"{task.name}:{i:05d}", showcase=bool(doc.get("showcase")),
                    task_version=task.meta["version"], prompt=prompt, completion=completion,
                    question=doc["question"],
                    completion_tokens=None if task.family == "pubmedqa_ll" else count_tokens(completion),
                    gen_time_s=round(0.01 * count_tokens(completion), 3),
                )
                rows.append(row)
    return rows


def fixture_meta(run_id: str, tasks: list[FixtureTask] | None = None,
                 names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """run.json as the bench runner writes it (harness/run/runner.py: write_meta)."""
    tasks = tasks if tasks is not None else fixture_tasks()
    settings = {"limit": None, "seed": 1234, "dtype": "bfloat16", "load_in_4bit": False, "backend": "hf",
                "max_new_tokens": {"medbench_gsm8k": 512}, "chat_template": None}
    n = {"base": "base", "sft": "sft", "grpo": "grpo", **(names or {})}
    return {
        "run_id": run_id,
        "status": "complete",
        "started_at": "2026-03-02T09:15:00+00:00",
        "updated_at": "2026-03-02T09:47:12+00:00",
        "command": "medbench bench --spec bench.yaml --output runs/" + run_id,
        "spec": {"backend": "hf", "output": "runs/" + run_id, "seed": 1234},
        "settings": settings,
        "checkpoints": checkpoints(names),
        "tasks": [t.meta for t in tasks],
        "environment": {
            "packages": {"medbench": "0.1.0", "lm-eval": "0.4.13", "transformers": "5.17.0", "torch": "2.13.0",
                         "vllm": None},
            "git": {"sha": "e697b79c0ffee0000000000000000000000000000", "dirty": True},
            "hardware": {"platform": "Linux-6.1-x86_64", "machine": "x86_64", "processor": None, "cpu_count": 16,
                         "memory_gib": 125.7, "python": "3.11.7",
                         "gpus": [{"name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.1}], "cuda": "12.8"},
        },
        "timings": {n["base"]: {"load_s": 12.0, "medbench_pubmedqa": 300.5, "medbench_gsm8k": 250.0},
                    n["sft"]: {"load_s": 10.0, "medbench_pubmedqa": 420.0, "medbench_gsm8k": 330.2},
                    n["grpo"]: {"load_s": 14.0, "medbench_pubmedqa": 380.0, "medbench_gsm8k": 210.0}},
        "errors": {},
    }


def build_fixture_run(
    root: Path, *, run_id: str = "fixture-run", sizes: Mapping[str, int] | None = None, seed: int = 0,
    specialties: int | None = None, loglikelihood: bool = False, names: Mapping[str, str] | None = None,
    reasoning_scale: float = 1.0,
) -> Path:
    """Write the fixture run directory to ``root`` and return it (sizes default to :data:`SMALL`; pass
    :data:`REALISTIC` for the real sizes)."""
    import pandas as pd
    from medbench.harness.stats.metrics import compute_metrics

    rows = build_samples(sizes, seed, specialties=specialties, loglikelihood=loglikelihood, names=names,
                         reasoning_scale=reasoning_scale)
    writer = RunWriter(Path(root))
    writer.write_meta(fixture_meta(run_id, fixture_tasks(specialties=specialties, loglikelihood=loglikelihood),
                                   names))
    writer.write_samples(rows)
    writer.write_metrics(compute_metrics(pd.DataFrame(rows), checkpoints(names)))
    return Path(root)
