"""Train/eval overlap: no training document may appear in an evaluation split.

Questions are compared by a hash of their *normalised* text (Unicode NFKC, case-folded, punctuation and
whitespace runs collapsed), so a copy that differs only in spacing, case or quotes is still caught.
The same check serves the bundled recipes and a user's own training file.

Health_Benchmarks has a single split per specialty, so medbench splits it by a fixed hash of the normalised
question (:func:`medbench.tasks.splits.health_split`, re-exported here): the same question always lands on the
same side, on every machine, whatever the row order. GRPO trains on the ``train`` side and nothing else.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from medbench.tasks.splits import HEALTH_EVAL_PERCENT, health_split, normalise_question, question_hash

__all__ = ["HEALTH_EVAL_PERCENT", "OverlapHit", "OverlapReport", "find_overlap", "health_split",
           "normalise_question", "question_hash"]


@dataclass(frozen=True)
class EvalQuestion:
    """One evaluation document as the overlap check sees it."""

    question: str
    doc_key: str = ""
    showcase: bool = False  # a named showcase sample (shown, and labelled, whatever its origin)


@dataclass(frozen=True)
class OverlapHit:
    """One training question that also appears in an evaluation set."""

    question_hash: str
    train_source: str
    train_index: int
    eval_set: str
    eval_doc: str
    question: str
    showcase: bool  # the evaluation document is a labelled showcase sample, not part of the scored slice


@dataclass
class OverlapReport:
    n_train: int
    n_eval: dict[str, int]
    hits: list[OverlapHit] = field(default_factory=list)

    @property
    def leaks(self) -> list[OverlapHit]:
        """Overlaps that make a benchmark number dishonest (showcase samples are known and labelled)."""
        return [h for h in self.hits if not h.showcase]

    @property
    def clean(self) -> bool:
        return not self.leaks

    def by_eval_set(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for h in self.leaks:
            counts[h.eval_set] += 1
        return dict(counts)

    def summary(self, max_examples: int = 5) -> str:
        evals = f"{sum(self.n_eval.values())} evaluation documents in {len(self.n_eval)} task(s)"
        lines = []
        if self.clean:
            lines.append(f"no overlap: {self.n_train} training questions vs {evals}")
        else:
            lines.append(f"OVERLAP: {len(self.leaks)} training question(s) of {self.n_train} appear in {evals}:")
            for name, n in sorted(self.by_eval_set().items()):
                lines.append(f"  {name}: {n}")
            for h in self.leaks[:max_examples]:
                q = h.question if len(h.question) <= 100 else h.question[:97] + "..."
                lines.append(f"  e.g. {h.train_source} row {h.train_index} = {h.eval_set} {h.eval_doc}: {q!r}")
            lines.append("Remove these rows from the training data (or train on another slice) so the benchmark "
                         "stays honest.")
        for h in self.hits:
            if h.showcase:
                lines.append(f"note: {h.eval_set} showcase sample {h.eval_doc} is in the training data "
                             f"({h.train_source} row {h.train_index}); the report labels it, it is not scored as "
                             "held-out")
        return "\n".join(lines)


def find_overlap(
    train: Iterable[tuple[str, str]],
    eval_sets: dict[str, Iterable[EvalQuestion | str]],
) -> OverlapReport:
    """Compare training questions with evaluation questions by normalised hash.

    Args:
        train: ``(source, question)`` pairs, in training order (the index reported is the position).
        eval_sets: evaluation set name -> its documents (:class:`EvalQuestion`, or bare question strings).
    """
    index: dict[str, list[tuple[str, EvalQuestion]]] = defaultdict(list)
    n_eval: dict[str, int] = {}
    for name, docs in eval_sets.items():
        n = 0
        for i, doc in enumerate(docs):
            q = doc if isinstance(doc, EvalQuestion) else EvalQuestion(doc, doc_key=str(i))
            index[question_hash(q.question)].append((name, q))
            n += 1
        n_eval[name] = n
    hits: list[OverlapHit] = []
    n_train = 0
    for i, (source, question) in enumerate(train):
        n_train += 1
        h = question_hash(question)
        for name, q in index.get(h, ()):
            hits.append(OverlapHit(h, source, i, name, q.doc_key, question, q.showcase))
    return OverlapReport(n_train=n_train, n_eval=n_eval, hits=hits)


# ---------------------------------------------------------------------------------------------------------
# the evaluation side: medbench's tasks, read the way `medbench bench` reads them
# ---------------------------------------------------------------------------------------------------------


def eval_questions(tasks: list[str] | None = None, *, data_dir: str | None = None,
                   limit: int | None = None) -> dict[str, list[EvalQuestion]]:
    """Every document of the named medbench tasks (default: all), through lm-eval and the tasks' loaders."""
    from lm_eval.tasks import TaskManager
    from medbench.tasks import registry
    from medbench.tasks.scoring import doc_info

    specs = registry.expand(list(tasks) if tasks else [registry.UMBRELLA])
    manager = TaskManager(include_path=str(registry.include_path()), include_defaults=False,
                          metadata={"data_dir": str(data_dir)} if data_dir else None)
    out: dict[str, list[EvalQuestion]] = {}
    for spec in specs:
        for name, task in manager.load([spec.name])["tasks"].items():
            docs = []
            for i, doc in enumerate(task.eval_docs):
                if limit is not None and i >= limit:
                    break
                info = doc_info(spec, doc)
                docs.append(EvalQuestion(info["question"], info["doc_key"], info["showcase"]))
            out[name] = docs
    return out


def check_config_overlap(cfg, *, tasks: list[str] | None = None, data_dir: str | None = None,
                         limit: int | None = None) -> OverlapReport:
    """The overlap check for a recipe config: the questions it would train on vs medbench's tasks."""
    from .data import SAMPLE, grpo_rows, load_sft_rows

    if cfg.recipe == "sft":
        rows, _ = load_sft_rows(cfg.data)
        train = [(f"{cfg.data.dataset} {cfg.data.split}", r["Question"]) for r in rows]
    else:
        rows, _ = grpo_rows(cfg.data)
        train = [(r["source"], r["question"]) for r in rows]
    if data_dir is None and cfg.data.data_dir:
        data_dir = cfg.data.data_dir
    if data_dir == SAMPLE:
        from medbench.tasks.loaders import SAMPLE_DATA_DIR

        data_dir = str(SAMPLE_DATA_DIR)
    return find_overlap(train, eval_questions(tasks, data_dir=data_dir, limit=limit))


def check_file_overlap(path: str, question_field: str = "question", *, tasks: list[str] | None = None,
                       data_dir: str | None = None, limit: int | None = None) -> OverlapReport:
    """The overlap check for a user's own training file (.jsonl, .json, .csv or .parquet)."""
    from pathlib import Path

    from medbench.tasks.loaders._io import DataError, read_records

    p = Path(path)
    if not p.is_file():
        raise DataError(f"training file {p} not found")
    train = []
    for row, rec in read_records(p, str(p)):
        q = rec.get(question_field) if isinstance(rec, dict) else None
        if not isinstance(q, str) or not q.strip():
            fields = sorted(rec) if isinstance(rec, dict) else type(rec).__name__
            raise DataError(f"{p}, row {row}: no question text in field {question_field!r} (row has {fields}); "
                            "pass --question-field NAME")
        train.append((p.name, q))
    return find_overlap(train, eval_questions(tasks, data_dir=data_dir, limit=limit))
