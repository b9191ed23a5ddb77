"""Generation backends on one GPU, on the same requests: lm-eval's stock ``hf``, ``medbench-fast`` and vLLM
(base and LoRA), against the memory-bandwidth ceiling; and ``medbench bench``'s default command against the best
backend. Writes one JSON (``--out``) with the GPU, the versions and the exact commands.

Why each piece:

* **Same requests.** Every backend gets the same prompt texts (the real PubMedQA PQA-L test prompts exactly as
  ``medbench_pubmedqa`` builds them: the GRPO system prompt and user turn through the Qwen2.5 chat template) and
  the same number of new tokens, EOS ignored, greedy. Each backend is driven through the lm-eval model class
  medbench itself builds for ``--backend hf|medbench-fast|vllm``, so the numbers are what a bench run gets.
* **Random weights of the real shapes** (Qwen2.5-3B, Llama-3.1-8B with the Qwen2 vocabulary), built on the GPU
  with the real tokenizer; the weights don't change the cost of a step. The LoRA adapter (r 16 on every
  projection) has non-zero B matrices so it is really applied.
* **One process per backend**: vLLM takes most of the GPU's memory, and a fresh process is how users run it.
* **Ceiling**: the least time any engine needs for these requests if all of them decoded together — every decode
  step reads the weights once (``steps * weight_bytes / BW``), every generated token reads its request's KV
  cache so far (``sum kv_reads * kv_bytes_per_token / BW``), and prefill runs at the measured bf16 matmul rate.
  BW is a measured device-to-device copy.
* **Default path**: ``medbench bench`` with no ``--backend`` / ``--batch-size`` on the 3B model against the same
  command with each backend named, whole command wall time (loading and engine start included, as users see
  it), on ``--bench-docs`` PubMedQA documents at the task's own token budget.

On the GPU machine (see ../shared/gpu/README.md for the site archive and the vLLM kit)::

    python benchmarks/gpu_backends.py all --tokenizer .gpu-assets/tokenizers --data-dir .gpu-assets/realdata \
        --work /tmp/gb --out $OUT/gpu_backends.json

``--shapes tiny --device cpu --backends hf,medbench-fast`` checks the script on a CPU (not a number).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from statistics import median
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

#: A tiny Qwen2 for checking the script on a CPU.
TINY = dict(arch="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=151936, max_position_embeddings=4096, rope_theta=1e6,
            rms_norm_eps=1e-6, tie_word_embeddings=True)


def shapes() -> dict[str, dict[str, Any]]:
    from eval_throughput import SHAPES  # the two real shapes, one definition

    return {**SHAPES, "tiny": TINY}


# ---- inputs ---------------------------------------------------------------------------------------------------
def tokenizer_dir(tokenizers: Path, work: Path) -> Path:
    """The real Qwen2 BPE files with the Qwen2.5-Instruct chat template, as one loadable tokenizer folder."""
    out = work / "qwen2_tokenizer"
    if (out / "tokenizer_config.json").exists():
        return out
    shutil.copytree(tokenizers / "Qwen2-1.5B-Instruct_via_Qwen2-Boundless", out, dirs_exist_ok=True)
    template = (tokenizers / "Qwen2.5-Instruct_chat_template" / "qwen2.5-instruct.jinja").read_text()
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    cfg["chat_template"] = template
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1))
    return out


def build_model(shape: str, tok_dir: Path, out: Path, device: str) -> Path:
    """A random-weight model of ``shape`` saved like a hub checkpoint (bf16 on a GPU), with the tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    if (out / "config.json").exists():
        return out
    cfg = dict(shapes()[shape])
    arch = cfg.pop("arch")
    config_cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if arch == "qwen2" else (LlamaConfig, LlamaForCausalLM)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    config = config_cls(**cfg, bos_token_id=tok.bos_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                        pad_token_id=tok.pad_token_id)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = model_cls(config).to(dtype)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    del model
    return out


def build_adapter(model_dir: Path, out: Path, device: str, rank: int = 16, seed: int = 1) -> Path:
    """A LoRA adapter with random, non-zero A and B (PEFT's default zero B would be a no-op)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if (out / "adapter_config.json").exists():
        return out
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto", device_map=device)
    lora = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=False, task_type="CAUSAL_LM",
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, lora)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(0.1)  # small enough that the adapted model stays a sane random model
    peft_model.save_pretrained(out)
    del peft_model, model
    return out


def build_prompts(tok_dir: Path, data_dir: Path, n: int) -> list[str]:
    """The first ``n`` ``medbench_pubmedqa`` prompts as lm-eval renders them with ``--apply_chat_template``."""
    from lm_eval.tasks import TaskManager
    from medbench.tasks import registry
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    tm = TaskManager(include_path=registry.include_path(), include_defaults=False,
                     metadata={"data_dir": str(data_dir)})
    task = tm.load(["medbench_pubmedqa"])["tasks"]["medbench_pubmedqa"]
    system = task.config.description
    out = []
    for doc in list(task.eval_docs)[:n]:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": task.doc_to_text(doc)}]
        out.append(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return out


# ---- hardware -------------------------------------------------------------------------------------------------
def hardware(device: str) -> dict[str, Any]:
    import torch

    if not device.startswith("cuda"):
        return {"name": platform.processor() or "cpu"}

    def timed(fn) -> float:
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t

    src = torch.empty(2**30, dtype=torch.int16, device=device).random_()
    dst = torch.empty_like(src)
    bw = 2 * src.numel() * src.element_size() / median([timed(lambda: dst.copy_(src)) for _ in range(12)][2:])
    a = torch.randn(8192, 8192, dtype=torch.bfloat16, device=device)
    flops = 2 * 8192**3 / median([timed(lambda: a @ a) for _ in range(12)][2:])
    src = dst = a = None  # frees the tensors
    torch.cuda.empty_cache()  # the bench commands below start vLLM engines that need this memory free
    props = torch.cuda.get_device_properties(0)
    return {"name": torch.cuda.get_device_name(), "memory_gib": round(props.total_memory / 2**30, 1),
            "bandwidth_bytes_per_s": bw, "bf16_flop_per_s": flops}


def ceiling(config: dict[str, Any], params: int, prompt_lens: list[int], new_tokens: int,
            hw: dict[str, Any]) -> dict[str, Any] | None:
    """The all-requests-together lower bound on time (module docstring), and the tok/s it allows."""
    if "bandwidth_bytes_per_s" not in hw:
        return None
    head_dim = config["hidden_size"] // config["num_attention_heads"]
    kv_bytes_per_token = 2 * config["num_hidden_layers"] * config["num_key_value_heads"] * head_dim * 2  # K+V, bf16
    weight_bytes = params * 2
    if config.get("tie_word_embeddings"):
        weight_bytes_step = weight_bytes
    else:  # the input embedding is read only for the rows being decoded
        weight_bytes_step = weight_bytes - config["vocab_size"] * config["hidden_size"] * 2
    kv_reads = sum(p * new_tokens + new_tokens * (new_tokens + 1) // 2 for p in prompt_lens)
    bw, flops = hw["bandwidth_bytes_per_s"], hw["bf16_flop_per_s"]
    decode_s = (new_tokens * weight_bytes_step + kv_reads * kv_bytes_per_token) / bw
    prefill_s = 2 * params * sum(prompt_lens) / flops
    tokens = len(prompt_lens) * new_tokens
    return {"decode_floor_s": decode_s, "prefill_floor_s": prefill_s, "floor_s": decode_s + prefill_s,
            "tokens": tokens, "ceiling_tok_per_s": tokens / (decode_s + prefill_s),
            "kv_bytes_per_token": kv_bytes_per_token, "weight_bytes_per_step": weight_bytes_step}


# ---- one backend, in its own process ---------------------------------------------------------------------
def build_lm(backend: str, model_dir: Path, adapter: Path | None, device: str, batch: int) -> Any:
    """The lm-eval model medbench builds for ``--backend`` (same classes and the arguments that matter here)."""
    if backend == "vllm":
        from lm_eval.models.vllm_causallms import VLLM

        kw: dict[str, Any] = dict(pretrained=str(model_dir), dtype="bfloat16", batch_size="auto", seed=1234,
                                  gpu_memory_utilization=0.85, max_model_len=4096)
        if adapter:
            kw.update(lora_local_path=str(adapter), max_lora_rank=16)
        return VLLM(**kw)
    if backend == "medbench-fast":
        from medbench.harness.backends.fast import MedbenchFastLM as cls
    else:
        from lm_eval.models.huggingface import HFLM as cls
    lm = cls(pretrained=str(model_dir), peft=str(adapter) if adapter else None, device=device,
             dtype="bfloat16" if device.startswith("cuda") else "float32", batch_size=batch, max_length=4096)
    lm.model.generation_config.eos_token_id = None  # EOS ignored: every request generates exactly new_tokens
    return lm


def run_backend(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One backend on the requests, base (and with ``--lora`` the adapter too). vLLM serves both from one engine
    (the adapter as a LoRA request), as a bench run of a base and its adapter could; hf and medbench-fast load
    the adapter unmerged through PEFT, as ``--checkpoint NAME=BASE+ADAPTER`` does."""
    import torch
    from lm_eval.api.instance import Instance

    work = Path(args.work)
    prompts = json.loads((work / "prompts.json").read_text())[: args.prompts]
    model_dir = work / "models" / args.shape
    adapter = work / "adapters" / args.shape if args.lora else None
    gen = {"until": [], "max_gen_toks": args.new_tokens, "do_sample": False}
    if args.backend == "vllm":
        gen["ignore_eos"] = True
    requests = [Instance("generate_until", {}, (p, dict(gen)), i) for i, p in enumerate(prompts)]
    timed = requests if args.backend != "hf" else requests[: args.hf_prompts]
    variants = [None, adapter] if (adapter and args.backend == "vllm") else [adapter]
    results = []
    t0 = time.perf_counter()
    lm = build_lm(args.backend, model_dir, adapter, args.device, args.hf_batch)
    load_s = time.perf_counter() - t0
    lora_request = getattr(lm, "lora_request", None)
    for variant in variants:
        if args.backend == "vllm":
            lm.lora_request = lora_request if variant else None
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        # a short warm-up (CUDA graphs, kernel selection) is not timed
        lm.generate_until(timed[:8] if args.backend == "vllm" else timed[:2], disable_tqdm=True)
        t1 = time.perf_counter()
        texts = lm.generate_until(timed, disable_tqdm=True)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t1
        tokens = len(timed) * args.new_tokens
        res = {"backend": args.backend, "shape": args.shape, "lora": variant is not None, "requests": len(timed),
               "new_tokens": args.new_tokens, "load_s": round(load_s, 2), "seconds": seconds, "tokens": tokens,
               "tok_per_s": tokens / seconds, "texts_head": texts[:16]}
        if args.backend == "hf":
            res["batch_size"] = args.hf_batch
        if args.device.startswith("cuda"):
            res["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        results.append(res)
    return results


# ---- the default command ---------------------------------------------------------------------------------
def bench_command(args: argparse.Namespace, shape: str, extra: list[str], name: str,
                  checkpoints: list[str] | None = None) -> dict[str, Any]:
    """Wall time of one ``medbench bench`` command (a fresh process, fresh output directory)."""
    work = Path(args.work)
    out = work / "bench" / f"{shape}_{name}"
    shutil.rmtree(out, ignore_errors=True)
    cks = checkpoints or [f"m={work / 'models' / shape}"]
    cmd = [sys.executable, "-m", "medbench.harness.cli", "bench", *[a for ck in cks for a in ("--checkpoint", ck)],
           "--tasks", "medbench_pubmedqa", "--limit", str(args.bench_docs), "--data-dir", str(args.data_dir),
           "--output", str(out), "--no-report", *extra]
    if args.bench_max_new_tokens and "--max-new-tokens" not in extra:
        cmd += ["--max-new-tokens", str(args.bench_max_new_tokens)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.bench_timeout)
    wall = time.perf_counter() - t0
    res: dict[str, Any] = {"name": name, "shape": shape, "checkpoints": len(cks), "command": shlex.join(cmd),
                           "wall_s": round(wall, 1), "rc": proc.returncode, "stderr_tail": proc.stderr[-2500:]}
    if proc.returncode != 0:
        # a failed engine start prints its cause far above the tail: keep the lines that name an error
        res["error_lines"] = [ln for ln in proc.stderr.splitlines()
                              if any(k in ln for k in ("Error", "Exception", "error:", "Traceback"))][:40]
        (work / f"stderr_{shape}_{name}.txt").write_text(proc.stderr)
    run_json = out / "run.json"
    if run_json.exists():
        meta = json.loads(run_json.read_text())
        res["backend_requested"] = meta.get("spec", {}).get("backend")
        res["backend_used"] = meta.get("backend_used")
        res["backend_auto"] = meta.get("backend_auto")
        res["errors"] = meta.get("errors")
        res["batch_size_used"] = meta.get("spec", {}).get("batch_size")
        res["timings"] = meta.get("timings")
    return res


# ---- orchestration ----------------------------------------------------------------------------------------
def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "lm_eval", "peft", "vllm", "flashinfer-python", "trl"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def worker_cmd(args: argparse.Namespace, backend: str, shape: str, lora: bool, out: Path) -> list[str]:
    cmd = [sys.executable, __file__, "worker", "--backend", backend, "--shape", shape, "--work", args.work,
           "--device", args.device, "--prompts", str(args.prompts), "--new-tokens", str(args.new_tokens),
           "--hf-batch", str(args.hf_batch), "--hf-prompts", str(args.hf_prompts), "--result", str(out)]
    return cmd + (["--lora"] if lora else [])


def run_all(args: argparse.Namespace) -> int:
    import torch
    from transformers import AutoConfig

    work = Path(args.work)
    (work / "models").mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.time_budget_s
    doc: dict[str, Any] = {"command": shlex.join([sys.executable, *sys.argv]), "versions": versions(),
                           "prompts": args.prompts, "new_tokens": args.new_tokens, "runs": [], "bench": []}

    def save() -> None:
        out.write_text(json.dumps(doc, indent=1, default=str))

    doc["device"] = hardware(args.device)
    save()
    tok_dir = tokenizer_dir(Path(args.tokenizer), work)
    prompts = build_prompts(tok_dir, Path(args.data_dir), args.prompts)
    (work / "prompts.json").write_text(json.dumps(prompts))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tok_dir)
    lens = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    doc["prompt_tokens"] = {"mean": sum(lens) / len(lens), "min": min(lens), "max": max(lens)}
    backends = [b for b in args.backends.split(",") if b]
    for shape in [s for s in args.shapes.split(",") if s]:
        t = time.perf_counter()
        model_dir = build_model(shape, tok_dir, work / "models" / shape, args.device)
        if args.lora:
            build_adapter(model_dir, work / "adapters" / shape, args.device)
        torch.cuda.empty_cache() if torch.cuda.is_available() else None
        cfg = AutoConfig.from_pretrained(model_dir).to_dict()
        shape_doc: dict[str, Any] = {"shape": shape, "build_s": round(time.perf_counter() - t, 1)}
        params = count_params(model_dir)
        shape_doc["params"] = params
        shape_doc["ceiling"] = ceiling(cfg, params, lens, args.new_tokens, doc["device"])
        doc.setdefault("shapes", []).append(shape_doc)
        save()
        for backend in backends:
            # vLLM runs base and adapter in one process (one engine); stock hf is timed on the base only (slow)
            for lora in ([True] if backend == "vllm" else [False, True] if backend != "hf" else [False]) \
                    if args.lora else [False]:
                if time.perf_counter() > deadline:
                    doc["runs"].append({"backend": backend, "shape": shape, "lora": lora, "skipped": "time budget"})
                    continue
                result = work / f"result_{shape}_{backend}_{int(lora)}.json"
                result.unlink(missing_ok=True)
                cmd = worker_cmd(args, backend, shape, lora, result)
                t = time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=max(30, deadline - time.perf_counter() + 60))
                common = {"command": shlex.join(cmd), "process_s": round(time.perf_counter() - t, 1)}
                entries = json.loads(result.read_text()) if result.exists() else [
                    {"backend": backend, "shape": shape, "lora": lora, "rc": proc.returncode}]
                for entry in entries:
                    entry.update(common)
                    if "tok_per_s" in entry and shape_doc["ceiling"]:
                        entry["share_of_ceiling"] = entry["tok_per_s"] / shape_doc["ceiling"]["ceiling_tok_per_s"]
                    if "tok_per_s" not in entry:
                        entry["output_tail"] = (proc.stdout + proc.stderr)[-3000:]
                    doc["runs"].append(entry)
                    print(f"[{shape} {backend}{' +lora' if entry['lora'] else ''}] "
                          f"{entry.get('tok_per_s', entry.get('error', 'failed'))} tok/s, process "
                          f"{common['process_s']} s", flush=True)
                save()
        agreement(doc, shape)
        save()
    for shape in [s for s in args.bench_shape.split(",") if s]:
        bench_runs(args, doc, shape, tok_dir, deadline, save)
    save()
    print(json.dumps({k: doc.get(k) for k in ("default_vs_best",)}, indent=1))
    return 0


def bench_runs(args: argparse.Namespace, doc: dict[str, Any], shape: str, tok_dir: Path, deadline: float,
               save: Any) -> None:
    """Whole ``medbench bench`` commands on ``shape``: one checkpoint per backend, and the recipes' three
    (base, SFT and GRPO adapters of it: ``3ck-*``) on vLLM (one engine) and on the default."""
    work = Path(args.work)
    model = build_model(shape, tok_dir, work / "models" / shape, args.device)
    adapter = build_adapter(model, work / "adapters" / shape, args.device)
    adapter2 = build_adapter(model, work / "adapters2" / shape, args.device, seed=2)
    three = [f"base={model}", f"sft={model}+{adapter}", f"grpo={model}+{adapter2}"]
    import gc

    import torch

    gc.collect()
    torch.cuda.empty_cache() if torch.cuda.is_available() else None  # bench commands are separate processes
    runs = {"default": [], "hf": ["--backend", "hf"], "medbench-fast": ["--backend", "medbench-fast"],
            # stock hf at a batch that fits (lm-eval's `auto` probe alone took minutes at a 32k context)
            "hf-b64": ["--backend", "hf", "--batch-size", "64"],
            "vllm": ["--backend", "vllm"],
            # a base and its LoRA adapter through vLLM, as a user benches a GRPO adapter against its base
            "vllm-lora": ["--backend", "vllm", "--checkpoint", f"lora={model}+{adapter}",
                          "--max-new-tokens", "128"],
            "3ck-vllm": ["--backend", "vllm"], "3ck-default": [], "3ck-fast": ["--backend", "medbench-fast"]}
    for name in [r for r in args.bench_runs.split(",") if r]:
        if time.perf_counter() > deadline:
            doc["bench"].append({"name": name, "shape": shape, "skipped": "time budget"})
            continue
        doc["bench"].append(bench_command(args, shape, runs[name], name,
                                          three if name.startswith("3ck") else None))
        print(f"[bench {name}] {doc['bench'][-1]['wall_s']} s rc {doc['bench'][-1]['rc']}", flush=True)
        save()
    for prefix in ("", "3ck-"):
        named = {f"{prefix}{n}" for n in ("hf", "hf-b64", "medbench-fast", "fast", "vllm")}
        done = [b for b in doc["bench"] if b.get("rc") == 0 and b["name"] in named and b.get("shape") == shape]
        default = next((b for b in doc["bench"] if b["name"] == f"{prefix}default" and b.get("rc") == 0
                        and b.get("shape") == shape), None)
        if done and default:
            best = min(done, key=lambda b: b["wall_s"])
            doc.setdefault("default_vs_best", {})[f"{shape} {prefix or '1ck-'}"] = {
                "default_s": default["wall_s"], "default_backend_used": default.get("backend_used"),
                "best": best["name"], "best_s": best["wall_s"], "ratio": default["wall_s"] / best["wall_s"],
                "target": "<= 1.25"}


def count_params(model_dir: Path) -> int:
    """Parameters of the saved model, counted on the meta device (no weights loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters())


def agreement(doc: dict[str, Any], shape: str) -> None:
    """Greedy completions of the first prompts, backend against backend (bf16 near-ties make them drift)."""
    runs = {(r["backend"], r["lora"]): r.get("texts_head") for r in doc["runs"]
            if r.get("shape") == shape and r.get("texts_head")}
    pairs = {}
    for (b1, l1), t1 in runs.items():
        for (b2, l2), t2 in runs.items():
            if l1 == l2 and b1 < b2:
                pairs[f"{b1} vs {b2}{' +lora' if l1 else ''}"] = sum(a == b for a, b in zip(t1, t2))
    doc.setdefault("identical_completions_of_16", {})[shape] = pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("all", help="build models, run every backend, time the default bench command")
    a.add_argument("--tokenizer", required=True, help="folder holding the real Qwen2 tokenizer folders")
    a.add_argument("--data-dir", required=True, help="folder holding pubmedqa/ori_pqal.json (realdata layout)")
    a.add_argument("--work", default="/tmp/gpu_backends")
    a.add_argument("--out", required=True)
    a.add_argument("--shapes", default="qwen2.5-3b,llama-3.1-8b")
    a.add_argument("--backends", default="hf,medbench-fast,vllm")
    a.add_argument("--lora", action=argparse.BooleanOptionalAction, default=True, help="also run with the adapter")
    a.add_argument("--bench-shape", default="qwen2.5-3b", help="model for the default-command comparison ('' skips)")
    a.add_argument("--bench-docs", type=int, default=128)
    a.add_argument("--bench-runs", default="default,hf,medbench-fast,vllm,vllm-lora",
                   help="which bench commands to time: default, hf, medbench-fast, vllm, vllm-lora")
    a.add_argument("--bench-timeout", type=int, default=420)
    a.add_argument("--bench-max-new-tokens", type=int, default=None,
                   help="token budget of the bench commands (default: the task's own)")
    a.add_argument("--time-budget-s", type=float, default=540)
    for p in (a, w := sub.add_parser("worker", help=argparse.SUPPRESS)):
        p.add_argument("--device", default="cuda")
        p.add_argument("--prompts", type=int, default=256)
        p.add_argument("--new-tokens", type=int, default=256)
        p.add_argument("--hf-batch", type=int, default=64, help="stock hf batch size")
        p.add_argument("--hf-prompts", type=int, default=64, help="requests timed through stock hf (it is slow)")
    w.add_argument("--backend", required=True)
    w.add_argument("--shape", required=True)
    w.add_argument("--work", required=True)
    w.add_argument("--lora", action="store_true")
    w.add_argument("--result", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "worker":
        try:
            res: Any = run_backend(args)
        except Exception as e:
            res = [{"backend": args.backend, "shape": args.shape, "lora": args.lora,
                    "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-3000:]}]
        Path(args.result).write_text(json.dumps(res, default=str))
        return 0
    os.environ.setdefault("MEDBENCH_DATA_DIR", str(Path(args.data_dir).resolve()))
    return run_all(args)


if __name__ == "__main__":
    raise SystemExit(main())
