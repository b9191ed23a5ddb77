"""``medbench_provenance.json`` as the recipes write it: the record and its reader/writer.

The file format is the contract between the trainers (which write it into every saved directory) and the bench
(which reads it next to a checkpoint), so its one definition lives in :mod:`medbench.tasks.provenance`, which
both may import; this module is the trainers' name for it.
"""

from __future__ import annotations

from medbench.tasks.provenance import (
    PROVENANCE_FILE,
    PROVENANCE_SCHEMA_VERSION,
    ROLES,
    DataSlice,
    Provenance,
    ProvenanceError,
    read_provenance,
    write_provenance,
)

__all__ = [
    "PROVENANCE_FILE",
    "PROVENANCE_SCHEMA_VERSION",
    "ROLES",
    "DataSlice",
    "Provenance",
    "ProvenanceError",
    "read_provenance",
    "write_provenance",
]
