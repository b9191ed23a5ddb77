"""``medbench_provenance.json``: what a checkpoint is and where it came from — the one reader and writer.

Every directory a trainer saves (the adapter, the merged model, each intermediate ``checkpoint-N``) gets this
small file, so ``medbench bench`` and the report can label checkpoints and order them by lineage
(base → sft → grpo) without the user retyping it, and a reader can tell exactly which data, recipe values and
library versions produced a number.

The file is the contract between ``trainers/`` (which write it) and ``harness/`` (which reads it next to a
checkpoint, local or on the hub), so it is defined here, in the folder both may import: one schema, one
version check, one reader (:func:`read_provenance`, :func:`parse_provenance`) and one writer
(:func:`write_provenance`). Nobody parses it by hand.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import MedbenchError
from .io import atomic_write_text

PROVENANCE_FILE = "medbench_provenance.json"
PROVENANCE_SCHEMA_VERSION = 1
#: Lineage roles, in lineage order: what a checkpoint can be (provenance, a spec's ``role``, or its name).
ROLES: tuple[str, ...] = ("base", "sft", "grpo")


class ProvenanceError(MedbenchError):
    """A provenance file is corrupt or of an unknown schema; the message names the file and the fix."""


@dataclass
class DataSlice:
    """The exact training data: which sources and slices, how many rows, and a hash of the prepared rows."""

    sources: list[dict[str, Any]]
    n_rows: int
    sha256: str


@dataclass
class Provenance:
    """One checkpoint's record (``medbench_provenance.json``), written by the recipe that saved it."""

    role: str
    """Lineage role: one of :data:`ROLES`."""
    parent: str | None
    """The model this one was trained from (hub id or path); ``None`` for a base."""
    recipe: str
    """The recipe that trained it: ``sft`` or ``grpo``."""
    config: dict[str, Any]
    """The effective recipe config (after overrides)."""
    config_source: str
    """The config file."""
    config_sha256: str
    """Hash of the effective config."""
    backend: str
    """``unsloth`` or ``trl``."""
    data: DataSlice
    """The training data slice."""
    steps: int
    """Optimizer steps taken."""
    adjustments: list[dict[str, Any]] = field(default_factory=list)
    """Recipe values this backend changed (e.g. no 8-bit optimizer on a CPU), with the reason."""
    versions: dict[str, str] = field(default_factory=dict)
    """Library versions."""
    created_at: str = ""
    """When it was saved (ISO 8601, UTC)."""
    train_runtime_s: float | None = None
    """Training wall time."""
    eval_metrics: str | None = None
    """File (relative to the checkpoint) with the eval-during-training metrics."""
    warmup: dict[str, Any] | None = None
    """GRPO's format warm-up before GRPO proper: data, steps, losses."""
    schema_version: int = PROVENANCE_SCHEMA_VERSION
    """The file's schema; a file of another version is refused with a message, never half-read."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, where: str = "<dict>") -> Provenance:
        """Check the schema version and the fields; raise :class:`ProvenanceError` naming ``where``."""
        version = d.get("schema_version")
        if version != PROVENANCE_SCHEMA_VERSION:
            raise ProvenanceError(
                f"{where}: provenance schema_version {version!r} is not {PROVENANCE_SCHEMA_VERSION}: "
                "it was written by another medbench version; upgrade medbench or re-save the checkpoint"
            )
        try:
            data = DataSlice(**d["data"])
            kwargs = {k: v for k, v in d.items() if k != "data"}
            prov = cls(data=data, **kwargs)
        except (KeyError, TypeError) as e:
            raise ProvenanceError(f"{where}: provenance file is missing or has unexpected fields ({e})") \
                from e
        if prov.role not in ROLES:
            raise ProvenanceError(f"{where}: provenance role {prov.role!r} is not one of {', '.join(ROLES)}")
        return prov


def parse_provenance(text: str, *, where: str) -> Provenance:
    """A provenance file's text (read from disk or downloaded from the hub), checked."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProvenanceError(
            f"{where} is not valid JSON ({e.msg} at line {e.lineno}); delete it to evaluate the checkpoint "
            "without lineage, or re-save the checkpoint"
        ) from e
    if not isinstance(raw, dict):
        raise ProvenanceError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    return Provenance.from_dict(raw, where=where)


def read_provenance(directory: str | Path) -> Provenance | None:
    """The provenance of a checkpoint directory, or ``None`` when it has none (e.g. a hub model or a base).

    For an adapter directory whose provenance is missing, nothing is guessed: callers fall back to the
    checkpoint name the user gave.
    """
    path = Path(directory) / PROVENANCE_FILE
    if not path.is_file():
        return None
    return parse_provenance(path.read_text(encoding="utf-8"), where=str(path))


def write_provenance(directory: str | Path, prov: Provenance) -> Path:
    """Write ``medbench_provenance.json`` into ``directory`` atomically (a crash never leaves half a file)."""
    if prov.role not in ROLES:
        raise ProvenanceError(f"role must be one of {ROLES}, got {prov.role!r}")
    path = Path(directory) / PROVENANCE_FILE
    atomic_write_text(path, json.dumps(prov.to_dict(), indent=2, default=str) + "\n")
    return path
