"""medical-o1-reasoning-SFT (``FreedomIntelligence/medical-o1-reasoning-SFT``, config ``en``): a held-out slice
plus the recipe's showcase question.

The SFT recipe trains on ``train[0:500]``. ``medbench_medical_cot`` evaluates on the **last**
:data:`HELDOUT_ROWS` rows of the split (``train[-200:]``; 19,704 rows in ``en``, so rows 19,504–19,703), never
on a row before :data:`SFT_TRAIN_ROWS` — disjoint from the training rows, and far from any longer prefix a
recipe might train on. The recipe's cystometry question (:data:`medbench.tasks.prompts.CYSTOMETRY_QUESTION`)
is always added first, as a named showcase sample. It is row 0 of the split — **inside** the SFT training
rows — so its answer after SFT shows memorisation as much as reasoning; each document records
``in_sft_train`` so the report can say so.

Documents: ``doc_key, row, Question, Complex_CoT, Response, target, showcase, in_sft_train``.
Local layout: ``<data_dir>/medical_o1/medical_o1_sft.json`` (the hub's file for ``en``: a JSON list), or
``.jsonl`` / ``.parquet`` with the same stem.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..prompts import CYSTOMETRY_QUESTION
from ._io import DataError, Schema, as_test_split, find_one, load_hub, read_records, resolve_data_dir

DATASET = "medical-o1-reasoning-SFT (en)"
HUB_PATH, HUB_CONFIG, HUB_SPLIT = "FreedomIntelligence/medical-o1-reasoning-SFT", "en", "train"
LOCAL_LAYOUT = "medical_o1/medical_o1_sft.json (a JSON list; or .jsonl / .parquet)"
SCHEMA = Schema(DATASET, required=("Question", "Complex_CoT", "Response"))

SFT_TRAIN_ROWS = 500  # the recipe's train[0:500]
HELDOUT_ROWS = 200  # the evaluation slice: the last 200 rows


def _same_question(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def select_docs(
    rows: Iterable[tuple[Any, Any]],
    where: str,
    *,
    sft_train_rows: int = SFT_TRAIN_ROWS,
    heldout_rows: int = HELDOUT_ROWS,
) -> list[dict[str, Any]]:
    """The showcase document, then the held-out slice, out of every row of the split (in order)."""
    records = []
    for i, (row, rec) in enumerate(rows):
        records.append(SCHEMA.check_row(rec, where=where, row=row))
    n = len(records)
    start = max(sft_train_rows, n - heldout_rows)
    showcase = [i for i, rec in enumerate(records) if _same_question(rec["Question"], CYSTOMETRY_QUESTION)]
    if not showcase:
        raise DataError(
            f"{DATASET}: {where}: the recipe's showcase question (the 61-year-old woman, Q-tip test) is not in "
            f"the data; it is row 0 of the hub's 'en' split and must be kept in local copies"
        )
    chosen = [showcase[0]] + [i for i in range(start, n) if i != showcase[0]]

    def doc(i: int) -> dict[str, Any]:
        rec = records[i]
        return {
            "doc_key": f"o1-en-{i}",
            "row": i,
            "Question": rec["Question"],
            "Complex_CoT": rec["Complex_CoT"],
            "Response": rec["Response"],
            "target": rec["Response"],
            "showcase": i == showcase[0],
            "in_sft_train": i < sft_train_rows,
        }

    return [doc(i) for i in chosen]


def load_medical_o1(
    data_dir: str | None = None,
    sft_train_rows: int = SFT_TRAIN_ROWS,
    heldout_rows: int = HELDOUT_ROWS,
    **_metadata: Any,
):
    """lm-eval ``custom_dataset``: the showcase question and the held-out slice as ``{"test": Dataset}``."""
    root = resolve_data_dir(data_dir)
    if root is not None:
        path = find_one(
            root / "medical_o1", "medical_o1_sft", (".json", ".jsonl", ".parquet"), DATASET, LOCAL_LAYOUT
        )
        docs = select_docs(
            read_records(path, DATASET),
            str(path),
            sft_train_rows=int(sft_train_rows),
            heldout_rows=int(heldout_rows),
        )
    else:
        ds = load_hub(DATASET, HUB_PATH, HUB_CONFIG, HUB_SPLIT)
        SCHEMA.check_columns(ds.column_names, where=f"hub {HUB_PATH}")
        docs = select_docs(
            enumerate(ds),
            f"hub {HUB_PATH}",
            sft_train_rows=int(sft_train_rows),
            heldout_rows=int(heldout_rows),
        )
    return as_test_split(docs, DATASET)
