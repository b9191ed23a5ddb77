"""Evaluation throughput on a GPU: lm-eval's stock ``hf`` model against ``medbench-fast``, the memory-bandwidth
ceiling, harness overhead, shared-context loglikelihood, and a profile. Writes one JSON to ``--out``.

Models are random-weight bf16 models of the real shapes (weights don't change the cost of a step), built on the
GPU; the tokenizer is the real Qwen2 one; requests are the real PubMedQA PQA-L test prompts as medbench's own
lm-eval tasks build them (``medbench_pubmedqa``: GRPO system prompt + user turn through the chat template;
``medbench_pubmedqa_ll``: yes/no/maybe loglikelihood). Generation length is pinned (``--new-tokens``, EOS ignored)
so it doesn't depend on the weights.

Run on the GPU machine (see issue 7 and /work/shared/gpu/README.md), from the repository root::

    MEDBENCH_DATA_DIR=.gpu-assets python benchmarks/eval_throughput.py \
        --tokenizer .gpu-assets/tokenizers/Qwen2-1.5B-Instruct_via_Qwen2-Boundless \
        --shapes qwen2.5-3b,llama-3.1-8b --new-tokens 512 --out $OUT/eval_throughput.json

``--shapes tiny --device cpu`` runs the same phases in a minute on a CPU (a check of the script, not a number).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]

#: Spec-sheet HBM bandwidth (bytes/s) and dense bf16 tensor rate (FLOP/s), SXM parts; measured values are used
#: for the ceiling, these are recorded beside them.
SPEC = {"H100": (3.35e12, 989e12), "H200": (4.8e12, 989e12)}

SHAPES: dict[str, dict[str, Any]] = {
    # Qwen2.5-3B(-Instruct) config.json
    "qwen2.5-3b": dict(arch="qwen2", hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                       num_attention_heads=16, num_key_value_heads=2, vocab_size=151936,
                       max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True),
    # Llama-3.1-8B config.json, except the vocabulary: the Qwen2 tokenizer's 151,936 rows instead of 128,256
    # (+0.2 B parameters in embeddings and head, recorded in the results).
    "llama-3.1-8b": dict(arch="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, vocab_size=151936,
                         max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
                         tie_word_embeddings=False,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
    "tiny": dict(arch="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096, rope_theta=1e6,
                 rms_norm_eps=1e-6, tie_word_embeddings=True),
}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def build_model(name: str, device: str, dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    shape = dict(SHAPES[name])
    arch = shape.pop("arch")
    config_cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if arch == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    config = config_cls(**shape, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):
        model = model_cls(config).to(dtype)  # random init on the device itself (seconds, not minutes)
    model.eval()
    model.generation_config.eos_token_id = None  # EOS ignored: every request generates exactly --new-tokens
    return model


def measure_bandwidth(device: str) -> dict[str, float] | None:
    """Device-to-device copy of 2 GiB: bytes read + written per second (median of 10)."""
    if not device.startswith("cuda"):
        return None
    src = torch.empty(2**30, dtype=torch.int16, device=device).random_()
    dst = torch.empty_like(src)
    times = [timed(lambda: dst.copy_(src))[1] for _ in range(12)]
    bw = 2 * src.numel() * src.element_size() / median(times[2:])
    return {"copy_bytes": 2 * 2**31, "bytes_per_s": bw}


def measure_matmul(device: str) -> dict[str, float] | None:
    if not device.startswith("cuda"):
        return None
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
    b = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
    times = [timed(lambda: a @ b)[1] for _ in range(12)]
    return {"n": 8192, "flop_per_s": 2 * 8192**3 / median(times[2:])}


# ---- requests ---------------------------------------------------------------------------------------------
def evaluate_task(lm, task: str, new_tokens: int | None, limit: int | None) -> dict[str, Any]:
    """Run one medbench task through lm-eval's evaluator; time the whole call and the model's part of it, and
    keep the requests lm-eval built (reused below, so every number is on the same requests)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    calls: list[tuple[list, float]] = []
    method = "generate_until" if task == "medbench_pubmedqa" else "loglikelihood"
    original = getattr(lm, method)

    outputs: list = []

    def spy(requests, disable_tqdm: bool = False):
        out, seconds = timed(lambda: original(requests, disable_tqdm=True))
        calls.append((list(requests), seconds))
        outputs.extend(out)
        return out

    setattr(lm, method, spy)
    try:
        _, wall = timed(lambda: simple_evaluate(
            model=lm, tasks=[task], task_manager=TaskManager(include_path=str(REPO / "tasks"), include_defaults=False),
            apply_chat_template=task == "medbench_pubmedqa",
            gen_kwargs={"max_gen_toks": new_tokens} if new_tokens else None,
            limit=limit, bootstrap_iters=0, log_samples=False, verbosity="WARNING",
        ))
    finally:
        delattr(lm, method)
    requests = [r for reqs, _ in calls for r in reqs]
    model_s = sum(s for _, s in calls)
    return {"task": task, "requests": requests, "outputs": outputs, "wall_s": wall, "model_s": model_s,
            "overhead_ratio": wall / model_s if model_s else None}


def generation_requests_fallback(tokenizer, new_tokens: int, limit: int | None, data_dir: Path):
    """The same prompts built by hand (used only if the task can't be loaded)."""
    from lm_eval.api.instance import Instance
    from medbench.tasks import prompts

    docs = json.loads((data_dir / "pubmedqa" / "ori_pqal.json").read_text())
    ids = list(json.loads((data_dir / "pubmedqa" / "test_ground_truth.json").read_text()))[:limit]
    out = []
    for i, pubid in enumerate(ids):
        user = prompts.pubmedqa_user_prompt(docs[pubid]["CONTEXTS"], docs[pubid]["QUESTION"])
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": prompts.SYSTEM_PROMPT}, {"role": "user", "content": user}],
            tokenize=False, add_generation_prompt=True)
        out.append(Instance("generate_until", {}, (text, {"until": [], "max_gen_toks": new_tokens,
                                                          "do_sample": False}), i))
    return out


def with_new_tokens(requests, new_tokens: int):
    from lm_eval.api.instance import Instance

    return [Instance("generate_until", {}, (r.args[0], {"until": [], "max_gen_toks": new_tokens,
                                                        "do_sample": False}), i) for i, r in enumerate(requests)]


# ---- analysis ---------------------------------------------------------------------------------------------
def weight_bytes_read_per_step(model, rows: int) -> int:
    """Bytes of weights one decode step reads: every matrix once, the input embedding only for its rows
    (when it is tied to the head it is read whole, as the head)."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    emb = model.get_input_embeddings().weight
    if model.get_output_embeddings().weight.data_ptr() != emb.data_ptr():
        total -= emb.numel() * emb.element_size() - rows * emb.shape[1] * emb.element_size()
    return total


def ceiling(model, stats: dict[str, Any], kv_bytes_per_token: int, bw: float, flops: float) -> dict[str, Any]:
    """The fastest this schedule could run: each decode step reads the weights once plus the KV cache of its
    active rows at HBM bandwidth; prefill runs at the dense bf16 matmul rate."""
    params = sum(p.numel() for p in model.parameters())
    steps = stats["decode_steps"]
    w_step = weight_bytes_read_per_step(model, stats["slots"])
    weight_bytes = steps * w_step
    kv_bytes = stats["kv_token_reads"] * kv_bytes_per_token
    decode_floor_s = (weight_bytes + kv_bytes) / bw
    prefill_flop = 2 * params * stats["prompt_tokens"]
    prefill_floor_s = prefill_flop / flops
    floor_s = decode_floor_s + prefill_floor_s
    # what a decode step must compute at full occupancy, for the record: when this exceeds the memory time, the
    # step is compute-bound and the bandwidth ceiling is not reachable
    compute_per_step_s = 2 * params * stats["slots"] / flops
    return {
        "formula": "tokens / (decode_steps*weight_bytes_per_step/BW + kv_token_reads*kv_bytes_per_token/BW"
                   " + 2*params*prompt_tokens/FLOPS)",
        "params": params, "weight_bytes_per_step": w_step, "decode_steps": steps,
        "kv_token_reads": stats["kv_token_reads"], "kv_bytes_per_token": kv_bytes_per_token,
        "weight_bytes_total": weight_bytes, "kv_bytes_total": kv_bytes, "bandwidth_bytes_per_s": bw,
        "decode_floor_s": decode_floor_s, "prompt_tokens": stats["prompt_tokens"], "prefill_flop": prefill_flop,
        "flop_per_s": flops, "prefill_floor_s": prefill_floor_s, "floor_s": floor_s,
        "tokens": stats["generated_tokens"], "ceiling_tok_per_s": stats["generated_tokens"] / floor_s,
        "memory_time_per_full_step_s": (w_step + stats["slots"] * (stats["kv_token_reads"] / max(1, steps)
                                        / max(1, stats["slots"])) * kv_bytes_per_token) / bw,
        "compute_time_per_full_step_s": compute_per_step_s,
        "span_token_reads": stats["span_token_reads"],
        "span_read_overhead": stats["span_token_reads"] / max(1, stats["kv_token_reads"]),
    }


def compare_texts(a: list[str], b: list[str], tokenizer) -> dict[str, Any]:
    same = sum(x == y for x, y in zip(a, b))
    prefix = []
    for x, y in zip(a, b):
        tx, ty = tokenizer(x)["input_ids"], tokenizer(y)["input_ids"]
        k = 0
        while k < min(len(tx), len(ty)) and tx[k] == ty[k]:
            k += 1
        prefix.append(k)
    return {"n": len(a), "identical": same, "mean_common_prefix_tokens": sum(prefix) / max(1, len(prefix))}


def _kernel_times(lm, gen) -> tuple[dict[str, float], int, list]:
    """Eager (no CUDA graph) run under the profiler: kernel milliseconds by kind, launches, top kernels."""
    from torch.profiler import ProfilerActivity, profile

    dec = lm._decoder()
    dec.cuda_graphs = False
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        dec.generate(gen)
    kinds = {"gemm": ("gemm", "cutlass", "nvjet", "xmma", "cublas", "splitk"),
             "attention": ("fmha", "flash", "attention", "sdpa"),
             "index/copy": ("index", "copy", "scatter", "gather", "cat")}
    by_kind: dict[str, float] = {}
    kernels, launches = [], 0
    for e in prof.key_averages():
        if e.device_type != torch.autograd.DeviceType.CUDA:
            continue
        t = (getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)) / 1e3
        name = e.key.lower()
        kind = next((k for k, keys in kinds.items() if any(x in name for x in keys)), "elementwise/other")
        by_kind[kind] = by_kind.get(kind, 0.0) + t
        kernels.append((round(t, 2), e.count, e.key[:90]))
        launches += e.count
    kernels.sort(reverse=True)
    return by_kind, launches, kernels


def profile_decode(lm, requests, steps: int) -> dict[str, Any]:
    """Decode step time with and without CUDA graphs, and the eager decode step's kernel time by kind: two
    profiled eager runs, prefill only (1 new token) and prefill + ``steps`` tokens; the difference is decode."""
    from medbench.harness.backends.slot_decoder import GenerationRequest

    prompts = lm._encode_prompts([r.args[0] for r in requests], lm.max_length - steps)
    gen = [GenerationRequest(p, steps) for p in prompts]
    out: dict[str, Any] = {"requests": len(gen), "new_tokens": steps}
    for graphs in (True, False):
        dec = lm._decoder()
        dec.cuda_graphs = graphs and torch.cuda.is_available()
        dec.generate(gen)
        s = dec.stats
        out["graphs" if graphs else "eager"] = {"decode_step_ms": 1e3 * s.decode_s / max(1, s.decode_steps),
                                                "slots": s.slots, "stats": s.as_dict()}
    if not torch.cuda.is_available():
        return out
    full, launches_full, top = _kernel_times(lm, gen)
    pre, launches_pre, _ = _kernel_times(lm, [GenerationRequest(g.prompt, 1) for g in gen])
    n = steps - 1  # decode steps in the full run
    per_step = {k: (full.get(k, 0.0) - pre.get(k, 0.0)) / n for k in full}
    total = sum(per_step.values())
    out["decode_kernel_ms_per_step_by_kind"] = {k: round(v, 3) for k, v in sorted(per_step.items(),
                                                                                  key=lambda kv: -kv[1])}
    out["decode_kernel_share"] = {k: round(v / total, 3) for k, v in per_step.items()} if total else {}
    out["decode_kernel_ms_per_step"] = total
    out["decode_kernel_launches_per_step"] = (launches_full - launches_pre) / n
    out["top_kernels_full_run_ms_count_name"] = top[:12]
    return out


# ---- one model --------------------------------------------------------------------------------------------
def bench_shape(name: str, args, tokenizer, hw: dict[str, Any], deadline: float, record: Callable) -> dict:
    from lm_eval.models.huggingface import HFLM
    from medbench.harness.backends.fast import MedbenchFastLM

    res: dict[str, Any] = {"shape": name, "config": SHAPES[name]}
    record(res)
    dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
    model, res["build_s"] = timed(lambda: build_model(name, args.device, dtype))
    res["params"] = sum(p.numel() for p in model.parameters())
    common = dict(pretrained=model, tokenizer=tokenizer, max_length=args.max_length)
    fast = MedbenchFastLM(**common, max_slots=args.slots)
    stock = HFLM(**common, batch_size=args.stock_batch)
    kvb = fast._decoder().kv_bytes_per_token
    res["kv_bytes_per_token"] = kvb

    def left() -> float:
        return deadline - time.perf_counter()

    # 1. The whole medbench_pubmedqa task through lm-eval's evaluator, fast backend, at the task's own
    #    max_gen_toks (--task-new-tokens overrides): harness overhead, and the fast backend's throughput on all
    #    500 requests.
    try:
        ev = evaluate_task(fast, "medbench_pubmedqa", args.task_new_tokens, args.limit)
        task_requests = ev.pop("requests")
        task_texts = ev.pop("outputs")
        st = dict(fast.last_generation_stats)
        res["harness"] = {**ev, "decoder_wall_s": st["wall_s"], "harness_over_model": ev["wall_s"] / st["wall_s"],
                          "note": "wall_s: simple_evaluate (task build with include_defaults=False as medbench's "
                                  "runner does, docs, prompts through the chat template, generation, grading with "
                                  "medbench graders, aggregation, lm-eval's environment report); model_s: time "
                                  "inside lm.generate_until (prompt tokenisation + decoding + text post-processing);"
                                  " decoder_wall_s: SlotDecoder.generate alone (the model-only time)"}
        res["fast_all"] = {"requests": len(task_requests), "seconds": ev["model_s"], "stats": st,
                           "max_gen_toks": task_requests[0].args[1].get("max_gen_toks"),
                           "tok_per_s": st["generated_tokens"] / ev["model_s"]}
    except Exception as err:  # the task could not be built here: same prompts, built by hand
        res["harness"] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
        n = args.task_new_tokens or 1024
        task_requests = generation_requests_fallback(tokenizer, n, args.limit, Path(args.data_dir))
        task_texts, seconds = timed(lambda: fast.generate_until(task_requests, disable_tqdm=True))
        st = dict(fast.last_generation_stats)
        res["fast_all"] = {"requests": len(task_requests), "seconds": seconds, "stats": st, "max_gen_toks": n,
                           "tok_per_s": st["generated_tokens"] / seconds, "requests_built_by": "hand (fallback)"}
    gen_requests = with_new_tokens(task_requests, args.new_tokens)
    lens = [len(fast.tok_encode(r.args[0])) for r in gen_requests]
    res["prompt_tokens"] = {"mean": sum(lens) / len(lens), "max": max(lens), "min": min(lens)}
    if hw.get("bandwidth"):
        res["fast_all"]["ceiling"] = ceiling(model, res["fast_all"]["stats"], kvb, hw["bandwidth"]["bytes_per_s"],
                                             hw["matmul"]["flop_per_s"])
        res["fast_all"]["share_of_ceiling"] = (res["fast_all"]["tok_per_s"]
                                               / res["fast_all"]["ceiling"]["ceiling_tok_per_s"])
    record(res)

    # 2. Same requests, stock hf vs fast: the first --stock-prompts prompts (one stock batch).
    subset = gen_requests[: args.stock_prompts]
    if "stock" not in args.phases:
        return finish_shape(name, args, fast, model, task_requests, task_texts, gen_requests, tokenizer, hw, kvb,
                            res, left, record)
    texts_fast, t_fast = timed(lambda: fast.generate_until(subset, disable_tqdm=True))
    st = dict(fast.last_generation_stats)
    res["fast_subset"] = {"requests": len(subset), "seconds": t_fast, "stats": st,
                          "tok_per_s": st["generated_tokens"] / t_fast}
    if hw.get("bandwidth"):
        res["fast_subset"]["ceiling"] = ceiling(model, st, kvb, hw["bandwidth"]["bytes_per_s"],
                                                hw["matmul"]["flop_per_s"])
        res["fast_subset"]["share_of_ceiling"] = (res["fast_subset"]["tok_per_s"]
                                                  / res["fast_subset"]["ceiling"]["ceiling_tok_per_s"])
    record(res)
    if left() > args.stock_reserve_s:
        texts_stock, t_stock = timed(lambda: stock.generate_until(subset, disable_tqdm=True))
        tokens = len(subset) * args.new_tokens  # every row of a stock batch runs to max_gen_toks
        res["stock_subset"] = {"requests": len(subset), "batch_size": args.stock_batch, "seconds": t_stock,
                               "tok_per_s": tokens / t_stock}
        res["fast_vs_stock_same_requests"] = res["fast_subset"]["tok_per_s"] / res["stock_subset"]["tok_per_s"]
        res["fast_all_vs_stock"] = res["fast_all"]["tok_per_s"] / res["stock_subset"]["tok_per_s"]
        res["greedy_agreement_bf16"] = compare_texts(texts_stock, texts_fast, tokenizer)
    else:
        res["stock_subset"] = {"skipped": f"{left():.0f} s left before the deadline"}
    record(res)

    return finish_shape(name, args, fast, model, task_requests, task_texts, gen_requests, tokenizer, hw, kvb,
                        res, left, record, stock)


def finish_shape(name, args, fast, model, task_requests, task_texts, gen_requests, tokenizer, hw, kvb, res, left,
                 record, stock=None) -> dict:
    from medbench.harness.backends.fast import MedbenchFastLM
    # 3. Loglikelihood: medbench_pubmedqa_ll through the evaluator (fast), the same requests through stock hf,
    #    and a bare batched forward over the deduplicated contexts.
    try:
        ev = evaluate_task(fast, "medbench_pubmedqa_ll", None, args.limit)
        ll_requests = ev.pop("requests")
        res["loglikelihood"] = {"requests": len(ll_requests), "fast_s": ev["model_s"], "evaluator_wall_s": ev["wall_s"]}
        contexts = sorted({r.args[0] for r in ll_requests})
        enc = [fast.tok_encode(c) for c in contexts]
        bare = bare_forward(model, enc, fast.score_tokens, fast.max_length)
        _, warm = timed(lambda: fast.loglikelihood(ll_requests, disable_tqdm=True))
        res["loglikelihood"].update({
            "unique_contexts": len(contexts), "bare_forward_s": bare, "fast_warm_s": warm,
            "fast_over_bare": warm / bare, "fast_cold_over_bare": ev["model_s"] / bare,
            "note_ratio": "fast_over_bare: both warm (second call: cuDNN attention plans for each batch shape "
                          "already built); fast_cold_over_bare: fast's first call inside lm-eval's evaluator"})
        if stock is not None and left() > 30:
            stock_ll, t_stock = timed(lambda: stock.loglikelihood(ll_requests, disable_tqdm=True))
            fast_ll = fast.loglikelihood(ll_requests, disable_tqdm=True)
            diff = max(abs(a[0] - b[0]) for a, b in zip(stock_ll, fast_ll))
            res["loglikelihood"].update({"stock_s": t_stock, "stock_over_fast": t_stock / ev["model_s"],
                                         "max_abs_logprob_diff_vs_stock": diff,
                                         "note": "stock: bf16 log_softmax over full logits; fast: float32 at the "
                                                 "scored positions only"})
    except Exception as err:
        res["loglikelihood"] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
    record(res)

    # 4. Profile: eager kernels by kind; decode step with and without CUDA graphs.
    if "profile" in args.phases and left() > 25:
        try:
            res["profile"] = profile_decode(fast, gen_requests[: args.profile_prompts], args.profile_steps)
        except Exception as err:
            res["profile"] = {"error": f"{type(err).__name__}: {err}", "trace": traceback.format_exc()[-2000:]}
    record(res)

    # 5. The same whole-task generation with each decoder layer compiled (torch.compile; in place, so last).
    if "compile" in args.phases and left() > args.compile_reserve_s:
        try:
            compiled = MedbenchFastLM(pretrained=model, tokenizer=tokenizer, max_length=args.max_length,
                                      max_slots=args.slots, compile_layers=True)
            texts, seconds = timed(lambda: compiled.generate_until(task_requests, disable_tqdm=True))
            st = dict(compiled.last_generation_stats)
            base = res["fast_all"]["stats"]
            res["fast_all_compiled"] = {
                "seconds_incl_compile": seconds, "stats": st,
                "decode_step_ms": 1e3 * st["decode_s"] / st["decode_steps"],
                "uncompiled_decode_step_ms": 1e3 * base["decode_s"] / base["decode_steps"],
                "steady_tok_per_s": st["generated_tokens"] / (st["decode_s"] + base["prefill_s"]
                                                              + base["stop_check_s"]),
                "agreement_with_uncompiled": compare_texts(task_texts[:64], texts[:64], tokenizer),
            }
            if "ceiling" in res["fast_all"]:
                c = res["fast_all"]["ceiling"]["ceiling_tok_per_s"]
                res["fast_all_compiled"]["steady_share_of_ceiling"] = res["fast_all_compiled"]["steady_tok_per_s"] / c
        except Exception as err:
            res["fast_all_compiled"] = {"error": f"{type(err).__name__}: {err}",
                                        "trace": traceback.format_exc()[-2000:]}
        record(res)
    return res


def bare_forward(model, contexts: list[list[int]], budget: int, max_length: int) -> float:
    """Right-padded batches of the unique contexts (longest first, ``budget`` tokens each), logits only at the
    last position: the least work any loglikelihood scorer must do."""
    order = sorted(contexts, key=len, reverse=True)
    pad = 0

    def run() -> None:
        i = 0
        with torch.no_grad():
            while i < len(order):
                rows = order[i : i + max(1, budget // len(order[i]))]
                i += len(rows)
                width = max(len(rows[0]), min(-(-len(rows[0]) // 64) * 64, max_length))  # as medbench-fast
                ids = torch.full((len(rows), width), pad, dtype=torch.long)
                for r, c in enumerate(rows):
                    ids[r, : len(c)] = torch.as_tensor(c)
                model(input_ids=ids.to(model.device), logits_to_keep=1, use_cache=False)

    run()  # warm-up
    return timed(run)[1]


def versions() -> dict[str, str]:
    import lm_eval
    import peft
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "cuda": str(torch.version.cuda),
            "transformers": transformers.__version__, "lm_eval": getattr(lm_eval, "__version__", "?"),
            "peft": peft.__version__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True, help="directory of the real Qwen2 tokenizer")
    ap.add_argument("--data-dir", default=os.environ.get("MEDBENCH_DATA_DIR", ".gpu-assets"),
                    help="folder holding pubmedqa/ori_pqal.json (also exported as MEDBENCH_DATA_DIR)")
    ap.add_argument("--shapes", default="qwen2.5-3b,llama-3.1-8b", help=f"comma list of {sorted(SHAPES)}")
    ap.add_argument("--device", default="cuda", help="cuda or cpu")
    ap.add_argument("--new-tokens", type=int, default=512,
                    help="generated tokens per request in the stock-vs-fast comparison (EOS ignored)")
    ap.add_argument("--task-new-tokens", type=int, default=None,
                    help="max_gen_toks for the whole-task run (default: the task's own, 1024)")
    ap.add_argument("--limit", type=int, default=None, help="PubMedQA documents (default: all 500)")
    ap.add_argument("--stock-prompts", type=int, default=64, help="requests timed through stock hf")
    ap.add_argument("--stock-batch", type=int, default=64, help="stock hf batch_size")
    ap.add_argument("--slots", default="auto", help="medbench-fast max_slots")
    ap.add_argument("--max-length", type=int, default=4096, help="model max_length for both backends")
    ap.add_argument("--profile-prompts", type=int, default=256, help="requests in the profiled decode")
    ap.add_argument("--profile-steps", type=int, default=32, help="new tokens in the profiled decode")
    ap.add_argument("--stock-reserve-s", type=float, default=150, help="skip stock hf when less time is left")
    ap.add_argument("--time-budget-s", type=float, default=540, help="stop starting phases after this")
    ap.add_argument("--phases", default="stock,profile,compile",
                    help="optional phases to run: stock (stock hf and fast on the same requests), profile, "
                         "compile (fast with compile_layers=True); the whole-task and loglikelihood phases always run")
    ap.add_argument("--compile-reserve-s", type=float, default=90, help="skip the compile phase when less is left")
    ap.add_argument("--out", required=True, help="results JSON path")
    args = ap.parse_args(argv)
    os.environ["MEDBENCH_DATA_DIR"] = str(Path(args.data_dir).resolve())
    args.phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if args.slots != "auto":
        args.slots = int(args.slots)
    deadline = time.perf_counter() + args.time_budget_s
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"command": " ".join([sys.executable, *sys.argv]), "versions": versions(),
                           "new_tokens": args.new_tokens, "shapes": []}
    if args.device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        spec = next((v for k, v in SPEC.items() if k in name), None)
        doc["device"] = {"name": name, "memory_gib": torch.cuda.get_device_properties(0).total_memory / 2**30,
                         "spec_bandwidth_bytes_per_s": spec and spec[0], "spec_bf16_flop_per_s": spec and spec[1]}
        doc["hardware"] = {"bandwidth": measure_bandwidth(args.device), "matmul": measure_matmul(args.device)}
    else:
        doc["device"] = {"name": "cpu"}
        doc["hardware"] = {}

    def record(_: Any = None) -> None:
        out.write_text(json.dumps(doc, indent=1, default=str))

    for shape in [s.strip() for s in args.shapes.split(",") if s.strip()]:
        if time.perf_counter() > deadline:
            doc["shapes"].append({"shape": shape, "skipped": "time budget spent"})
            continue
        res: dict[str, Any] = {}
        doc["shapes"].append(res)
        try:
            res.update(bench_shape(shape, args, tokenizer, doc["hardware"], deadline,
                                   lambda r, res=res: (res.update(r), record())))
        except Exception as err:
            res["error"] = f"{type(err).__name__}: {err}"
            res["trace"] = traceback.format_exc()[-3000:]
        record()
        summary(res)
    doc["targets"] = targets(doc)
    record()
    print(json.dumps(doc["targets"], indent=1))
    return 0


def summary(res: dict[str, Any]) -> None:
    keys = ("fast_all", "fast_subset", "stock_subset")
    line = {k: round(res[k]["tok_per_s"]) for k in keys if isinstance(res.get(k), dict) and "tok_per_s" in res[k]}
    print(f"[{res.get('shape')}] tok/s {line} ceiling share "
          f"{res.get('fast_all', {}).get('share_of_ceiling')} error {res.get('error')}", flush=True)


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in doc["shapes"]:
        if "fast_all" not in r:
            continue
        h, ll = r.get("harness", {}), r.get("loglikelihood", {})
        rows.append({
            "shape": r["shape"],
            "fast_vs_stock_same_requests (>=3)": r.get("fast_vs_stock_same_requests"),
            "fast_all_vs_stock (>=3)": r.get("fast_all_vs_stock"),
            "share_of_ceiling_all (>=0.5)": r["fast_all"].get("share_of_ceiling"),
            "share_of_ceiling_subset (>=0.5)": r.get("fast_subset", {}).get("share_of_ceiling"),
            "harness_over_model (<=1.10)": h.get("harness_over_model"),
            "loglikelihood_over_bare (<=1.2)": ll.get("fast_over_bare"),
        })
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
