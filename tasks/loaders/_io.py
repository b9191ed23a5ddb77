"""Shared plumbing for the dataset loaders: where the data lives, reading files, schema checks, errors.

Every loader reads the Hugging Face hub by default and local files when a data directory is given
(``data_dir`` from the task's lm-eval ``metadata`` — the harness passes it — or the ``MEDBENCH_DATA_DIR``
environment variable). A relative data directory is resolved once, against the working directory at the time
it is read, and every file inside it is addressed from the data directory itself, never from the current
working directory (the lm-eval ``data_files`` trap).

Nothing is dropped silently: a missing file, a wrong schema, or a row with a missing or unexpected field
raises :class:`DataError`, whose message names the dataset, the file, the row and the expected fields.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MedbenchError

DATA_DIR_ENV = "MEDBENCH_DATA_DIR"

#: Hand-written records in each dataset's exact local schema, for ``medbench demo`` and the tests.
SAMPLE_DATA_DIR = Path(__file__).resolve().parents[1] / "sample_data"


class DataError(MedbenchError, ValueError):
    """A data file is missing or does not match its dataset's schema.

    The message names the dataset, the file (or hub id), the row, what was wrong and what was expected.
    """


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The local data directory to read, or ``None`` to read the hub.

    ``data_dir`` (the lm-eval ``metadata`` key the harness sets) wins over ``$MEDBENCH_DATA_DIR``.
    """
    source = "metadata data_dir"
    raw: Any = data_dir
    if raw in (None, ""):
        raw, source = os.environ.get(DATA_DIR_ENV) or None, f"${DATA_DIR_ENV}"
    if raw is None:
        return None
    path = Path(raw).expanduser()
    path = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not path.is_dir():
        raise DataError(
            f"data directory {path} (from {source}) does not exist or is not a directory; point it at a folder "
            f"laid out like tasks/sample_data (e.g. {SAMPLE_DATA_DIR}), or unset it to read the Hugging Face hub"
        )
    return path


@dataclass(frozen=True)
class Schema:
    """The fields one dataset's rows must (``required``) and may (``optional``) carry."""

    dataset: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()

    def expected(self) -> str:
        text = "expected fields: " + ", ".join(self.required)
        if self.optional:
            text += " (optional: " + ", ".join(self.optional) + ")"
        return text

    def error(self, where: str, row: Any, problem: str) -> DataError:
        return DataError(f"{self.dataset}: {where}, row {row}: {problem}; {self.expected()}")

    def check_row(self, rec: Any, *, where: str, row: Any) -> Mapping[str, Any]:
        """Raise unless ``rec`` is a mapping with every required field (not null) and no unknown field."""
        if not isinstance(rec, Mapping):
            raise self.error(where, row, f"expected an object with named fields, got {type(rec).__name__}")
        missing = [f for f in self.required if rec.get(f) is None]
        unexpected = sorted(set(rec) - set(self.required) - set(self.optional))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append("missing field(s) " + ", ".join(repr(f) for f in missing))
            if unexpected:
                parts.append("unexpected field(s) " + ", ".join(repr(f) for f in unexpected))
            raise self.error(where, row, " and ".join(parts))
        return rec

    def check_columns(self, columns: Iterable[str], *, where: str) -> None:
        """Column-level check for a hub dataset (all rows share the columns)."""
        cols = set(columns)
        missing = [f for f in self.required if f not in cols]
        unexpected = sorted(cols - set(self.required) - set(self.optional))
        if missing or unexpected:
            problem = "; ".join(
                p
                for p in (
                    "missing column(s) " + ", ".join(missing) if missing else "",
                    "unexpected column(s) " + ", ".join(unexpected) if unexpected else "",
                )
                if p
            )
            raise DataError(
                f"{self.dataset}: {where}: {problem}; {self.expected()}. The dataset's schema changed: update "
                f"the schema in medbench/tasks/loaders and bump the task version"
            )


def require_file(path: Path, dataset: str, layout: str) -> Path:
    if not path.is_file():
        raise DataError(
            f"{dataset}: file {path} not found. Expected local layout under the data directory: {layout}. "
            f"Put the file there, point {DATA_DIR_ENV} / data_dir elsewhere, or unset both to read the hub"
        )
    return path


def find_one(folder: Path, stem: str, suffixes: tuple[str, ...], dataset: str, layout: str) -> Path:
    """The single file ``folder/stem.<suffix>``; an error if none or several exist."""
    found = [folder / f"{stem}{s}" for s in suffixes if (folder / f"{stem}{s}").is_file()]
    if not found:
        names = ", ".join(f"{stem}{s}" for s in suffixes)
        raise DataError(
            f"{dataset}: none of {names} found in {folder}. Expected local layout under the data directory: "
            f"{layout}"
        )
    if len(found) > 1:
        raise DataError(
            f"{dataset}: several files for one dataset in {folder}: {[p.name for p in found]}; keep one"
        )
    return found[0]


def read_json(path: Path, dataset: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(
            f"{dataset}: {path} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
        ) from e
    except UnicodeDecodeError as e:
        raise DataError(f"{dataset}: {path} is not UTF-8 text ({e})") from e


def read_records(path: Path, dataset: str) -> list[tuple[Any, Any]]:
    """``(row label, record)`` pairs from a .jsonl, .json (a list of objects), .csv (with header) or .parquet.

    Row labels are what an error message should point at: the 1-based line of a .jsonl/.csv, the 0-based
    index of a .json list or .parquet table.
    """
    try:
        return _read_records(path, dataset)
    except UnicodeDecodeError as e:
        raise DataError(f"{dataset}: {path} is not UTF-8 text ({e})") from e


def _read_records(path: Path, dataset: str) -> list[tuple[Any, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((f"{lineno} (line)", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise DataError(
                        f"{dataset}: {path}, row {lineno} (line): not valid JSON ({e.msg})"
                    ) from e
        return rows
    if suffix == ".json":
        data = read_json(path, dataset)
        if not isinstance(data, list):
            raise DataError(f"{dataset}: {path} must hold a JSON list of records, got {type(data).__name__}")
        return [(i, rec) for i, rec in enumerate(data)]
    if suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            rows = []
            for rec in reader:
                if None in rec:  # more cells than header columns
                    rec = {**{k: v for k, v in rec.items() if k is not None}, "<extra cells>": rec[None]}
                rows.append((f"{reader.line_num} (line)", dict(rec)))
            return rows
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        return [(i, rec) for i, rec in enumerate(table.to_pylist())]
    raise DataError(
        f"{dataset}: {path}: unsupported file type {suffix!r}; use .jsonl, .json, .csv or .parquet"
    )


def load_hub(dataset: str, path: str, name: str | None, split: str):
    """``datasets.load_dataset`` with an error that says how to run offline instead."""
    import datasets

    try:
        return datasets.load_dataset(path, name, split=split)
    except Exception as e:
        raise DataError(
            f"{dataset}: could not load {path!r} (config {name!r}, split {split!r}) from the Hugging Face hub: "
            f"{type(e).__name__}: {e}. To run offline, set {DATA_DIR_ENV} (or metadata data_dir) to a folder "
            f"with the local files, laid out like {SAMPLE_DATA_DIR}"
        ) from e


def stable_key(prefix: str, *parts: str) -> str:
    """A short content hash: the same question gets the same key across runs, machines and data sources."""
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:12]
    return f"{prefix}{digest}"


def dedupe_keys(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exact duplicate rows are kept (nothing is dropped) and told apart by a ``~2``, ``~3`` suffix."""
    seen: dict[str, int] = {}
    for doc in docs:
        key = doc["doc_key"]
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            doc["doc_key"] = f"{key}~{seen[key]}"
    return docs


def as_test_split(docs: list[dict[str, Any]], dataset: str):
    """The ``{"test": Dataset}`` mapping lm-eval's ``custom_dataset`` must return."""
    import datasets

    if not docs:
        raise DataError(f"{dataset}: no documents were loaded")
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})
