"""What the gate compares: a scored run, read from a run directory or from a small committed baseline file.

``medbench baseline save RUN_DIR -o FILE`` writes a JSON file a team commits next to its code. It keeps,
per checkpoint: the per-task metric records of metrics.json (whole task and subgroups), each scored
document's outcome and format flags by ``doc_key`` (so the gate can still run *paired* tests against it), and
provenance (run id, git sha, package versions, the machine it ran on: python, platform, CPU; checkpoints,
tasks). Metric records are read as the run directory's typed records
(:class:`~medbench.harness.run.records.TaskMetrics`, :class:`~medbench.harness.run.records.GroupMetrics`),
whichever kind the gate was given. Documents are written one per line, so updating a baseline shows up in a code review as the documents
that changed outcome.

File layout (``medbench_baseline`` = :data:`BASELINE_FORMAT`)::

    {"medbench_baseline": 1, "provenance": {...}, "per_task": [...], "per_group": [...],  (metrics.json's)
     "documents": {"columns": DOCUMENT_COLUMNS, "rows": [[checkpoint, task, doc_key, outcome, ...], ...]}}

:func:`load_scored` reads either kind into the same :class:`ScoredRun`, so the gate never cares which it got.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.harness.run.records import METRICS, GroupMetrics, TaskMetrics
from medbench.harness.run.rundir import Run, RunDirError, load_run
from medbench.harness.stats.metrics import INDICATOR_SOURCE_COLUMNS, closest, document_indicators
from medbench.tasks.errors import MedbenchError
from medbench.tasks.io import atomic_write_text

BASELINE_FORMAT = 1

#: Per-document fields kept in a baseline file: what every rate metric's indicator is computed from.
DOCUMENT_COLUMNS: tuple[str, ...] = ("checkpoint", "task", "doc_key", *INDICATOR_SOURCE_COLUMNS)
#: Document columns a baseline file saved by an older medbench may lack: they read as not applicable (so a
#: rule on flexible_accuracy or unclosed_tag_rate is skipped against it, never compared with a made-up value).
OPTIONAL_DOCUMENT_COLUMNS: tuple[str, ...] = ("flexible_outcome", "unclosed_tag", "layout")


class BaselineFileError(MedbenchError):
    """A baseline file is missing, corrupt or of another format; the message says which and how to fix it."""


class InconsistentRunError(MedbenchError):
    """A run's metric records disagree with its per-document outcomes (metrics.json edited or damaged, or a
    baseline file's two halves out of step): the gate refuses to give a verdict on numbers it cannot trust."""


#: Slack for comparing a stored rate with the same rate recomputed from documents (k / n in floating point).
_RATE_SLACK = 1e-9


@dataclass
class ScoredRun:
    """Per-task metrics and per-document indicators of one run (from a run directory or a baseline file)."""

    source: Path
    kind: str  # "run directory" or "baseline file"
    run_id: str
    checkpoints: list[str]  # lineage order
    roles: dict[str, str]
    per_task: list[TaskMetrics]
    documents: Any = field(repr=False)  # pandas.DataFrame from metrics.document_indicators
    provenance: dict[str, Any] = field(default_factory=dict, repr=False)
    per_group: list[GroupMetrics] = field(default_factory=list)
    #: checkpoint -> why it failed in its run (run.json ``errors``): the gate fails such a checkpoint
    errors: dict[str, str] = field(default_factory=dict)
    #: run.json ``status`` ("complete", "incomplete", "running"; None when not recorded)
    status: str | None = None
    _by_task: dict[tuple[str, str], Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _verified: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = str(self.source)
        self.per_task = [r if isinstance(r, TaskMetrics) else TaskMetrics.from_dict(r, where) for r in self.per_task]
        self.per_group = [r if isinstance(r, GroupMetrics) else GroupMetrics.from_dict(r, where)
                          for r in self.per_group]

    @property
    def reference(self) -> str | None:
        """The checkpoint whose role is base, else the first."""
        bases = [c for c in self.checkpoints if self.roles.get(c) == "base"]
        return bases[0] if bases else (self.checkpoints[0] if self.checkpoints else None)

    def describe(self) -> str:
        return f"{self.source} ({self.kind}, run {self.run_id})"

    def tasks(self, checkpoint: str | None = None) -> list[str]:
        """Tasks with metrics (for one checkpoint, or any), in first-seen order."""
        recs = [r for r in self.per_task if r.subgroup is None]
        return list(dict.fromkeys(r.task for r in recs if checkpoint is None or r.checkpoint == checkpoint))

    def groups(self, checkpoint: str | None = None) -> list[str]:
        """Task groups with pooled metrics (metrics.json "per_group"), for one checkpoint or any."""
        return list(dict.fromkeys(
            r.group for r in self.per_group if checkpoint is None or r.checkpoint == checkpoint
        ))

    def record(self, checkpoint: str, name: str) -> TaskMetrics | GroupMetrics | None:
        """The whole-task (or pooled group) metrics record of one checkpoint × task or group, or None."""
        for r in self.per_task:
            if r.checkpoint == checkpoint and r.task == name and r.subgroup is None:
                return r
        for g in self.per_group:
            if g.checkpoint == checkpoint and g.group == name:
                return g
        return None

    def task_documents(self, checkpoint: str, name: str):  # -> pandas.DataFrame indexed by document key
        """Per-document indicators of one checkpoint × task (indexed by doc_key) or × group (indexed by
        "task/doc_key"). Cached: the gate asks once per rule."""
        key = (checkpoint, name)
        if key not in self._by_task:
            docs = self.documents
            group = self.record(checkpoint, name) if name not in self.tasks(checkpoint) else None
            members = list(group.tasks) if isinstance(group, GroupMetrics) else [name]
            rows = docs[(docs["checkpoint"] == checkpoint) & docs["task"].isin(members)]
            # object keys: hashing Python strings is ~30x faster than pandas' arrow strings for isin/loc
            index = rows["doc_key"].astype(object)
            if group is not None:
                index = rows["task"].astype(object) + "/" + index
            self._by_task[key] = rows.set_index(index.rename("doc_key")).drop(columns="doc_key")
        return self._by_task[key]

    def verify(self, checkpoint: str, name: str) -> None:
        """Raise :class:`InconsistentRunError` when the metric record of ``checkpoint`` × ``name`` (a task or a
        group) disagrees with its documents: the count, and every rate recomputed from the per-document
        indicators it is the mean of. A gate that read "60.0% vs 60.0%" from metrics.json beside a test on
        samples showing "Δ −13.3 pts" would give a verdict on two different runs. A rate whose indicator no
        document records (a column an older baseline file lacks) is not compared."""
        import numpy as np

        key = (checkpoint, name)
        if key in self._verified:
            return
        record = self.record(checkpoint, name)
        if record is None:
            return
        docs = self.task_documents(checkpoint, name)
        what = "metrics.json" if self.kind == "run directory" else "its per_task/per_group records"
        fix = ("re-run `medbench bench` with the same --output to rewrite metrics.json from the finished pairs"
               if self.kind == "run directory" else "re-save it with `medbench baseline save RUN_DIR -o FILE`")
        where = f"{self.describe()}: checkpoint {checkpoint!r}, {name!r}"
        problems = []
        if record.n != len(docs):
            problems.append(f"n = {record.n} but {len(docs)} scored documents")
        for m in METRICS:
            if m.kind != "rate" or m.indicator not in docs.columns:
                continue
            values = docs[m.indicator].to_numpy(dtype=float)
            values = values[~np.isnan(values)]
            stored = record.get(m.name)
            if not values.size:
                continue
            recomputed = float(values.mean())
            if stored is None or abs(float(stored) - recomputed) > _RATE_SLACK:
                shown = "null" if stored is None else f"{100 * float(stored):.1f}%"
                problems.append(f"{m.name} {shown} but the documents give {100 * recomputed:.1f}% "
                                f"({int(values.sum())}/{values.size})")
        if problems:
            raise InconsistentRunError(
                f"{where}: {what} disagrees with the per-document outcomes ({'; '.join(problems)}): the numbers "
                f"were edited or the files are from different runs, so no verdict can be trusted; {fix}"
            )
        self._verified.add(key)

    def require_checkpoint(self, name: str) -> str:
        if name not in self.checkpoints:
            raise RunDirError(
                f"checkpoint {name!r} is not in {self.describe()}; it has {self.checkpoints}"
                f"{closest(name, self.checkpoints)}"
            )
        return name


def _read_records(records: Any, kind: type[TaskMetrics | GroupMetrics], where: str) -> list[Any]:
    """A baseline file's metric records as typed records; anything else is a damaged file, said so."""
    if not isinstance(records, list):
        raise BaselineFileError(f"{where}: metric records must be a list of objects; the file is damaged or from "
                                f"another tool (re-save the baseline with `medbench baseline save`)")
    try:
        return [kind.from_dict(r, where) for r in records]
    except ValueError as e:
        raise BaselineFileError(f"{e}; the file is damaged or from another tool (re-save the baseline with "
                                f"`medbench baseline save`)") from e


def _from_run(run: Run) -> ScoredRun:
    samples = run.samples()  # every sample column, null where an older run lacks it
    if "showcase" in samples.columns:
        samples = samples[~samples["showcase"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    per_task, per_group = run.task_metrics(), run.group_metrics()
    errors = run.meta.get("errors") if isinstance(run.meta.get("errors"), dict) else {}
    if not per_task:
        failed = "".join(f"; {name} failed: {msg}" for name, msg in errors.items())
        raise RunDirError(f"{run.root / 'metrics.json'} has no per_task records: no (checkpoint, task) pair of "
                          f"the run finished{failed}")
    roles = {c.name: c.role for c in run.checkpoints if c.role}
    names = run.checkpoint_names or list(dict.fromkeys(r.checkpoint for r in per_task))
    return ScoredRun(
        source=run.root, kind="run directory", run_id=run.run_id, checkpoints=names, roles=roles,
        per_task=per_task, documents=document_indicators(samples.reset_index(drop=True)),
        provenance={"run_id": run.run_id, **run_environment(run.meta), "checkpoints": run.meta.get("checkpoints"),
                    "tasks": run.meta.get("tasks")},
        per_group=per_group, errors={str(k): str(v) for k, v in errors.items()},
        status=run.meta.get("status"),
    )


def load_scored(path: str | Path) -> ScoredRun:
    """Read a run directory or a baseline file. Raises RunDirError / BaselineFileError with the fix."""
    path = Path(path)
    if path.is_dir():
        return _from_run(load_run(path))
    if path.is_file():
        return load_baseline(path)
    raise RunDirError(
        f"{path} does not exist: expected a run directory (the --output of `medbench bench`) or a baseline file "
        f"(written by `medbench baseline save`)"
    )


#: What a baseline keeps of the machine a run ran on (from run.json's ``environment.hardware``): float32
#: training on CPU is not bit-identical across processors and library builds, so a reviewer comparing a run
#: with a baseline needs to see whether both came from the same kind of machine.
MACHINE_FIELDS: tuple[str, ...] = ("python", "platform", "machine", "cpu", "cpu_count", "memory_gib", "gpus",
                                   "cuda")


def run_environment(meta: dict[str, Any]) -> dict[str, Any]:
    """``{"git_sha", "git_dirty", "versions", "machine"}`` of a run, from run.json's ``environment`` (what
    ``medbench bench`` records: package versions, git commit, hardware), falling back to the flat
    ``git_sha`` / ``versions`` keys of runs written without it. ``versions`` maps each recorded distribution
    (medbench, torch, transformers, lm-eval, trl, peft, datasets, ...) to its version, ``None`` when it was not
    installed; ``machine`` holds :data:`MACHINE_FIELDS`."""
    env = meta.get("environment") if isinstance(meta.get("environment"), dict) else {}
    git = env.get("git") if isinstance(env.get("git"), dict) else {}
    hardware = env.get("hardware") if isinstance(env.get("hardware"), dict) else {}
    versions = env.get("packages") if isinstance(env.get("packages"), dict) else meta.get("versions")
    return {
        "git_sha": git.get("sha") or meta.get("git_sha"),
        "git_dirty": git.get("dirty"),
        "versions": dict(versions) if isinstance(versions, dict) else None,
        "machine": {k: hardware.get(k) for k in MACHINE_FIELDS} if hardware else None,
    }


def _medbench_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("medbench")
    except PackageNotFoundError:
        return "unknown"


def save_baseline(run_dir: str | Path, out: str | Path, checkpoints: Sequence[str] | None = None) -> dict[str, Any]:
    """Write a baseline file from a run directory; returns a summary (path, checkpoints, tasks, documents)."""
    run = load_run(run_dir)
    scored = _from_run(run)
    chosen = list(checkpoints) if checkpoints else scored.checkpoints
    for name in chosen:
        scored.require_checkpoint(name)
    failed = {n: scored.errors[n] for n in chosen if n in scored.errors}
    if failed:
        others = [n for n in scored.checkpoints if n not in failed]
        raise RunDirError(
            f"{run.root}: checkpoint(s) {', '.join(map(repr, failed))} failed in this run "
            f"({'; '.join(f'{n}: {m}' for n, m in failed.items())}); a baseline must hold finished work: fix it "
            f"and run the same `medbench bench` command again to resume, or leave it out"
            + (f" with --checkpoint ({', '.join(others)})" if others else "")
        )
    for name in chosen:
        for task in scored.tasks(name) + scored.groups(name):
            scored.verify(name, task)  # a baseline is never saved from numbers that disagree with its documents
    samples = run.samples()
    if "showcase" in samples.columns:
        samples = samples[~samples["showcase"].astype("boolean").fillna(False).to_numpy(dtype=bool)]
    samples = samples[samples["checkpoint"].isin(chosen)]
    rows = []
    for rec in samples[list(DOCUMENT_COLUMNS)].to_dict(orient="records"):
        rows.append([_json_value(rec[c]) for c in DOCUMENT_COLUMNS])
    provenance = {
        "source_run_dir": str(run.root),
        "run_id": run.run_id,
        "saved_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "saved_with": f"medbench {_medbench_version()}",
        **run_environment(run.meta),
        "checkpoints": [c.to_dict() for c in run.checkpoints if c.name in chosen],
        "tasks": run.meta.get("tasks"),
    }
    head = {
        "medbench_baseline": BASELINE_FORMAT,
        "provenance": provenance,
        "per_task": [r.to_dict() for r in scored.per_task if r.checkpoint in chosen],
        "per_group": [r.to_dict() for r in scored.per_group if r.checkpoint in chosen],
        "documents": {"columns": list(DOCUMENT_COLUMNS), "rows": "__ROWS__"},
    }
    text = json.dumps(head, indent=2, default=str)
    body = "[\n" + ",\n".join("      " + json.dumps(r, default=str) for r in rows) + "\n    ]"
    out = Path(out)
    atomic_write_text(out, text.replace('"__ROWS__"', body, 1) + "\n")
    return {
        "path": out, "checkpoints": chosen, "tasks": scored.tasks(), "documents": len(rows),
        "bytes": out.stat().st_size,
    }


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def load_baseline(path: str | Path) -> ScoredRun:
    """Read a file written by :func:`save_baseline`."""
    import pandas as pd

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise BaselineFileError(f"cannot read baseline file {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise BaselineFileError(
            f"{path} is not valid JSON ({e.msg} at line {e.lineno}): expected a baseline file from "
            f"`medbench baseline save` (a merge conflict? re-save it from the baseline run)"
        ) from e
    if not isinstance(data, dict) or "medbench_baseline" not in data:
        raise BaselineFileError(
            f"{path} is not a medbench baseline file (no 'medbench_baseline' key); pass a run directory or a file "
            f"written by `medbench baseline save RUN_DIR -o FILE`"
        )
    if data["medbench_baseline"] != BASELINE_FORMAT:
        raise BaselineFileError(
            f"{path} is baseline format {data['medbench_baseline']!r}; this medbench reads format "
            f"{BASELINE_FORMAT}: re-save it with `medbench baseline save`"
        )
    try:
        docs = data["documents"]
        columns, rows = list(docs["columns"]), docs["rows"]
        missing = [c for c in DOCUMENT_COLUMNS if c not in columns and c not in OPTIONAL_DOCUMENT_COLUMNS]
        if missing:
            raise BaselineFileError(f"{path}: documents lack columns {missing}")
        bad = [i for i, r in enumerate(rows) if len(r) != len(columns)]
        if bad:
            raise BaselineFileError(f"{path}: document row {bad[0]} has {len(rows[bad[0]])} values, expected {len(columns)}")
        frame = pd.DataFrame(rows, columns=columns)
        per_task = _read_records(data["per_task"], TaskMetrics, str(path))
        per_group = _read_records(data.get("per_group", []), GroupMetrics, str(path))
        prov = dict(data.get("provenance") or {})
        entries = list(prov.get("checkpoints") or [])
    except (KeyError, TypeError) as e:
        raise BaselineFileError(f"{path} is damaged (missing or malformed {e}): re-save it with `medbench baseline save`") from e
    try:
        documents = document_indicators(frame)
    except ValueError as e:
        raise BaselineFileError(f"{path}: {e}") from e
    names = [c["name"] for c in entries] or list(dict.fromkeys(r.checkpoint for r in per_task))
    return ScoredRun(
        source=path, kind="baseline file", run_id=str(prov.get("run_id", path.stem)), checkpoints=names,
        roles={c["name"]: str(c["role"]) for c in entries if c.get("role")}, per_task=per_task,
        documents=documents, provenance=prov, per_group=per_group,
    )
