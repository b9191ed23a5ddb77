"""GSM8K test split (``openai/gsm8k`` config ``main``, or ``<data_dir>/gsm8k/test.jsonl``).

Documents: ``doc_key, question, answer, target`` — ``answer`` is the worked solution as shipped (final line
``#### <number>``), ``target`` the number after ``####``, read by the same answer type that grades completions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..graders.answers import Number
from ._io import (
    Schema,
    as_test_split,
    dedupe_keys,
    load_hub,
    read_records,
    require_file,
    resolve_data_dir,
    stable_key,
)

DATASET = "GSM8K"
HUB_PATH, HUB_CONFIG, HUB_SPLIT = "openai/gsm8k", "main", "test"
LOCAL_LAYOUT = "gsm8k/test.jsonl"
SCHEMA = Schema(DATASET, required=("question", "answer"))


def docs_from_rows(rows: Iterable[tuple[Any, Any]], where: str) -> list[dict[str, Any]]:
    docs = []
    for row, rec in rows:
        rec = SCHEMA.check_row(rec, where=where, row=row)
        try:
            target = Number().normalize_target(rec["answer"])
        except ValueError as e:
            raise SCHEMA.error(where, row, f"field 'answer' has no final '#### <number>' line ({e})") from e
        docs.append(
            {
                "doc_key": stable_key("gsm8k-", rec["question"]),
                "question": rec["question"],
                "answer": rec["answer"],
                "target": target,
            }
        )
    return dedupe_keys(docs)


def load_gsm8k(data_dir: str | None = None, **_metadata: Any):
    """lm-eval ``custom_dataset``: the 1319 GSM8K test questions as ``{"test": Dataset}``."""
    root = resolve_data_dir(data_dir)
    if root is not None:
        path = require_file(root / "gsm8k" / "test.jsonl", DATASET, LOCAL_LAYOUT)
        docs = docs_from_rows(read_records(path, DATASET), str(path))
    else:
        ds = load_hub(DATASET, HUB_PATH, HUB_CONFIG, HUB_SPLIT)
        SCHEMA.check_columns(ds.column_names, where=f"hub {HUB_PATH}")
        docs = docs_from_rows(enumerate(ds), f"hub {HUB_PATH}")
    return as_test_split(docs, DATASET)
