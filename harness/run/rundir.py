"""The run directory: the one contract between ``medbench bench`` and everything downstream.

Layout (schema version :data:`SCHEMA_VERSION`)::

    runs/<run-id>/
      run.json          spec, checkpoints (provenance, content hash), tasks (+ versions), package versions,
                        git sha, hardware, timings, schema_version
      samples.parquet   one row per (checkpoint, task, doc): see SAMPLE_COLUMNS
      metrics.json      {"schema_version", "per_task": [...], "pairs": [...]}
      lm_eval/          lm-eval's own outputs, kept for provenance
      partial/          resume state while a run is in progress: <checkpoint>__<task>.jsonl
                        (one line per finished document) and .done markers (holding the row count)
      cache/            lm-eval's sqlite request cache per checkpoint (<checkpoint>_rank<N>.db: finished
                        generations inside an unfinished task) and per-request generation times
      report.html       written by ``medbench report``

Reports, the gate and run comparisons read runs **only** through :func:`load_run`; the bench runner writes
them only through :class:`RunWriter`. Nobody else parses these files.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

#: Columns of samples.parquet. Grade-record fields come from ``GradeRecord.to_dict()``.
SAMPLE_COLUMNS: tuple[str, ...] = (
    # identity
    "checkpoint", "task", "group", "subgroup", "doc_id", "doc_key", "showcase", "task_version",
    # what was asked and answered (raw completion kept whole)
    "prompt", "completion", "target", "question",
    # the grader's record
    "outcome", "extracted", "answer_source", "strict_extracted", "lenient_extracted", "strict_correct",
    "layout", "answer_type", "format_strict", "format_soft", "think_ok", "text_outside_tags", "truncated",
    "reasoning_words", "answer_words", "reasoning_tokens", "answer_tokens", "completion_chars", "notes",
    # where the grader found the reasoning ([[start, end], ...], one per block) and the answer ([start, end]):
    # code-point offsets into the completion; empty / null for loglikelihood tasks and for older runs
    "reasoning_spans", "answer_span",
    "judge_agree", "judge_score", "judge_kind", "judge_rationale", "judge_model",
    # generation facts
    "completion_tokens", "gen_time_s",
)

#: Lineage order used to sort checkpoints by role (from provenance, the spec, or the checkpoint's name).
ROLE_ORDER = {"base": 0, "sft": 1, "grpo": 2}


def _same_model(a: Any, b: Any) -> bool:
    """Whether two model references (hub ids or paths, as run.json records them) name the same model."""
    if not a or not b:
        return False
    a, b = str(a).rstrip("/"), str(b).rstrip("/")
    if a.lower() == b.lower():
        return True
    pa, pb = Path(os.path.expanduser(a)), Path(os.path.expanduser(b))
    return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()


def checkpoint_roles(checkpoints: Sequence[Mapping[str, Any]]) -> dict[str, str | None]:
    """Each checkpoint's lineage role: its own ``role`` (provenance, spec or name, as the runner recorded it),
    else ``base`` when it is the model another checkpoint's provenance names as its ``parent`` (a hub base
    has no provenance file, but the SFT trained from it says where it came from)."""
    roles = {str(c["name"]): (str(c["role"]) if c.get("role") else None) for c in checkpoints}
    for c in checkpoints:
        if roles[str(c["name"])] is None and not c.get("adapter") and any(
            _same_model(other.get("parent"), c.get("model")) for other in checkpoints if other is not c
        ):
            roles[str(c["name"])] = "base"
    return roles


def lineage_order(checkpoints: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Checkpoint entries (run.json's form: name, role, parent, model, adapter) in lineage order
    base → sft → grpo (roles from :func:`checkpoint_roles`), then in the order given. The one ordering rule:
    the runner, the run API and so the report all sort with it."""
    roles = checkpoint_roles(checkpoints)
    indexed = list(enumerate(checkpoints))
    indexed.sort(key=lambda ic: (ROLE_ORDER.get(roles[str(ic[1]["name"])] or "", len(ROLE_ORDER)), ic[0]))
    return [c for _, c in indexed]


class RunDirError(RuntimeError):
    """A run directory is missing, corrupt or of an unknown schema; the message says which file and why."""


def _create_temp_beside(path: Path) -> tuple[int, str]:
    """A new, uniquely named temp file next to ``path``, opened for writing: ``(fd, name)``.

    Unlike ``tempfile.mkstemp`` (always mode 0600), it is created with mode 0666 less the process umask, so
    the file renamed into place gets the same mode as every other file medbench writes (0644 under the usual
    umask 022) and run.json, metrics.json and baselines stay readable to whoever may read the rest."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def _atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + rename so a crash never leaves a half-written JSON behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json(path: Path, obj: Any) -> None:
    _atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _read_json(path: Path) -> Any:
    if not path.exists():
        raise RunDirError(f"{path} is missing: is {path.parent} a medbench run directory?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunDirError(
            f"{path} is not valid JSON ({e.msg} at line {e.lineno}): the run directory is corrupt; "
            f"re-run `medbench bench` with the same --output to rebuild it from partial/ results"
        ) from e


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@dataclass
class RunWriter:
    """Writes a run directory incrementally, so an interrupted run loses at most one document."""

    root: Path

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        (self.root / "partial").mkdir(parents=True, exist_ok=True)
        (self.root / "lm_eval").mkdir(exist_ok=True)

    # -- run.json ---------------------------------------------------------------------------------
    def write_meta(self, meta: dict[str, Any]) -> None:
        write_json(self.root / "run.json", {"schema_version": SCHEMA_VERSION, **meta})

    # -- per (checkpoint, task) incremental samples -----------------------------------------------
    def _partial(self, checkpoint: str, task: str, suffix: str) -> Path:
        return self.root / "partial" / f"{_safe(checkpoint)}__{_safe(task)}{suffix}"

    def is_done(self, checkpoint: str, task: str) -> bool:
        return self._partial(checkpoint, task, ".done").exists()

    def finished_doc_ids(self, checkpoint: str, task: str) -> set[Any]:
        return {row["doc_id"] for row in self.read_partial(checkpoint, task)}

    def read_partial(self, checkpoint: str, task: str) -> list[dict[str, Any]]:
        path = self._partial(checkpoint, task, ".jsonl")
        if not path.exists():
            return []
        rows = []
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # a torn last line from a kill: everything before it is kept
        return rows

    def append_samples(self, checkpoint: str, task: str, rows: Iterable[dict[str, Any]]) -> None:
        path = self._partial(checkpoint, task, ".jsonl")
        good = self.read_partial(checkpoint, task)
        # Drop a torn tail before appending, so the file stays one JSON object per line.
        if path.exists() and sum(1 for _ in path.open(encoding="utf-8")) != len(good):
            _atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in good))
        with path.open("a", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def mark_done(self, checkpoint: str, task: str, n_rows: int | None = None) -> None:
        _atomic_write_text(self._partial(checkpoint, task, ".done"), "" if n_rows is None else f"{n_rows}\n")

    def write_pair(self, checkpoint: str, task: str, rows: list[dict[str, Any]]) -> None:
        """Write one finished (checkpoint, task) pair at once and mark it done (the row count goes into the
        marker, so a damaged partial file is detected on resume instead of silently losing rows)."""
        path = self._partial(checkpoint, task, ".jsonl")
        _atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))
        self.mark_done(checkpoint, task, len(rows))

    def done_rows(self, checkpoint: str, task: str) -> list[dict[str, Any]] | None:
        """The rows of a finished pair, or ``None`` if the pair is not finished or its rows are damaged."""
        marker = self._partial(checkpoint, task, ".done")
        if not marker.exists():
            return None
        rows = self.read_partial(checkpoint, task)
        expected = marker.read_text(encoding="utf-8").strip()
        if expected and int(expected) != len(rows):
            marker.unlink()
            return None
        return rows

    # -- resume state (bench runner only) -------------------------------------------------------------
    def read_meta(self) -> dict[str, Any] | None:
        """run.json of an earlier (possibly interrupted) run in this directory, or ``None``."""
        path = self.root / "run.json"
        return _read_json(path) if path.exists() else None

    def request_cache_prefix(self, checkpoint: str) -> str:
        """Path prefix of lm-eval's sqlite request cache for one checkpoint (lm-eval adds ``_rank<N>.db``)."""
        (self.root / "cache").mkdir(exist_ok=True)
        return str(self.root / "cache" / _safe(checkpoint))

    def read_timings(self, checkpoint: str) -> dict[str, float]:
        path = self.root / "cache" / f"{_safe(checkpoint)}.timings.jsonl"
        out: dict[str, float] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    out.update(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a torn line from a kill
        return out

    def append_timings(self, checkpoint: str, timings: dict[str, float]) -> None:
        (self.root / "cache").mkdir(exist_ok=True)
        with (self.root / "cache" / f"{_safe(checkpoint)}.timings.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(timings) + "\n")

    def read_state(self, name: str) -> dict[str, Any]:
        path = self.root / "partial" / f"{_safe(name)}.state.json"
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except json.JSONDecodeError:
            return {}  # state is a cache (e.g. file hashes): rebuilt when damaged

    def write_state(self, name: str, obj: dict[str, Any]) -> None:
        write_json(self.root / "partial" / f"{_safe(name)}.state.json", obj)

    def lm_eval_dir(self, checkpoint: str) -> Path:
        return self.root / "lm_eval" / _safe(checkpoint)

    # -- final artefacts --------------------------------------------------------------------------
    def write_samples(self, rows: list[dict[str, Any]]) -> None:
        import pandas as pd

        frame = pd.DataFrame(rows)
        for col in SAMPLE_COLUMNS:
            if col not in frame.columns:
                frame[col] = None
        extra = [c for c in frame.columns if c not in SAMPLE_COLUMNS]
        frame = frame[list(SAMPLE_COLUMNS) + extra]
        frame["notes"] = frame["notes"].map(lambda v: json.dumps(list(v)) if isinstance(v, (list, tuple)) else v)
        tmp = self.root / ".samples.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.root / "samples.parquet")

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.root / "metrics.json", {"schema_version": SCHEMA_VERSION, **metrics})


@dataclass
class Run:
    """A loaded run directory. Read-only."""

    root: Path
    meta: dict[str, Any]
    metrics: dict[str, Any]
    _samples: Any = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.root.name))

    @property
    def checkpoints(self) -> list[dict[str, Any]]:
        """Checkpoints in lineage order (base → SFT → GRPO, :func:`lineage_order`), then in the order the spec
        gave them; ``role`` filled in where lineage implies it."""
        cks = [dict(c) for c in self.meta.get("checkpoints", [])]
        roles = checkpoint_roles(cks)
        for c in cks:
            c["role"] = roles[str(c["name"])]
        return [dict(c) for c in lineage_order(cks)]

    @property
    def checkpoint_names(self) -> list[str]:
        return [c["name"] for c in self.checkpoints]

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return list(self.meta.get("tasks", []))

    @property
    def task_names(self) -> list[str]:
        return [t["name"] for t in self.tasks]

    def samples(self):  # -> pandas.DataFrame
        """All samples as one pandas DataFrame (columns: :data:`SAMPLE_COLUMNS`)."""
        if self._samples is None:
            import pandas as pd

            path = self.root / "samples.parquet"
            if not path.exists():
                raise RunDirError(f"{path} is missing: the run in {self.root} did not finish")
            try:
                self._samples = pd.read_parquet(path)
            except Exception as e:  # pyarrow raises several types for a damaged file
                raise RunDirError(f"{path} cannot be read ({e}): the run directory is corrupt") from e
        return self._samples

    def iter_samples(self, checkpoint: str | None = None, task: str | None = None) -> Iterator[dict[str, Any]]:
        df = self.samples()
        if checkpoint is not None:
            df = df[df["checkpoint"] == checkpoint]
        if task is not None:
            df = df[df["task"] == task]
        yield from df.to_dict(orient="records")

    def task_metrics(self) -> list[dict[str, Any]]:
        return list(self.metrics.get("per_task", []))

    def pair_metrics(self) -> list[dict[str, Any]]:
        return list(self.metrics.get("pairs", []))


def load_run(path: str | os.PathLike[str]) -> Run:
    """Load a run directory, checking its schema version."""
    root = Path(path)
    if not root.is_dir():
        raise RunDirError(f"run directory {root} does not exist (expected the --output of `medbench bench`)")
    meta = _read_json(root / "run.json")
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RunDirError(
            f"{root / 'run.json'} has schema_version {version!r}; this medbench reads version {SCHEMA_VERSION}"
        )
    metrics = _read_json(root / "metrics.json")
    return Run(root=root, meta=meta, metrics=metrics)
