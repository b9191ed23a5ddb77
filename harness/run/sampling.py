"""``--limit N``: a fair sample of each task's documents — seeded, stratified, the same for every checkpoint.

The first N documents are not a sample: PubMedQA's official test ids are ordered by label (276 "yes", then 169
"no", then 55 "maybe"), so any limit up to 276 scored only "yes" questions and a model that always says yes
got 100%; MedMCQA's first local questions are all one subject. A limited run therefore scores

* the task's documents **stratified** by what varies in it: the subject where the task holds several
  (MedMCQA, MMLU medical), else the gold label where the answer is one of a closed set (PubMedQA's
  yes/no/maybe, a multiple-choice letter: MedQA, each Health_Benchmarks specialty), else (GSM8K's numbers,
  free-text answers) a simple random sample;
* each stratum's share of N by proportional allocation (largest remainder, so the shares add up to N exactly
  and a stratum of at least 1/N of the task gets a document);
* within a stratum, the documents whose ``sha256(seed, doc_key)`` is smallest: the choice depends only on the
  seed and the documents' stable keys, not on their order, the machine or the checkpoint, so every checkpoint
  of a run (and a resumed run) scores the same documents and paired comparisons pair (and two tasks over the
  same questions, ``medbench_pubmedqa`` and ``medbench_pubmedqa_ll``, score the same ones);
* showcase documents (pinned in the report, never counted in a number) always, as part of the N (a limit
  of N scores at most N documents, as it always did).

The chosen positions go to lm-eval through its own mechanism (``evaluate(samples={task: [doc indices]})``),
and the run records them in run.json (:meth:`TaskSample.to_meta`).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

#: Answer types whose gold labels are a closed set worth stratifying by.
LABELLED_ANSWERS = ("yesno", "choice")


@dataclass(frozen=True)
class DocItem:
    """What the sample needs to know about one document: its position in the task, its stable key, the
    values it may be stratified by, and whether it is a showcase sample."""

    index: int
    doc_key: str
    subgroup: str | None
    label: str | None
    showcase: bool = False


@dataclass(frozen=True)
class TaskSample:
    """The documents one task scores in a limited run (all of them when the limit covers the task)."""

    task: str
    doc_ids: tuple[int, ...]
    """Positions in the task's documents (lm-eval's ``doc_id``), ascending."""
    method: str
    """``all`` (the limit covers the task), ``stratified`` or ``random``."""
    by: str | None
    """What the strata are: ``subgroup`` (subject) or ``label`` (gold answer); ``None`` unless stratified."""
    total: int
    """Documents in the task."""
    strata: dict[str, int]
    """Documents chosen per stratum (empty unless stratified)."""
    seed: int
    limit: int | float

    def to_meta(self) -> dict[str, object]:
        """The task's entry under run.json's ``sample``."""
        return {"method": self.method, "by": self.by, "n": len(self.doc_ids), "of": self.total,
                "strata": dict(self.strata), "doc_ids": list(self.doc_ids)}


def sample_size(limit: float, total: int) -> int:
    """Documents a limit asks for: a count as given, a fraction in (0, 1] of ``total`` rounded up (as lm-eval
    rounds its fractional ``--limit``); never more than ``total``."""
    n = math.ceil(total * limit) if isinstance(limit, float) else int(limit)
    return max(0, min(n, total))


def _rank(seed: int, doc_key: str) -> str:
    return hashlib.sha256(f"{seed}\0{doc_key}".encode()).hexdigest()


def _allocate(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Proportional allocation of ``n`` over strata of ``sizes`` by largest remainder (ties: the larger
    stratum, then the name), each share capped at its stratum's size."""
    total = sum(sizes.values())
    exact = {s: n * k / total for s, k in sizes.items()}
    shares = {s: min(sizes[s], math.floor(x)) for s, x in exact.items()}
    order = sorted(sizes, key=lambda s: (-(exact[s] - math.floor(exact[s])), -sizes[s], s))
    while sum(shares.values()) < n:
        for s in order:
            if sum(shares.values()) >= n:
                break
            if shares[s] < sizes[s]:
                shares[s] += 1
    return shares


def draw_sample(items: Sequence[DocItem], limit: float, seed: int, *, task: str,
                answer: str) -> TaskSample:
    """The documents of one task that a run with ``limit`` and ``seed`` scores (see the module docstring);
    ``answer`` is the task's answer type (``yesno``, ``choice``, ``number``, ``free``)."""
    showcase = [it for it in items if it.showcase]
    pool = [it for it in items if not it.showcase]
    n = max(0, sample_size(limit, len(items)) - len(showcase))

    def done(chosen: list[DocItem], method: str, by: str | None, strata: dict[str, int]) -> TaskSample:
        ids = tuple(sorted(it.index for it in [*chosen, *showcase]))
        return TaskSample(task, ids, method, by, len(items), strata, seed, limit)

    if n >= len(pool):
        return done(pool, "all", None, {})
    by: str | None = None
    if len({it.subgroup for it in pool}) > 1:
        by = "subgroup"
    elif answer in LABELLED_ANSWERS and len({it.label for it in pool}) > 1:
        by = "label"

    def key(it: DocItem) -> str:
        return str(getattr(it, by)) if by else ""

    ranked = sorted(pool, key=lambda it: (_rank(seed, it.doc_key), it.index))
    if by is None:
        return done(ranked[:n], "random", None, {})
    shares = _allocate(dict(Counter(key(it) for it in pool)), n)
    chosen: list[DocItem] = []
    taken: Counter[str] = Counter()
    for it in ranked:
        if taken[key(it)] < shares[key(it)]:
            chosen.append(it)
            taken[key(it)] += 1
    return done(chosen, "stratified", by, {s: shares[s] for s in sorted(shares) if shares[s]})
