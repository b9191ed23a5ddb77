"""Evaluating a loaded model on medbench tasks: the one lm-eval path of ``medbench bench`` and of training.

``medbench bench`` (:mod:`.runner`) and the eval-during-training callback (``medbench.trainers.callback``)
both evaluate through the functions here, so a number logged at step 100 of a training run means what the
same number means in a run directory:

* the same task options (:func:`plan_task`): the recipes' chat template choice per task
  (:func:`default_chat_template`), the run's token limit;
* the same lm-eval configuration (:func:`load_task`): zero-shot, seeded, greedy decoding;
* the same documents for a limit (:mod:`.sampling`: seeded, stratified by label or subject, identical for
  every checkpoint), handed to lm-eval as ``evaluate(samples=...)``;
* the same grading (:func:`medbench.harness.run.sample_rows.rows_from_samples`: the task's grader over the
  raw completion, token counts from the model's own tokenizer) and metrics
  (:func:`medbench.harness.stats.metrics.compute_metrics`).

The runner adds what a benchmark needs around it (checkpoints from disk, the resumable request cache, the run
directory); :class:`ModelEvaluator` adds what training needs (tasks resolved and documents chosen once, a
model in memory evaluated every N steps). This is the only harness module ``trainers/`` imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from medbench.harness.run.sampling import DocItem, TaskSample, draw_sample

#: The seed a run uses unless told otherwise (``medbench bench --seed``): lm-eval's seeds and the sample.
DEFAULT_SEED = 1234


@dataclass
class PlannedTask:
    """A leaf task with the options this run uses for it."""

    spec: Any  # medbench.tasks.registry.TaskSpec
    max_gen_toks: int | None
    chat_template: bool
    chat_template_explicit: bool

    @property
    def name(self) -> str:
        return str(self.spec.name)

    def to_meta(self) -> dict[str, Any]:
        s = self.spec
        return {
            "name": s.name, "family": s.family, "group": s.group, "subgroup": getattr(s, "subgroup", None),
            "version": s.version, "output_type": s.output_type, "layout": s.layout, "answer": s.answer,
            "letters": getattr(s, "letters", None), "max_gen_toks": self.max_gen_toks,
            "chat_template": self.chat_template,
        }


def default_chat_template(task_spec: Any) -> bool:
    """The recipes' own choice: the GRPO recipe talks to an instruct model through its chat template (system
    prompt + user turn), the SFT recipe prompts raw text ending in ``<think>``, and loglikelihood tasks use
    lm-eval's plain prompt (so that ``medbench_pubmedqa_ll`` reproduces lm-eval's number)."""
    return task_spec.output_type == "generate_until" and task_spec.layout == "xml"


def plan_task(task_spec: Any, *, max_new_tokens: int | None = None,
              chat_template: bool | None = None) -> PlannedTask:
    """A leaf task's effective options: the token limit given (else the task's own) for a generative task,
    and the chat template as given (else :func:`default_chat_template`)."""
    generative = task_spec.output_type == "generate_until"
    return PlannedTask(
        spec=task_spec,
        max_gen_toks=(max_new_tokens or task_spec.max_gen_toks) if generative else None,
        chat_template=chat_template if chat_template is not None else default_chat_template(task_spec),
        chat_template_explicit=chat_template is not None,
    )


def plan_tasks(names: Sequence[str], *, max_new_tokens: int | None = None) -> list[PlannedTask]:
    """Task or group names expanded to leaf tasks with their default options (an unknown name raises
    :class:`medbench.tasks.registry.UnknownTaskError`, listing the known ones and the closest)."""
    from medbench.tasks import registry

    return [plan_task(ts, max_new_tokens=max_new_tokens) for ts in registry.expand(list(names))]


def make_task_manager(data_dir: str | None = None, task_metadata: dict[str, Any] | None = None) -> Any:
    """lm-eval's TaskManager over medbench's task folder only, with the data folder (and any extra task
    metadata) every task's loader receives."""
    from lm_eval.tasks import TaskManager
    from medbench.tasks import registry

    metadata = dict(task_metadata or {})
    if data_dir:
        metadata["data_dir"] = str(data_dir)
    return TaskManager(include_path=str(registry.include_path()), include_defaults=False,
                       metadata=metadata or None)


def _set_greedy(task_obj: Any, max_gen_toks: int | None) -> None:
    """Greedy decoding, whatever the task YAML says, so a run is reproducible; the run's token limit."""
    if task_obj.get_config("output_type") != "generate_until":
        return
    kwargs: dict[str, Any] = {"do_sample": False, "temperature": 0.0}
    if max_gen_toks:
        kwargs["max_gen_toks"] = int(max_gen_toks)
    task_obj.set_config(key="generation_kwargs", value=kwargs, update=True)


def load_task(task_manager: Any, task: PlannedTask, *, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """lm-eval's task dict for one leaf task (its documents read), configured as every medbench evaluation
    runs it: zero-shot unless the YAML says otherwise, seeded, greedy, with the run's token limit."""
    loaded = task_manager.load([task.name])
    for task_obj in loaded["tasks"].values():
        if task_obj.get_config("num_fewshot") is None:
            task_obj.set_config(key="num_fewshot", value=0)
        task_obj.set_fewshot_seed(seed=seed)
        _set_greedy(task_obj, task.max_gen_toks)
    return loaded


def _task_object(loaded: dict[str, Any], task: PlannedTask) -> Any:
    return loaded["tasks"][task.name]


def doc_items(task_obj: Any, task_spec: Any) -> list[DocItem]:
    """What the sample needs of each of a loaded task's documents (position, stable key, subject, gold label,
    showcase flag), read by :func:`medbench.tasks.scoring.doc_info` — the same reading the graded rows use."""
    from medbench.tasks.scoring import doc_info

    items = []
    for i, doc in enumerate(task_obj.eval_docs):
        info = doc_info(task_spec, doc)
        items.append(DocItem(i, info["doc_key"], info.get("subgroup"), info.get("target"),
                             bool(info["showcase"])))
    return items


def sample_task(loaded: dict[str, Any], task: PlannedTask, limit: float, *,
                seed: int = DEFAULT_SEED) -> TaskSample:
    """The documents of ``task`` that a run with ``limit`` scores
    (:func:`medbench.harness.run.sampling.draw_sample`)."""
    items = doc_items(_task_object(loaded, task), task.spec)
    return draw_sample(items, limit, seed, task=task.name, answer=task.spec.answer)


def run_task(lm: Any, loaded: dict[str, Any], task: PlannedTask, *, doc_ids: Sequence[int] | None = None,
             cached_lm: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One task through lm-eval on one loaded model: (lm-eval's results, its logged samples).

    ``doc_ids`` are the documents to score (a :class:`TaskSample`'s), ``None`` for all; ``cached_lm`` wraps
    ``lm`` (the runner's resumable request cache) when given. The chat template is applied when the task
    asks for it and the tokenizer has one.
    """
    from lm_eval.evaluator import evaluate

    if doc_ids is not None and not doc_ids:
        raise ValueError(f"{task.name}: an empty document sample; give doc_ids=None to score every document")
    use_template = task.chat_template and bool(getattr(lm.tokenizer, "chat_template", None))
    results = evaluate(
        lm=cached_lm if cached_lm is not None else lm,
        task_dict=loaded,
        samples=None if doc_ids is None else {task.name: sorted(int(i) for i in doc_ids)},
        bootstrap_iters=0,
        log_samples=True,
        apply_chat_template=use_template,
    )
    if results is None:  # a non-zero rank under accelerate: rank 0 writes
        return {}, []
    return results, results.get("samples", {}).get(task.name, [])


def grade_samples(lm: Any, task: PlannedTask, samples: list[dict[str, Any]], *, checkpoint: str,
                  seconds_for: Any = None, judge: Any = None, generated: Any = None) -> list[dict[str, Any]]:
    """lm-eval's logged samples of one task graded into run-directory rows (one per document), with the
    model's own tokenizer counting tokens. ``generated``: the backend's generated-token counts by request key
    (the runner's, read back from the run directory); by default those the model counted in this process."""
    from medbench.harness.backends.lm_backends import count_tokens_fn
    from medbench.harness.run import sample_rows

    return sample_rows.rows_from_samples(
        samples, checkpoint=checkpoint, task=task, count_tokens=count_tokens_fn(lm),
        seconds_for=seconds_for or (lambda _kind, _args: None), judge=judge,
        generated=generated if generated is not None else getattr(lm, "generated_tokens", None),
    )


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a model: graded rows, per-task metrics, and the documents scored."""

    rows: list[dict[str, Any]]
    """One graded row per (task, document), the run directory's sample columns."""
    metrics: list[dict[str, Any]]
    """Per-task records of :func:`medbench.harness.stats.metrics.compute_metrics` (whole tasks)."""
    samples: dict[str, TaskSample] = field(default_factory=dict)
    """Per task, the documents scored."""

    def flat_metrics(self, prefix: str = "medbench") -> dict[str, float]:
        """``{"<prefix>/<task>/<metric>": value}`` for every numeric metric (what a trainer logs)."""
        skip = {"checkpoint", "task", "group", "subgroup", "task_version"}
        out: dict[str, float] = {}
        for rec in self.metrics:
            for key, value in rec.items():
                if key not in skip and isinstance(value, (int, float)) and not isinstance(value, bool):
                    out[f"{prefix}/{rec['task']}/{key}"] = float(value)
        return out


class ModelEvaluator:
    """medbench tasks on a model in memory (a model being trained): tasks resolved, documents read and the
    sample drawn once, when the evaluator is built; then each call evaluates the model as it is now.

    ``limit`` documents per task, chosen as ``medbench bench --limit N --seed SEED`` chooses them.
    """

    def __init__(self, tasks: Sequence[str], *, limit: float | None, max_new_tokens: int | None = None,
                 data_dir: str | None = None, seed: int = DEFAULT_SEED, batch_size: int = 8) -> None:
        self.planned = plan_tasks(tasks, max_new_tokens=max_new_tokens)
        self.limit, self.seed, self.batch_size = limit, seed, batch_size
        manager = make_task_manager(data_dir)
        self.loaded = {t.name: load_task(manager, t, seed=seed) for t in self.planned}
        self.samples: dict[str, TaskSample] = (
            {t.name: sample_task(self.loaded[t.name], t, limit, seed=seed) for t in self.planned}
            if limit is not None else {})

    @property
    def task_names(self) -> list[str]:
        return [t.name for t in self.planned]

    def __call__(self, model: Any, tokenizer: Any, *, checkpoint: str = "training") -> Evaluation:
        """Evaluate ``model`` (with ``tokenizer``) on every task; rows are labelled ``checkpoint``."""
        import pandas as pd
        from lm_eval.models.huggingface import HFLM
        from medbench.harness.stats.metrics import compute_metrics

        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=self.batch_size)
        rows: list[dict[str, Any]] = []
        for task in self.planned:
            sample = self.samples.get(task.name)
            _, logged = run_task(lm, self.loaded[task.name], task, doc_ids=sample.doc_ids if sample else None)
            rows += grade_samples(lm, task, logged, checkpoint=checkpoint)
        per_task = compute_metrics(pd.DataFrame(rows), [checkpoint])["per_task"] if rows else []
        return Evaluation(rows=rows, metrics=[m for m in per_task if m.get("subgroup") is None],
                          samples=dict(self.samples))
