"""Training step time and peak GPU memory of the two recipes, Unsloth vs plain TRL + PEFT (GPU only).

What runs is medbench's own recipe code (``trainers/sft.py``, ``trainers/grpo.py``) on the bundled recipe
configs, with three things swapped so it runs without a model hub:

* the model is random-weight, of the real architecture: Llama-3.1-8B's shape for SFT, Qwen2.5-3B-Instruct's
  for GRPO (weights don't change the cost of a step). Both use the real Qwen2 tokenizer, so the SFT model
  has the Qwen2 vocabulary (151,936 rows instead of Llama-3.1's 128,256; +0.1 B parameters, stated in the
  result);
* the data is the bundled sample data, with SFT rows lengthened to about ``--sft-tokens`` tokens each (the
  recipe's rows are several hundred to ~1,500 tokens);
* GRPO completions are pinned to ``--grpo-completion`` tokens (``min_new_tokens`` for transformers,
  ``min_tokens`` for vLLM), so a step's cost does not depend on when a random model happens to emit EOS.

GRPO runs as the recipe runs it and against its alternatives: ``grpo:unsloth-vllm`` is the recipe
(``fast_inference=True``: Unsloth's vLLM engine generates), ``grpo:unsloth`` Unsloth generating through
transformers, ``grpo:trl-vllm`` TRL + PEFT with TRL's vLLM in colocate mode (``-bf16``: a bf16 base instead of
4-bit, for TRL's colocate weight sync, which pushes merged weights to vLLM each step). vLLM gets the same
``--vllm-gpu-util`` share of the GPU in each; peak memory is reported both as torch's peak in the training process
(vLLM's weights and KV cache included when it runs in that process) and as the device's used memory
(``cudaMemGetInfo``) at the end of each step.

Each (recipe, backend) runs in a fresh process (Unsloth patches transformers and TRL on import). The first
``--warmup`` optimizer steps are excluded from the step time; peak memory is torch's
``max_memory_allocated`` / ``max_memory_reserved`` over the whole process (load, LoRA, training).
Writes ``benchmarks/results/train_step_<device>.json`` with device, versions, the command and the ratios.

On the device machine (see ../shared/gpu/README.md; carry .gpu-site.tgz and .gpu-assets):

    mkdir -p /tmp/site && tar xzf .gpu-site.tgz -C /tmp/site && \\
    export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1 && \\
    pip install -q --no-deps --no-build-isolation -e . && \\
    python benchmarks/train_step.py --tokenizer .gpu-assets/tokenizers --out-dir $OUT

    python benchmarks/train_step.py --only sft:trl --steps 3     # one combination, fewer steps
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMBOS = ("sft:unsloth", "sft:trl", "grpo:unsloth", "grpo:trl", "grpo:unsloth-vllm", "grpo:trl-vllm",
          "grpo:trl-vllm-bf16")

#: Llama-3.1-8B (meta-llama/Llama-3.1-8B config.json), except the vocabulary, which is the tokenizer's.
LLAMA31_8B = {
    "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32,
    "num_key_value_heads": 8, "max_position_embeddings": 131072, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192},
}
#: Qwen2.5-3B-Instruct (Qwen/Qwen2.5-3B-Instruct config.json).
QWEN25_3B = {
    "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16,
    "num_key_value_heads": 2, "max_position_embeddings": 32768, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True, "vocab_size": 151936,
}

TARGETS = {
    "sft_step_time_unsloth_over_trl": 0.5,
    "sft_peak_memory_unsloth_over_trl": 0.4,
    "grpo_peak_memory_unsloth_over_trl": 0.5,
}


# ---------------------------------------------------------------------------------------------------------
# building the inputs (in the worker, on the GPU machine)
# ---------------------------------------------------------------------------------------------------------


def tokenizer_dir(tokenizers: Path, work: Path) -> Path:
    """The real Qwen2 BPE files with the Qwen2.5-Instruct chat template, as one loadable tokenizer folder."""
    import shutil

    src = tokenizers / "Qwen2-1.5B-Instruct_via_Qwen2-Boundless"
    out = work / "qwen2_tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        shutil.copy(src / name, out / name)
    cfg = json.loads((out / "tokenizer_config.json").read_text())
    cfg["chat_template"] = (tokenizers / "Qwen2.5-Instruct_chat_template" / "qwen2.5-instruct.jinja").read_text()
    (out / "tokenizer_config.json").write_text(json.dumps(cfg))
    return out


def random_model(recipe: str, tok_dir: Path, out: Path) -> tuple[Path, int]:
    """Save a random-weight bf16 model of the recipe's architecture to ``out`` (once: both backends load the
    same files); returns (dir, parameters)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    if (out / "medbench_params.json").is_file():
        return out, json.loads((out / "medbench_params.json").read_text())["parameters"]
    tok = AutoTokenizer.from_pretrained(tok_dir)
    if recipe == "sft":
        config = LlamaConfig(**LLAMA31_8B, vocab_size=151936, bos_token_id=tok.bos_token_id,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        cls = LlamaForCausalLM
    else:
        config = Qwen2Config(**QWEN25_3B, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                             bos_token_id=tok.bos_token_id)
        cls = Qwen2ForCausalLM
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # built in bf16 directly: an 8B model in fp32 would need 32 GB
    try:
        with torch.device("cuda"):
            model = cls(config)  # initialised on the GPU: seconds, not minutes
    finally:
        torch.set_default_dtype(default)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "medbench_params.json").write_text(json.dumps({"parameters": n_params}))
    del model
    torch.cuda.empty_cache()
    return out, n_params


def data_dir(work: Path, tok_dir: Path, sft_tokens: int) -> Path:
    """The bundled sample data, with the SFT rows' chain of thought repeated to about ``sft_tokens`` tokens."""
    import shutil

    from medbench.tasks.loaders import SAMPLE_DATA_DIR
    from transformers import AutoTokenizer

    out = work / "data"
    shutil.copytree(SAMPLE_DATA_DIR, out, dirs_exist_ok=True)
    tok = AutoTokenizer.from_pretrained(tok_dir)
    path = out / "medical_o1" / "medical_o1_sft.json"
    rows = json.loads(path.read_text())
    long_rows = []
    for r in rows:
        cot = r["Complex_CoT"]
        while len(tok(r["Question"] + cot + r["Response"])["input_ids"]) < sft_tokens:
            cot = cot + "\n" + r["Complex_CoT"]
        long_rows.append({**r, "Complex_CoT": cot})
    path.write_text(json.dumps(long_rows * 8))  # enough rows that no step repeats a batch within an epoch
    return out


class StepTimer:
    """Wall time of every optimizer step (CUDA synchronised at both ends)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.device_used: list[float] = []  # GiB in use on the device (every process) at each step's end
        self._t0 = 0.0

    def callback(self):
        import torch
        from transformers import TrainerCallback

        timer = self

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                torch.cuda.synchronize()
                timer._t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                torch.cuda.synchronize()
                timer.times.append(time.perf_counter() - timer._t0)
                free, total = torch.cuda.mem_get_info()
                timer.device_used.append((total - free) / 2**30)

        return _CB()


def worker(recipe: str, backend: str, args: argparse.Namespace) -> dict:
    """One recipe on one backend, in this process. Unsloth (when used) is imported before anything else."""
    from medbench.trainers.backends import BackendChoice, activate

    variant = backend
    backend, vllm, bf16 = backend.split("-")[0], "-vllm" in variant, variant.endswith("-bf16")
    choice = BackendChoice(backend, backend, cuda=True)
    activate(choice)
    import torch
    from medbench.trainers import grpo, sft
    from medbench.trainers.config import load_config

    shared = Path(args.work_dir)
    work = Path(tempfile.mkdtemp(prefix=f"{recipe}_{variant}_", dir=shared))
    tok_dir = tokenizer_dir(Path(args.tokenizer), shared)
    model_dir, n_params = random_model(recipe, tok_dir, shared / f"{recipe}_model")
    data = data_dir(work, tok_dir, args.sft_tokens)
    torch.cuda.reset_peak_memory_stats()
    steps = args.warmup + args.steps
    common = [f"model.name={model_dir}", f"data.data_dir={data}", f"output.dir={work / 'out'}",
              "output.save_merged_16bit=false", f"training.max_steps={steps}", "training.save_strategy=no",
              "training.logging_steps=1", "training.report_to=none", "eval.every_n_steps=null"]
    if recipe == "sft":
        cfg = load_config("sft_r1_llama8b_medical", common)
        module = sft
    else:
        pin = "min_tokens" if vllm else "min_new_tokens"  # SamplingParams' name, GenerationConfig's
        cfg = load_config("grpo_qwen25_3b_medical", common + [
            "data.health_specialties=[Cardiology, Dermatology, Lab_Medicine]",
            f"training.max_completion_length={args.grpo_completion}",
            f"training.generation_kwargs={{{pin}: {args.grpo_completion}}}",
            f"model.fast_inference={str(vllm).lower()}", f"model.gpu_memory_utilization={args.vllm_gpu_util}",
            *(["model.load_in_4bit=false"] if bf16 else []),
        ])
        module = grpo
    t_setup = time.perf_counter()
    session = module.setup(cfg, choice)
    setup_s = time.perf_counter() - t_setup
    timer = StepTimer()
    session.trainer.add_callback(timer.callback())
    module.train(session)
    timed = timer.times[args.warmup:]
    return {
        "recipe": recipe,
        "backend": variant,
        "generation": ("vLLM" if vllm else "transformers") if recipe == "grpo" else None,
        "vllm_gpu_memory_utilization": args.vllm_gpu_util if vllm else None,
        "shape": "Llama-3.1-8B (Qwen2 vocabulary)" if recipe == "sft" else "Qwen2.5-3B-Instruct",
        "parameters": n_params,
        "config": cfg.source,
        "batch": {k: cfg.training.get(k) for k in ("per_device_train_batch_size", "gradient_accumulation_steps",
                                                    "num_generations", "max_completion_length")},
        "sft_row_tokens_about": args.sft_tokens if recipe == "sft" else None,
        "adjustments": [a.to_dict() for a in session.adjustments],
        "setup_seconds": round(setup_s, 2),
        "warmup_steps": args.warmup,
        "timed_steps": len(timed),
        "step_seconds_all": [round(t, 3) for t in timer.times],
        "step_seconds_median": round(statistics.median(timed), 3) if timed else None,
        "step_seconds_mean": round(statistics.fmean(timed), 3) if timed else None,
        "peak_memory_allocated_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "peak_memory_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2),
        "peak_device_used_gib": round(max(timer.device_used), 2) if timer.device_used else None,
    }


# ---------------------------------------------------------------------------------------------------------
# the driver: one subprocess per combination, then ratios
# ---------------------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("medbench", "torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "unsloth",
                 "unsloth_zoo", "vllm"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _device() -> dict[str, str]:
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/train_step.py measures GPU training: no CUDA device is visible here. "
                         "Run it on the GPU machine (see the module docstring).")
    p = torch.cuda.get_device_properties(0)
    return {"gpu": p.name, "gpu_memory_gib": round(p.total_memory / 2**30, 1), "cuda": str(torch.version.cuda),
            "cpu_count": str(os.cpu_count()), "platform": platform.platform()}


def _ratio(results: list[dict], recipe: str, key: str, num: str = "unsloth", den: str = "trl") -> float | None:
    by = {r["backend"]: r for r in results if r["recipe"] == recipe and "error" not in r}
    if num in by and den in by and by[den].get(key) and by[num].get(key) is not None:
        return round(by[num][key] / by[den][key], 3)
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", default=str(REPO.parent / "shared" / "realdata" / "tokenizers"),
                    help="folder holding Qwen2-1.5B-Instruct_via_Qwen2-Boundless/ and Qwen2.5-Instruct_chat_template/")
    ap.add_argument("--only", nargs="*", choices=COMBOS, default=list(COMBOS), help="combinations to run")
    ap.add_argument("--warmup", type=int, default=2, help="optimizer steps excluded from the timing")
    ap.add_argument("--steps", type=int, default=5, help="timed optimizer steps")
    ap.add_argument("--sft-tokens", type=int, default=1024, help="approximate tokens per SFT row")
    ap.add_argument("--grpo-completion", type=int, default=256, help="tokens per GRPO completion (pinned)")
    ap.add_argument("--vllm-gpu-util", type=float, default=0.15,
                    help="vLLM's share of the GPU in the -vllm GRPO combinations (the same for each)")
    ap.add_argument("--work-dir", default=None,
                    help="scratch folder for the random models, shared by the backends (default: a temp folder)")
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "results"), help="where the JSON goes")
    ap.add_argument("--out-name", default=None, help="the JSON's file name (default train_step_<gpu>.json)")
    ap.add_argument("--timeout", type=int, default=900, help="seconds allowed per combination")
    ap.add_argument("--worker", nargs=2, metavar=("RECIPE", "BACKEND"), help=argparse.SUPPRESS)
    ap.add_argument("--result-file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        result = worker(args.worker[0], args.worker[1], args)
        Path(args.result_file).write_text(json.dumps(result))
        return 0

    device = _device()
    args.work_dir = args.work_dir or tempfile.mkdtemp(prefix="medbench_train_step_")
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)  # a named --work-dir need not exist yet
    results = []
    for combo in args.only:
        recipe, backend = combo.split(":")
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
            result_file = fh.name
        cmd = [sys.executable, __file__, "--worker", recipe, backend, "--result-file", result_file,
               "--tokenizer", args.tokenizer, "--warmup", str(args.warmup), "--steps", str(args.steps),
               "--sft-tokens", str(args.sft_tokens), "--grpo-completion", str(args.grpo_completion),
               "--vllm-gpu-util", str(args.vllm_gpu_util), "--work-dir", args.work_dir]
        print(f"== {combo}", flush=True)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, check=False, timeout=args.timeout, text=True, capture_output=True)
            if proc.returncode == 0:
                results.append(json.loads(Path(result_file).read_text()))
            else:
                results.append({"recipe": recipe, "backend": backend, "error": proc.stderr[-3000:]})
        except subprocess.TimeoutExpired:
            results.append({"recipe": recipe, "backend": backend, "error": f"timed out after {args.timeout} s"})
        results[-1]["wall_seconds"] = round(time.perf_counter() - t0, 1)
        print(json.dumps({k: v for k, v in results[-1].items() if k != "step_seconds_all"}, indent=1), flush=True)

    ratios = {
        "sft_step_time_unsloth_over_trl": _ratio(results, "sft", "step_seconds_median"),
        "sft_peak_memory_unsloth_over_trl": _ratio(results, "sft", "peak_memory_reserved_gib"),
        "grpo_step_time_unsloth_over_trl": _ratio(results, "grpo", "step_seconds_median"),
        "grpo_peak_memory_unsloth_over_trl": _ratio(results, "grpo", "peak_memory_reserved_gib"),
        "grpo_step_time_unsloth_vllm_over_unsloth": _ratio(results, "grpo", "step_seconds_median",
                                                           "unsloth-vllm", "unsloth"),
        "grpo_step_time_unsloth_vllm_over_trl_vllm": _ratio(results, "grpo", "step_seconds_median",
                                                            "unsloth-vllm", "trl-vllm"),
        "grpo_device_memory_unsloth_vllm_over_trl_vllm": _ratio(results, "grpo", "peak_device_used_gib",
                                                                "unsloth-vllm", "trl-vllm"),
    }
    met = {k: (ratios[k] <= v if ratios.get(k) is not None else None) for k, v in TARGETS.items()}
    slug = device["gpu"].lower().replace("nvidia", "").strip().replace(" ", "_").replace("/", "_")
    out = Path(args.out_dir) / (args.out_name or f"train_step_{slug}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "train_step",
        "what": "median optimizer-step time (warm-up excluded) and peak GPU memory of medbench's SFT and GRPO "
                "recipes, Unsloth vs plain TRL + PEFT, on random-weight models of the real architectures",
        "command": "python benchmarks/train_step.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "device": device,
        "versions": _versions(),
        "settings": {"warmup_steps": args.warmup, "timed_steps": args.steps, "sft_row_tokens": args.sft_tokens,
                     "grpo_completion_tokens": args.grpo_completion, "vllm_gpu_util": args.vllm_gpu_util},
        "results": results,
        "ratios": ratios,
        "targets": TARGETS,
        "targets_met": met,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }, indent=2) + "\n")
    print(f"wrote {out}")
    print(json.dumps({"ratios": ratios, "targets_met": met}, indent=1))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
