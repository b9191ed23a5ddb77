"""Progress with an ETA per (checkpoint, task), on stderr.

On a terminal one line is redrawn in place; in a log (CI) a line is printed at most every
``log_interval`` seconds and when a pair finishes, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from medbench.tasks.io import format_duration

__all__ = ["MIN_ETA_SHARE", "PairProgress", "format_duration"]

#: The share of a pair's fresh requests that must have finished before an ETA is extrapolated from them.
MIN_ETA_SHARE = 0.05


@dataclass
class PairProgress:
    """Counts finished requests of one (checkpoint, task) and estimates the time left.

    Requests served from the resume cache count as done at once and are left out of the rate, so an ETA
    after a resume reflects the model's real speed. No ETA is given before :data:`MIN_ETA_SHARE` of the fresh
    requests have finished: a continuously batched backend decodes them all at once and the first to finish
    are the shortest, so extrapolating from them read "1/128, ETA 39m48s" on the H200 for a task that
    finished 2 s later.
    """

    label: str
    total: int = 0
    done: int = 0
    cached: int = 0
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    log_interval: float = 10.0
    min_redraw: float = 0.2
    _start: float = field(default_factory=time.monotonic)
    _last_print: float = 0.0
    _printed_any: bool = False

    @property
    def _tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def start(self, total: int, cached: int = 0) -> None:
        self.total, self.cached, self.done = total, cached, cached
        self._start = time.monotonic()
        self._print(force=True)

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n) if self.total else self.done + n
        self._print()

    def set_done(self, done: int) -> None:
        self.done = done
        self._print()

    def eta(self) -> float | None:
        fresh = self.done - self.cached
        if fresh <= 0 or fresh < MIN_ETA_SHARE * (self.total - self.cached):
            return None
        rate = (time.monotonic() - self._start) / fresh
        return rate * max(0, self.total - self.done)

    def line(self) -> str:
        pct = f"{100 * self.done / self.total:3.0f}%" if self.total else "  ?%"
        elapsed = time.monotonic() - self._start
        cached = f", {self.cached} from cache" if self.cached else ""
        return (f"{self.label}: {self.done}/{self.total} requests {pct}{cached}, "
                f"elapsed {format_duration(elapsed)}, ETA {format_duration(self.eta())}")

    def _print(self, force: bool = False) -> None:
        now = time.monotonic()
        finished = self.total and self.done >= self.total
        if self._tty:
            if force or finished or now - self._last_print >= self.min_redraw:
                self.stream.write("\r\033[K" + self.line())
                self.stream.flush()
                self._last_print = now
                self._printed_any = True
        elif force or now - self._last_print >= self.log_interval:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last_print = now

    def finish(self, note: str = "") -> None:
        elapsed = format_duration(time.monotonic() - self._start)
        msg = f"{self.label}: done, {self.done} requests in {elapsed}{note}"
        if self._tty:
            self.stream.write("\r\033[K" + msg + "\n")
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()
