"""Small helpers every folder shares for what it writes: atomic text files, and durations a person reads.

They live in ``tasks/`` (which imports nothing of ours) so that the run directory (harness), the gate's
baselines and the trainers' provenance files are written by one function, and the bench's and the trainers'
progress lines say "1m02s" the same way.
"""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path


def create_temp_beside(path: Path) -> tuple[int, str]:
    """A new, uniquely named temp file next to ``path``, opened for writing: ``(fd, name)``.

    Unlike ``tempfile.mkstemp`` (always mode 0600), it is created with mode 0666 less the process umask, so
    the file renamed into place gets the same mode as every other file medbench writes (0644 under the usual
    umask 022) and run.json, metrics.json, baselines and provenance stay readable to whoever reads the
    rest."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = str(path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue


def atomic_write_text(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> None:
    """Write ``text`` to ``path`` through a temp file beside it and a rename, so a crash (or a full disk)
    never leaves half a file where a good one was. Creates the parent folder. ``durable=False`` skips the
    fsync before the rename: still never half a file of ``text``, but a crash of the machine may leave the
    file empty (for a marker whose loss is harmless)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp_beside(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def format_duration(seconds: float | None) -> str:
    """``"45s"``, ``"1m02s"``, ``"2h05m"``; ``"?"`` when unknown (no ETA yet)."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"
