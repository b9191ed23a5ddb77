"""Resume inside a task: lm-eval's request cache, one sqlite row per finished request.

:class:`ResumableLM` is lm-eval's :class:`~lm_eval.api.model.CachingLM` (same sqlite file, same request
hashes) with three additions the runner needs:

* progress: every finished request ticks the (checkpoint, task) progress line;
* timings: each request's share of its generation batch, kept in a side file so a resumed run still reports
  the original generation times;
* chunking: backends that only report results at the end of a call (vLLM) get their requests in chunks, so
  a crash loses at most one chunk.

HFLM writes each generation to the cache as soon as its batch finishes (through the cache hook), and the
sqlite dict commits every write, so ``kill -9`` mid-task loses at most the batch in flight.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from lm_eval.api.model import CacheHook, CachingLM, hash_args
from medbench.harness.run.progress import PairProgress


class _Hook(CacheHook):
    def __init__(self, owner: ResumableLM) -> None:
        super().__init__(owner)
        self.owner = owner

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        super().add_partial(attr, req, res)
        self.owner._on_request_finished(attr, req)


class ResumableLM(CachingLM):
    """A CachingLM that reports progress and per-request timings (see the module docstring)."""

    def __init__(
        self,
        lm: Any,
        cache_db: str,
        *,
        timings: dict[str, float] | None = None,
        on_timings: Callable[[dict[str, float]], None] | None = None,
        chunk_size: int | None = None,
    ) -> None:
        self.progress: PairProgress | None = None
        self.timings: dict[str, float] = dict(timings or {})
        self._new_timings: dict[str, float] = {}
        self._on_timings = on_timings
        self._chunk_size = chunk_size
        self._last_event = time.perf_counter()
        self._last_flush = self._last_event
        super().__init__(lm, cache_db)

    def get_cache_hook(self) -> CacheHook:
        return _Hook(self)

    # -- lm-eval's request types -------------------------------------------------------------------------
    def generate_until(self, requests: list[Any]) -> list[Any]:
        return self._run("generate_until", requests)

    def loglikelihood(self, requests: list[Any]) -> list[Any]:
        return self._run("loglikelihood", requests)

    def loglikelihood_rolling(self, requests: list[Any]) -> list[Any]:
        return self._run("loglikelihood_rolling", requests)

    def _run(self, attr: str, requests: list[Any]) -> list[Any]:
        keys = [hash_args(attr, r.args) for r in requests]
        results: list[Any] = [None] * len(requests)
        todo: list[int] = []
        for i, (req, key) in enumerate(zip(requests, keys)):
            sampled = attr == "generate_until" and req.args[1].get("do_sample", False)
            if not sampled and key in self.dbdict:
                results[i] = self.dbdict[key]
            else:
                todo.append(i)
        if self.progress is not None:
            self.progress.start(total=len(requests), cached=len(requests) - len(todo))
        fn = getattr(self.lm, attr)
        quiet = {"disable_tqdm": True} if "disable_tqdm" in inspect.signature(fn).parameters else {}
        size = self._chunk_size or max(1, len(todo))
        finished = len(requests) - len(todo)
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            t0 = time.perf_counter()
            self._last_event = t0
            out = fn([requests[i] for i in chunk], **quiet)
            share = (time.perf_counter() - t0) / max(1, len(chunk))
            for i, res in zip(chunk, out, strict=True):
                results[i] = res
                self.dbdict[keys[i]] = res
                if keys[i] not in self.timings:
                    self._record_timing(keys[i], share)
            self.dbdict.commit()
            self._flush_timings()
            finished += len(chunk)
            if self.progress is not None:
                self.progress.set_done(finished)
        return results

    # -- per-request bookkeeping ---------------------------------------------------------------------------
    def _on_request_finished(self, attr: str, req: Any) -> None:
        now = time.perf_counter()
        batch = getattr(self.lm, "last_batch", None)
        if attr == "generate_until" and batch is not None:
            seconds = batch[0] / batch[1]
        else:
            seconds = now - self._last_event
        self._last_event = now
        self._record_timing(hash_args(attr, req), seconds)
        if now - self._last_flush > 2.0:
            self._flush_timings()
        if self.progress is not None:
            self.progress.advance()

    def _record_timing(self, key: str, seconds: float) -> None:
        self.timings[key] = seconds
        self._new_timings[key] = seconds

    def _flush_timings(self) -> None:
        self._last_flush = time.perf_counter()
        if self._new_timings and self._on_timings is not None:
            self._on_timings(self._new_timings)
        self._new_timings = {}

    def request_seconds(self, attr: str, args: Any) -> float | None:
        return self.timings.get(hash_args(attr, args))

    def close(self) -> None:
        self._flush_timings()
        self.dbdict.close()
