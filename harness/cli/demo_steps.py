"""What ``medbench demo`` benchmarks, and how: the tasks, their slices and token budgets, the data, the spec.

The demo's checkpoints are SmolLM2-135M-Instruct (``medbench.harness.models.smollm2``) and two LoRA adapters over it
(``medbench.trainers.demo``); this module only describes the benchmark they go through, which is exactly what
``medbench bench`` runs: one spec, built by :func:`build_spec` from the values below.

Data: the real public files where they are (``$MEDBENCH_SHARED/realdata``, else ``../shared/realdata`` beside
the checkout: PubMedQA's official test ids, GSM8K, MedMCQA, MMLU medical, MedQA) and the bundled hand-written
samples for the rest (Health_Benchmarks, medical-o1: the real sets are not available offline). The loaders read
one data folder, so :func:`data_view` assembles one from symbolic links, and says which dataset came from where.

Slices: ``--limit`` (default :data:`DEMO_LIMIT`) scores the fair sample ``medbench bench --limit`` takes
(:mod:`medbench.harness.run.sampling`: seeded, stratified by label or subject), so the demo's PubMedQA slice
holds yes, no and maybe questions (the official test ids are ordered by label: the first 8 are all "yes").
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Every task family, one task each, with its token budget. Measured on the committed adapters: GRPO's layout
#: with its short reasoning fits 64 tokens on the multiple-choice and PubMedQA prompts (GSM8K's arithmetic needs
#: more), and SFT's closed <think> block on medical-o1 takes about 150-200; the base model's free text runs into
#: the budget more often, and the run records that as truncation. (Decoding dominates the demo's time: a step
#: of the eight documents of a task costs about the same as a step of one.)
DEMO_TASK_BUDGETS: dict[str, int] = {
    "medbench_pubmedqa": 64,
    "medbench_health_cardiology": 64,
    "medbench_medmcqa": 64,
    "medbench_medqa": 64,
    "medbench_mmlu_medical": 64,
    "medbench_gsm8k": 96,
    "medbench_medical_cot": 224,
}
DEMO_TASKS = tuple(DEMO_TASK_BUDGETS)
#: Documents per task (a seeded, stratified sample; see the module docstring).
DEMO_LIMIT = 8
#: medical-o1 sample rows 0–47 are the demo SFT's training rows; ``medbench_medical_cot`` scores rows 48–71.
DEMO_TASK_METADATA = {"sft_train_rows": 48}
#: medbench's fast greedy path: the same completions as ``hf`` (tested), several times faster on a CPU.
DEMO_BACKEND = "medbench-fast"
DEMO_SEED = 1234

#: The data folders of the loaders' layout (``medbench.tasks.loaders``): real where the shared folder has them.
REAL_DATASETS: dict[str, tuple[str, ...]] = {
    "pubmedqa": ("pubmedqa/ori_pqal.json", "pubmedqa/test_ground_truth.json"),
    "gsm8k": ("gsm8k/test.jsonl",),
    "medmcqa_validation": ("medmcqa_validation",),
    "medqa_usmle_5opt_test": ("medqa_usmle_5opt_test",),
    "mmlu_medical": ("mmlu_medical",),
}
SAMPLE_ONLY = ("health_benchmarks", "medical_o1")


@dataclass(frozen=True)
class DataView:
    """The demo's data folder and, per dataset, where its files come from (``real`` or ``sample``)."""

    path: Path
    origin: dict[str, str]

    def describe(self) -> str:
        real = [k for k, v in self.origin.items() if v == "real"]
        sample = [k for k, v in self.origin.items() if v == "sample"]
        text = f"data: real {', '.join(real)}" if real else "data:"
        return text + ("; " if real else " ") + f"bundled sample {', '.join(sample)}"


def realdata_dir() -> Path | None:
    """``$MEDBENCH_SHARED/realdata``, else ``../shared/realdata`` beside the checkout; ``None`` when absent."""
    shared = os.environ.get("MEDBENCH_SHARED")
    root = Path(shared).expanduser() if shared else Path(__file__).resolve().parents[2] / "shared"
    path = root / "realdata"
    return path if path.is_dir() else None


def data_view(dest: Path, realdata: Path | None = None) -> DataView:
    """Link the demo's data into ``dest`` (one folder in the loaders' layout): each dataset of
    :data:`REAL_DATASETS` from ``realdata`` when all its files are there, else from the bundled sample data."""
    from medbench.tasks.loaders import SAMPLE_DATA_DIR

    dest.mkdir(parents=True, exist_ok=True)
    origin: dict[str, str] = {}
    plan: list[tuple[str, Path]] = []
    for name, parts in REAL_DATASETS.items():
        real = realdata is not None and all((realdata / p).exists() for p in parts)
        origin[name] = "real" if real else "sample"
        plan += [(p, (realdata if real else SAMPLE_DATA_DIR) / p) for p in parts]  # type: ignore[operator]
    for name in SAMPLE_ONLY:
        origin[name] = "sample"
        plan.append((name, SAMPLE_DATA_DIR / name))
    for rel, target in plan:
        link = dest / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            if link.is_symlink() and Path(os.readlink(link)) == target:
                continue
            link.unlink()
        link.symlink_to(target, target_is_directory=target.is_dir())
    return DataView(dest, origin)


def demo_spec(output: Path, checkpoints: Mapping[str, str], data_dir: Path, *,
              limit: float | str = DEMO_LIMIT,
              max_new_tokens: int | None = None, seed: int = DEMO_SEED, batch_size: int | str = "auto",
              backend: str = DEMO_BACKEND):
    """The bench spec the demo runs: every task family, greedy, a fair sample of ``limit`` documents of each.

    ``checkpoints`` maps a name to what ``--checkpoint NAME=...`` takes (a folder, or ``BASE+ADAPTER``);
    ``max_new_tokens``, when given, replaces every generative task's budget.
    """
    from medbench.harness.run.spec import build_spec

    tasks: list[Any] = [{"name": t, "max_new_tokens": max_new_tokens or budget}
                        for t, budget in DEMO_TASK_BUDGETS.items()]
    return build_spec(None, {
        "checkpoints": [f"{name}={source}" for name, source in checkpoints.items()],
        "tasks": tasks,
        "limit": limit,
        "seed": seed,
        "batch_size": batch_size,
        "backend": backend,
        "data_dir": str(data_dir),
        "output": str(output),
        "task_metadata": DEMO_TASK_METADATA,
    })
