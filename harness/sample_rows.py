"""lm-eval's per-sample log → run-directory rows (one per document), graded by the task's own grader.

The raw completion is kept whole; the grader (through :mod:`medbench.tasks.scoring`) records what it
extracted and from where. Token counts come from the evaluated checkpoint's tokenizer, and "hit the token
limit" is decided from the completion's token count against the task's ``max_gen_toks``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

TokenCounter = Callable[[str], int]
SecondsFor = Callable[[str, Any], "float | None"]


def _first_per_doc(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """lm-eval logs a document once per filter; the raw response is the same in each, keep the first."""
    seen: set[Any] = set()
    out = []
    for s in sorted(samples, key=lambda s: s["doc_id"]):
        if s["doc_id"] in seen:
            continue
        seen.add(s["doc_id"])
        out.append(s)
    return out


def rows_from_samples(
    samples: list[dict[str, Any]],
    *,
    checkpoint: str,
    task: Any,  # runner.PlannedTask
    count_tokens: TokenCounter,
    seconds_for: SecondsFor,
    judge: Any = None,
) -> list[dict[str, Any]]:
    """Grade each logged sample and return rows with the columns of :data:`rundir.SAMPLE_COLUMNS`."""
    from medbench.tasks import scoring

    spec = task.spec
    rows = []
    for s in _first_per_doc(samples):
        doc = s["doc"]
        args = [tuple(a) for a in s["arguments"]]
        info = scoring.doc_info(spec, doc)
        extra: dict[str, Any] = {}
        if spec.output_type == "generate_until":
            completion = s["resps"][0][0]
            completion_tokens = count_tokens(completion)
            hit_limit = bool(task.max_gen_toks) and completion_tokens >= int(task.max_gen_toks)
            kwargs: dict[str, Any] = {"count_tokens": count_tokens, "hit_token_limit": hit_limit}
            if judge is not None:
                kwargs["judge"] = judge
            record = scoring.grade_doc(spec, doc, completion, **kwargs)
            seconds = seconds_for("generate_until", args[0])
        else:
            lls = [float(r[0][0]) for r in s["resps"]]
            record = scoring.grade_loglikelihood(spec, doc, lls)
            completion = str(record.extracted)  # nothing is generated: the choice the model found most likely
            completion_tokens = None
            extra["loglikelihoods"] = json.dumps(lls)
            parts = [seconds_for("loglikelihood", a) for a in args]
            seconds = sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None
        rec = record.to_dict()
        target = info.get("target")
        row = {
            "checkpoint": checkpoint,
            "task": spec.name,
            "group": spec.group,
            "subgroup": info.get("subgroup", getattr(spec, "subgroup", None)),
            "doc_id": s["doc_id"],
            "doc_key": info["doc_key"],
            "showcase": bool(info.get("showcase", False)),
            "task_version": spec.version,
            "prompt": args[0][0],
            "completion": completion,
            "question": info.get("question"),
            **{k: v for k, v in rec.items() if k != "target"},
            "target": target if target is not None else rec.get("target"),
            "completion_tokens": completion_tokens,
            "gen_time_s": None if seconds is None else round(float(seconds), 6),
            "lm_eval_doc_hash": s.get("doc_hash"),
            **extra,
        }
        rows.append(row)
    return rows


def save_lm_eval_outputs(directory: Path, ck: Any, task: Any, results: dict[str, Any],
                         samples: list[dict[str, Any]]) -> None:
    """Keep lm-eval's own results and sample log for one pair, written by lm-eval's EvaluationTracker
    (``lm_eval/<checkpoint>/results_<date>.json`` and ``samples_<task>_<date>.jsonl``)."""
    from lm_eval.loggers import EvaluationTracker

    if not results:
        return
    directory.mkdir(parents=True, exist_ok=True)
    tracker = EvaluationTracker(output_path=str(directory / "results.json"))
    model_args = {"pretrained": ck.model}
    if ck.adapter:
        model_args["peft"] = ck.adapter
    tracker.general_config_tracker.log_experiment_args(
        model_source="hf", model_args=model_args, system_instruction=None,
        chat_template=None, fewshot_as_multiturn=False,
    )
    logged = copy.deepcopy(samples)  # the tracker rewrites samples in place while sanitising them
    aggregated = {k: v for k, v in results.items() if k != "samples"}
    aggregated["config"] = {"model_args": model_args, "checkpoint": ck.name,
                            "max_gen_toks": task.max_gen_toks, "chat_template": task.chat_template}
    tracker.save_results_aggregated(results=aggregated, samples={task.name: logged})
    tracker.save_results_samples(task_name=task.name, samples=logged)
