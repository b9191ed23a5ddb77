"""PubMedQA PQA-L, the official 500-question test split, from the hub or the original files.

* hub: ``qiaojin/PubMedQA`` config ``pqa_labeled`` holds all 1000 expert-labelled questions in one ``train``
  split, so the test ids come from the bundled list ``tasks/pubmedqa/pqal_test_ids.json`` (ids only);
* local: ``<data_dir>/pubmedqa/ori_pqal.json`` + ``test_ground_truth.json`` (github.com/pubmedqa/pubmedqa).

Both give the same documents, in the order of the official id list, in the original files' schema — the
schema lm-eval's own ``pubmedqa`` task reads (``QUESTION``, ``CONTEXTS``, ``final_decision``)::

    doc_key, pubid, QUESTION, CONTEXTS, LABELS, LONG_ANSWER, final_decision, target
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from ._io import DataError, Schema, as_test_split, load_hub, read_json, require_file, resolve_data_dir

DATASET = "PubMedQA PQA-L"
HUB_PATH, HUB_CONFIG, HUB_SPLIT = "qiaojin/PubMedQA", "pqa_labeled", "train"
LOCAL_LAYOUT = "pubmedqa/ori_pqal.json + pubmedqa/test_ground_truth.json"
TEST_IDS_FILE = Path(__file__).resolve().parents[1] / "pubmedqa" / "pqal_test_ids.json"
LABELS = ("yes", "no", "maybe")

LOCAL_SCHEMA = Schema(
    f"{DATASET} (ori_pqal.json)",
    required=("QUESTION", "CONTEXTS", "final_decision"),
    optional=("LABELS", "MESHES", "YEAR", "reasoning_required_pred", "reasoning_free_pred", "LONG_ANSWER"),
)
HUB_SCHEMA = Schema(
    f"{DATASET} (hub {HUB_PATH} {HUB_CONFIG})",
    required=("pubid", "question", "context", "final_decision"),
    optional=("long_answer",),
)
HUB_CONTEXT_SCHEMA = Schema(
    f"{DATASET} (hub {HUB_PATH} {HUB_CONFIG}, field 'context')",
    required=("contexts",),
    optional=("labels", "meshes", "reasoning_required_pred", "reasoning_free_pred"),
)


@lru_cache(maxsize=1)
def official_test_ids() -> tuple[str, ...]:
    """The 500 PubMed ids of the official PQA-L test split, in the original file's order."""
    ids = json.loads(TEST_IDS_FILE.read_text(encoding="utf-8"))["ids"]
    return tuple(str(i) for i in ids)


def _doc(
    pubid: str,
    question: str,
    contexts: list[str],
    labels: list[str],
    long_answer: str,
    decision: str,
    schema: Schema,
    where: str,
) -> dict[str, Any]:
    if decision not in LABELS:
        raise schema.error(where, pubid, f"final_decision {decision!r} is not one of yes/no/maybe")
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        raise schema.error(where, pubid, "contexts must be a list of strings")
    return {
        "doc_key": pubid,
        "pubid": pubid,
        "QUESTION": question,
        "CONTEXTS": list(contexts),
        "LABELS": list(labels or []),
        "LONG_ANSWER": long_answer or "",
        "final_decision": decision,
        "target": decision,
    }


def docs_from_original_files(folder: Path) -> list[dict[str, Any]]:
    """The test documents from ``ori_pqal.json`` + ``test_ground_truth.json`` in ``folder``."""
    ori_path = require_file(folder / "ori_pqal.json", DATASET, LOCAL_LAYOUT)
    gt_path = require_file(folder / "test_ground_truth.json", DATASET, LOCAL_LAYOUT)
    ori, truth = read_json(ori_path, DATASET), read_json(gt_path, DATASET)
    for path, obj in ((ori_path, ori), (gt_path, truth)):
        if not isinstance(obj, dict):
            raise DataError(
                f"{DATASET}: {path} must be a JSON object keyed by PubMed id, got {type(obj).__name__}"
            )
    official = set(official_test_ids())
    docs = []
    for pubid, label in truth.items():
        if pubid not in official:
            raise DataError(
                f"{DATASET}: {gt_path}, row {pubid!r}: not an id of the official PQA-L test split "
                f"({TEST_IDS_FILE}); this file must list official test ids only"
            )
        if pubid not in ori:
            raise DataError(f"{DATASET}: {gt_path}, row {pubid!r}: id missing from {ori_path}")
        rec = LOCAL_SCHEMA.check_row(ori[pubid], where=str(ori_path), row=repr(pubid))
        if label != rec["final_decision"]:
            raise DataError(
                f"{DATASET}: row {pubid!r}: {gt_path} says {label!r} but {ori_path} says "
                f"{rec['final_decision']!r}; the two files disagree"
            )
        docs.append(
            _doc(
                pubid,
                rec["QUESTION"],
                rec["CONTEXTS"],
                rec.get("LABELS", []),
                rec.get("LONG_ANSWER", ""),
                rec["final_decision"],
                LOCAL_SCHEMA,
                str(ori_path),
            )
        )
    return docs


def docs_from_hub_rows(
    rows: Iterable[Mapping[str, Any]], where: str = f"hub {HUB_PATH}"
) -> list[dict[str, Any]]:
    """The official test documents out of ``pqa_labeled`` rows (all 1000 of them), in official-id order."""
    by_id: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(rows):
        rec = HUB_SCHEMA.check_row(row, where=where, row=i)
        ctx = HUB_CONTEXT_SCHEMA.check_row(rec["context"], where=where, row=i)
        pubid = str(rec["pubid"])
        by_id[pubid] = _doc(
            pubid,
            rec["question"],
            ctx["contexts"],
            ctx.get("labels") or [],
            rec.get("long_answer") or "",
            rec["final_decision"],
            HUB_SCHEMA,
            where,
        )
    missing = [i for i in official_test_ids() if i not in by_id]
    if missing:
        raise DataError(
            f"{DATASET}: {where} lacks {len(missing)} of the 500 official test ids (first: {missing[:5]}); "
            f"the hub copy changed: use the original files through a data directory ({LOCAL_LAYOUT})"
        )
    return [by_id[i] for i in official_test_ids()]


def load_pubmedqa(data_dir: str | None = None, **_metadata: Any):
    """lm-eval ``custom_dataset``: the 500 official PQA-L test documents as a ``{"test": Dataset}``.

    Extra keyword arguments are lm-eval's task ``metadata`` (version, layout, ...), ignored here.
    """
    root = resolve_data_dir(data_dir)
    if root is not None:
        docs = docs_from_original_files(root / "pubmedqa")
    else:
        ds = load_hub(DATASET, HUB_PATH, HUB_CONFIG, HUB_SPLIT)
        HUB_SCHEMA.check_columns(ds.column_names, where=f"hub {HUB_PATH} {HUB_CONFIG}")
        docs = docs_from_hub_rows(ds)
    return as_test_split(docs, DATASET)
