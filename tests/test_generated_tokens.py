"""Generated-token counts come from the generated ids, not from re-tokenising the text.

A completion's text re-tokenised can take more tokens than were generated (on the tiny model's random
weights: 379 for a 256-token generation), so "hit the token limit" read from a re-count says 262 tokens for a
256-token limit. The backends count the ids (``count_generated``); the count travels through the cache-hook
side channel to the run directory and into samples.parquet. Runs on CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.api.instance import Instance
from medbench.harness.backends.lm_backends import _hf_class, count_generated
from medbench.harness.run.records import GeneratedTokens
from medbench.harness.run.rundir import RunWriter
from medbench.harness.run.sample_rows import TokenizerCounter, request_key

EOS = 0


def _decode(ids: list[int]) -> str:
    """A toy tokenizer: id i decodes to chr(96 + i) ('a' = 1 …), EOS to '<eos>'."""
    return "".join("<eos>" if i == EOS else chr(96 + i) for i in ids)


def _count(ids, stops=(), limit=8):
    return count_generated(ids, max_new_tokens=limit, eos_ids=[EOS], stops=list(stops), decode=_decode)


def test_counts_stop_at_eos_and_do_not_count_it():
    assert _count([1, 2, 3, EOS, EOS, EOS]) == GeneratedTokens(3, False)  # padded after EOS, as a batch row is
    assert _count([1, 2, 3, 4, 5, 6, 7, EOS]) == GeneratedTokens(7, False)  # EOS as the last allowed id


def test_counts_run_through_the_token_that_completed_a_stop_string():
    # "ab|cd|ef…": the stop "cd" is complete at id 4; the backend decoded on past it
    assert _count([1, 2, 3, 4, 5, 6, 7, 8], stops=["cd"]) == GeneratedTokens(4, False)
    assert _count([1, 2, 3, 4, 5, 6, 7, 8], stops=["", "h"]) == GeneratedTokens(8, False)  # at the limit, stopped
    long = list(range(1, 27)) * 4  # 104 ids, stop "xyz" first complete at id 26
    assert count_generated(long, max_new_tokens=104, eos_ids=[EOS], stops=["xyz"], decode=_decode) == \
        GeneratedTokens(26, False)


def test_hit_limit_only_when_neither_eos_nor_a_stop_string_ended_it():
    assert _count([1, 2, 3, 4, 5, 6, 7, 8], stops=["zz"]) == GeneratedTokens(8, True)
    assert _count([1, 2, 3]) == GeneratedTokens(3, False)  # ended early without EOS (a stop the ids don't show)
    assert _count([]) == GeneratedTokens(0, False)


PROMPTS = ["Question: is aspirin an NSAID?\nAnswer:", "The patient is 61", "Hello", "PubMedQA: does exercise help?",
           "Context: randomised trial, 120 participants."]


def _generate(backend: str, model_dir: Path, until: list[str], tmp_path: Path):
    lm = _hf_class(backend)(pretrained=str(model_dir), device="cpu", dtype="float32", batch_size=2)
    lm.on_generated = RunWriter(tmp_path / backend).generation_recorder("ck")
    reqs = [Instance("generate_until", {}, (p, {"until": until, "max_gen_toks": 256, "do_sample": False}), i)
            for i, p in enumerate(PROMPTS)]
    return lm, reqs, lm.generate_until(reqs)


def test_a_256_token_limit_never_shows_more_than_256_tokens(sharp_model_dir, tmp_path):
    lm, reqs, texts = _generate("medbench-fast", sharp_model_dir, ["</answer>"], tmp_path)
    counts = [lm.generated_tokens[request_key(r.args)] for r in reqs]
    assert all(c.n_tokens <= 256 for c in counts)
    assert any(c.hit_limit and c.n_tokens == 256 for c in counts)
    assert any(not c.hit_limit for c in counts)  # one generation ended on EOS
    # what a re-count of the text says (the old rule): more than were generated
    recount = TokenizerCounter(lm.tokenizer)
    assert max(recount(t) for t in texts) > 256
    # the side channel reached the run directory, by request key
    assert RunWriter(tmp_path / "medbench-fast").read_generated("ck") == dict(zip(map(request_key, (r.args for r in reqs)),
                                                                             counts))


def test_stock_hf_counts_the_same_generations_alike(sharp_model_dir, tmp_path):
    fast, reqs, fast_texts = _generate("medbench-fast", sharp_model_dir, ["e", "</answer>"], tmp_path)
    stock, _, stock_texts = _generate("hf", sharp_model_dir, ["e", "</answer>"], tmp_path)
    assert fast_texts == stock_texts
    keys = [request_key(r.args) for r in reqs]
    assert [fast.generated_tokens[k] for k in keys] == [stock.generated_tokens[k] for k in keys]
    # a batch keeps decoding past a row's stop string: the count stops where that row's generation stopped
    assert any(not c.hit_limit and c.n_tokens < 256 for c in (stock.generated_tokens[k] for k in keys))


@pytest.mark.parametrize("backend", ["hf", "medbench-fast"])
def test_backends_record_where_each_generated_token_lies(backend, sharp_model_dir, tmp_path):
    """``token_chars``: one entry per counted id, and the ids' pieces cover the completion lm-eval returned (a
    prefix of their decoded text: a stop string cuts it), so the regions are counted in the emitted tokens."""
    import numpy as np
    from medbench.harness.run.sample_rows import region_token_counts

    lm, reqs, texts = _generate(backend, sharp_model_dir, ["e", "</answer>"], tmp_path)
    for r, text in zip(reqs, texts):
        counted = lm.generated_tokens[request_key(r.args)]
        assert counted.token_chars is not None
        lengths = np.frombuffer(counted.token_chars, dtype="<u2")
        assert len(lengths) == counted.n_tokens and int(lengths.sum()) >= len(text)
        assert region_token_counts(counted.token_chars, [[(0, len(text))]], text_length=len(text)) is not None
    assert RunWriter(tmp_path / backend).read_generated("ck") == lm.generated_tokens


@pytest.mark.slow
def test_bench_rows_carry_the_generated_counts(tiny_model_dir, tmp_path):
    """Through ``medbench bench``: the runner records the backend's counts in the run directory and the rows
    read them (a 256-token limit: never more than 256 tokens, truncated exactly when the limit was hit)."""
    from medbench.harness.cli import main
    from medbench.harness.run.rundir import load_run
    from test_bench import bench_args

    out = tmp_path / "run"
    args = bench_args(out, f"base={tiny_model_dir}", tasks="medbench_pubmedqa",
                      extra=("--backend", "medbench-fast", "--max-new-tokens", "256", "--no-report"))
    assert main(args) == 0
    samples = load_run(out).samples()
    assert len(samples) == 2 and set(samples["completion_tokens_source"]) == {"generated"}
    assert samples["completion_tokens"].max() <= 256
    assert (samples["truncated"] == (samples["completion_tokens"] == 256)).all()
    assert list((out / "cache").glob("base_rank0.generated.jsonl"))
