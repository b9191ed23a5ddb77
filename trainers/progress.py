"""Training progress as a person expects it: one bar with steps, elapsed time, ETA and a compact loss or reward.

transformers prints every log dict of a training run (``PrinterCallback``, or ``tqdm.write`` under its bar):
about 1,000 characters per GRPO step, which buries medbench's own status lines. :class:`TrainingProgress`
replaces that display; the logs themselves are untouched and still end up in ``trainer_state.json``'s
``log_history`` (and in W&B / TensorBoard when configured). :func:`replace_transformers_display` removes
transformers' display callbacks the supported way (``Trainer.remove_callback``).

On a terminal one line is redrawn in place; in a log (CI, a pipe) a line is printed at every tenth of the
steps and a final ``done`` line, so a 750-step run leaves about ten lines::

    medbench train: sft [#####---------------] 15/60 steps  25%, 1m02s elapsed, ETA 3m06s, loss 1.310
    medbench train: sft done, 60/60 steps in 4m10s, loss 1.234 (mean 1.402)
    medbench train: grpo done, 40/40 steps in 2m30s, reward 1.12 (format 0.48, correctness 0.50)
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from medbench.tasks.io import format_duration
from transformers import TrainerCallback

#: Fractions of the steps at which a line is printed when the output is not a terminal.
LOG_LINES = 10


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def reward_parts(logs: Mapping[str, Any]) -> dict[str, float]:
    """The GRPO reward split into what a person watches: ``format`` (the sum of the mean rewards whose function
    name says format or xml: the recipe's XML-count, soft and strict format rewards) and ``correctness`` (the
    mean of those that say correct). TRL logs each reward function's mean as ``rewards/<name>/mean``."""
    parts: dict[str, float] = {}
    for key, value in logs.items():
        if not (key.startswith("rewards/") and key.endswith("/mean")) or (v := _number(value)) is None:
            continue
        name = key[len("rewards/"):-len("/mean")].lower()
        part = "format" if ("format" in name or "xml" in name) else "correctness" if "correct" in name else None
        if part:
            parts[part] = parts.get(part, 0.0) + v
    return parts


def compact_metrics(logs: Mapping[str, Any]) -> str:
    """The one-line summary of a training log: ``reward 1.12 (format 0.48, correctness 0.50)`` for GRPO (a log
    with a ``reward``), ``loss 1.234`` otherwise; empty when the log has neither."""
    reward = _number(logs.get("reward"))
    if reward is not None:
        parts = reward_parts(logs)
        detail = ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
        return f"reward {reward:.2f}" + (f" ({detail})" if detail else "")
    loss = _number(logs.get("loss"))
    return f"loss {loss:.3f}" if loss is not None else ""


def bar(done: int, total: int, width: int = 20) -> str:
    filled = min(width, width * done // total) if total > 0 else 0
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class TrainingProgress(TrainerCallback):
    """A transformers callback that shows training progress in one line (see the module docstring).

    Only the main process prints. ``stream`` defaults to ``sys.stderr`` at the time of printing; ``clock`` is
    injectable so tests can drive the display without a model.
    """

    def __init__(self, label: str, *, stream: TextIO | None = None, min_redraw: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self._stream = stream
        self.min_redraw = min_redraw
        self.clock = clock
        self.total = 0
        self.step = 0
        self.logs: dict[str, Any] = {}  # the latest training log (per-step values)
        self.mean_loss: float | None = None  # transformers' train_loss at the end: the mean over all steps
        self._start = 0.0
        self._first_step = 0
        self._last_draw = -math.inf
        self._milestone = 0
        self._due = False  # a milestone line waits for the step's log, so it shows that step's loss
        self._main = True

    # -- what is shown ----------------------------------------------------------------------------------
    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def elapsed(self) -> float:
        return self.clock() - self._start

    def eta(self) -> float | None:
        """Time left at the rate of the steps taken since training (re)started: steps restored from a
        checkpoint (``resume_from_checkpoint``) took no time here."""
        fresh = self.step - self._first_step
        if fresh <= 0 or self.total <= 0:
            return None
        return self.elapsed() / fresh * max(0, self.total - self.step)

    def line(self) -> str:
        pct = f"{100 * self.step / self.total:3.0f}%" if self.total else "  ?%"
        width = len(str(self.total))
        text = (f"{self.label} {bar(self.step, self.total)} {self.step:>{width}}/{self.total} steps {pct}, "
                f"{format_duration(self.elapsed())} elapsed, ETA {format_duration(self.eta())}")
        metrics = compact_metrics(self.logs)
        return f"{text}, {metrics}" if metrics else text

    def done_line(self) -> str:
        text = f"{self.label} done, {self.step}/{self.total} steps in {format_duration(self.elapsed())}"
        metrics = compact_metrics(self.logs)
        if metrics and self.mean_loss is not None and metrics.startswith("loss"):
            metrics += f" (mean {self.mean_loss:.3f})"
        return f"{text}, {metrics}" if metrics else text

    # -- drawing ------------------------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        if self._main:
            self.stream.write(text)
            self.stream.flush()

    def _draw(self, *, force: bool = False) -> None:
        now = self.clock()
        if force or now - self._last_draw >= self.min_redraw:
            self._write("\r\033[K" + self.line())
            self._last_draw = now

    def _flush_due(self) -> None:
        if self._due:
            self._due = False
            self._write(self.line() + "\n")

    # -- transformers' events -----------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self._main = bool(getattr(state, "is_world_process_zero", True))
        self.total, self.step = int(state.max_steps or 0), int(state.global_step or 0)
        self._start, self._first_step = self.clock(), self.step
        self._milestone = self._milestone_of(self.step)
        if self.tty:
            self._draw(force=True)
        else:
            self._write(self.line() + "\n")
        return control

    def _milestone_of(self, step: int) -> int:
        return LOG_LINES * step // self.total if self.total else 0

    def on_step_begin(self, args, state, control, **kwargs):
        self._flush_due()  # the last step logged nothing (logging_steps > 1): show the milestone now
        return control

    def on_step_end(self, args, state, control, **kwargs):
        self.step = int(state.global_step)
        if self.tty:
            self._draw(force=self.step >= self.total)
        else:
            milestone = self._milestone_of(self.step)
            if milestone > self._milestone and self.step < self.total:  # the done line shows the last step
                self._due = True
            self._milestone = max(self._milestone, milestone)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if _number(logs.get("train_loss")) is not None:  # transformers' summary at the end of training
            self.mean_loss = float(logs["train_loss"])
        elif any(k in logs for k in ("loss", "reward")):  # a training step's log (not an evaluation's)
            self.logs = dict(logs)
            if self.tty:
                self._draw(force=True)  # the step was drawn before its log came: show its loss now
            self._flush_due()
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.step = int(state.global_step)
        self._due = False
        self._write(("\r\033[K" if self.tty else "") + self.done_line() + "\n")
        return control


def replace_transformers_display(trainer: Any) -> None:
    """Remove transformers' own progress display from ``trainer`` (the print of every log dict, its tqdm
    bar, the notebook widget) when a :class:`TrainingProgress` is installed, through the supported
    ``Trainer.remove_callback``. The logs still reach ``state.log_history`` and every other callback."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    if not any(isinstance(cb, TrainingProgress) for cb in trainer.callback_handler.callbacks):
        return
    displays: list[type] = [PrinterCallback, ProgressCallback]
    try:
        from transformers.utils.notebook import NotebookProgressCallback

        displays.append(NotebookProgressCallback)
    except ImportError:  # notebook support needs IPython
        pass
    for cls in displays:
        while any(isinstance(cb, cls) for cb in trainer.callback_handler.callbacks):
            trainer.remove_callback(cls)
