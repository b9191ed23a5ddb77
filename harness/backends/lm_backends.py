"""Build lm-eval model objects (``hf`` = transformers through :class:`lm_eval.models.huggingface.HFLM`,
``medbench-fast`` = the same HFLM with medbench's fast greedy generation and shared-context loglikelihoods,
:class:`medbench.harness.backends.fast.MedbenchFastLM`, ``vllm`` = :class:`lm_eval.models.vllm_causallms.VLLM`)
for a resolved checkpoint. ``hf`` and ``medbench-fast`` are built by the same code with the same arguments.

Adapters are never merged: ``HFLM(peft=...)`` wraps the base in a ``PeftModel``, and vLLM serves the adapter
through its LoRA support. Both classes are subclassed only to time each generation batch (lm-eval's
documented way to extend HFLM), so every sample gets an honest ``gen_time_s``.

Multi-GPU: ``hf`` runs data-parallel when started with ``accelerate launch -m medbench.harness.cli bench ...``
(lm-eval's own mechanism: one model copy per GPU); ``vllm`` takes tensor and data parallel sizes.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from medbench.harness.run.checkpoints import ResolvedCheckpoint
from medbench.harness.run.spec import BenchSpec

#: LoRA ranks that vLLM accepts for ``max_lora_rank``.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


class BackendError(RuntimeError):
    """The chosen backend can't run here (missing optional package, no GPU); the message says what to install."""


class _TimedGenerate:
    """Mixin: remember the duration and size of the last generation batch (read by the runner's cache hook)."""

    last_batch: tuple[float, int] | None = None

    def _model_generate(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = super()._model_generate(*args, **kwargs)  # type: ignore[misc]
        try:
            n = len(out)
        except TypeError:
            n = 1
        self.last_batch = (time.perf_counter() - start, max(1, n))
        return out


def default_device(spec: BenchSpec) -> str:
    if spec.device:
        return spec.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def effective_batch_size(spec: BenchSpec, device: str) -> int | str:
    """lm-eval's ``auto`` probes the largest batch that fits a GPU at the model's full context length; on a
    CPU that probe allocates far more memory than the machine has, so ``auto`` means 1 there."""
    if str(spec.batch_size).startswith("auto") and device.startswith("cpu"):
        return 1
    return spec.batch_size


def resolve_backend(spec: BenchSpec) -> str:
    """The backend that ``spec.backend`` means here: ``auto`` is medbench-fast on a CUDA GPU, stock hf on a CPU.

    Why medbench-fast and not vLLM on a GPU, measured on an H200 (benchmarks/results/gpu_backends.json, 3B shape,
    256 PubMedQA prompts x 256 tokens): stock hf 0.7k tok/s (and lm-eval's ``auto`` batch probe, sized by the
    model's 32k context, spent minutes to pick 3), medbench-fast 11.8k, vLLM 25.6k but after an engine start of
    minutes (torch.compile, CUDA graphs, kernel JIT) that a bench run of a few thousand requests never wins back.
    ``--backend vllm`` is the choice for large runs. medbench-fast falls back to HFLM's own path for what its
    slot decoder does not cover (sampling, unsupported architectures), so ``auto`` runs every model hf runs.
    On a CPU the two give identical greedy completions at the same speed; hf is the reference.
    """
    if spec.backend != "auto":
        return spec.backend
    return "hf" if default_device(spec).startswith("cpu") else "medbench-fast"


def check_backend(spec: BenchSpec) -> None:
    """Fail before any model is loaded when the chosen backend or loading mode can't run on this machine."""
    if resolve_backend(spec) == "vllm" and importlib.util.find_spec("vllm") is None:
        raise BackendError("--backend vllm needs vLLM, which is not installed: pip install 'medbench[vllm]' "
                           "(on a CUDA machine), or use --backend hf")
    if spec.load_in_4bit:
        import torch

        if importlib.util.find_spec("bitsandbytes") is None:
            raise BackendError("--load-in-4bit needs bitsandbytes, which is not installed: "
                               "pip install bitsandbytes (it is part of the medbench[unsloth] extra)")
        if not torch.cuda.is_available() or default_device(spec).startswith("cpu"):
            raise BackendError("--load-in-4bit needs a CUDA GPU (bitsandbytes 4-bit kernels); on a CPU drop it")


def build_lm(ck: ResolvedCheckpoint, spec: BenchSpec) -> Any:
    """An lm-eval ``LM`` for one checkpoint, loaded and ready to evaluate."""
    if resolve_backend(spec) == "vllm":
        return _build_vllm(ck, spec)
    return _build_hf(ck, spec)


def _hf_class(backend: str) -> type:
    """lm-eval's HFLM, or medbench's fast subclass of it, timed (see :class:`_TimedGenerate`). The fast model
    times its own generations; its fall-back to HFLM's path goes through the timed ``_model_generate``."""
    if backend == "medbench-fast":
        from medbench.harness.backends.fast import MedbenchFastLM as base
    else:
        from lm_eval.models.huggingface import HFLM as base

    return type(f"Timed{base.__name__}", (_TimedGenerate, base), {})


def _build_hf(ck: ResolvedCheckpoint, spec: BenchSpec) -> Any:
    TimedHFLM = _hf_class(resolve_backend(spec))

    device = default_device(spec)
    common: dict[str, Any] = {
        "batch_size": effective_batch_size(spec, device),
        "trust_remote_code": spec.trust_remote_code,
    }
    if spec.load_in_4bit:
        model, tokenizer = _load_4bit(ck, spec, device)
        return TimedHFLM(pretrained=model, tokenizer=tokenizer, **common)
    return TimedHFLM(
        pretrained=ck.model,
        revision=ck.revision or "main",
        tokenizer=ck.tokenizer,
        peft=ck.adapter,
        dtype=spec.dtype,
        device=device,
        **common,
    )


def _load_4bit(ck: ResolvedCheckpoint, spec: BenchSpec, device: str) -> tuple[Any, Any]:
    """4-bit NF4 loading (bitsandbytes), with the adapter on top, unmerged.

    transformers 5 no longer takes ``load_in_4bit=True`` as a ``from_pretrained`` keyword, which is how
    HFLM passes it, so the model is built here with a ``BitsAndBytesConfig`` and handed to HFLM.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    compute = {"float16": torch.float16, "float32": torch.float32}.get(spec.dtype, torch.bfloat16)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
                               bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(
        ck.model, revision=ck.revision or "main", quantization_config=quant, dtype=compute,
        device_map={"": device if ":" in device else f"{device}:0"}, trust_remote_code=spec.trust_remote_code,
    )
    tokenizer = AutoTokenizer.from_pretrained(ck.tokenizer or ck.model, trust_remote_code=spec.trust_remote_code)
    if ck.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, ck.adapter, is_trainable=False)
    model.eval()
    return model, tokenizer


def _build_vllm(ck: ResolvedCheckpoint, spec: BenchSpec) -> Any:
    from lm_eval.models.vllm_causallms import VLLM

    class TimedVLLM(_TimedGenerate, VLLM):
        pass

    lora_path = None
    if ck.adapter:
        from pathlib import Path

        lora_path = ck.adapter
        if not Path(lora_path).is_dir():  # vLLM wants a local folder
            from huggingface_hub import snapshot_download

            lora_path = snapshot_download(ck.adapter, revision=ck.revision)
    kwargs: dict[str, Any] = {
        "pretrained": ck.model,
        "revision": ck.revision if ck.kind == "hub" else None,
        "tokenizer": ck.tokenizer,
        "dtype": spec.dtype,
        "trust_remote_code": spec.trust_remote_code,
        "batch_size": spec.batch_size,
        "tensor_parallel_size": spec.vllm.tensor_parallel_size,
        "data_parallel_size": spec.vllm.data_parallel_size,
        "gpu_memory_utilization": spec.vllm.gpu_memory_utilization,
        "seed": spec.seed,
    }
    if spec.vllm.max_model_len:
        kwargs["max_model_len"] = spec.vllm.max_model_len
    if lora_path:
        rank = ck.adapter_rank or 16
        kwargs["lora_local_path"] = lora_path
        kwargs["max_lora_rank"] = next((r for r in VLLM_LORA_RANKS if r >= rank), rank)
    if spec.load_in_4bit:
        kwargs["quantization"] = "bitsandbytes"
    return TimedVLLM(**kwargs)


def count_tokens_fn(lm: Any):
    """The evaluated model's own tokenizer as a token counter (what the graders record lengths in); it also
    counts a list of texts in batched calls (``.many``), which the run-directory rows use."""
    from medbench.harness.run.sample_rows import TokenizerCounter

    return TokenizerCounter(lm.tokenizer)
