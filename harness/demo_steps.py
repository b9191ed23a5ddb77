"""What ``medbench demo`` benchmarks, and how: the task list, the sample-data settings and the bench spec.

The demo's checkpoints (a primed tiny base, then an SFT and a GRPO checkpoint trained from it by the bundled
recipes) are built by :mod:`medbench.trainers.demo`; this module only describes the benchmark they go
through, exactly as ``medbench bench`` runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Every task family on the bundled sample data (only three Health_Benchmarks specialties ship there).
DEMO_TASKS = (
    "medbench_pubmedqa", "medbench_pubmedqa_ll", "medbench_health_cardiology", "medbench_medical_cot",
    "medbench_gsm8k", "medbench_medmcqa", "medbench_medqa", "medbench_mmlu_medical",
)
#: The sample medical-o1 file has four rows; the demo's SFT trains on the first (``train[0:1]``) and
#: ``medbench_medical_cot`` evaluates the rows after it (plus the showcase question, which is row 0).
DEMO_TASK_METADATA = {"sft_train_rows": 1}
#: Token budget of the generative tasks: the primed layout fits in 32 tokens.
DEMO_MAX_NEW_TOKENS = 32
#: ``medbench_medical_cot`` gets more: a ``<think>`` block the SFT step learned is about 70 tokens long before
#: it closes, and a closed block is what the SFT recipe teaches.
DEMO_COT_MAX_NEW_TOKENS = 128
DEMO_LIMIT = 3


def sft_split() -> str:
    """The SFT slice that leaves the demo's held-out ``medbench_medical_cot`` rows untouched."""
    return f"train[0:{DEMO_TASK_METADATA['sft_train_rows']}]"


def demo_spec(output: Path, checkpoints: Mapping[str, Path], *, limit: int = DEMO_LIMIT,
              max_new_tokens: int = DEMO_MAX_NEW_TOKENS, seed: int = 1234, batch_size: int | str = "auto",
              backend: str | None = None):
    """The bench spec the demo runs: every task family on the bundled sample data, greedy, small limits.

    ``max_new_tokens`` applies to every generative task but ``medbench_medical_cot``, which gets
    :data:`DEMO_COT_MAX_NEW_TOKENS` (or ``max_new_tokens`` if that is larger).
    """
    from medbench.tasks.loaders import SAMPLE_DATA_DIR

    from .spec import build_spec

    cot = max(DEMO_COT_MAX_NEW_TOKENS, max_new_tokens)
    tasks: list[Any] = [{"name": t, "max_new_tokens": cot} if t == "medbench_medical_cot" else t
                        for t in DEMO_TASKS]
    return build_spec(None, {
        "checkpoints": [f"{name}={path}" for name, path in checkpoints.items()],
        "tasks": tasks,
        "limit": limit,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "batch_size": batch_size,
        "backend": backend,
        "data_dir": str(SAMPLE_DATA_DIR),
        "output": str(output),
        "task_metadata": DEMO_TASK_METADATA,
    })
