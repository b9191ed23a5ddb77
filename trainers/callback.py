"""Trainer callbacks: provenance in every intermediate checkpoint, evaluation during training, and the
progress line (:mod:`medbench.trainers.progress`) in place of transformers' printed log dicts.

:class:`MedbenchEvalCallback` runs a small medbench slice every N optimizer steps: lm-eval's ``evaluate`` on
the model being trained, over the first few documents of medbench's own tasks — the prompts ``medbench bench``
uses, greedy decoding, the completions graded by medbench's graders (the functions that score the benchmark).
The metrics go to ``medbench_eval.jsonl`` in the output directory (one line per evaluation), into the
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
    """medbench's tasks through lm-eval on the live model: the first ``limit`` documents of each, greedy.

    This is the path ``medbench bench`` takes (lm-eval's ``evaluate`` with medbench's task YAMLs, graded by
    the tasks' ``process_results``, which call medbench's graders), with the model in memory instead of a
    checkpoint on disk. Tasks are resolved and their data read once, when the callback is built.
    """

    def __init__(self, tasks: list[str], *, limit: int, max_new_tokens: int, data_dir: str | None,
                 batch_size: int = 8) -> None:
        from lm_eval.tasks import TaskManager
        from medbench.harness.run.runner import default_chat_template
        from medbench.tasks import registry

        self.specs = registry.expand(tasks)  # an unknown name lists the known ones and the closest match
        self.limit, self.max_new_tokens, self.batch_size = limit, max_new_tokens, batch_size
        manager = TaskManager(include_path=str(registry.include_path()), include_defaults=False,
                              metadata={"data_dir": str(data_dir)} if data_dir else None)
        self.groups: dict[bool, dict[str, Any]] = {}
        for spec in self.specs:
            loaded = manager.load([spec.name])
            for task in loaded["tasks"].values():
                task.set_config(key="num_fewshot", value=0)
                if task.get_config("output_type") == "generate_until":
                    task.set_config(key="generation_kwargs", update=True,
                                    value={"do_sample": False, "temperature": 0.0, "max_gen_toks": max_new_tokens})
            self.groups.setdefault(default_chat_template(spec), {}).update(loaded["tasks"])

    @property
    def task_names(self) -> list[str]:
        return [s.name for s in self.specs]

    def __call__(self, model, tokenizer) -> tuple[dict[str, float], list[dict[str, Any]]]:
        """(metrics ``medbench/<task>/<metric>``, per-document samples) for the model as it is now."""
        from lm_eval.evaluator import evaluate
        from lm_eval.models.huggingface import HFLM

        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=self.batch_size)
        metrics: dict[str, float] = {}
        samples: list[dict[str, Any]] = []
        for chat, tasks in self.groups.items():
            use_template = chat and bool(getattr(tokenizer, "chat_template", None))
            out = evaluate(lm=lm, task_dict={"tasks": tasks}, limit=self.limit, bootstrap_iters=0,
                           log_samples=True, apply_chat_template=use_template, verbosity="ERROR")
            for task, values in (out or {}).get("results", {}).items():
                for key, value in values.items():
                    name = key.split(",")[0]
                    if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "alias":
                        metrics[f"medbench/{task}/{name}"] = float(value)
            for task, rows in (out or {}).get("samples", {}).items():
                for r in rows:
                    completion = r["resps"][0][0] if r.get("resps") and r["resps"][0] else None
                    samples.append({"task": task, "doc_id": r.get("doc_id"), "target": r.get("target"),
                                    "completion": completion,
                                    **{k: r[k] for k in ("acc", "acc_strict", "unparseable", "format_strict")
                                       if k in r}})
        return metrics, samples


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
    if ev["every_n_steps"]:
        data_dir = ev["data_dir"] or session.cfg.data.get("data_dir")
        if data_dir == "sample":
            from medbench.tasks.loaders import SAMPLE_DATA_DIR

            data_dir = str(SAMPLE_DATA_DIR)
        slice_ = LmEvalSlice(ev["tasks"], limit=ev["limit"], max_new_tokens=ev["max_new_tokens"], data_dir=data_dir)
        describe = {"what": "a small medbench slice during training (lm-eval, medbench's tasks and graders, "
                            "greedy), not the benchmark", "tasks": slice_.task_names,
                    "limit_per_task": ev["limit"], "max_new_tokens": ev["max_new_tokens"]}
        cbs.append(MedbenchEvalCallback(slice_, ev["every_n_steps"], session.cfg.output_dir,
                                        tokenizer=session.tokenizer, backend=session.backend.name,
                                        describe=describe))
        session.eval_metrics = EVAL_FILE
    return cbs
