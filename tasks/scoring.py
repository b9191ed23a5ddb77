"""The one place that turns (task, document, completion) into a :class:`GradeRecord`.

Two callers, one rule:

* lm-eval, through each task's ``process_results`` hook (:func:`process_results_for`), which reduces the
  record to the task's metrics (:func:`lm_eval_metrics`);
* the harness, which re-grades lm-eval's logged samples with the evaluated model's tokenizer
  (``count_tokens``) and generation facts (``hit_token_limit``) and keeps the whole record.

What a document means (its stable key, question, target, subgroup, showcase flag) is read here too
(:func:`doc_info`), from the document shapes the loaders produce (see :mod:`medbench.tasks.loaders`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from .graders import GradeRecord, grade
from .graders.answers import DEFAULT_LETTERS, YesNoMaybe, answer_type
from .graders.grade import Judge, TokenCounter
from .registry import TaskSpec, get_task

#: Metrics every generative task reports to lm-eval (means over documents). ``truncated`` is not among them:
#: lm-eval's ``process_results`` hook sees only the text, and whether the token limit was hit is counted from
#: the generated token ids (the harness records it per sample).
GENERATIVE_METRICS: tuple[str, ...] = (
    "acc",  # the answer region's one answer is right (the benchmark's accuracy)
    "acc_strict",  # right *and* given exactly in the asked layout (lm-eval's "strict-match" analogue)
    "acc_flexible",  # right where the completion committed to it, in the layout or not ("flexible-extract")
    "unparseable",  # no one answer in the answer region (none, or a hedge naming several); never "wrong"
    "format_strict",
    "format_soft",
    "reasoning_words",
    "completion_words",  # the whole completion: a reply that ignores the layout has 0 reasoning words
)


def _question(spec: TaskSpec, doc: dict[str, Any]) -> str:
    family = spec.family
    if family == "pubmedqa":
        return doc["QUESTION"]
    if family == "health":
        return doc["Questions"]
    if family == "medical_cot":
        return doc["Question"]
    return doc["question"]


def doc_info(spec: TaskSpec, doc: dict[str, Any]) -> dict[str, Any]:
    """``{"doc_key", "question", "target", "subgroup", "showcase"}`` for one document of ``spec``.

    ``doc_key`` is stable across runs and machines (PubMed id, row index, or a hash of the question and
    options), so two checkpoints' answers to the same question can be paired.
    """
    subgroup = doc.get("specialty") if spec.family == "health" else doc.get("subject")
    return {
        "doc_key": str(doc["doc_key"]),
        "question": _question(spec, doc),
        "target": str(doc["target"]),
        "subgroup": subgroup if subgroup is not None else spec.subgroup,
        "showcase": bool(doc.get("showcase", False)),
    }


@lru_cache(maxsize=1)
def _default_judge() -> Judge:
    """The configured judge (LLM over HTTP when ``MEDBENCH_JUDGE_*`` is set, else the offline proxy), built
    once per process: the proxy loads a sentence-embedding model."""
    from .judge import default_judge  # lazy: only free-answer tasks need it

    return default_judge()


def grade_doc(
    spec: TaskSpec,
    doc: dict[str, Any],
    completion: str | bytes | None,
    *,
    count_tokens: TokenCounter | None = None,
    hit_token_limit: bool | None = None,
    judge: Judge | None = None,
) -> GradeRecord:
    """Grade one raw completion of a generative task.

    ``judge`` is used for free-text answers (``medbench_medical_cot``); when ``None`` the default judge of
    :mod:`medbench.tasks.judge` is used. The think layout's prompt already opens ``<think>``.
    """
    if spec.output_type != "generate_until" or spec.layout is None:
        raise ValueError(f"{spec.name} is scored by loglikelihood: use grade_loglikelihood, not grade_doc")
    if spec.answer == "free" and judge is None:
        judge = _default_judge()
    return grade(
        completion,
        doc_info(spec, doc)["target"],
        layout=spec.layout,  # type: ignore[arg-type]
        answer=spec.answer,
        letters=doc.get("letters") or spec.letters or DEFAULT_LETTERS,
        think_prefilled=True,
        count_tokens=count_tokens,
        hit_token_limit=hit_token_limit,
        judge=judge if spec.answer == "free" else None,
    )


def ll_choices(spec: TaskSpec, doc: dict[str, Any] | None = None) -> list[str]:
    """The continuations a loglikelihood task scores, in order (lm-eval's ``doc_to_choice``)."""
    if spec.answer == "yesno":
        return list(YesNoMaybe().labels)
    if spec.answer == "choice":
        return list((doc or {}).get("letters") or spec.letters)
    raise ValueError(f"{spec.name}: no loglikelihood choices for answer type {spec.answer!r}")


def grade_loglikelihood(spec: TaskSpec, doc: dict[str, Any], loglikelihoods: Sequence[float]) -> GradeRecord:
    """Score a loglikelihood task: the choice with the highest loglikelihood (the first one on a tie, as
    ``numpy.argmax`` and lm-eval do) against the gold choice. Nothing is generated, so what is about
    generated text does not apply and is ``None`` (format and truncation flags, the flexible reading), and
    the lengths are zero."""
    choices = ll_choices(spec, doc)
    if len(loglikelihoods) != len(choices):
        raise ValueError(
            f"{spec.name}: {len(loglikelihoods)} loglikelihoods for {len(choices)} choices {choices}"
        )
    kind = answer_type(spec.answer, letters=spec.letters or DEFAULT_LETTERS)
    gold = kind.normalize_target(doc_info(spec, doc)["target"])
    best = max(range(len(choices)), key=lambda i: (loglikelihoods[i], -i))
    pred = choices[best]
    correct = pred == gold
    scores = ", ".join(f"{c}={ll:.4f}" for c, ll in zip(choices, loglikelihoods))
    return GradeRecord(
        outcome="correct" if correct else "wrong",
        target=gold,
        extracted=pred,
        answer_source="none",
        strict_extracted=pred,
        lenient_extracted=pred,
        strict_correct=correct,
        flexible_outcome=None,
        flexible_extracted=None,
        flexible_source=None,
        layout="loglikelihood",
        answer_type=kind.name,
        format_strict=None,
        format_soft=None,
        think_ok=None,
        text_outside_tags=False,
        truncated=None,
        unclosed_tag=None,
        reasoning_words=0,
        answer_words=0,
        completion_chars=0,
        notes=(f"chosen by loglikelihood: {scores}",),
    )


def lm_eval_metrics(spec: TaskSpec, record: GradeRecord) -> dict[str, float]:
    """The per-document values lm-eval averages for ``spec`` (see :data:`GENERATIVE_METRICS`)."""
    if spec.output_type == "multiple_choice":
        return {"acc": float(record.correct)}
    metrics = {
        "acc": float(record.correct),
        "acc_strict": float(record.strict_correct),
        "acc_flexible": float(record.flexible_correct),
        "unparseable": float(record.outcome == "unparseable"),
        "format_strict": float(bool(record.format_strict)),
        "format_soft": float(bool(record.format_soft)),
        "reasoning_words": float(record.reasoning_words),
        "completion_words": float(record.completion_words),
    }
    if spec.answer == "free" and record.judge is not None:
        metrics["judge_proxy"] = float(record.judge.kind == "proxy")
    return metrics


def process_results_for(task_name: str) -> Callable[[dict[str, Any], list[Any]], dict[str, float]]:
    """lm-eval ``process_results`` hook for ``task_name``: grade the document's (filtered) result."""

    def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
        spec = get_task(task_name)
        if spec.output_type == "multiple_choice":
            record = grade_loglikelihood(spec, doc, [float(r[0]) for r in results])
        else:
            record = grade_doc(spec, doc, results[0])
        return lm_eval_metrics(spec, record)

    process_results.__name__ = f"process_results_{task_name}"
    return process_results
