"""medbench-fast against lm-eval's stock ``hf`` model, on CPU: same greedy completions (stop strings, EOS,
per-request max_gen_toks, refilled slots, LoRA adapters) and the same loglikelihoods.

The tiny model's weights are redrawn with a larger spread so that greedy continuations depend on the context
(the fixture's N(0, 0.02) weights loop on one token, which would hide a broken KV cache).
"""

from __future__ import annotations

import pytest
import torch

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from medbench.harness.backends.fast import MedbenchFastLM
from medbench.harness.backends.slot_decoder import unsupported_reason

PROMPTS = [
    "Question: is aspirin a non-steroidal anti-inflammatory drug?\nAnswer:",
    "The patient is a 61-year-old woman with involuntary urine loss when coughing",
    "Hello",
    "PubMedQA: does regular exercise reduce blood pressure in adults with hypertension? Think step by step.",
    "Context: randomised trial, 120 participants.\nQuestion: was the effect significant?",
]


@pytest.fixture(scope="module")
def stock(sharp_model_dir):
    return HFLM(pretrained=str(sharp_model_dir), device="cpu", dtype="float32", batch_size=4)


@pytest.fixture(scope="module")
def fast(sharp_model_dir):
    # 3 slots for 5 prompts: finished requests must hand their slot (and cache rows) to waiting ones.
    return MedbenchFastLM(pretrained=str(sharp_model_dir), device="cpu", dtype="float32", max_slots=3,
                          batch_size=4)  # batch_size: the stock path for sampled requests batches the same


def _gen(prompts, **gen_kwargs):
    kwargs = {"until": [], "max_gen_toks": 24, "do_sample": False} | gen_kwargs
    return [Instance("generate_until", {}, (p, dict(kwargs)), i) for i, p in enumerate(prompts)]


def test_registered_as_lm_eval_model():
    from lm_eval.api.registry import get_model

    assert get_model("medbench-fast") is MedbenchFastLM


def test_greedy_completions_equal_stock_with_per_request_max_gen_toks(stock, fast):
    requests = [
        Instance("generate_until", {}, (p, {"until": [], "max_gen_toks": 9 + 6 * i, "do_sample": False}), i)
        for i, p in enumerate(PROMPTS)
    ]
    expected = stock.generate_until(requests, disable_tqdm=True)
    got = fast.generate_until(requests, disable_tqdm=True)
    assert got == expected
    assert len(set(got)) == len(got)  # the continuations really depend on the prompts
    stats = fast.last_generation_stats
    assert stats["slots"] == 3 and stats["requests"] == len(PROMPTS)
    assert stats["generated_tokens"] == sum(9 + 6 * i for i in range(len(PROMPTS)))


def test_stop_sequences_cut_the_text_and_end_generation_early(stock, fast):
    free = stock.generate_until(_gen(PROMPTS[:2], max_gen_toks=40), disable_tqdm=True)
    stop = free[0][len(free[0]) // 3 :][:3]  # a string the model does produce, about a third of the way in
    assert stop.strip(), free[0]
    requests = _gen(PROMPTS[:2], max_gen_toks=40, until=[stop])
    expected = stock.generate_until(requests, disable_tqdm=True)
    got = fast.generate_until(requests, disable_tqdm=True)
    assert got == expected
    assert stop not in got[0] and len(got[0]) < len(free[0])
    # generation stopped soon after the stop string (within one stop-check period), not at max_gen_toks
    assert fast.last_generation_stats["generated_tokens"] < 40 + 40


def test_eos_token_ends_a_request_like_generate(stock, fast):
    ids = stock.tokenizer(stock.generate_until(_gen(PROMPTS[:1]), disable_tqdm=True)[0])["input_ids"]
    eos = ids[5]  # pretend the 6th generated token is the end-of-sequence token
    saved = stock.model.generation_config.eos_token_id, fast.model.generation_config.eos_token_id
    try:
        stock.model.generation_config.eos_token_id = eos
        fast.model.generation_config.eos_token_id = eos
        requests = _gen(PROMPTS)
        assert fast.generate_until(requests, disable_tqdm=True) == stock.generate_until(requests, disable_tqdm=True)
        assert fast.last_generation_stats["generated_tokens"] < 24 * len(PROMPTS)
    finally:
        stock.model.generation_config.eos_token_id, fast.model.generation_config.eos_token_id = saved


def test_sampling_requests_go_through_the_stock_path(stock, fast):
    requests = _gen(PROMPTS[:2], do_sample=True, temperature=1.0, max_gen_toks=8)
    torch.manual_seed(0)
    expected = stock.generate_until(requests, disable_tqdm=True)
    torch.manual_seed(0)
    assert fast.generate_until(requests, disable_tqdm=True) == expected


def _ll_requests():
    requests = []
    for j, p in enumerate(PROMPTS[:3]):
        for cont in (" yes", " no", " maybe", " the trial was not significant at all"):
            requests.append(Instance("loglikelihood", {}, (p, cont), len(requests)))
    requests.append(Instance("loglikelihood", {}, ("", "Hello there"), len(requests)))  # empty context
    # a trailing space moves to the continuation (lm-eval's _encode_pair), through medbench-fast's encode memo
    requests.append(Instance("loglikelihood", {}, (PROMPTS[3] + " Answer: ", "yes"), len(requests)))
    return requests


@pytest.mark.parametrize("short_window", [False, True])
def test_loglikelihoods_equal_stock(sharp_model_dir, stock, short_window):
    max_length = None
    if short_window:  # a window just above the longest continuation: contexts are left-truncated, as stock does it
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(sharp_model_dir)
        longest = max(len(tok(r.args[1], add_special_tokens=False).input_ids) for r in _ll_requests())
        max_length = longest + 4
        total = [len(tok(r.args[0] + r.args[1]).input_ids) for r in _ll_requests()]
        assert sum(n > max_length for n in total) >= 4, "the short window must truncate some contexts"
    ref = stock if max_length is None else HFLM(
        pretrained=str(sharp_model_dir), device="cpu", dtype="float32", batch_size=4, max_length=max_length
    )
    lm = MedbenchFastLM(pretrained=str(sharp_model_dir), device="cpu", dtype="float32", max_length=max_length)
    requests = _ll_requests()
    expected = ref.loglikelihood(requests, disable_tqdm=True)
    got = lm.loglikelihood(requests, disable_tqdm=True)
    assert [g for _, g in got] == [g for _, g in expected]
    assert [lp for lp, _ in got] == pytest.approx([lp for lp, _ in expected], rel=1e-5, abs=1e-4)
    assert len({round(lp, 3) for lp, _ in got}) > len(PROMPTS)  # the scores differ between choices


def test_lora_adapter_unmerged_and_merged(sharp_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(sharp_model_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"],
                        init_lora_weights=False)  # random A and B: the adapter changes the outputs
    torch.manual_seed(3)
    get_peft_model(base, config).save_pretrained(tmp_path / "adapter")
    kwargs = {"pretrained": str(sharp_model_dir), "device": "cpu", "dtype": "float32",
              "peft": str(tmp_path / "adapter")}
    requests = _gen(PROMPTS[:3])
    expected = HFLM(batch_size=4, **kwargs).generate_until(requests, disable_tqdm=True)
    without = MedbenchFastLM(pretrained=str(sharp_model_dir), device="cpu", dtype="float32")
    assert without.generate_until(requests, disable_tqdm=True) != expected  # the adapter matters
    assert MedbenchFastLM(**kwargs).generate_until(requests, disable_tqdm=True) == expected
    # merged: float32 here, so merging changes nothing visible (in bf16 it rounds the weights once)
    assert MedbenchFastLM(merge_lora=True, **kwargs).generate_until(requests, disable_tqdm=True) == expected


@pytest.mark.slow  # torch.compile of the decoder layers on CPU: ~40 s
def test_compiled_layers_give_the_same_completions(sharp_model_dir, stock):
    requests = _gen(PROMPTS[:3], max_gen_toks=12)
    lm = MedbenchFastLM(pretrained=str(sharp_model_dir), device="cpu", dtype="float32", compile_layers=True)
    assert lm.generate_until(requests, disable_tqdm=True) == stock.generate_until(requests, disable_tqdm=True)


def test_merge_lora_without_adapter_is_a_clear_error(sharp_model_dir):
    with pytest.raises(ValueError, match="peft= adapter"):
        MedbenchFastLM(pretrained=str(sharp_model_dir), device="cpu", dtype="float32", merge_lora=True)


def test_sliding_window_models_are_refused_with_the_reason():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, use_sliding_window=True,
                         sliding_window=16, max_window_layers=0)
    reason = unsupported_reason(Qwen2ForCausalLM(config))
    assert reason is not None and "sliding" in reason
