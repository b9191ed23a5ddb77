"""Build lm-eval model objects (``hf`` = transformers through :class:`lm_eval.models.huggingface.HFLM`,
``medbench-fast`` = the same HFLM with medbench's fast greedy generation and shared-context loglikelihoods,
:class:`medbench.harness.backends.fast.MedbenchFastLM`, ``vllm`` = :class:`lm_eval.models.vllm_causallms.VLLM`)
for a resolved checkpoint. ``hf`` and ``medbench-fast`` are built by the same code with the same arguments.

Adapters are never merged: ``HFLM(peft=...)`` wraps the base in a ``PeftModel``, and vLLM serves the adapter
through its LoRA support. Both classes are subclassed only to time each generation batch (lm-eval's
documented way to extend HFLM), so every sample gets an honest ``gen_time_s``.

Several GPUs: ``hf`` and ``medbench-fast`` run data-parallel under ``torchrun`` / ``accelerate launch``
(lm-eval's own mechanism: one model copy per process, :class:`DataParallelRanks`,
:mod:`medbench.harness.run.shard`); ``vllm`` runs in one process and takes tensor and data parallel sizes.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import Any

from medbench.harness.run.checkpoints import ResolvedCheckpoint
from medbench.harness.run.records import GeneratedTokens
from medbench.harness.run.spec import BenchSpec
from medbench.tasks.errors import BackendError  # the one BackendError, shared with the trainers

#: LoRA ranks that vLLM accepts for ``max_lora_rank``.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


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


def count_generated(ids: Sequence[int], *, max_new_tokens: int, eos_ids: Collection[int], stops: Sequence[str],
                    decode: Callable[[list[int]], str]) -> GeneratedTokens:
    """How many tokens one generation really took, from its generated ids, and whether it hit the limit.

    ``ids`` are the ids a backend generated for the request (they may run past where the generation stopped:
    a batch keeps decoding until every row is done, medbench-fast checks stop strings every few steps, and
    rows that ended are padded). The count runs to where the request's own generation stopped: up to, not
    counting, the first EOS id, or through the token that completed the first stop string (``decode`` keeps
    special tokens, as lm-eval's stop check does). ``hit_limit`` is true only when neither happened and the
    ids reached ``max_new_tokens``; so a count never exceeds the limit, whatever re-tokenising the text says.
    """
    ids = list(ids)
    eos = set(eos_ids)
    end = next((i for i, t in enumerate(ids) if t in eos), None)
    if end is not None:
        ids = ids[:end]
    stops = [s for s in stops if s]

    def stopped(k: int) -> bool:
        if k <= 0:
            return False
        text = decode(ids[:k])
        return any(s in text for s in stops)

    if stops and stopped(len(ids)):
        # the shortest prefix holding a stop string; it is usually near the end, so search back from there
        hi, step = len(ids), 16
        lo = hi - step
        while lo > 0 and stopped(lo):
            hi, step = lo, step * 2
            lo = len(ids) - step
        lo = max(lo, 0)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if stopped(mid) else (mid, hi)
        return GeneratedTokens(hi, False)
    return GeneratedTokens(len(ids), end is None and len(ids) >= max_new_tokens)


def generated_token_chars(ids: Sequence[int], tokenizer: Any) -> bytes | None:
    """How many characters each of ``ids`` adds to their decoded text (``tokenizer.decode(ids,
    skip_special_tokens=True)``, as lm-eval decodes a generation), in the form of
    :attr:`GeneratedTokens.token_chars`; ``None`` when the tokenizer has no incremental decoder (a slow
    tokenizer) or the pieces do not add up to the decoded text.

    The fast tokenizer's ``DecodeStream`` gives each id's piece of the text exactly as ``decode`` builds it
    (spaces of SentencePiece, byte-level multi-byte characters: an id that only begins a character adds nothing,
    the one that completes it adds the character); ~1.5 µs an id.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    try:
        from tokenizers.decoders import DecodeStream
    except ImportError:
        return None
    if backend is None:
        return None
    stream = DecodeStream(skip_special_tokens=True)
    pieces: list[str] = []
    lengths = array("H")
    try:
        for i in ids:
            piece = stream.step(backend, int(i))
            if piece:
                if len(piece) > 0xFFFF:
                    return None
                pieces.append(piece)
            lengths.append(len(piece) if piece else 0)
        if "".join(pieces) != tokenizer.decode(list(ids), skip_special_tokens=True):
            return None
    except Exception:  # noqa: BLE001 - an id the stream cannot take: the text is re-tokenised instead
        return None
    if sys.byteorder != "little":
        lengths.byteswap()
    return lengths.tobytes()


class _CountingHook:
    """lm-eval's cache hook (``lm_eval.api.model.CacheHook``), wrapped: each finished generation first takes
    its token count (see :class:`GeneratedTokenCounts`), then goes on to the wrapped hook (the request cache)
    unchanged."""

    def __init__(self, inner: Any, lm: GeneratedTokenCounts) -> None:
        self.inner = inner
        self.lm = lm

    @property
    def dbdict(self) -> Any:
        return self.inner.dbdict

    def add_partial(self, attr: str, req: Any, res: Any) -> None:
        if attr == "generate_until":
            self.lm._take_count(req)
        self.inner.add_partial(attr, req, res)


class GeneratedTokenCounts:
    """Mixin for lm-eval's ``HFLM`` (stock ``hf``, and ``medbench-fast``): count every generation's tokens from
    its generated ids (:func:`count_generated`), the one thing lm-eval's text results cannot tell.

    Side channel: lm-eval reports each finished generation through the model's cache hook as
    ``add_partial("generate_until", (context, gen_kwargs), text)``, in the order the backend produced them.
    The backend queues the counts of the generations it is about to report (:meth:`expect_counts`; stock HF's
    ``_model_generate`` does so for its batch here), and the wrapped hook pairs each with its request. The
    counts are kept in :attr:`generated_tokens` by :func:`~medbench.harness.run.sample_rows.request_key` and
    handed to :attr:`on_generated` (the runner persists them in the run directory before the generation
    reaches the request cache, so a resumed run still has them)."""

    #: Called with (request key, counts) for each finished generation, when set.
    on_generated: Callable[[str, GeneratedTokens], None] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.generated_tokens: dict[str, GeneratedTokens] = {}
        self._expected: deque[GeneratedTokens] = deque()
        super().__init__(*args, **kwargs)
        self.set_cache_hook(self.cache_hook)  # the default hook too: counts without a request cache

    def set_cache_hook(self, cache_hook: Any) -> None:
        inner = cache_hook.inner if isinstance(cache_hook, _CountingHook) else cache_hook
        super().set_cache_hook(_CountingHook(inner, self))  # type: ignore[misc]

    def eos_token_ids(self) -> list[int]:
        """The ids that end a generation (the model's ``generation_config``, as ``generate`` uses them)."""
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)  # type: ignore[attr-defined]
        if eos is None:
            eos = self.eot_token_id  # type: ignore[attr-defined]
        return [eos] if isinstance(eos, int) else list(eos)

    def count_generation(self, ids: Sequence[int], max_new_tokens: int, stops: Sequence[str]) -> GeneratedTokens:
        """:func:`count_generated` with this model's EOS ids and tokenizer, with where each counted token lies in
        the text (:func:`generated_token_chars`) when the completion is that decoded text's beginning (lm-eval
        cuts a think block out of it when ``think_end_token`` is set: then the regions are re-tokenised)."""
        tokenizer = self.tokenizer  # type: ignore[attr-defined]
        counted = count_generated(ids, max_new_tokens=max_new_tokens, eos_ids=self.eos_token_ids(), stops=stops,
                                  decode=lambda t: tokenizer.decode(t, skip_special_tokens=False))
        if getattr(self, "think_end_token", None) is not None:
            return counted
        chars = generated_token_chars(list(ids)[: counted.n_tokens], tokenizer)
        return GeneratedTokens(counted.n_tokens, counted.hit_limit, chars)

    def expect_counts(self, counts: Sequence[GeneratedTokens]) -> None:
        """The counts of the next generations this model reports through its cache hook, in that order."""
        self._expected = deque(counts)

    def _take_count(self, req: Any) -> None:
        if not self._expected:
            return  # a generation nobody counted (a backend path without ids): the text is re-counted later
        from medbench.harness.run.sample_rows import request_key

        counted = self._expected.popleft()
        key = request_key(req)
        self.generated_tokens[key] = counted
        if self.on_generated is not None:
            self.on_generated(key, counted)

    def _model_generate(self, context: Any, max_length: int, stop: list[str], **kwargs: Any) -> Any:
        out = super()._model_generate(context, max_length=max_length, stop=stop, **kwargs)  # type: ignore[misc]
        if getattr(self, "backend", "causal") == "causal":
            width = int(context.shape[1])
            self.expect_counts([self.count_generation(row, max_length - width, stop)
                                for row in out[:, width:].tolist()])
        return out


class DataParallelRanks:
    """Mixin for lm-eval's ``HFLM`` (stock ``hf`` and ``medbench-fast``): under ``accelerate launch`` /
    ``torchrun``, take this process's rank and the number of processes from accelerate, so lm-eval's own data
    parallelism shards the documents and gathers them on rank 0 (see :mod:`medbench.harness.run.shard`).

    HFLM does so only when it sees more than one GPU (``lm_eval/models/huggingface.py``: ``elif gpus > 1``), and
    never for a model passed in already built (the 4-bit path); on CPU processes (gloo), with one GPU visible
    per process, or in 4-bit, every process would otherwise score every document into rank 0's request cache.

    ``--batch-size auto`` is probed per process: lm-eval takes the minimum over processes with an all-gather
    inside the model call, and on a resumed run a process whose requests are all cached never makes that call,
    so the others would wait for it forever.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from medbench.harness.run.shard import current_launch

        launch = current_launch()
        if not launch.several or self.world_size > 1:  # type: ignore[attr-defined]
            return
        accelerator = getattr(self, "accelerator", None)
        if accelerator is None:  # a model built here (4-bit): HFLM made no Accelerator
            from datetime import timedelta

            from accelerate import Accelerator, InitProcessGroupKwargs

            accelerator = Accelerator(kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(weeks=52))])
            self.accelerator = accelerator
        self._rank = accelerator.process_index
        self._world_size = accelerator.num_processes

    def _detect_batch_size(self, requests: Any = None, pos: int = 0) -> int:
        world, self._world_size = self._world_size, 1
        try:
            return super()._detect_batch_size(requests, pos)  # type: ignore[misc]
        finally:
            self._world_size = world


def default_device(spec: BenchSpec) -> str:
    """``--device``, else this process's GPU (``cuda:LOCAL_RANK`` under a launcher of several processes, which
    the 4-bit path places its weights on), else the CPU."""
    if spec.device:
        return spec.device
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    from medbench.harness.run.shard import current_launch

    launch = current_launch()
    return f"cuda:{launch.local_rank}" if launch.several else "cuda"


def effective_batch_size(spec: BenchSpec, device: str) -> int | str:
    """lm-eval's ``auto`` probes the largest batch that fits a GPU at the model's full context length; on a
    CPU that probe allocates far more memory than the machine has, so ``auto`` means 1 there."""
    if str(spec.batch_size).startswith("auto") and device.startswith("cpu"):
        return 1
    return spec.batch_size


def resolve_backend(spec: BenchSpec) -> str:
    """The backend that ``spec.backend`` means before the run's size is known: ``auto`` is medbench-fast on a
    CUDA GPU, stock hf on a CPU. The runner then may turn a GPU ``auto`` into vLLM, where vLLM is installed and
    the run is large enough to win back its engine start (:func:`medbench.harness.backends.vllm_engine.choose_auto`).

    Measured on an H200 (benchmarks/results/gpu_backends.json, 3B shape, 256 PubMedQA prompts x 256 tokens):
    stock hf 0.8k tok/s (and lm-eval's ``auto`` batch probe, sized by the model's 32k context, spent minutes to
    pick 3), medbench-fast 12.0k, vLLM 19.3k, but only after an engine start of 70 s (warm caches) to 290 s
    (first on a machine) that a bench of a few hundred requests never wins back. medbench-fast falls back to
    HFLM's own path for what its slot decoder does not cover (sampling, unsupported architectures), so ``auto``
    runs every model hf runs. On a CPU the two give identical greedy completions at the same speed; hf is the
    reference.
    """
    if spec.backend != "auto":
        return spec.backend
    return "hf" if default_device(spec).startswith("cpu") else "medbench-fast"


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def check_backend(spec: BenchSpec) -> None:
    """Fail before any model is loaded when the chosen backend or loading mode can't run on this machine."""
    if resolve_backend(spec) == "vllm" and not vllm_installed():
        raise BackendError("--backend vllm needs vLLM, which is not installed: pip install 'medbench[vllm]' "
                           "(on a CUDA machine), or use --backend hf")
    dp = spec.vllm.data_parallel_size
    if resolve_backend(spec) == "vllm" and dp > 1 and importlib.util.find_spec("ray") is None:
        raise BackendError(f"--data-parallel-size {dp} needs ray (lm-eval's vLLM model runs each data-parallel "
                           "engine as a ray actor), which is not installed: pip install ray; or use "
                           "--tensor-parallel-size, or --backend medbench-fast under torchrun (one engine per GPU)")
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
        return build_vllm(ck, spec)
    return _build_hf(ck, spec)


def _hf_class(backend: str) -> type:
    """lm-eval's HFLM, or medbench's fast subclass of it, timed (see :class:`_TimedGenerate`). The fast model
    times its own generations; its fall-back to HFLM's path goes through the timed ``_model_generate``."""
    if backend == "medbench-fast":
        from medbench.harness.backends.fast import MedbenchFastLM  # counts its generations itself

        return type("TimedMedbenchFastLM", (_TimedGenerate, DataParallelRanks, MedbenchFastLM), {})
    from lm_eval.models.huggingface import HFLM

    return type("TimedHFLM", (_TimedGenerate, DataParallelRanks, GeneratedTokenCounts, HFLM), {})


def _build_hf(ck: ResolvedCheckpoint, spec: BenchSpec) -> Any:
    from medbench.harness.run.shard import current_launch, use_launch_device

    TimedHFLM = _hf_class(resolve_backend(spec))

    device = default_device(spec)
    use_launch_device(device, current_launch())  # CPU processes under torchrun: one gloo group
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


#: what ``--batch-size auto`` becomes for vLLM: more than the runner ever sends in one call (it feeds vLLM chunks of
#: 256 requests so that a crash loses at most one chunk), so vLLM still schedules each whole chunk itself
VLLM_AUTO_BATCH = 4096


def _vllm_batch_size(spec: BenchSpec) -> int:
    """An integer batch for lm-eval's VLLM class, also for ``auto``.

    lm-eval's ``auto`` does one more thing than batching: it turns on vLLM's own tqdm bar
    (``use_tqdm=batch_size == "auto"``), and medbench disables tqdm bars (``TQDM_DISABLE=1``: it prints its own
    progress with an ETA). vLLM 0.26 then divides by the disabled bar's elapsed time, 0, and every checkpoint
    fails with ``ZeroDivisionError`` (vllm-project/vllm#28097; seen on an H200 with ``medbench bench --backend
    vllm``). An integer batch at least as large as the runner's chunk schedules the same and draws no bar.
    """
    if isinstance(spec.batch_size, int):
        return spec.batch_size
    return VLLM_AUTO_BATCH


def local_adapter(ck: ResolvedCheckpoint) -> str:
    """The adapter's local folder (vLLM reads adapters from disk): a hub adapter is downloaded first."""
    from pathlib import Path

    assert ck.adapter
    if Path(ck.adapter).is_dir():
        return ck.adapter
    from huggingface_hub import snapshot_download

    return snapshot_download(ck.adapter, revision=ck.revision)


def _gpu_memory_utilization(spec: BenchSpec) -> float:
    """``--gpu-memory-utilization`` when given, else vLLM's 0.9 capped to what the GPU has free (see
    :func:`medbench.harness.backends.vllm_engine.default_gpu_memory_utilization`), said when it is capped."""
    if spec.vllm.gpu_memory_utilization is not None:
        return spec.vllm.gpu_memory_utilization
    import torch
    from medbench.harness.backends.vllm_engine import (
        DEFAULT_GPU_MEMORY_UTILIZATION,
        default_gpu_memory_utilization,
    )

    if not torch.cuda.is_available():
        return DEFAULT_GPU_MEMORY_UTILIZATION
    free, total = torch.cuda.mem_get_info()
    share = default_gpu_memory_utilization(free, total)
    if share < DEFAULT_GPU_MEMORY_UTILIZATION:
        print(f"vLLM: {free / 2**30:.1f} of {total / 2**30:.1f} GiB of GPU memory free; the engine takes "
              f"{share:.2f} of it instead of 0.9 (--gpu-memory-utilization sets it)", file=sys.stderr)
    return share


def build_vllm(ck: ResolvedCheckpoint, spec: BenchSpec, *, adapter_rank: int | None = None) -> Any:
    """lm-eval's VLLM model for ``ck`` (timed). With an adapter, LoRA is enabled with ``max_lora_rank`` covering
    ``adapter_rank`` (default: this adapter's rank), so one engine can serve several adapters of the same base
    (:class:`medbench.harness.backends.vllm_engine.SharedVLLM` switches ``lora_request`` between them)."""
    from lm_eval.models.vllm_causallms import VLLM

    class TimedVLLM(_TimedGenerate, VLLM):
        pass

    kwargs: dict[str, Any] = {
        "pretrained": ck.model,
        "revision": ck.revision if ck.kind == "hub" else None,
        "tokenizer": ck.tokenizer,
        "dtype": spec.dtype,
        "trust_remote_code": spec.trust_remote_code,
        "batch_size": _vllm_batch_size(spec),
        "tensor_parallel_size": spec.vllm.tensor_parallel_size,
        "data_parallel_size": spec.vllm.data_parallel_size,
        "gpu_memory_utilization": _gpu_memory_utilization(spec),
        "seed": spec.seed,
    }
    if spec.vllm.max_model_len:
        kwargs["max_model_len"] = spec.vllm.max_model_len
    if ck.adapter:
        rank = adapter_rank or ck.adapter_rank or 16
        kwargs["lora_local_path"] = local_adapter(ck)
        kwargs["max_lora_rank"] = next((r for r in VLLM_LORA_RANKS if r >= rank), rank)
    if spec.load_in_4bit:
        kwargs["quantization"] = "bitsandbytes"
    return TimedVLLM(**kwargs)


def count_tokens_fn(lm: Any):
    """The evaluated model's own tokenizer as a token counter (what the graders record lengths in); it also
    counts a list of texts in batched calls (``.many``), which the run-directory rows use."""
    from medbench.harness.run.sample_rows import TokenizerCounter

    return TokenizerCounter(lm.tokenizer)
