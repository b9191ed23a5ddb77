"""Health_Benchmarks (``yesilhealth/Health_Benchmarks``): one multiple-choice set per medical specialty.

The GRPO recipe trains on the 52 specialties in :data:`HEALTH_SPECIALTIES` (7,358 questions; the hub also has
an ``Ethics`` split that the recipe leaves out, and so does medbench). Each specialty's single split is named
after it. Rows have ``Questions`` (the question with options A–D inline) and ``Answers`` (the correct letter,
possibly followed by the option text).

Held-out side: the GRPO recipe trains on these very questions, so a specialty's single split is cut in two by
a fixed hash of the normalised question (:func:`medbench.tasks.splits.health_split`, about 20 % ``eval``).
The tasks read the ``eval`` side only (``health_split: eval`` in their YAML metadata); medbench's GRPO data
reads the ``train`` side; ``all`` gives every question (7,358 over the 52 specialties).

Documents: ``doc_key, specialty, Questions, Answers, target`` (``target`` is the letter).
Local layout: ``<data_dir>/health_benchmarks/<Specialty>.jsonl`` (or ``.csv`` with a header, or ``.parquet``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import splits
from ..errors import did_you_mean
from ..graders.answers import LetterChoice
from ._io import (
    DataError,
    Schema,
    as_test_split,
    dedupe_keys,
    find_one,
    load_hub,
    read_records,
    resolve_data_dir,
    stable_key,
)

DATASET = "Health_Benchmarks"
HUB_PATH = "yesilhealth/Health_Benchmarks"
LOCAL_LAYOUT = "health_benchmarks/<Specialty>.jsonl (or .csv with a header row, or .parquet)"
SCHEMA = Schema(DATASET, required=("Questions", "Answers"))

#: The GRPO recipe's list, in its order.
HEALTH_SPECIALTIES: tuple[str, ...] = (
    "Lab_Medicine",
    "Wearables",
    "Dermatology",
    "Gastroenterology",
    "Internal_Medicine",
    "Oncology",
    "Orthopedics",
    "General_Surgery",
    "Ophthalmology",
    "Audiology",
    "Head_Neck_Surgery",
    "Elderly_Care",
    "Pediatrics",
    "Allergy_Immunology",
    "Rheumatology",
    "Pharmacy",
    "Obstetrics_Gynecology",
    "Microbiology",
    "Dentistry",
    "Physical_Medicine_and_Rehabilitation",
    "Neurology",
    "Psychiatry",
    "Pathology",
    "Genetics",
    "Rare_Diseases",
    "Hematology",
    "Emergency",
    "Endocrinology",
    "Radiology",
    "Cardiology",
    "Pulmonology",
    "Infectious_Diseases",
    "Critical_Care",
    "Pediatric_Surgery",
    "Neuroscience",
    "Epidemiology",
    "Fitness_Sports",
    "Health_Education",
    "Health_Economics",
    "Health_Entrepreneurship",
    "Hospital_Management",
    "Mental_Health",
    "Nutrition",
    "Palliative_Care",
    "Preventive_Medicine",
    "Public_Health",
    "Social_Media_Addiction",
    "Sleep",
    "Supplements",
    "Vaccination",
    "Work_Health",
    "Wellbeing",
)


def check_specialty(specialty: str) -> str:
    if specialty not in HEALTH_SPECIALTIES:
        raise DataError(f"{DATASET}: unknown specialty {specialty!r}{did_you_mean(specialty, HEALTH_SPECIALTIES)}; "
                        f"known: {', '.join(HEALTH_SPECIALTIES)}")
    return specialty


def docs_from_rows(rows: Iterable[tuple[Any, Any]], where: str, specialty: str) -> list[dict[str, Any]]:
    letters = LetterChoice()
    docs = []
    for row, rec in rows:
        rec = SCHEMA.check_row(rec, where=where, row=row)
        try:
            target = letters.normalize_target(str(rec["Answers"]))
        except ValueError as e:
            raise SCHEMA.error(
                where,
                row,
                f"Answers {str(rec['Answers'])[:80]!r} is not a letter A-D (optionally followed by the "
                "option text)",
            ) from e
        docs.append(
            {
                "doc_key": stable_key(f"health-{specialty}-", rec["Questions"]),
                "specialty": specialty,
                "Questions": rec["Questions"],
                "Answers": str(rec["Answers"]),
                "target": target,
            }
        )
    return dedupe_keys(docs)


def _hub_split(specialty: str):
    """The hub card declares one config whose splits are the specialties; the recipe loads them as configs of
    the same name. Try the card's layout first, then the recipe's."""
    try:
        return load_hub(f"{DATASET} {specialty}", HUB_PATH, None, specialty)
    except DataError as first:
        try:
            return load_hub(f"{DATASET} {specialty}", HUB_PATH, specialty, specialty)
        except DataError as second:
            raise DataError(
                f"{first}\nThe recipe's layout (config {specialty!r}) failed too: {second}"
            ) from first


SIDES = ("eval", "train", "all")


def load_health(specialty: str, data_dir: str | None = None, health_split: str = "all", **_metadata: Any):
    """lm-eval ``custom_dataset`` for one specialty (``dataset_kwargs: {specialty: ...}`` in its YAML).

    ``health_split`` picks the side of medbench's fixed hash split: ``eval`` (what the tasks score),
    ``train`` (what GRPO may train on) or ``all``.
    """
    check_specialty(specialty)
    if health_split not in SIDES:
        raise DataError(f"{DATASET}: health_split {health_split!r} is not one of {', '.join(SIDES)}")
    root = resolve_data_dir(data_dir)
    dataset = f"{DATASET} {specialty}"
    if root is not None:
        path = find_one(
            root / "health_benchmarks", specialty, (".jsonl", ".csv", ".parquet"), dataset, LOCAL_LAYOUT
        )
        docs = docs_from_rows(read_records(path, dataset), str(path), specialty)
    else:
        ds = _hub_split(specialty)
        SCHEMA.check_columns(ds.column_names, where=f"hub {HUB_PATH} {specialty}")
        docs = docs_from_rows(enumerate(ds), f"hub {HUB_PATH} {specialty}", specialty)
    if health_split != "all":
        kept = [d for d in docs if splits.health_split(d["Questions"]) == health_split]
        if not kept:
            raise DataError(
                f"{dataset}: none of its {len(docs)} questions is on the {health_split!r} side of medbench's "
                f"fixed split (medbench.tasks.splits.health_split, {splits.HEALTH_EVAL_PERCENT}% eval); "
                f"a specialty needs a few dozen questions for both sides to be non-empty"
            )
        docs = kept
    return as_test_split(docs, dataset)


def health_task_name(specialty: str) -> str:
    """``Lab_Medicine`` -> ``medbench_health_lab_medicine`` (the generated YAMLs use this name)."""
    return f"medbench_health_{check_specialty(specialty).lower()}"
