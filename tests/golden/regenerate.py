"""The golden grade records: every golden completion graded by the current graders, against records.jsonl.

Grading is pure string work, so these records are the same on every machine; ``tests/test_golden_records.py``
fails when any of them changes, and a grader change becomes a conscious, reviewed re-bless::

    python tests/golden/regenerate.py           # rewrite records.jsonl from the current graders, print the diff
    python tests/golden/regenerate.py --check   # print the diff, exit 1 when anything differs; write nothing

The corpora (``CORPORA``), one completion per line::

    {"id": "...", "task": "medbench_pubmedqa", "doc": {...the loader's document fields...},
     "completion": "...raw model text...", "hit_token_limit": false, "why": "what the case exercises"}

* ``adversarial_completions.jsonl``: hand-written completions for every task's layout and answer type,
  including ones written to game the grader (hedges, disagreeing answer blocks, echoed option lists, ...).
* ``smollm2_completions.jsonl``: real SmolLM2-135M-Instruct completions, captured once (when present).

Each completion is graded the way ``medbench bench`` grades it: ``medbench.tasks.scoring.grade_doc`` on the
task's spec and document, with the ``hit_token_limit`` the runner would pass (the harness's
``sample_rows.rows_from_samples`` adds only token counts around this call). A record is
``GradeRecord.to_dict()`` without the two fields a tokenizer decides (``reasoning_tokens``,
``answer_tokens``). Free-text answers (``medbench_medical_cot``) are judged by :func:`stub_judge`, a fixed
word-overlap rule, not by medbench's MiniLM proxy or an LLM: the judge fields of those records pin what the
grader hands the judge and how it uses the verdict, not what a judge model thinks.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPORA = ("adversarial_completions.jsonl", "smollm2_completions.jsonl")
RECORDS = HERE / "records.jsonl"
#: Record fields a tokenizer decides; the golden records leave them out.
TOKENIZER_FIELDS = ("reasoning_tokens", "answer_tokens")
#: Fields every corpus line must have.
CASE_FIELDS = ("id", "task", "doc", "completion")
#: Word overlap at or above which :func:`stub_judge` agrees.
STUB_THRESHOLD = 0.5
STUB_MODEL = "golden-word-overlap-stub"


def stub_judge(answer: str, reference: str):
    """A fixed, deterministic judge for the golden records: agree when the Jaccard overlap of the two texts'
    lower-case words (3+ letters) is at least :data:`STUB_THRESHOLD`. It is no judge of meaning (a reversed
    answer that reuses the reference's words passes): it makes the free-text records independent of model
    floats, so they change only when the grader does."""
    from medbench.tasks.graders import JudgeVerdict

    def words(s: str) -> set[str]:
        return set(re.findall(r"[^\W\d_]{3,}", s.lower()))

    a, b = words(answer), words(reference)
    score = round(len(a & b) / len(a | b), 4) if a | b else 0.0
    return JudgeVerdict(agree=score >= STUB_THRESHOLD, score=score, kind="proxy",
                        rationale=f"word overlap {score} (golden-corpus stub, threshold {STUB_THRESHOLD})",
                        model=STUB_MODEL)


class GoldenCorpusError(ValueError):
    """A corpus line is malformed; the message names the file, line and what is missing."""


def load_cases(folder: Path = HERE) -> list[dict[str, Any]]:
    """Every case of every corpus present in ``folder``, in file order, each with its ``corpus`` (file stem)."""
    cases: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for name in CORPORA:
        path = folder / name
        if not path.is_file():
            continue
        corpus = path.stem
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except json.JSONDecodeError as e:
                raise GoldenCorpusError(f"{path}:{lineno}: not JSON ({e.msg})") from e
            missing = [f for f in CASE_FIELDS if f not in case]
            if missing:
                raise GoldenCorpusError(f"{path}:{lineno}: missing fields {missing}; every line needs {list(CASE_FIELDS)}")
            key = (corpus, str(case["id"]))
            if key in seen:
                raise GoldenCorpusError(f"{path}:{lineno}: duplicate id {case['id']!r}")
            seen.add(key)
            cases.append({**case, "corpus": corpus})
    return cases


def grade_case(case: dict[str, Any]) -> dict[str, Any]:
    """The golden record of one case: what ``medbench bench`` would record for it, minus token counts."""
    from medbench.tasks import scoring
    from medbench.tasks.registry import get_task

    spec = get_task(case["task"])
    record = scoring.grade_doc(spec, case["doc"], case["completion"],
                               hit_token_limit=bool(case.get("hit_token_limit", False)),
                               judge=stub_judge if spec.answer == "free" else None)
    fields = {k: v for k, v in record.to_dict().items() if k not in TOKENIZER_FIELDS}
    return {"corpus": case["corpus"], "id": str(case["id"]), "task": spec.name, "task_version": spec.version,
            "doc_key": scoring.doc_info(spec, case["doc"])["doc_key"], "record": fields}


def current_records(cases: Iterable[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    return [grade_case(c) for c in (load_cases() if cases is None else cases)]


def read_records(path: Path = RECORDS) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_records(records: Sequence[dict[str, Any]], path: Path = RECORDS) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records),
                    encoding="utf-8")


def _key(r: dict[str, Any]) -> tuple[str, str]:
    return (r["corpus"], r["id"])


def _short(value: Any, width: int = 100) -> str:
    """``repr(value)``, its middle cut out when it is longer than ``width`` (a completion's end is where its
    answer usually is)."""
    text = repr(value)
    if len(text) <= width:
        return text
    keep = (width - 5) // 2
    return text[:keep] + " ... " + text[-keep:]


def diff_records(old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]],
                 cases: Sequence[dict[str, Any]] = (), *, limit: int | None = None) -> str:
    """A readable account of how ``new`` differs from ``old`` (empty when they are equal): per changed case
    its id, task, why and completion, then each field that changed as ``old -> new``; added and removed
    cases by id. ``limit`` caps how many changed cases are spelled out."""
    before, after = {_key(r): r for r in old}, {_key(r): r for r in new}
    by_key = {(c["corpus"], str(c["id"])): c for c in cases}
    changed = [k for k in after if k in before and before[k] != after[k]]
    added = [k for k in after if k not in before]
    removed = [k for k in before if k not in after]
    if not (changed or added or removed):
        return ""
    out = [f"{len(changed)} changed, {len(added)} added, {len(removed)} removed of {len(after)} golden records"]
    for k in changed[:limit] if limit is not None else changed:
        a, b = before[k], after[k]
        case = by_key.get(k, {})
        out.append("")
        out.append(f"{k[1]}  [{b['task']}, {k[0]}]" + (f"  why: {case['why']}" if case.get("why") else ""))
        if "completion" in case:
            out.append(f"  completion: {_short(case['completion'], 160)}")
        for field in ("task", "task_version", "doc_key"):
            if a.get(field) != b.get(field):
                out.append(f"  {field}: {a.get(field)!r} -> {b.get(field)!r}")
        ra, rb = a.get("record", {}), b.get("record", {})
        for field in list(dict.fromkeys([*ra, *rb])):
            if ra.get(field) != rb.get(field):
                out.append(f"  {field}: {_short(ra.get(field), 60)} -> {_short(rb.get(field), 60)}")
    if limit is not None and len(changed) > limit:
        out.append(f"\n... and {len(changed) - limit} more changed records")
    for label, keys in (("added", added), ("removed", removed)):
        if keys:
            shown = [f"{c}/{i}" for c, i in (keys[:limit] if limit is not None else keys)]
            more = f", ... and {len(keys) - len(shown)} more" if len(shown) < len(keys) else ""
            out.append(f"\n{label}: " + ", ".join(shown) + more)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rewrite tests/golden/records.jsonl from the current graders "
                                                 "and print what changed.")
    parser.add_argument("--check", action="store_true",
                        help="only print the differences; exit 1 when there are any, write nothing")
    args = parser.parse_args(argv)
    cases = load_cases()
    new = current_records(cases)
    diff = diff_records(read_records(), new, cases)
    if args.check:
        print(diff or f"all {len(new)} golden records match")
        return 1 if diff else 0
    write_records(new)
    print(diff or f"no change: all {len(new)} golden records match")
    print(f"wrote {RECORDS} ({len(new)} records)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
