"""vLLM in a bench: one engine for a base model and all its LoRA adapters, and when ``--backend auto`` picks it.

**One engine per base.** A vLLM engine start is the expensive part of a vLLM run: measured on an H200 for the
Qwen2.5-3B shape, 292 s the first time on a machine (kernel JIT, torch.compile, CUDA-graph capture) and about
70 s once its caches are warm (benchmarks/results/gpu_backends.json). The recipes' bench is base → SFT → GRPO
where SFT and GRPO are LoRA adapters of the base: one engine per checkpoint would pay that three times and, in
one process, relies on vLLM giving all of its GPU memory back between them. vLLM serves a base and its adapters
from one engine (a ``LoRARequest`` per call, adapters never merged), the use its authors intend. lm-eval's
``VLLM`` model takes one adapter when it is built and passes its ``lora_request`` attribute on every
``generate`` call (generation and loglikelihood alike), so the engine is built once with LoRA enabled at the
largest rank of the group and ``lora_request`` is switched per checkpoint (``None`` for the base).

Checkpoints share an engine only where nothing they are asked or answer changes: the same base model and
revision, and tokenizers that read the same (vocabulary, added and special tokens, chat template). An adapter
that saved a tokenizer with another template gets its own engine.

**When ``auto`` means vLLM** (on a CUDA GPU, vLLM installed): when its engine starts cost less than its faster
decoding saves on the run's planned generation, estimated with the rates measured on the H200 (3B shape, same
requests; :data:`RATES`). A ``--limit 128`` bench of one task is faster on medbench-fast (no engine start); a full
bench of the recipes' tasks over three checkpoints is faster on vLLM. The choice and its estimate are printed and
recorded in run.json; ``--backend`` names one outright.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.harness.run.checkpoints import ResolvedCheckpoint

#: Generation rates (tokens/s) and start costs (s) measured on one H200, random-weight Qwen2.5-3B shape, 256 real
#: PubMedQA prompts x 256 new tokens (benchmarks/results/gpu_backends.json; medbench-fast's load is the model
#: load of a bench command, vLLM's start the warm-cache engine start of the same machine). Only their ratios
#: matter for the choice; other GPUs and shapes move both backends alike.
RATES: dict[str, float] = {
    "medbench-fast": 11_960.0, "medbench-fast+lora": 7_165.0, "vllm": 19_321.0, "vllm+lora": 16_098.0,
    "medbench-fast_load_s": 13.0, "vllm_start_s": 68.0,
    # a first start on a machine (empty compile cache): 228 s and 292 s in two H200 sessions
    "vllm_cold_start_s": 228.0,
}


def vllm_cache_warm(cache_root: str | None = None) -> bool:
    """Whether vLLM's torch.compile cache holds anything on this machine (``VLLM_CACHE_ROOT``, default
    ``~/.cache/vllm``): an engine start takes about 68 s with it and 228-292 s without (kernel JIT,
    torch.compile, CUDA-graph capture), which decides whether a mid-sized run pays for vLLM."""
    root = Path(cache_root or os.environ.get("VLLM_CACHE_ROOT") or Path.home() / ".cache" / "vllm")
    compiled = root / "torch_compile_cache"
    return compiled.is_dir() and any(compiled.iterdir())


@dataclass(frozen=True)
class AutoChoice:
    """What ``--backend auto`` chose on a GPU, and the estimate behind it (seconds of generation + starts)."""

    backend: str
    reason: str
    estimate_s: dict[str, float] = field(default_factory=dict)
    planned_tokens: int = 0

    def to_meta(self) -> dict[str, Any]:
        return {"backend": self.backend, "reason": self.reason, "planned_generated_tokens": self.planned_tokens,
                "estimate_s": self.estimate_s}


#: vLLM's own default share of GPU memory, used when the GPU has that much free.
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9


def default_gpu_memory_utilization(free_bytes: int, total_bytes: int, *, margin: float = 0.02) -> float:
    """The share of GPU memory a vLLM engine asks for when ``--gpu-memory-utilization`` is not given.

    vLLM refuses to start when less than ``utilization x total`` is free at startup ("Free memory on device ...
    is less than desired GPU memory utilization"): seen on the H200 when the launching process still held 14 GiB
    of its allocator's cache. Its 0.9 is kept where that much is free; otherwise the engine takes what is free
    less a small margin (rounded down to a hundredth), so a default command starts instead of failing."""
    if total_bytes <= 0:
        return DEFAULT_GPU_MEMORY_UTILIZATION
    free_share = free_bytes / total_bytes - margin
    if free_share >= DEFAULT_GPU_MEMORY_UTILIZATION:
        return DEFAULT_GPU_MEMORY_UTILIZATION
    return max(0.01, int(free_share * 100) / 100)


def planned_tokens(task_tokens: Sequence[tuple[int, int]]) -> int:
    """Generated tokens a run can take at most: documents x token limit over its generation tasks, given as
    (documents, max_gen_toks) pairs (loglikelihood tasks generate nothing and cost both backends alike)."""
    return sum(n * limit for n, limit in task_tokens)


def choose_auto(checkpoints: Sequence[ResolvedCheckpoint], per_checkpoint_tokens: int, *, engines: int,
                rates: dict[str, float] | None = None, warm_cache: bool = True) -> AutoChoice:
    """vLLM or medbench-fast for a GPU run, from the estimated time of each (see the module docstring).

    ``per_checkpoint_tokens`` is :func:`planned_tokens` of the run; ``engines`` how many vLLM engines the run
    needs (:func:`engine_keys`: one per base model and tokenizer); ``warm_cache`` whether the first of them
    starts with a warm compile cache (:func:`vllm_cache_warm`; the later ones always do)."""
    rates = RATES if rates is None else rates
    fast = vllm = 0.0
    for ck in checkpoints:
        lora = "+lora" if ck.adapter else ""
        fast += rates["medbench-fast_load_s"] + per_checkpoint_tokens / rates["medbench-fast" + lora]
        vllm += per_checkpoint_tokens / rates["vllm" + lora]
    vllm += engines * rates["vllm_start_s"]
    if not warm_cache and engines:
        vllm += rates["vllm_cold_start_s"] - rates["vllm_start_s"]
    total = per_checkpoint_tokens * len(checkpoints)
    estimate = {"vllm": round(vllm, 1), "medbench-fast": round(fast, 1)}
    cold = "" if warm_cache else " (the first cold: no compile cache yet)"
    if vllm < fast:
        return AutoChoice("vllm", f"vLLM is estimated faster for {total:,} planned generated tokens "
                                  f"({vllm:.0f} s with {engines}{cold} engine start(s) vs {fast:.0f} s)", estimate,
                          total)
    return AutoChoice("medbench-fast", f"medbench-fast is estimated faster for {total:,} planned generated "
                                       f"tokens ({fast:.0f} s vs {vllm:.0f} s with {engines}{cold} vLLM engine "
                                       f"start(s))", estimate, total)


def tokenizer_fingerprint(source: str, revision: str | None = None) -> str:
    """A digest of what a tokenizer does to a prompt and a completion: vocabulary, added and special tokens,
    chat template. Two tokenizer folders with the same fingerprint tokenize and template alike, whatever
    else their files hold (an adapter's save often rewrites tokenizer_config.json with other bookkeeping)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source, revision=revision)
    what = {
        "vocab": sorted(tok.get_vocab().items()),
        "added": sorted((i, str(t)) for i, t in tok.added_tokens_decoder.items()),
        "special": {k: str(v) for k, v in sorted(tok.special_tokens_map.items())},
        "chat_template": tok.chat_template,
        "bos": bool(getattr(tok, "add_bos_token", False)),
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def engine_keys(checkpoints: Sequence[ResolvedCheckpoint],
                fingerprint: Callable[[str, str | None], str] = tokenizer_fingerprint) -> dict[str, tuple]:
    """Checkpoint name -> the engine it runs on: checkpoints with equal keys share one vLLM engine."""
    memo: dict[tuple[str, str | None], str] = {}
    keys = {}
    for ck in checkpoints:
        tok = (ck.tokenizer or ck.model, ck.revision)
        if tok not in memo:
            memo[tok] = fingerprint(*tok)
        keys[ck.name] = (ck.model, ck.revision, memo[tok])
    return keys


def lora_request(name: str, lora_id: int, path: str) -> Any:
    """vLLM's request for one adapter (its ids must differ between adapters served by one engine)."""
    from vllm.lora.request import LoRARequest

    return LoRARequest(name, lora_id, path)


class SharedVLLM:
    """The run's vLLM engines, one per :func:`engine_keys` group, each built on first use and released after the
    last checkpoint of its group (the runner goes through checkpoints in order).

    ``build(ck, adapter_rank)`` builds lm-eval's VLLM model for ``ck`` with LoRA enabled up to ``adapter_rank``
    when given (``medbench.harness.backends.lm_backends.build_vllm``); ``local_adapter(ck)`` is the adapter's local
    folder (a hub adapter is downloaded)."""

    def __init__(self, checkpoints: Sequence[ResolvedCheckpoint], build: Callable[..., Any],
                 local_adapter: Callable[[ResolvedCheckpoint], str], keys: dict[str, tuple]) -> None:
        self.order = [ck.name for ck in checkpoints]
        self.keys = keys
        self.build, self.local_adapter = build, local_adapter
        self.engines: dict[tuple, Any] = {}
        self.failed: dict[tuple, str] = {}
        self.lora_ids: dict[str, int] = {}
        self.by_name = {ck.name: ck for ck in checkpoints}

    @property
    def count(self) -> int:
        return len(set(self.keys.values()))

    def group(self, name: str) -> list[ResolvedCheckpoint]:
        return [self.by_name[n] for n in self.order if self.keys[n] == self.keys[name]]

    def lm_for(self, ck: ResolvedCheckpoint) -> tuple[Any, bool]:
        """The engine's lm-eval model set up to answer as ``ck`` (its adapter, or none), and whether this call
        started the engine (the others reuse it)."""
        key = self.keys[ck.name]
        if key in self.failed:
            raise RuntimeError(f"the vLLM engine for {ck.model} failed to start for an earlier checkpoint: "
                               f"{self.failed[key]}")
        started = key not in self.engines
        if started:
            group = self.group(ck.name)
            first = next((c for c in group if c.adapter), ck)  # LoRA on when any of the group has an adapter
            ranks = [c.adapter_rank or 16 for c in group if c.adapter]
            try:
                self.engines[key] = self.build(first, adapter_rank=max(ranks) if ranks else None)
            except Exception as e:
                self.failed[key] = f"{type(e).__name__}: {e}"
                raise
        lm = self.engines[key]
        if ck.adapter:
            lora_id = self.lora_ids.setdefault(ck.name, len(self.lora_ids) + 1)
            lm.lora_request = lora_request(ck.name, lora_id, self.local_adapter(ck))
        else:
            lm.lora_request = None
        return lm, started

    def done(self, ck: ResolvedCheckpoint) -> None:
        """``ck`` is finished: release its engine when no later checkpoint runs on it."""
        key = self.keys[ck.name]
        later = self.order[self.order.index(ck.name) + 1:]
        if not any(self.keys[n] == key for n in later):
            self.engines.pop(key, None)
