"""``medbench_provenance.json``: what a checkpoint is and where it came from.

Every directory a trainer saves (the adapter, the merged model, each intermediate ``checkpoint-N``) gets this
small file, so ``medbench bench`` and the report can label checkpoints and order them by lineage
(base → sft → grpo) without the user retyping it, and a reader can tell exactly which data, recipe values and
library versions produced a number. Read it with :func:`read_provenance`; it is never parsed by hand elsewhere.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROVENANCE_FILE = "medbench_provenance.json"
PROVENANCE_SCHEMA_VERSION = 1
ROLES = ("base", "sft", "grpo")


class ProvenanceError(ValueError):
    """A provenance file is corrupt or of an unknown schema; the message names the file and the fix."""


@dataclass
class DataSlice:
    """The exact training data: which sources and slices, how many rows, and a hash of the prepared rows."""

    sources: list[dict[str, Any]]
    n_rows: int
    sha256: str


@dataclass
class Provenance:
    role: str  # base | sft | grpo
    parent: str | None  # the model this one was trained from (hub id or path)
    recipe: str  # sft | grpo
    config: dict[str, Any]  # the effective recipe config (after overrides)
    config_source: str  # the config file
    config_sha256: str
    backend: str  # unsloth | trl
    data: DataSlice
    steps: int
    adjustments: list[dict[str, Any]] = field(default_factory=list)  # recipe values this backend changed
    versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    train_runtime_s: float | None = None
    eval_metrics: str | None = None  # file (relative to the checkpoint) with eval-during-training metrics
    warmup: dict[str, Any] | None = None  # GRPO's format warm-up before GRPO proper: data, steps, losses
    schema_version: int = PROVENANCE_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "<dict>") -> Provenance:
        version = d.get("schema_version")
        if version != PROVENANCE_SCHEMA_VERSION:
            raise ProvenanceError(
                f"{where}: provenance schema_version {version!r} is not {PROVENANCE_SCHEMA_VERSION}: "
                "it was written by another medbench version; upgrade medbench or re-save the checkpoint"
            )
        try:
            data = DataSlice(**d["data"])
            kwargs = {k: v for k, v in d.items() if k != "data"}
            return cls(data=data, **kwargs)
        except (KeyError, TypeError) as e:
            raise ProvenanceError(f"{where}: provenance file is missing or has unexpected fields ({e})") from e


def write_provenance(directory: str | Path, prov: Provenance) -> Path:
    """Write ``medbench_provenance.json`` into ``directory`` atomically (a crash never leaves half a file)."""
    if prov.role not in ROLES:
        raise ProvenanceError(f"role must be one of {ROLES}, got {prov.role!r}")
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / PROVENANCE_FILE
    # Not tempfile.mkstemp, which creates 0600 files: mode 0666 less the umask, like the model files beside it
    # (harness/run/rundir.py writes its JSON files the same way).
    tmp = str(d / f".{PROVENANCE_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(prov.to_dict(), fh, indent=2, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_provenance(directory: str | Path) -> Provenance | None:
    """The provenance of a checkpoint directory, or ``None`` when it has none (e.g. a hub model or a base).

    For an adapter directory whose provenance is missing, nothing is guessed: callers fall back to the
    checkpoint name the user gave.
    """
    path = Path(directory) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ProvenanceError(
            f"{path} is not valid JSON ({e.msg} at line {e.lineno}); delete it to evaluate the checkpoint "
            "without lineage, or re-save the checkpoint"
        ) from e
    if not isinstance(raw, dict):
        raise ProvenanceError(f"{path}: expected a JSON object, got {type(raw).__name__}")
    return Provenance.from_dict(raw, where=str(path))
