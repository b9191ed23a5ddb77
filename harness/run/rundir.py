"""The run directory: the one contract between ``medbench bench`` and everything downstream.

Layout (schema version :data:`~medbench.harness.run.records.SCHEMA_VERSION`)::

    runs/<run-id>/
      run.json          spec, checkpoints (provenance, content hash), tasks (+ versions), package versions,
                        git sha, hardware, timings, schema_version
      samples.parquet   one row per (checkpoint, task, doc): the fields of records.SampleRow (SAMPLE_COLUMNS)
      metrics.json      records.RunMetrics: {"schema_version", "methods", "length_unit", "per_task", "pairs",
                        "per_group", "group_pairs"}
      lm_eval/          lm-eval's own outputs, kept for provenance
      partial/          resume state while a run is in progress: <checkpoint>__<task>.jsonl
                        (one line per finished document) and .done markers (holding the row count)
      cache/            per process N (one unless launched by torchrun / accelerate, harness/run/shard.py):
                        lm-eval's sqlite request cache per checkpoint (<checkpoint>_rank<N>.db: finished
                        generations inside an unfinished task), per-request generation times
                        (<checkpoint>_rank<N>.timings.jsonl) and the backend's generated-token counts
                        (<checkpoint>_rank<N>.generated.jsonl)
      report.html       written by ``medbench report``

Reports, the gate and run comparisons read runs **only** through :func:`load_run`, which returns typed
records (:mod:`medbench.harness.run.records`); the bench runner writes them only through :class:`RunWriter`.
Nobody else parses these files.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.harness.run.records import (
    READABLE_SCHEMA_VERSIONS,
    ROLE_ORDER,
    SAMPLE_COLUMNS,
    SCHEMA_VERSION,
    CheckpointEntry,
    GeneratedTokens,
    GroupMetrics,
    GroupPairMetrics,
    JsonRecord,
    PairMetrics,
    RunMetrics,
    TaskMetrics,
    plain,
)
from medbench.tasks.errors import MedbenchError
from medbench.tasks.io import atomic_write_text

__all__ = [
    "ROLE_ORDER", "SAMPLE_COLUMNS", "SCHEMA_VERSION", "Run", "RunDirError", "RunWriter", "checkpoint_roles",
    "lineage_order", "load_run", "write_json",
]


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


class RunDirError(MedbenchError):
    """A run directory is missing, corrupt or of an unknown schema; the message says which file and why."""


def _json_default(obj: Any) -> Any:
    if isinstance(obj, JsonRecord):
        return obj.to_dict()
    return str(obj)


#: ``json.dumps(row, default=_json_default)``, the same text, with the encoder built once (partial/ rows).
_ROW_ENCODER = json.JSONEncoder(default=_json_default)


#: At most this many rows written by a :class:`RunWriter` are kept in memory for the read-back (a larger run's
#: pairs beyond it are parsed from their files, as before).
KEEP_WRITTEN_ROWS = 200_000

_JSON_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})


class _NotNative(Exception):
    """A value whose JSON text parses back as something else."""


def _json_value(value: Any) -> Any:
    """A copy of a non-scalar ``value`` when parsing its JSON text gives it back unchanged (lists of scalars
    and of such lists, dicts of them with text keys); raises :class:`_NotNative` otherwise."""
    kind = type(value)
    if kind is list:
        if _JSON_SCALARS.issuperset(map(type, value)):  # notes, an answer span: checked and copied in C
            return value.copy()
        return [v if type(v) in _JSON_SCALARS else _json_value(v) for v in value]
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise _NotNative
        return {k: v if type(v) in _JSON_SCALARS else _json_value(v) for k, v in value.items()}
    raise _NotNative


def _json_copy(rows: Sequence[Any]) -> list[dict[str, Any]] | None:
    """Copies of ``rows`` that equal ``json.loads`` of their partial-file lines, or ``None`` when some row
    holds a value whose JSON text reads back as something else (a tuple, a record, a numpy scalar, a key
    that is not text): those pairs are read back from the file. A float's text reads back as the same float,
    NaN included. Rows of one pair share their keys and value types, so which keys hold a non-scalar is
    worked out once per (keys, types) shape, in C (``map``, ``dict``); only those values (notes, spans) are
    copied one by one. A loop over every field was 1.4 s for 30,000 rows."""
    scalars = _JSON_SCALARS
    shapes: dict[tuple[tuple[Any, ...], tuple[type, ...]], Any] = {}
    out = []
    try:
        for row in rows:
            if type(row) is not dict:
                return None
            copied = dict(row)
            shape = (tuple(copied), tuple(map(type, copied.values())))
            nested = shapes.get(shape, _NotNative)
            if nested is _NotNative:  # a shape not seen yet
                nested = shapes[shape] = (
                    None if not all(type(k) is str for k in shape[0])
                    else tuple(k for k, kind in zip(*shape) if kind not in scalars))
            if nested is None:
                return None
            for key in nested:
                copied[key] = _json_value(copied[key])
            out.append(copied)
    except _NotNative:
        return None
    return out


def _notes_json(value: Any, _known: dict[tuple[Any, ...], str] = {}) -> Any:  # noqa: B006 (a cache on purpose)
    """A row's notes as samples.parquet stores them: a list (or tuple) as its JSON text, anything else as it is.
    Most rows share a few note lists ("[]" above all): each distinct one is encoded once per process."""
    if not isinstance(value, (list, tuple)):
        return value
    if not all(type(note) is str for note in value):  # 1 and True are one key of a dict: only text is kept
        return json.dumps(list(value))
    key = tuple(value)
    text = _known.get(key)
    if text is None:
        text = json.dumps(list(value))
        if len(_known) < 100_000:
            _known[key] = text
    return text


def _token_chars(text: Any) -> bytes | None:
    """``GeneratedTokens.token_chars`` from its base64 form in generated.jsonl (``None`` if absent or damaged:
    the regions are then re-tokenised)."""
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return raw if len(raw) % 2 == 0 else None


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, written atomically; records are written in their JSON form."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


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


def _jsonl_lines(path: Path) -> list[Any]:
    """The objects of a JSON-lines file, skipping torn lines (a kill mid-write)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


@dataclass
class RunWriter:
    """Writes a run directory incrementally, so an interrupted run loses at most one document."""

    root: Path
    #: The rows of each pair this writer wrote, by partial file, with the file's (size, mtime, inode) then: see
    #: :meth:`read_partial`.
    _written: dict[Path, tuple[tuple[int, int, int], list[dict[str, Any]]]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        (self.root / "partial").mkdir(parents=True, exist_ok=True)
        (self.root / "lm_eval").mkdir(exist_ok=True)

    # -- run.json ---------------------------------------------------------------------------------
    def write_meta(self, meta: Mapping[str, Any]) -> None:
        write_json(self.root / "run.json", {"schema_version": SCHEMA_VERSION, **meta})

    # -- per (checkpoint, task) incremental samples -----------------------------------------------
    def _partial(self, checkpoint: str, task: str, suffix: str) -> Path:
        return self.root / "partial" / f"{_safe(checkpoint)}__{_safe(task)}{suffix}"

    def is_done(self, checkpoint: str, task: str) -> bool:
        return self._partial(checkpoint, task, ".done").exists()

    def read_partial(self, checkpoint: str, task: str) -> list[dict[str, Any]]:
        """The rows in a pair's partial file. A file this writer wrote itself and nobody touched since (same
        size, modification time and inode) is not parsed again: the rows it holds are the ones written, kept
        as JSON-native copies (:func:`_json_copy`), so they equal what parsing the file gives. finalize's
        read-back of 30,000 rows was 2 s of JSON parsing (issue 14, benchmarks/cpu_postprocess.py)."""
        path = self._partial(checkpoint, task, ".jsonl")
        kept = self._written.get(path)
        if kept is not None:
            try:
                st = os.stat(path)
            except OSError:
                st = None
            if st is not None and (st.st_size, st.st_mtime_ns, st.st_ino) == kept[0]:
                return [dict(r) for r in kept[1]]
            del self._written[path]
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

    def write_pair(self, checkpoint: str, task: str, rows: list[dict[str, Any]]) -> None:
        """Write one finished (checkpoint, task) pair at once and mark it done (the row count goes into the
        marker, so a damaged partial file is detected on resume instead of silently losing rows)."""
        path = self._partial(checkpoint, task, ".jsonl")
        encode = _ROW_ENCODER.encode  # one encoder for every row: json.dumps(r, default=...) builds one a call
        atomic_write_text(path, "".join([encode(r) + "\n" for r in rows]))
        self._written.pop(path, None)
        kept = sum(len(r) for _, r in self._written.values())
        copies = _json_copy(rows) if kept + len(rows) <= KEEP_WRITTEN_ROWS else None
        if copies is not None:
            st = os.stat(path)
            self._written[path] = ((st.st_size, st.st_mtime_ns, st.st_ino), copies)
        # The rows are on disk (fsynced) before the marker exists; a marker lost or left empty by a crash only
        # means the pair is redone or its rows are taken without the count check, so it needs no fsync.
        atomic_write_text(self._partial(checkpoint, task, ".done"), f"{len(rows)}\n", durable=False)

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
        """Every request's generation time for one checkpoint, by request-cache key: all ranks' files (and the
        single ``<checkpoint>.timings.jsonl`` of runs before ranks kept their own)."""
        cache = self.root / "cache"
        out: dict[str, float] = {}
        for path in [cache / f"{_safe(checkpoint)}.timings.jsonl",
                     *sorted(cache.glob(f"{_safe(checkpoint)}_rank*.timings.jsonl"))]:
            if path.exists():
                for obj in _jsonl_lines(path):
                    out.update(obj)
        return out

    def append_timings(self, checkpoint: str, timings: dict[str, float], rank: int = 0) -> None:
        """Append generation times to this rank's ``cache/<checkpoint>_rank<rank>.timings.jsonl`` (one file per
        process: several processes never append to one file)."""
        (self.root / "cache").mkdir(exist_ok=True)
        path = self.root / "cache" / f"{_safe(checkpoint)}_rank{int(rank)}.timings.jsonl"
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(timings) + "\n")

    def generation_recorder(self, checkpoint: str, rank: int = 0) -> Callable[[str, GeneratedTokens], None]:
        """A callback for the backend (``lm.on_generated``): it appends each generation's token count, by
        request-cache key, to ``cache/<checkpoint>_rank<rank>.generated.jsonl`` before the generation reaches
        the request cache, so a resumed run knows the counts of the generations it reuses."""
        (self.root / "cache").mkdir(exist_ok=True)
        path = self.root / "cache" / f"{_safe(checkpoint)}_rank{int(rank)}.generated.jsonl"

        def record(key: str, counted: GeneratedTokens) -> None:
            obj: dict[str, Any] = {"key": key, "n_tokens": counted.n_tokens, "hit_limit": counted.hit_limit}
            if counted.token_chars is not None:
                obj["token_chars"] = base64.b64encode(counted.token_chars).decode("ascii")
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(obj) + "\n")

        return record

    def read_generated(self, checkpoint: str) -> dict[str, GeneratedTokens]:
        """Every generation's token count the backend recorded for one checkpoint (all ranks), by key."""
        out: dict[str, GeneratedTokens] = {}
        for path in sorted((self.root / "cache").glob(f"{_safe(checkpoint)}_rank*.generated.jsonl")):
            for obj in _jsonl_lines(path):
                if isinstance(obj, dict) and {"key", "n_tokens", "hit_limit"} <= set(obj):
                    chars = obj.get("token_chars")
                    out[str(obj["key"])] = GeneratedTokens(int(obj["n_tokens"]), bool(obj["hit_limit"]),
                                                           _token_chars(chars))
        return out

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
    def write_samples(self, rows: Sequence[Mapping[str, Any]], frame: Any = None) -> None:
        """samples.parquet from the runner's rows: :data:`SAMPLE_COLUMNS` first, in order (missing ones as
        null), then any extra columns. ``frame``: ``pandas.DataFrame(rows)`` where the caller built it already
        (finalize builds it once, for this file and for compute_metrics: 1 s for 30,000 rows); not modified."""
        import pandas as pd

        if frame is None:
            frame = pd.DataFrame([plain(r) if isinstance(r, JsonRecord) else r for r in rows])
        else:
            frame = frame.copy(deep=False)  # the caller's frame keeps its columns
        for col in SAMPLE_COLUMNS:
            if col not in frame.columns:
                frame[col] = None
        extra = [c for c in frame.columns if c not in SAMPLE_COLUMNS]
        frame = frame[list(SAMPLE_COLUMNS) + extra]
        frame["notes"] = frame["notes"].map(_notes_json)
        tmp = self.root / ".samples.parquet.tmp"
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, self.root / "samples.parquet")

    def write_metrics(self, metrics: RunMetrics | Mapping[str, Any]) -> None:
        """metrics.json from :func:`~medbench.harness.stats.metrics.compute_metrics`'s record (a plain object
        of the same shape is read through :class:`RunMetrics` first, so what is written is always valid)."""
        if not isinstance(metrics, RunMetrics):
            metrics = RunMetrics.from_dict(metrics, "metrics to write")
        write_json(self.root / "metrics.json",
                   dataclasses.replace(metrics, schema_version=SCHEMA_VERSION).to_dict())


def _as_run_metrics(metrics: RunMetrics | Mapping[str, Any] | None, where: str) -> RunMetrics:
    if isinstance(metrics, RunMetrics):
        return metrics
    try:
        return RunMetrics.from_dict(metrics or {}, where)
    except ValueError as e:
        raise RunDirError(f"{e}: the file is damaged or from another tool; re-run `medbench bench` with the same "
                          f"--output to rewrite it") from e


@dataclass
class Run:
    """A loaded run directory. Read-only.

    ``meta`` is run.json as stored (spec, settings, environment, timings: open-ended); ``metrics`` is
    metrics.json as a typed :class:`~medbench.harness.run.records.RunMetrics` (a plain object given here is
    read into one)."""

    root: Path
    meta: dict[str, Any]
    metrics: RunMetrics = field(default_factory=RunMetrics)
    _samples: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.metrics = _as_run_metrics(self.metrics, str(self.root / "metrics.json"))

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.root.name))

    @property
    def schema_version(self) -> int | None:
        """The schema run.json was written with (older ones are read with their missing keys as None)."""
        return self.meta.get("schema_version")

    @property
    def checkpoints(self) -> list[CheckpointEntry]:
        """Checkpoints in lineage order (base → SFT → GRPO, :func:`lineage_order`), then in the order the spec
        gave them; ``role`` filled in where lineage implies it."""
        where = str(self.root / "run.json")
        try:
            entries = [CheckpointEntry.from_dict(c, where) for c in self.meta.get("checkpoints", [])]
        except ValueError as e:
            raise RunDirError(f"{e}: run.json's checkpoints are damaged") from e
        roles = checkpoint_roles(entries)
        entries = [dataclasses.replace(c, role=roles[c.name]) for c in entries]
        return list(lineage_order(entries))  # type: ignore[arg-type]

    @property
    def checkpoint_names(self) -> list[str]:
        return [c.name for c in self.checkpoints]

    @property
    def tasks(self) -> list[dict[str, Any]]:
        return list(self.meta.get("tasks", []))

    @property
    def task_names(self) -> list[str]:
        return [t["name"] for t in self.tasks]

    @property
    def length_unit(self) -> str | None:
        """The unit of every length in this run's metrics ("tokens" or "words"): draw a figure from
        :func:`~medbench.harness.run.records.length_column` of it, and it agrees with the table."""
        return self.metrics.length_unit

    def samples(self):  # -> pandas.DataFrame
        """All samples as one pandas DataFrame: :data:`SAMPLE_COLUMNS` first (a column an older schema lacks
        is there, all null), then any extra columns the run stored."""
        if self._samples is None:
            import pandas as pd

            path = self.root / "samples.parquet"
            if not path.exists():
                raise RunDirError(f"{path} is missing: the run in {self.root} did not finish")
            try:
                frame = pd.read_parquet(path)
            except Exception as e:  # pyarrow raises several types for a damaged file
                raise RunDirError(f"{path} cannot be read ({e}): the run directory is corrupt") from e
            missing = [c for c in SAMPLE_COLUMNS if c not in frame.columns]
            if missing:
                frame = frame.assign(**{c: None for c in missing})
                frame = frame[list(SAMPLE_COLUMNS) + [c for c in frame.columns if c not in SAMPLE_COLUMNS]]
            self._samples = frame
        return self._samples

    def task_metrics(self) -> list[TaskMetrics]:
        """metrics.json ``per_task``: every checkpoint × task record, then its subgroups."""
        return list(self.metrics.per_task)

    def pair_metrics(self) -> list[PairMetrics]:
        """metrics.json ``pairs``: each checkpoint against the reference, per task."""
        return list(self.metrics.pairs)

    def group_metrics(self) -> list[GroupMetrics]:
        """metrics.json ``per_group``: pooled over each task group."""
        return list(self.metrics.per_group)

    def group_pair_metrics(self) -> list[GroupPairMetrics]:
        """metrics.json ``group_pairs``."""
        return list(self.metrics.group_pairs)


def _check_schema(path: Path, obj: Any) -> int:
    if not isinstance(obj, dict):
        raise RunDirError(f"{path} holds a JSON {type(obj).__name__}, not an object: is it a medbench run file?")
    version = obj.get("schema_version")
    if version in READABLE_SCHEMA_VERSIONS:
        return int(version)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise RunDirError(
            f"{path} has schema_version {version}, newer than this medbench reads (versions "
            f"{list(READABLE_SCHEMA_VERSIONS)}): upgrade medbench (pip install -U medbench) to read it"
        )
    raise RunDirError(
        f"{path} has schema_version {version!r}; this medbench reads versions {list(READABLE_SCHEMA_VERSIONS)}. "
        f"Re-run the benchmark into a new directory to get a current one (run.json's \"command\" says how it "
        f"was run): `medbench bench ... --output NEW`; copying this run's cache/ folder into NEW first reuses "
        f"every generation whose prompt is unchanged"
    )


def load_run(path: str | os.PathLike[str]) -> Run:
    """Load a run directory, checking its schema version.

    A run of an older readable schema (1) loads too: its samples get this version's columns (null where it
    did not record them), and its metrics are recomputed from those samples with this version's rules (the
    outcomes are the ones it graded; metrics that do not apply become null instead of schema 1's 100% / 0).
    """
    root = Path(path)
    if not root.is_dir():
        raise RunDirError(f"run directory {root} does not exist (expected the --output of `medbench bench`)")
    meta = _read_json(root / "run.json")
    _check_schema(root / "run.json", meta)
    raw = _read_json(root / "metrics.json")
    version = _check_schema(root / "metrics.json", raw)
    run = Run(root=root, meta=meta, metrics=_as_run_metrics(raw, str(root / "metrics.json")))
    if version < SCHEMA_VERSION and (root / "samples.parquet").exists():
        from medbench.harness.stats.metrics import compute_metrics

        stored = run.metrics
        try:
            run.metrics = compute_metrics(run.samples(), run.checkpoints, stored.methods.reference)
        except ValueError as e:
            raise RunDirError(
                f"{root} is a schema-{version} run whose samples cannot be re-scored ({e}); re-run the benchmark "
                f"into a new directory (`medbench bench ... --output NEW`)"
            ) from e
    return run
