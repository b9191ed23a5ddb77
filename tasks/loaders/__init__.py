"""Dataset loaders for the medbench tasks: lm-eval ``custom_dataset`` functions, no dataset scripts.

Each loader returns ``{"test": datasets.Dataset}`` and accepts lm-eval's task ``metadata`` as keyword
arguments (lm-eval calls ``custom_dataset(**metadata, **dataset_kwargs)``). The hub is read by default;
``data_dir`` (metadata) or ``$MEDBENCH_DATA_DIR`` switches to local files laid out like this (the layout of
the real public files in ``shared/realdata``, plus two datasets that are not there)::

    <data_dir>/
      pubmedqa/ori_pqal.json, pubmedqa/test_ground_truth.json
      gsm8k/test.jsonl
      medmcqa_validation/MedMCQA-Validation/<Subject>.jsonl
      medqa_usmle_5opt_test/test.jsonl
      mmlu_medical/test/<subject>_test.csv
      health_benchmarks/<Specialty>.jsonl|.csv|.parquet
      medical_o1/medical_o1_sft.json|.jsonl|.parquet

``tasks/sample_data`` (:data:`SAMPLE_DATA_DIR`) is a tiny hand-written copy of that layout for the demo and
the tests. Every problem with the data raises :class:`DataError` naming the dataset, file, row and fields.
"""

from __future__ import annotations

from typing import Any

from ..prompts import SYSTEM_PROMPT
from ._io import DATA_DIR_ENV, SAMPLE_DATA_DIR, DataError, resolve_data_dir
from .choice import MMLU_MEDICAL_SUBJECTS, load_medmcqa, load_medqa, load_mmlu_medical
from .gsm8k import load_gsm8k
from .health import HEALTH_SPECIALTIES, health_task_name, load_health
from .medical_o1 import HELDOUT_ROWS, SFT_TRAIN_ROWS, load_medical_o1
from .pubmedqa import load_pubmedqa, official_test_ids

__all__ = [
    "DATA_DIR_ENV",
    "HEALTH_SPECIALTIES",
    "HELDOUT_ROWS",
    "MMLU_MEDICAL_SUBJECTS",
    "SAMPLE_DATA_DIR",
    "SFT_TRAIN_ROWS",
    "DataError",
    "health_task_name",
    "load_gsm8k",
    "load_health",
    "load_medical_o1",
    "load_medmcqa",
    "load_medqa",
    "load_mmlu_medical",
    "load_pubmedqa",
    "official_test_ids",
    "resolve_data_dir",
    "with_system_prompt",
]


def _system_prompt_field(_doc: dict[str, Any]) -> dict[str, str]:
    return {"system_prompt": SYSTEM_PROMPT}


def with_system_prompt(docs):
    """lm-eval ``process_docs`` for the ``<reasoning>/<answer>`` tasks: add the GRPO system prompt as a field,
    which the YAML's ``description: system_prompt`` turns into the system turn (under
    ``--apply_chat_template``) or the text before the question (without). The prompt itself stays in
    :mod:`medbench.tasks.prompts`."""
    return docs.map(_system_prompt_field)
