"""vLLM in a bench (issue 15): one engine for a base and its adapters, each checkpoint answered through its own
adapter; and when ``--backend auto`` picks vLLM on a GPU. vLLM needs a CUDA machine, so the engine here is a stand-in
that answers through transformers + PEFT with whatever adapter its ``lora_request`` names at call time: a run that
forgot to switch adapters gives the base's answers to the adapter checkpoints and fails the comparison below."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path

import pytest
from medbench.harness.backends import vllm_engine
from medbench.harness.backends.vllm_engine import SharedVLLM, choose_auto, engine_keys, planned_tokens
from medbench.harness.run.checkpoints import ResolvedCheckpoint
from medbench.harness.run.rundir import load_run

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "tasks" / "sample_data"
FakeLoRA = namedtuple("FakeLoRA", "lora_name lora_int_id lora_path")


def _ck(name: str, adapter: str | None = None, rank: int | None = None, model: str = "base/m") -> ResolvedCheckpoint:
    return ResolvedCheckpoint(name=name, kind="adapter" if adapter else "local", model=model, adapter=adapter,
                              tokenizer=model, adapter_rank=rank)


# -- the auto choice -----------------------------------------------------------------------------------------
def test_auto_keeps_medbench_fast_for_a_small_run_and_takes_vllm_for_a_large_one():
    cks = [_ck("base"), _ck("sft", "a1"), _ck("grpo", "a2")]
    small = planned_tokens([(128, 256)])  # one task, --limit 128: the H200 bench where medbench-fast won
    large = planned_tokens([(500, 1024), (1319, 786), (1500, 1024)])  # the recipes' full tasks
    assert choose_auto(cks, small, engines=1).backend == "medbench-fast"
    chosen = choose_auto(cks, large, engines=1)
    assert chosen.backend == "vllm"
    assert chosen.estimate_s["vllm"] < chosen.estimate_s["medbench-fast"]
    assert chosen.planned_tokens == 3 * large and f"{3 * large:,}" in chosen.reason


def test_more_engine_starts_need_a_larger_run_to_pay_off():
    cks = [_ck("base"), _ck("sft", "a1"), _ck("grpo", "a2")]
    tokens = next(t for t in range(10_000, 5_000_000, 10_000)
                  if choose_auto(cks, t, engines=1).backend == "vllm")
    assert choose_auto(cks, tokens, engines=3).backend == "medbench-fast"


def test_planned_tokens_counts_documents_times_the_token_limit():
    assert planned_tokens([(10, 256), (3, 100)]) == 2860
    assert planned_tokens([]) == 0


# -- which checkpoints share an engine -------------------------------------------------------------------------
def test_adapters_with_the_base_tokenizer_share_its_engine_and_another_template_does_not(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    same, other = tmp_path / "same", tmp_path / "other"
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.save_pretrained(same)
    cfg = json.loads((same / "tokenizer_config.json").read_text())
    cfg["saved_by"] = "a trainer that adds its own bookkeeping"  # changes the file, not the tokenizer
    (same / "tokenizer_config.json").write_text(json.dumps(cfg))
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(other)
    base = str(tiny_model_dir)
    cks = [ResolvedCheckpoint("base", "local", base, tokenizer=base),
           ResolvedCheckpoint("sft", "adapter", base, adapter="x", tokenizer=str(same)),
           ResolvedCheckpoint("odd", "adapter", base, adapter="y", tokenizer=str(other)),
           ResolvedCheckpoint("elsewhere", "local", str(tmp_path / "m2"), tokenizer=base)]
    keys = engine_keys(cks)
    assert keys["base"] == keys["sft"]
    assert keys["odd"] != keys["base"]  # another chat template: another engine
    assert keys["elsewhere"] != keys["base"]  # another base model


# -- the shared engine -----------------------------------------------------------------------------------------
class _Engine:
    def __init__(self, ck, adapter_rank):
        self.built_for, self.adapter_rank = ck.name, adapter_rank
        self.lora_request = "set by lm-eval"


def test_one_engine_serves_base_and_adapters_each_with_its_own_lora_request(monkeypatch):
    monkeypatch.setattr(vllm_engine, "lora_request", FakeLoRA)
    built = []

    def build(ck, adapter_rank):
        built.append((ck.name, adapter_rank))
        return _Engine(ck, adapter_rank)

    cks = [_ck("base"), _ck("sft", "/a/sft", rank=8), _ck("grpo", "/a/grpo", rank=64)]
    pool = SharedVLLM(cks, build, lambda ck: ck.adapter, {c.name: ("k",) for c in cks})
    lm, started = pool.lm_for(cks[0])
    assert started and lm.lora_request is None
    assert built == [("sft", 64)]  # built with LoRA on, at the group's largest rank, though the base runs first
    pool.done(cks[0])
    lm2, started = pool.lm_for(cks[1])
    assert lm2 is lm and not started and lm.lora_request == FakeLoRA("sft", 1, "/a/sft")
    pool.done(cks[1])
    pool.lm_for(cks[2])
    assert lm.lora_request == FakeLoRA("grpo", 2, "/a/grpo")
    assert pool.engines
    pool.done(cks[2])
    assert not pool.engines  # released after the group's last checkpoint
    assert len(built) == 1


def test_an_engine_that_failed_to_start_is_not_started_again_for_the_rest_of_its_group():
    calls = []

    def build(ck, adapter_rank):
        calls.append(ck.name)
        raise RuntimeError("CUDA out of memory")

    cks = [_ck("base"), _ck("sft", "/a")]
    pool = SharedVLLM(cks, build, lambda ck: ck.adapter, {c.name: ("k",) for c in cks})
    with pytest.raises(RuntimeError, match="out of memory"):
        pool.lm_for(cks[0])
    with pytest.raises(RuntimeError, match="failed to start for an earlier checkpoint: RuntimeError: CUDA out"):
        pool.lm_for(cks[1])
    assert calls == ["sft"]


# -- a whole bench on the shared engine ------------------------------------------------------------------------
class _AdapterRoutingEngine:
    """Stands in for lm-eval's VLLM model: answers through HFLM on the base, with PEFT's adapter named by
    ``lora_request`` at the time of each call (as vLLM applies a LoRARequest per generate call)."""

    builds = 0

    def __init__(self, ck, adapter_rank):
        type(self).builds += 1
        self.base = ck.model
        self.lora_request = None
        self._lms = {}
        self.calls = []

    def _current(self):
        from lm_eval.models.huggingface import HFLM

        path = self.lora_request.lora_path if self.lora_request else None
        if path not in self._lms:
            self._lms[path] = HFLM(pretrained=self.base, peft=path, batch_size=1, device="cpu")
        return self._lms[path]

    def generate_until(self, requests, disable_tqdm=False):
        self.calls.append(("generate_until", self.lora_request))
        return self._current().generate_until(requests, disable_tqdm=True)

    def loglikelihood(self, requests, disable_tqdm=False):
        self.calls.append(("loglikelihood", self.lora_request))
        return self._current().loglikelihood(requests, disable_tqdm=True)

    def __getattr__(self, name):  # tokenizer, chat template, rank, ...: the base's
        if name.startswith("_") or name in ("base", "lora_request", "calls"):
            raise AttributeError(name)
        return getattr(self._current(), name)


@pytest.mark.slow
def test_a_vllm_bench_starts_one_engine_and_matches_hf_per_checkpoint(tiny_model_dir, tiny_lora_adapter_dir,
                                                                      tmp_path, monkeypatch, capsys):
    from bench_helpers import build_lora_adapter
    from medbench.harness.backends import lm_backends
    from medbench.harness.cli import main

    second = build_lora_adapter(tiny_model_dir, tmp_path / "lora2", seed=7)
    monkeypatch.setattr(vllm_engine, "lora_request", FakeLoRA)
    monkeypatch.setattr(lm_backends, "vllm_installed", lambda: True)
    monkeypatch.setattr(lm_backends, "build_vllm", lambda ck, spec, adapter_rank=None: _AdapterRoutingEngine(
        ck, adapter_rank))
    _AdapterRoutingEngine.builds = 0
    cks = [f"base={tiny_model_dir}", f"sft={tiny_lora_adapter_dir}", f"grpo={second}"]

    def bench(out, backend):
        args = ["bench", "--tasks", "medbench_pubmedqa,medbench_pubmedqa_ll", "--limit", "2", "--max-new-tokens",
                "12", "--batch-size", "1", "--data-dir", str(SAMPLE_DATA), "--output", str(out),
                "--backend", backend]
        for ck in cks:
            args += ["--checkpoint", ck]
        assert main(args) == 0

    bench(tmp_path / "vllm", "vllm")
    assert _AdapterRoutingEngine.builds == 1
    assert "3 checkpoints on 1 engine(s)" in capsys.readouterr().err
    bench(tmp_path / "hf", "hf")
    got, want = load_run(tmp_path / "vllm"), load_run(tmp_path / "hf")
    assert got.meta["backend_used"] == "vllm" and want.meta["backend_used"] == "hf"
    cols = ["checkpoint", "task", "doc_key", "completion", "extracted"]
    a = got.samples()[cols].sort_values(cols[:3]).reset_index(drop=True)
    b = want.samples()[cols].sort_values(cols[:3]).reset_index(drop=True)
    assert a.equals(b)  # every checkpoint answered through its own adapter
    gen = a[a["task"] == "medbench_pubmedqa"].set_index(["doc_key", "checkpoint"])["completion"].unstack()
    assert (gen["sft"] != gen["base"]).any() and (gen["grpo"] != gen["sft"]).any()  # the adapters differ


def test_auto_on_a_gpu_takes_vllm_for_a_large_run_and_records_why(tiny_model_dir, tmp_path, monkeypatch, capsys):
    from medbench.harness.backends import lm_backends
    from medbench.harness.cli import main

    monkeypatch.setattr(lm_backends, "vllm_installed", lambda: True)
    monkeypatch.setattr(lm_backends, "default_device", lambda spec: "cuda")
    monkeypatch.setattr(lm_backends, "build_vllm", lambda ck, spec, adapter_rank=None: _AdapterRoutingEngine(
        ck, adapter_rank))
    monkeypatch.setattr(vllm_engine, "RATES", {**vllm_engine.RATES, "vllm_start_s": 0.0,  # any run pays off
                                               "vllm_cold_start_s": 0.0})
    out = tmp_path / "auto"
    assert main(["bench", "--tasks", "medbench_pubmedqa", "--limit", "2", "--max-new-tokens", "8",
                 "--data-dir", str(SAMPLE_DATA), "--output", str(out), "--checkpoint", f"m={tiny_model_dir}"]) == 0
    assert "backend auto: vllm (vLLM is estimated faster for 16 planned generated tokens" in capsys.readouterr().err
    meta = load_run(out).meta
    assert meta["settings"]["backend"] == "auto"  # what was asked: a resumed run compares this
    assert meta["backend_used"] == "vllm"
    assert meta["backend_auto"]["planned_generated_tokens"] == 16


def test_default_memory_share_is_vllms_unless_less_is_free():
    """A launching process that still holds memory must not make a default vLLM bench fail at engine start
    (seen on the H200: 125.73 GiB free against the 125.82 GiB that 0.9 asks for)."""
    gib = 2**30
    total = int(139.8 * gib)
    assert vllm_engine.default_gpu_memory_utilization(total, total) == 0.9
    share = vllm_engine.default_gpu_memory_utilization(int(125.73 * gib), total)
    assert share == 0.87 and share * total <= 125.73 * gib
    assert vllm_engine.default_gpu_memory_utilization(0, total) == 0.01


def test_build_vllm_caps_the_default_share_to_free_memory_and_keeps_a_given_one(monkeypatch, capsys):
    import torch
    from medbench.harness.backends import lm_backends
    from medbench.harness.run.spec import build_spec

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (50 * 2**30, 100 * 2**30))
    spec = build_spec({"checkpoints": [{"name": "m", "source": "/x"}], "tasks": ["medbench_pubmedqa"]})
    assert lm_backends._gpu_memory_utilization(spec) == 0.48
    assert "the engine takes 0.48" in capsys.readouterr().err
    given = build_spec({"checkpoints": [{"name": "m", "source": "/x"}], "tasks": ["medbench_pubmedqa"],
                        "vllm": {"gpu_memory_utilization": 0.7}})
    assert lm_backends._gpu_memory_utilization(given) == 0.7


def test_a_cold_compile_cache_makes_vllm_pay_for_its_first_start(tmp_path):
    """Measured on the H200: 3 checkpoints x 128 PubMedQA documents took 89 s on medbench-fast and 284 s on a
    vLLM whose first start found no compile cache (228 s of it the start): auto must not pick vLLM there."""
    cks = [_ck("base"), _ck("sft", "a1"), _ck("grpo", "a2")]
    tokens = planned_tokens([(128, 1024)])
    assert choose_auto(cks, tokens, engines=1, warm_cache=False).backend == "medbench-fast"
    large = 3_000_000
    assert choose_auto(cks, large, engines=1, warm_cache=True).backend == "vllm"
    cold = choose_auto(cks, large, engines=1, warm_cache=False)
    warm = choose_auto(cks, large, engines=1, warm_cache=True)
    assert cold.estimate_s["vllm"] - warm.estimate_s["vllm"] == pytest.approx(
        vllm_engine.RATES["vllm_cold_start_s"] - vllm_engine.RATES["vllm_start_s"], abs=0.2)
    assert "no compile cache" in cold.reason

    assert not vllm_engine.vllm_cache_warm(str(tmp_path))
    (tmp_path / "torch_compile_cache").mkdir()
    assert not vllm_engine.vllm_cache_warm(str(tmp_path))
    (tmp_path / "torch_compile_cache" / "abc").mkdir()
    assert vllm_engine.vllm_cache_warm(str(tmp_path))
