"""Python's cyclic garbage collector paused during bulk post-processing.

Grading 30,000 completions, writing their rows and building the report allocate millions of small
containers (rows, grade records, lists of spans) and free almost none of them. CPython's collector runs a
collection every 700 net allocations and, as the survivors pile up, full collections that traverse every
object alive, the lm-eval sample logs and the model's tokenizer included: that was 3.9 s of the 10.9 s that
``benchmarks/cpu_postprocess.py`` measured for 3 x 10,000 samples (issue 14), spent finding no garbage.
These phases make no reference cycles of their own that matter (rows are trees of dicts, lists and
scalars); what a library makes in passing is collected when the phase ends. mypy does the same for the same
reason (``gc.set_threshold`` in its main); here the pause is scoped to the phases instead of set for the
process, so the model's forward passes and the trainers keep the collector as CPython configures it.

Nesting and threads: the collector is switched off by the first phase to enter and back on when the last
one leaves, and only if it was on before (a caller that disabled it itself keeps it off).
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

__all__ = ["gc_paused", "without_gc"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (reference counting still frees everything else)."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()


def without_gc(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` run inside :func:`gc_paused` (for the bulk phases: grading a pair, writing it, finalize, the
    report)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with gc_paused():
            return fn(*args, **kwargs)

    return wrapper
