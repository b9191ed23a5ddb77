"""Training data for the two recipes, from the hub or from local files, prepared exactly as the recipes do.

SFT: medical-o1-reasoning-SFT (``en``, ``train[0:500]``), each row rendered with the recipe's ``<think>``
training template plus the tokenizer's EOS (``tasks/prompts.py``), in a ``text`` column.

GRPO: GSM8K main (train) + PubMedQA ``pqa_artificial`` (contexts shorter than 1024 characters) +
Health_Benchmarks (the 52 specialties, train side of medbench's fixed hash split), concatenated and shuffled.
Each row has a conversational ``prompt`` (the recipe's system prompt, then the recipe's user turn), the
``answer``, its ``answer_type`` (``number`` / ``yesno`` / ``choice``, read by the rewards) and its ``source``.

GRPO format warm-up (optional, ``warmup`` in a GRPO config): GRPO rows that come with reasoning text — GSM8K's
worked solution, PubMedQA's ``LONG_ANSWER`` — written as the recipe's ``<reasoning>/<answer>`` completion of
their prompt (:func:`prepare_format_warmup`), for a short SFT before GRPO.

Local files (``data_dir``, for offline use; the same names the evaluation tasks use where they overlap)::

    <data_dir>/medical_o1/medical_o1_sft.json     (or .jsonl/.parquet) Question, Complex_CoT, Response
    <data_dir>/gsm8k/train.jsonl                                       question, answer ("... #### 72")
    <data_dir>/pubmedqa/ori_pqaa.json        the original PQA-A file: {pubid: {QUESTION, CONTEXTS, final_decision}}
    <data_dir>/health_benchmarks/<Specialty>.jsonl              Questions, Answers (as the evaluation task)

Row checks and file reading are the evaluation loaders' (``medbench.tasks.loaders``), so a training file and
an evaluation file of the same dataset are held to the same schema.

A row with a missing or malformed field stops preparation with the dataset, file, row and expected fields;
nothing is dropped silently, and every filter (context length, prompt length, eval side of a split) reports
how many rows it removed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medbench.tasks import prompts
from medbench.tasks.loaders._io import (
    SAMPLE_DATA_DIR,
    DataError,
    find_one,
    load_hub,
    read_json,
    read_records,
    require_file,
    resolve_data_dir,
)

from .overlap import health_split

if TYPE_CHECKING:
    from .config import GrpoData, SftData, WarmupSection


@dataclass
class PreparedData:
    """A prepared training set and the facts its provenance records."""

    dataset: Any  # datasets.Dataset
    sources: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return rows_sha256(self.dataset)


def rows_sha256(dataset: Iterable[dict[str, Any]]) -> str:
    """A hash of the prepared rows, in order: the same data slice always gives the same hash."""
    h = hashlib.sha256()
    for row in dataset:
        h.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


#: ``data.data_dir: sample`` names the bundled sample data (what the tiny configs and the demo train on).
SAMPLE = "sample"


def _local_or_hub(data_cfg: SftData | GrpoData) -> Path | None:
    """The local data folder (``data.data_dir``, else ``$MEDBENCH_DATA_DIR``), or ``None`` for the hub."""
    if data_cfg.data_dir == SAMPLE:
        return SAMPLE_DATA_DIR
    return resolve_data_dir(data_cfg.data_dir)


def _slice(rows: list[Any], split: str, where: str) -> list[Any]:
    """Apply a ``train[a:b]`` slice to local rows, as ``datasets`` does to a hub split."""
    m = re.fullmatch(r"\s*\w+\s*(?:\[\s*(-?\d*)\s*:\s*(-?\d*)\s*\])?\s*", split)
    if not m:
        raise DataError(f"{where}: split {split!r} is not of the form NAME or NAME[a:b] (e.g. train[0:500])")
    a, b = (int(x) if x else None for x in m.groups())
    return rows[a:b]


# ---------------------------------------------------------------------------------------------------------
# SFT
# ---------------------------------------------------------------------------------------------------------

def load_sft_rows(data_cfg: SftData) -> tuple[list[dict[str, Any]], str]:
    """The SFT slice (``data.split``) as rows with Question, Complex_CoT, Response, and where they came from.

    The local file is the one the ``medbench_medical_cot`` evaluation task reads (its held-out slice is the
    end of the same split, disjoint from ``train[0:500]``), checked against the same schema.
    """
    from medbench.tasks.loaders import medical_o1

    schema = medical_o1.SCHEMA
    root = _local_or_hub(data_cfg)
    if root is not None:
        path = find_one(root / "medical_o1", "medical_o1_sft", (".json", ".jsonl", ".parquet"), schema.dataset,
                        medical_o1.LOCAL_LAYOUT)
        where = str(path)
        records = _slice(read_records(path, schema.dataset), data_cfg.split, where)
    else:
        ds = load_hub(schema.dataset, data_cfg.dataset, data_cfg.config, data_cfg.split)
        where = f"hub {data_cfg.dataset} {data_cfg.config} {data_cfg.split}"
        schema.check_columns(ds.column_names, where=where)
        records = list(enumerate(ds))
    rows = [dict(schema.check_row(rec, where=where, row=row)) for row, rec in records]
    if not rows:
        raise DataError(f"{schema.dataset}: split {data_cfg.split!r} of {where} is empty")
    return rows, where


def prepare_sft(data_cfg: SftData, eos_token: str,
                rows: tuple[list[dict[str, Any]], str] | None = None) -> PreparedData:
    """The recipe's SFT text: the ``<think>`` training template filled in, the tokenizer's EOS appended.

    ``rows`` is what :func:`load_sft_rows` returned, when the caller read (and so checked) them already.
    """
    from datasets import Dataset

    if not eos_token:
        raise DataError("the tokenizer has no EOS token; the SFT recipe appends it to every example")
    rows, where = rows if rows is not None else load_sft_rows(data_cfg)
    texts = [prompts.sft_training_text(r["Question"], r["Complex_CoT"], r["Response"], eos_token) for r in rows]
    source = {"dataset": data_cfg.dataset, "config": data_cfg.config, "split": data_cfg.split,
              "from": where, "n_rows": len(rows)}
    return PreparedData(dataset=Dataset.from_dict({"text": texts}), sources=[source])


# ---------------------------------------------------------------------------------------------------------
# GRPO sources: each returns rows {question, user, answer, answer_type, source} and a provenance entry
# ---------------------------------------------------------------------------------------------------------

Row = dict[str, str]


def _gsm8k(data_cfg: GrpoData) -> tuple[list[Row], dict[str, Any]]:
    """GSM8K main, train split: the evaluation loader's row checks, on the other split."""
    from medbench.tasks.loaders import gsm8k

    root = _local_or_hub(data_cfg)
    if root is not None:
        path = require_file(root / "gsm8k" / "train.jsonl", "GSM8K (train)", "gsm8k/train.jsonl")
        where = str(path)
        docs = gsm8k.docs_from_rows(read_records(path, "GSM8K (train)"), where)
    else:
        ds = load_hub("GSM8K (train)", gsm8k.HUB_PATH, gsm8k.HUB_CONFIG, "train")
        where = f"hub {gsm8k.HUB_PATH} train"
        gsm8k.SCHEMA.check_columns(ds.column_names, where=where)
        docs = gsm8k.docs_from_rows(enumerate(ds), where)
    rows = [{"question": d["question"], "user": prompts.gsm8k_user_prompt(d["question"]), "answer": d["target"],
             "answer_type": "number", "source": "gsm8k", "reasoning": gsm8k_reasoning(d["answer"])} for d in docs]
    return rows, {"dataset": gsm8k.HUB_PATH, "config": gsm8k.HUB_CONFIG, "split": "train", "from": where}


PQAA = "PubMedQA pqa_artificial"
PQAA_LOCAL_LAYOUT = "pubmedqa/ori_pqaa.json (the original PQA-A file, keyed by PubMed id)"


def _pqaa_records(data_cfg: GrpoData) -> tuple[list[tuple[str, str, list[str], str, str]], str]:
    """(pubid, question, contexts, final_decision, long_answer) from the original ``ori_pqaa.json`` or the hub."""
    from medbench.tasks.loaders import pubmedqa

    root = _local_or_hub(data_cfg)
    out = []
    if root is not None:
        path = require_file(root / "pubmedqa" / "ori_pqaa.json", PQAA, PQAA_LOCAL_LAYOUT)
        raw = read_json(path, PQAA)
        if not isinstance(raw, dict):
            raise DataError(f"{PQAA}: {path} must be a JSON object keyed by PubMed id, got {type(raw).__name__}")
        for pubid, rec in raw.items():
            rec = pubmedqa.LOCAL_SCHEMA.check_row(rec, where=str(path), row=repr(pubid))
            out.append((str(pubid), rec["QUESTION"], rec["CONTEXTS"], rec["final_decision"],
                        rec.get("LONG_ANSWER") or ""))
        return out, str(path)
    ds = load_hub(PQAA, pubmedqa.HUB_PATH, "pqa_artificial", "train")
    where = f"hub {pubmedqa.HUB_PATH} pqa_artificial"
    pubmedqa.HUB_SCHEMA.check_columns(ds.column_names, where=where)
    for i, rec in enumerate(ds):
        rec = pubmedqa.HUB_SCHEMA.check_row(rec, where=where, row=i)
        ctx = pubmedqa.HUB_CONTEXT_SCHEMA.check_row(rec["context"], where=where, row=i)
        out.append((str(rec["pubid"]), rec["question"], ctx["contexts"], rec["final_decision"],
                    rec.get("long_answer") or ""))
    return out, where


def _pubmedqa_artificial(data_cfg: GrpoData) -> tuple[list[Row], dict[str, Any]]:
    """PQA-A rows whose joined contexts are shorter than ``max_context_chars``; never a PQA-L test id."""
    from medbench.tasks.loaders.pubmedqa import LABELS, official_test_ids

    records, where = _pqaa_records(data_cfg)
    test_ids = set(official_test_ids())
    limit = data_cfg.max_context_chars
    rows: list[Row] = []
    for pubid, question, contexts, decision, long_answer in records:
        if pubid in test_ids:
            raise DataError(f"{PQAA}: {where}, row {pubid!r}: a PQA-L test id in the training data; "
                            "pqa_artificial never contains one, so this file is not PQA-A")
        if decision not in LABELS:
            raise DataError(f"{PQAA}: {where}, row {pubid!r}: final_decision {decision!r} is not yes/no/maybe")
        if len("\n".join(contexts)) >= limit:
            continue
        rows.append({"question": question, "user": prompts.pubmedqa_user_prompt(contexts, question),
                     "answer": decision, "answer_type": "yesno", "source": "pubmedqa_artificial",
                     "reasoning": long_answer.strip()})
    entry = {"dataset": "qiaojin/PubMedQA", "config": "pqa_artificial", "split": "train", "from": where,
             "filter": f"joined contexts < {limit} characters", "removed_by_filter": len(records) - len(rows)}
    return rows, entry


def _health_benchmarks(data_cfg: GrpoData) -> tuple[list[Row], dict[str, Any]]:
    """Health_Benchmarks, the recipe's 52 specialties, the train side of medbench's fixed hash split."""
    from medbench.tasks.loaders.health import HEALTH_SPECIALTIES, check_specialty, load_health

    chosen = data_cfg.health_specialties
    if chosen == "all":
        specialties = list(HEALTH_SPECIALTIES)
    elif isinstance(chosen, list):
        specialties = [check_specialty(s) for s in chosen]
    else:
        raise DataError(f"data.health_specialties must be 'all' or a list of specialties, got {chosen!r}")
    rows: list[Row] = []
    n_eval = 0
    root = _local_or_hub(data_cfg)
    for spec in specialties:
        for doc in load_health(spec, str(root) if root else None)["test"]:
            if health_split(doc["Questions"]) == "eval":
                n_eval += 1
                continue
            rows.append({"question": doc["Questions"], "user": prompts.choice_user_prompt(doc["Questions"]),
                         "answer": doc["target"], "answer_type": "choice", "source": "health_benchmarks",
                         "reasoning": ""})  # Health_Benchmarks ships no explanation
    entry = {"dataset": "yesilhealth/Health_Benchmarks", "configs": specialties if chosen != "all" else "all 52",
             "split": "train side of medbench's hash split (medbench.tasks.splits.health_split)",
             "from": str(root / "health_benchmarks") if root else "hub", "removed_by_filter": n_eval}
    return rows, entry


#: GRPO data sources by config name.
_CALCULATOR = re.compile(r"<<[^<>]*>>")


def gsm8k_reasoning(solution: str) -> str:
    """GSM8K's worked solution as reasoning text: without its final ``#### <number>`` line and without the
    calculator annotations (``<<48/2=24>>``) that GSM8K's solutions carry for a tool, not for a reader."""
    lines = [line for line in solution.strip().splitlines() if not line.lstrip().startswith("####")]
    return _CALCULATOR.sub("", "\n".join(lines)).strip()


GRPO_SOURCES: dict[str, Callable[[dict[str, Any]], tuple[list[Row], dict[str, Any]]]] = {
    "gsm8k": _gsm8k,
    "pubmedqa_artificial": _pubmedqa_artificial,
    "health_benchmarks": _health_benchmarks,
}


def grpo_rows(data_cfg: GrpoData) -> tuple[list[Row], list[dict[str, Any]]]:
    """All configured sources' rows, concatenated in source order (before shuffling and prompt filtering)."""
    rows: list[Row] = []
    sources: list[dict[str, Any]] = []
    for name in data_cfg.sources:
        part, entry = GRPO_SOURCES[name](data_cfg)
        if data_cfg.limit_per_source:
            part = part[: data_cfg.limit_per_source]
            entry["limit"] = data_cfg.limit_per_source
        entry["n_rows"] = len(part)
        rows += part
        sources.append(entry)
    return rows, sources


def prepare_grpo(data_cfg: GrpoData, tokenizer,
                 rows: tuple[list[Row], list[dict[str, Any]]] | None = None) -> PreparedData:
    """Concatenate, shuffle (fixed seed), add the system prompt, drop prompts over ``max_prompt_tokens``.

    TRL 1.15's GRPOConfig has no ``max_prompt_length``, so the recipe's prompt limit is applied here: a prompt
    that would have been truncated is removed instead (truncating would cut off the question).
    ``rows`` is what :func:`grpo_rows` returned, when the caller read (and so checked) them already.
    """
    from datasets import Dataset

    rows, sources = rows if rows is not None else grpo_rows(data_cfg)
    if not rows:
        raise DataError(f"no GRPO training rows from sources {data_cfg.sources}: check data.data_dir / the hub")
    limit = data_cfg.max_prompt_tokens
    ds = Dataset.from_list(rows).shuffle(seed=data_cfg.shuffle_seed)

    def to_prompt(batch: dict[str, list[Any]]) -> dict[str, Any]:
        messages = [[{"role": "system", "content": prompts.SYSTEM_PROMPT}, {"role": "user", "content": u}]
                    for u in batch["user"]]
        ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return {"prompt": messages, "prompt_tokens": [len(x) for x in ids]}

    ds = ds.map(to_prompt, batched=True, remove_columns=["user"])
    before = len(ds)
    ds = ds.filter(lambda n: [x <= limit for x in n], input_columns=["prompt_tokens"], batched=True)
    notes = []
    if len(ds) < before:
        notes.append(f"dropped {before - len(ds)} of {before} prompts longer than {limit} tokens "
                     "(TRL 1.15 has no max_prompt_length)")
    if len(ds) == 0:
        raise DataError(f"every GRPO prompt is longer than data.max_prompt_tokens={limit}")
    ds = ds.select_columns(["prompt", "answer", "answer_type", "source", "question"])
    return PreparedData(dataset=ds, sources=sources, notes=notes)


def warmup_completion(reasoning: str, answer: str) -> str:
    """The recipe's layout, exactly as its system prompt shows it (what ``format_strict`` accepts)."""
    return f"<reasoning>\n{reasoning.strip()}\n</reasoning>\n<answer>\n{answer.strip()}\n</answer>"


def prepare_format_warmup(data_cfg: GrpoData, warmup_cfg: WarmupSection, tokenizer,
                          rows: tuple[list[Row], list[dict[str, Any]]] | None = None) -> PreparedData:
    """The GRPO format warm-up's rows: conversational prompt (system prompt + user turn, as GRPO sees it) and
    completion (the row's own reasoning text and answer in the recipe's layout), for TRL's ``SFTTrainer``
    (which trains on the completion only).

    Only GRPO training rows are used — from ``warmup.sources``, in the GRPO shuffle order, with reasoning text,
    at most ``warmup.rows`` of them, prompt within ``data.max_prompt_tokens`` — so the warm-up never sees an
    evaluation document either.
    """
    from datasets import Dataset

    rows, sources = rows if rows is not None else grpo_rows(data_cfg)
    wanted = set(warmup_cfg.sources)
    missing = sorted(wanted - set(data_cfg.sources))
    if missing:
        raise DataError(f"warmup.sources {missing} are not GRPO data sources of this config "
                        f"(data.sources: {data_cfg.sources}); the warm-up only uses GRPO training rows")
    ds = Dataset.from_list(rows).shuffle(seed=data_cfg.shuffle_seed)
    picked: list[dict[str, Any]] = []
    skipped_long = 0
    for row in ds:
        if row["source"] not in wanted or not row["reasoning"]:
            continue
        prompt = [{"role": "system", "content": prompts.SYSTEM_PROMPT}, {"role": "user", "content": row["user"]}]
        ids = tokenizer.apply_chat_template(prompt, tokenize=True, add_generation_prompt=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        if len(ids) > data_cfg.max_prompt_tokens:
            skipped_long += 1
            continue
        picked.append({"prompt": prompt,
                       "completion": [{"role": "assistant",
                                       "content": warmup_completion(row["reasoning"], row["answer"])}],
                       "source": row["source"]})
        if warmup_cfg.rows and len(picked) >= warmup_cfg.rows:
            break
    if not picked:
        raise DataError(f"no GRPO training rows with reasoning text in warmup.sources {sorted(wanted)}: "
                        "check data.data_dir / the hub")
    counts = {name: sum(r["source"] == name for r in picked) for name in sorted(wanted)}
    entry = {"what": "GRPO training rows written in the <reasoning>/<answer> layout (format warm-up)",
             "from": [e.get("from") for name, e in zip(data_cfg.sources, sources) if name in wanted],
             "n_rows": len(picked),
             "rows_per_source": counts, "reasoning": {"gsm8k": "the worked solution, calculator annotations "
                                                               "and the #### line removed",
                                                      "pubmedqa_artificial": "LONG_ANSWER"}}
    notes = [f"format warm-up: {len(picked)} GRPO rows written in the <reasoning>/<answer> layout ({counts})"]
    if skipped_long:
        notes.append(f"format warm-up: skipped {skipped_long} prompts over {data_cfg.max_prompt_tokens} tokens")
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in picked])
    return PreparedData(dataset=dataset, sources=[entry], notes=notes)
