"""lm-eval's per-sample log → run-directory rows (one per document), graded by the task's own grader.

The raw completion is kept whole; the grader (through :mod:`medbench.tasks.scoring`) records what it
extracted and from where. Each row is a :class:`~medbench.harness.run.records.SampleRow` (returned in its
plain JSON form, which the runner writes to partial/ and then samples.parquet).

Generation facts. A generation's token count and whether it hit the token limit come from the **generated
token ids** wherever the backend counted them (``hf`` and ``medbench-fast``: the counts are recorded per
request by :class:`medbench.harness.backends.lm_backends.GeneratedTokenCounts` and kept in the run directory,
keyed by :func:`request_key`); ``completion_tokens_source`` says "generated". Where no count exists (vLLM,
another rank's requests of an older run), the documented fallback is the completion text re-counted with the
evaluated model's tokenizer, and "hit the limit" is that count reaching the task's ``max_gen_toks``
(``completion_tokens_source`` "tokenizer"): a re-tokenisation can differ from the generated ids by a few
tokens either way, which is why it is only the fallback.

Region lengths. Where the backend also recorded where each generated id lies in the text
(``GeneratedTokens.token_chars``: ``hf`` and ``medbench-fast`` with a fast tokenizer), ``reasoning_tokens`` and
``answer_tokens`` are the generated ids that lie (wholly or partly) in the grader's reasoning spans and answer
span (:func:`region_token_counts`): the tokens the model emitted, no tokenizer call. That equals the tokenizer's
count of the region text where the region's edges are token edges in the completion (the usual layouts: a
region between newlines that ends on a word); where a token straddles an edge (``">R"`` in
``<reasoning>Radiation``, ``".\n"`` after a last full stop) it is counted in the region, about 1 document in 25
on the report fixture, one token more. Elsewhere the regions are re-tokenised.

Counting is batched: the completions of a (checkpoint, task) that need a re-count are counted in one
tokenizer call, the documents are graded without a counter, and the reasoning and answer texts the grader
measured (:func:`medbench.tasks.graders.measured_texts`, cut out at the record's spans) that have no
generated-token positions are counted in one more call. A fast tokenizer encodes a list in Rust on every core; one Python call per text cost ~900 µs a
sample (benchmarks/results/cpu_postprocess.json). The numbers are the per-text counts, exactly.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from medbench.harness.run.records import SAMPLE_COLUMNS, GeneratedTokens, SampleRow, plain

TokenCounter = Callable[[str], int]
SecondsFor = Callable[[str, Any], "float | None"]

#: Texts per tokenizer call: large enough to keep every core busy, small enough that the token ids of long
#: chain-of-thought completions (kept as Python lists by transformers) never pile up in memory.
BATCH = 1024

#: Grade-record fields the run directory does not keep: ``lenient_extracted`` always equals ``extracted``.
DROPPED_GRADE_FIELDS: frozenset[str] = frozenset({"lenient_extracted"})


def request_key(args: Sequence[Any]) -> str:
    """The key of one generation request ``(context, gen_kwargs)``: lm-eval's request-cache hash, so the
    backend's token counts, the request cache and the per-request timings all name a request the same way."""
    from lm_eval.api.model import hash_args

    return hash_args("generate_until", tuple(args))


class TokenizerCounter:
    """A tokenizer as a token counter: ``counter(text)`` counts one text, ``counter.many(texts)`` a list in
    batched calls, with the same numbers (no special tokens added: the length of the text itself)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    def many(self, texts: Sequence[str]) -> list[int]:
        counts = [0] * len(texts)
        todo = [i for i, t in enumerate(texts) if t]
        for start in range(0, len(todo), BATCH):
            chunk = todo[start : start + BATCH]
            ids = self.tokenizer([texts[i] for i in chunk], add_special_tokens=False,
                                 return_attention_mask=False, return_token_type_ids=False)["input_ids"]
            for i, row in zip(chunk, ids):
                counts[i] = len(row)
        return counts


def count_many(count_tokens: TokenCounter, texts: Sequence[str]) -> list[int]:
    """``[count_tokens(t) for t in texts]``, with each distinct text counted once and, when the counter can
    count a list (a ``many`` method, as :class:`TokenizerCounter` has), in batched calls."""
    distinct = list(dict.fromkeys(texts))
    many = getattr(count_tokens, "many", None)
    counts = list(many(distinct)) if callable(many) else [count_tokens(t) for t in distinct]
    if len(counts) != len(distinct):
        raise ValueError(f"the token counter returned {len(counts)} counts for {len(distinct)} texts; "
                         "its many() must return one count per text, in order")
    by_text = dict(zip(distinct, counts))
    return [by_text[t] for t in texts]


def region_token_counts(token_chars: bytes, regions: Sequence[Sequence[tuple[int, int]]], *,
                        text_length: int) -> list[int] | None:
    """The number of generated tokens that lie (wholly or partly) in each region, a region being character spans
    of the completion (a grade record's ``reasoning_spans``, or its ``answer_span`` alone): the reasoning and
    answer lengths in the tokens the model emitted, from :attr:`GeneratedTokens.token_chars`.

    An id that adds no character (it began a multi-byte character; a skipped special token) belongs with the
    id that completes the character. ``None`` when the tokens cover fewer than ``text_length`` characters: they
    are not this completion's (re-tokenise it instead). :func:`region_token_counts_many` counts many at once.
    """
    return region_token_counts_many([token_chars], [regions], [text_length])[0]


def region_token_counts_many(token_chars: Sequence[bytes], regions: Sequence[Sequence[Sequence[tuple[int, int]]]],
                             text_lengths: Sequence[int]) -> list[list[int] | None]:
    """:func:`region_token_counts` of many completions in a few array operations: their tokens laid end to end,
    each completion's spans shifted to where its text starts (a token of one completion never reaches into
    another's spans)."""
    if not token_chars:
        return []
    for c in token_chars:
        if len(c) % 2:
            np.frombuffer(c, dtype="<u2")  # raises: not a run of 16-bit lengths
    # Every completion's lengths in one buffer (a numpy call per completion was most of this function's time):
    # a completion's characters are the cumulative sum at its last token less the one before its first.
    sizes = np.array([len(c) // 2 for c in token_chars], dtype=np.int64)
    lengths = np.frombuffer(b"".join(token_chars), dtype="<u2").astype(np.int64)
    cum = np.concatenate([np.zeros(1, np.int64), np.cumsum(lengths)])
    first = np.cumsum(sizes) - sizes
    base = cum[first]  # where each completion's text starts
    totals = cum[first + sizes] - base
    ends = cum[1:]
    starts = ends - lengths
    if len(lengths) and not lengths.all():
        ends = np.where(lengths > 0, ends, np.iinfo(np.int64).max)
        ends = np.minimum.accumulate(ends[::-1])[::-1]
    span_lo: list[int] = []
    span_hi: list[int] = []
    for d, doc_regions in enumerate(regions):
        shift = int(base[d])
        for spans in doc_regions:
            for s, e in spans:
                if e > s:
                    span_lo.append(s + shift)
                    span_hi.append(e + shift)
    # tokens with end > s and start < e (both arrays ascending): one run [lo, hi) of token indices a span
    lo = np.searchsorted(ends, np.array(span_lo, dtype=np.int64), side="right").tolist()
    hi = np.searchsorted(starts, np.array(span_hi, dtype=np.int64), side="left").tolist()
    out: list[list[int] | None] = []
    k = 0
    for d, doc_regions in enumerate(regions):
        counts = []
        for spans in doc_regions:
            runs = []
            for s, e in spans:
                if e > s:
                    runs.append((lo[k], hi[k]))
                    k += 1
            if len(runs) == 1:
                counts.append(max(0, runs[0][1] - runs[0][0]))
                continue
            n, reach = 0, 0
            for a, b in sorted(runs):  # a token that two spans touch is counted once
                a = max(a, reach)
                if b > a:
                    n += b - a
                reach = max(reach, b)
            counts.append(n)
        out.append(None if totals[d] < text_lengths[d] else counts)
    return out


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
    generated: Mapping[str, GeneratedTokens] | None = None,
) -> list[dict[str, Any]]:
    """Grade each logged sample and return rows: :class:`~medbench.harness.run.records.SampleRow` objects in
    their plain form (keys :data:`~medbench.harness.run.records.SAMPLE_COLUMNS`).

    ``count_tokens`` is the evaluated model's tokenizer as a counter; give it a ``many`` method (use
    :class:`TokenizerCounter`) and every text of the task is counted in a few batched calls. ``generated``
    holds the backend's counts of the generated token ids by :func:`request_key` (``RunWriter.read_generated``);
    a generation it lacks is re-counted from its text (see the module docstring).
    """
    from medbench.tasks import scoring
    from medbench.tasks.graders import as_text, measured_texts

    spec = task.spec
    docs = _first_per_doc(samples)
    generative = spec.output_type == "generate_until"
    if generative:
        completions = [s["resps"][0][0] for s in docs]
        counted = [generated.get(request_key(s["arguments"][0])) if generated else None for s in docs]
        recount = [i for i, c in enumerate(counted) if c is None]
        recounted = dict(zip(recount, count_many(count_tokens, [as_text(completions[i]) for i in recount])))
        limit = int(task.max_gen_toks) if task.max_gen_toks else None
        n_tokens: list[int] = []
        hit_limit: list[bool | None] = []
        for i, c in enumerate(counted):
            if c is not None:
                n_tokens.append(c.n_tokens)
                hit_limit.append(c.hit_limit)
            else:
                n_tokens.append(recounted[i])
                hit_limit.append(None if limit is None else recounted[i] >= limit)
        kwargs: dict[str, Any] = {} if judge is None else {"judge": judge}
        records = [
            scoring.grade_doc(spec, s["doc"], completion, hit_token_limit=hit, **kwargs)
            for s, completion, hit in zip(docs, completions, hit_limit)
        ]
        # The regions in the tokens the model emitted where the backend said where they lie; the other
        # documents' measured texts re-tokenised in one go: reasoning first, then answers.
        reasoning_tokens: list[int] = [0] * len(docs)
        answer_tokens: list[int] = [0] * len(docs)
        retokenise = [i for i, c in enumerate(counted) if c is None or c.token_chars is None]
        by_ids = [i for i, c in enumerate(counted) if c is not None and c.token_chars is not None]
        got = region_token_counts_many(
            [counted[i].token_chars for i in by_ids],  # type: ignore[union-attr]
            [[records[i].reasoning_spans, (records[i].answer_span,) if records[i].answer_span else ()]
             for i in by_ids],
            [len(as_text(completions[i])) for i in by_ids])
        for i, counts in zip(by_ids, got):
            if counts is None:
                retokenise.append(i)
            else:
                reasoning_tokens[i], answer_tokens[i] = counts
        retokenise.sort()
        if retokenise:
            measured = [measured_texts(completions[i], records[i]) for i in retokenise]
            region_counts = count_many(count_tokens, [m[0] for m in measured] + [m[1] for m in measured])
            for k, i in enumerate(retokenise):
                reasoning_tokens[i], answer_tokens[i] = region_counts[k], region_counts[len(retokenise) + k]
    rows = []
    for i, s in enumerate(docs):
        doc = s["doc"]
        args = [tuple(a) for a in s["arguments"]]
        info = scoring.doc_info(spec, doc)
        facts: dict[str, Any] = {}
        if generative:
            record, completion = records[i], completions[i]
            seconds = seconds_for("generate_until", args[0])
            facts.update(completion_tokens=n_tokens[i],
                         completion_tokens_source="generated" if counted[i] is not None else "tokenizer")
        else:
            lls = [float(r[0][0]) for r in s["resps"]]
            record = scoring.grade_loglikelihood(spec, doc, lls)
            completion = str(record.extracted)  # nothing is generated: the choice the model found most likely
            facts["loglikelihoods"] = json.dumps(lls)
            parts = [seconds_for("loglikelihood", a) for a in args]
            seconds = sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None
        rec = _grade_fields(record.to_dict(), spec.name)
        if generative:
            rec["reasoning_tokens"], rec["answer_tokens"] = reasoning_tokens[i], answer_tokens[i]
        target = info.get("target")
        rec["target"] = target if target is not None else rec.get("target")
        row = SampleRow(
            checkpoint=checkpoint,
            task=spec.name,
            group=spec.group,
            subgroup=info.get("subgroup", getattr(spec, "subgroup", None)),
            doc_id=s["doc_id"],
            doc_key=info["doc_key"],
            showcase=bool(info.get("showcase", False)),
            task_version=spec.version,
            prompt=args[0][0],
            completion=completion,
            question=info.get("question"),
            gen_time_s=None if seconds is None else round(float(seconds), 6),
            lm_eval_doc_hash=s.get("doc_hash"),
            **rec,
            **facts,
        )
        rows.append(_row_dict(row))
    return rows


#: Value types that :func:`medbench.harness.run.records.plain` returns unchanged.
_PLAIN_SCALARS: frozenset[type] = frozenset({str, int, float, bool, type(None)})
_ROW_KEYS: tuple[str, ...] = SampleRow.json_keys()


def _plain_value(value: Any) -> Any:
    """``plain(value)``: scalars as they are, lists and tuples (of lists) of scalars copied as lists here,
    anything else through ``plain``."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if kind is list or kind is tuple:
        return [v if type(v) in _PLAIN_SCALARS else _plain_value(v) for v in value]
    return plain(value)


def _row_dict(row: SampleRow) -> dict[str, Any]:
    """``row.to_dict()``, the same dict, without the generic record machinery's per-field lookups: a row's
    fields are plain scalars and lists of them, which ``plain`` only copies (issue 14: to_dict was a quarter
    of the grading time). The fields are read from the instance dict, and only a non-scalar goes through
    :func:`_plain_value` (most fields are scalars: a call per field was half of this function's time)."""
    values = vars(row)
    out = {}
    for key in _ROW_KEYS:
        value = values[key]
        out[key] = value if type(value) in _PLAIN_SCALARS else _plain_value(value)
    return out


def _grade_fields(record: dict[str, Any], task: str) -> dict[str, Any]:
    """The grade record's fields that are sample columns. A field that is neither a column nor dropped on
    purpose is an error, so a grader field can never go missing from the run directory unnoticed. ``record``
    is the grader's fresh ``to_dict()``: the dropped fields are deleted from it in place."""
    unknown = sorted(set(record).difference(_SAMPLE_COLUMN_SET, DROPPED_GRADE_FIELDS))
    if unknown:
        raise ValueError(f"{task}: the grade record has fields {unknown} that samples.parquet has no column for; "
                         f"add them to medbench.harness.run.records.SampleRow")
    for key in DROPPED_GRADE_FIELDS.intersection(record):
        del record[key]
    return record


_SAMPLE_COLUMN_SET: frozenset[str] = frozenset(SAMPLE_COLUMNS)


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
