"""Trainer callbacks: provenance in every intermediate checkpoint, evaluation during training, and the
progress line (:mod:`medbench.trainers.progress`) in place of transformers' printed log dicts.

:class:`MedbenchEvalCallback` runs a small medbench slice every N optimizer steps on the model being trained,
through the runner's evaluation API (:mod:`medbench.harness.run.evaluate`): the prompts, chat template, greedy
decoding, graders and metric names of ``medbench bench``, on the documents ``medbench bench --limit N`` scores
(a seeded sample stratified by label or subject, the same at every step). The metrics go to ``medbench_eval.jsonl`` in the output directory (one line per evaluation), into the
checkpoint saved at that step (``medbench_eval.json``), into ``trainer_state.json``'s log history, and to
W&B / TensorBoard when the config's ``training.report_to`` names them. It is a slice, and says so: every
record carries its task names, document count and decoding settings, so nobody mistakes it for the benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from .progress import TrainingProgress, replace_transformers_display
from .provenance import write_provenance

if TYPE_CHECKING:
    from .session import Session

EVAL_FILE = "medbench_eval.jsonl"
CHECKPOINT_EVAL_FILE = "medbench_eval.json"


class LmEvalSlice:
    """medbench's tasks on the live model, through the runner's evaluation API
    (:class:`medbench.harness.run.evaluate.ModelEvaluator`): the prompts, chat template, greedy decoding,
    graders and metrics of ``medbench bench``, on the ``limit`` documents per task that ``medbench bench
    --limit N`` would score (seeded, stratified by label or subject). Tasks are resolved, their data read and
    the documents chosen once, when the callback is built.
    """

    def __init__(self, tasks: list[str], *, limit: int, max_new_tokens: int, data_dir: str | None,
                 batch_size: int = 8) -> None:
        from medbench.harness.run.evaluate import ModelEvaluator

        # an unknown task name lists the known ones and the closest match
        self.evaluator = ModelEvaluator(tasks, limit=limit, max_new_tokens=max_new_tokens, data_dir=data_dir,
                                        batch_size=batch_size)

    @property
    def task_names(self) -> list[str]:
        return self.evaluator.task_names

    @property
    def doc_ids(self) -> dict[str, list[int]]:
        """The documents scored at every step, per task (lm-eval doc ids)."""
        return {name: list(s.doc_ids) for name, s in self.evaluator.samples.items()}

    def __call__(self, model, tokenizer) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """(metrics ``medbench/<task>/<metric>`` with metrics.json's names, per-document grade records) for the
        model as it is now."""
        evaluation = self.evaluator(model, tokenizer, checkpoint="training")
        keep = ("task", "doc_id", "doc_key", "target", "completion", "outcome", "extracted", "answer_source",
                "strict_correct", "format_strict", "format_soft", "truncated", "completion_tokens")
        samples = [{k: row.get(k) for k in keep} for row in evaluation.rows]
        return evaluation.flat_metrics("medbench"), samples


class MedbenchEvalCallback(TrainerCallback):
    """Every ``every_n_steps`` optimizer steps (and at the end of training), evaluate a small medbench slice."""

    def __init__(self, evaluate: Callable[[Any, Any], tuple[dict[str, float], list[dict[str, Any]]]],
                 every_n_steps: int, output_dir: str | Path, *, tokenizer, backend: str = "trl",
                 describe: dict[str, Any] | None = None) -> None:
        if every_n_steps < 1:
            raise ValueError(f"eval.every_n_steps must be >= 1, got {every_n_steps}")
        self.evaluate = evaluate
        self.every = every_n_steps
        self.path = Path(output_dir) / EVAL_FILE
        self.tokenizer = tokenizer
        self.backend = backend
        self.describe = describe or {}
        self.trainer = None
        self.last: dict[str, Any] | None = None

    def attach(self, trainer) -> None:
        """Give the callback its trainer, so its metrics reach the trainer's loggers (W&B, TensorBoard)."""
        self.trainer = trainer

    def _evaluate(self, args, state, control, model) -> None:
        if self.backend == "unsloth":
            from unsloth import FastLanguageModel

            FastLanguageModel.for_inference(model)
        was_training = model.training
        try:
            metrics, samples = self.evaluate(model, self.tokenizer)
        finally:
            if self.backend == "unsloth":
                FastLanguageModel.for_training(model)
            if was_training:
                model.train()
        entry = {"step": state.global_step, "epoch": state.epoch, "metrics": metrics,
                 "scoring": self.describe, "samples": samples}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
        self.last = entry
        state.log_history.append({**metrics, "step": state.global_step})
        if self.trainer is not None:
            # the handler's on_log clears control.should_log, which would drop the trainer's own log (loss,
            # reward) of this step from trainer_state.json: keep the flag as the step left it
            should_log = control.should_log
            self.trainer.callback_handler.on_log(args, state, control, dict(metrics))
            control.should_log = should_log

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self._evaluate(args, state, control, model)
        return control

    def on_save(self, args, state, control, **kwargs):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.last is not None and self.last["step"] == state.global_step and ckpt.is_dir():
            (ckpt / CHECKPOINT_EVAL_FILE).write_text(json.dumps(self.last, indent=2, default=str) + "\n")
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if self.last is None or self.last["step"] != state.global_step:
            self._evaluate(args, state, control, model)
        return control


class CheckpointProvenanceCallback(TrainerCallback):
    """Write ``medbench_provenance.json`` into every intermediate ``checkpoint-N`` the trainer saves."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def on_save(self, args, state, control, **kwargs):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir():
            write_provenance(ckpt, self.session.provenance(state.global_step))
        return control


def attach_callbacks(trainer) -> None:
    """Hand the trainer to the callbacks that log through it, and replace transformers' per-log printing with
    medbench's progress line (called once the trainer exists)."""
    for cb in trainer.callback_handler.callbacks:
        if isinstance(cb, MedbenchEvalCallback):
            cb.attach(trainer)
    replace_transformers_display(trainer)


def callbacks_for(session: Session) -> list[TrainerCallback]:
    """The callbacks a recipe's trainer gets: checkpoint provenance and the progress line always, evaluation
    when configured."""
    cbs: list[TrainerCallback] = [CheckpointProvenanceCallback(session),
                                  TrainingProgress(f"medbench train: {session.cfg.recipe}")]
    ev = session.cfg.eval
    if ev.every_n_steps:
        data_dir = ev.data_dir or session.cfg.data.data_dir
        if data_dir == "sample":
            from medbench.tasks.loaders import SAMPLE_DATA_DIR

            data_dir = str(SAMPLE_DATA_DIR)
        slice_ = LmEvalSlice(ev.tasks, limit=ev.limit, max_new_tokens=ev.max_new_tokens, data_dir=data_dir)
        describe = {"what": "a small medbench slice during training (medbench bench's lm-eval path, tasks, "
                            "graders and metrics, greedy), not the benchmark", "tasks": slice_.task_names,
                    "limit_per_task": ev.limit, "doc_ids": slice_.doc_ids, "max_new_tokens": ev.max_new_tokens}
        cbs.append(MedbenchEvalCallback(slice_, ev.every_n_steps, session.cfg.output_dir,
                                        tokenizer=session.tokenizer, backend=session.backend.name,
                                        describe=describe))
        session.eval_metrics = EVAL_FILE
    return cbs
