"""The training progress line, driven by a fake trainer state and clock (no model): what a person sees while
``medbench train`` / the demo trains, instead of transformers' printed log dicts."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import pytest
from medbench.trainers.progress import TrainingProgress, compact_metrics, replace_transformers_display

#: What TRL 1.15's GRPOTrainer logs at a step (the recipe's five rewards), trimmed of the keys not shown.
GRPO_LOG = {
    "loss": 0.0012, "grad_norm": 0.8, "learning_rate": 5e-06, "reward": 1.5, "reward_std": 0.9,
    "rewards/xmlcount_reward/mean": 0.125, "rewards/soft_format_reward/mean": 0.25,
    "rewards/strict_format_reward/mean": 0.125, "rewards/answer_type_reward/mean": 0.5,
    "rewards/correctness_reward/mean": 0.5, "completions/mean_length": 120.0, "epoch": 0.1,
}
RAW_DICT = re.compile(r"\{'(loss|reward|train_runtime|grad_norm)'")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _train(progress: TrainingProgress, clock: Clock, max_steps: int, logs, *, logging_steps: int = 1,
           seconds_per_step: float = 1.0) -> None:
    """Fire the events transformers' Trainer fires, in its order: begin; per step: step_begin, step_end, then
    (every logging_steps) log; the train_loss summary log; end."""
    state = SimpleNamespace(max_steps=max_steps, global_step=0, is_world_process_zero=True)
    args = control = None
    progress.on_train_begin(args, state, control)
    for step in range(1, max_steps + 1):
        progress.on_step_begin(args, state, control)
        clock.now += seconds_per_step
        state.global_step = step
        progress.on_step_end(args, state, control)
        if step % logging_steps == 0:
            progress.on_log(args, state, control, logs=logs(step))
    progress.on_log(args, state, control, logs={"train_runtime": 60.0, "train_loss": 1.75, "epoch": 1.0})
    progress.on_train_end(args, state, control)


def test_a_log_gets_about_ten_short_lines_and_a_done_line():
    out, clock = io.StringIO(), Clock()
    progress = TrainingProgress("medbench train: sft", stream=out, clock=clock)
    _train(progress, clock, 60, lambda step: {"loss": 3.0 - step / 60, "grad_norm": 1.0, "learning_rate": 2e-4})
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # the start, 10%..90%, done
    assert lines[0] == "medbench train: sft [--------------------]  0/60 steps   0%, 0s elapsed, ETA ?"
    # each milestone line shows that step's own loss (the log comes after the step's end)
    assert lines[1] == ("medbench train: sft [##------------------]  6/60 steps  10%, 6s elapsed, ETA 54s, "
                        "loss 2.900")
    assert lines[-1] == "medbench train: sft done, 60/60 steps in 1m00s, loss 2.000 (mean 1.750)"
    assert all(len(line) < 120 for line in lines) and not RAW_DICT.search(out.getvalue())


def test_a_terminal_gets_one_line_redrawn_in_place():
    out, clock = Tty(), Clock()
    progress = TrainingProgress("medbench train: sft", stream=out, clock=clock)
    _train(progress, clock, 5, lambda step: {"loss": 1.0 / step})
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, finished once
    frames = text.rstrip("\n").split("\r\033[K")[1:]
    assert frames[-1] == "medbench train: sft done, 5/5 steps in 5s, loss 0.200 (mean 1.750)"
    assert "medbench train: sft [########------------] 2/5 steps  40%, 2s elapsed, ETA 3s, loss 0.500" in frames


def test_grpo_shows_reward_with_its_format_and_correctness_parts():
    assert compact_metrics(GRPO_LOG) == "reward 1.50 (format 0.50, correctness 0.50)"
    assert compact_metrics({"loss": 0.5, "reward": 2.0}) == "reward 2.00"  # custom rewards: the total only
    assert compact_metrics({"learning_rate": 1e-4}) == ""
    out, clock = io.StringIO(), Clock()
    _train(TrainingProgress("medbench train: grpo", stream=out, clock=clock), clock, 2, lambda step: GRPO_LOG,
           seconds_per_step=30)
    assert out.getvalue().splitlines()[-1] == (
        "medbench train: grpo done, 2/2 steps in 1m00s, reward 1.50 (format 0.50, correctness 0.50)")


def test_with_sparse_logging_a_milestone_line_still_appears():
    out, clock = io.StringIO(), Clock()
    progress = TrainingProgress("sft", stream=out, clock=clock)
    _train(progress, clock, 20, lambda step: {"loss": float(step)}, logging_steps=5)
    lines = out.getvalue().splitlines()
    assert [re.search(r" (\d+)/20 steps", line).group(1) for line in lines[1:-1]] == [str(s) for s in range(2, 20, 2)]
    assert lines[3] == "sft [######--------------]  6/20 steps  30%, 6s elapsed, ETA 14s, loss 5.000"


def test_only_the_main_process_prints():
    out, clock = io.StringIO(), Clock()
    progress = TrainingProgress("sft", stream=out, clock=clock)
    state = SimpleNamespace(max_steps=2, global_step=0, is_world_process_zero=False)
    progress.on_train_begin(None, state, None)
    state.global_step = 2
    progress.on_step_end(None, state, None)
    progress.on_train_end(None, state, None)
    assert out.getvalue() == ""


@pytest.mark.parametrize("with_progress", [True, False])
def test_transformers_log_printing_is_removed_only_for_medbench_progress(tmp_path, with_progress):
    import torch
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    args = TrainingArguments(output_dir=str(tmp_path), disable_tqdm=True, report_to="none", use_cpu=True)
    callbacks = [TrainingProgress("sft")] if with_progress else []
    trainer = Trainer(model=torch.nn.Linear(2, 2), args=args, callbacks=callbacks)
    replace_transformers_display(trainer)
    kinds = [type(cb) for cb in trainer.callback_handler.callbacks]
    assert (PrinterCallback in kinds) is not with_progress and ProgressCallback not in kinds
    assert (TrainingProgress in kinds) is with_progress


def test_a_resumed_run_estimates_from_the_steps_taken_here():
    out, clock = io.StringIO(), Clock()
    progress = TrainingProgress("sft", stream=out, clock=clock)
    state = SimpleNamespace(max_steps=100, global_step=50, is_world_process_zero=True)  # restored at step 50
    progress.on_train_begin(None, state, None)
    clock.now += 10
    state.global_step = 60
    progress.on_step_end(None, state, None)
    assert progress.eta() == pytest.approx(40.0)  # 10 steps in 10 s here: 40 s for the 40 left
    assert out.getvalue().splitlines()[0].startswith("sft [##########----------]  50/100 steps  50%")
