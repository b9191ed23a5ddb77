"""Question identity and fixed splits, shared by the evaluation loaders and the trainers.

A question is identified by a hash of its *normalised* text (Unicode NFKC, case-folded, punctuation and
whitespace runs collapsed), so copies that differ only in spacing, case or quotes are the same question.

Health_Benchmarks ships one split per specialty, so medbench splits it by a fixed hash of the normalised
question: :func:`health_split` puts the same question on the same side on every machine, whatever the row
order or file format. GRPO trains on the ``train`` side (``medbench.trainers.data``); the evaluation task
should read the ``eval`` side only. The rule lives here, below both, so there is one copy of it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Literal

_PUNCT = re.compile(r"[^\w\s]", flags=re.UNICODE)
_SPACE = re.compile(r"\s+")

#: Share of Health_Benchmarks questions held out for evaluation (hash buckets out of 100).
HEALTH_EVAL_PERCENT = 20
_HEALTH_SALT = "medbench-health-split-v1"


def normalise_question(text: str) -> str:
    """The comparison form of a question: NFKC, case-folded, punctuation dropped, whitespace collapsed."""
    t = unicodedata.normalize("NFKC", text or "").casefold()
    t = _PUNCT.sub(" ", t)
    return _SPACE.sub(" ", t).strip()


def question_hash(text: str) -> str:
    """A stable 16-hex-digit hash of the normalised question."""
    return hashlib.sha256(normalise_question(text).encode("utf-8")).hexdigest()[:16]


def health_split(question: str) -> Literal["train", "eval"]:
    """The side of medbench's fixed Health_Benchmarks split a question is on (``eval``: about 20 %)."""
    digest = hashlib.sha256(f"{_HEALTH_SALT}:{normalise_question(question)}".encode()).hexdigest()
    return "eval" if int(digest[:8], 16) % 100 < HEALTH_EVAL_PERCENT else "train"
