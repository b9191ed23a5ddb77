"""Greedy generation over a fixed set of KV-cache slots that are refilled as requests finish, with the decode
step replayed from CUDA graphs. The engine behind the ``medbench-fast`` lm-eval model.

Why not what transformers ships (measured on an H100, Qwen2.5-3B shape; ``benchmarks/eval_throughput.py``):
- continuous batching (``generate_batch``) without flash-attn runs ``paged|sdpa``, which attends every query of
  the packed batch to *every* cached token of the batch behind a block mask: its cost grows with the square of
  the batch (~765 tok/s);
- ``generate`` with padded batches: lm-eval waits for the longest sequence of each batch, and the ``sdpa`` path
  copies the whole KV cache once per grouped query head (``repeat_kv``) at every step whenever a padding mask is
  present: 8x the cache reads for Qwen2.5-3B (~1,240 tok/s at batch 128).

Here each of ``slots`` rows of a preallocated cache holds one request. A decode step feeds one token per row,
writes its key/value at the row's own length and attends over the first ``span`` cached positions behind a
per-row length mask, with the query heads that share a KV head folded into the query dimension, so the cache is
read once per step. New requests are prefilled (causal attention over right-padded prompts) straight into free
rows while the others wait, so a finished request frees its row at once. A decode step has the same shapes for
every step with the same span bucket, so it is captured once per bucket as a CUDA graph and replayed: the launch
cost of the ~1,500 small kernels of a 36-layer step disappears.

Attention runs through transformers' ``AttentionInterface`` under the name :data:`ATTENTION_NAME`, switched on
only inside :meth:`SlotDecoder.generate`; the rest of the model (projections, rotary embedding, MLP, PEFT LoRA
layers) is the model's own code, untouched.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AttentionInterface

log = logging.getLogger(__name__)

ATTENTION_NAME = "medbench_slots"


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to continue greedily. ``stop`` strings are matched on the decoded continuation (special
    tokens kept, as lm-eval's stopping criteria do); the final text is cut by the caller."""

    prompt: Sequence[int]
    max_new_tokens: int
    stop: tuple[str, ...] = ()


@dataclass
class GenerationResult:
    tokens: list[int]  # generated ids, the EOS id included when the model emitted one
    finish_reason: str  # "eos" | "stop" | "length"
    seconds: float = 0.0  # from the start of its prefill to its last token (other requests ran meanwhile)
    concurrency: int = 1  # requests decoded together when it finished


@dataclass
class GenerationStats:
    """Where the time of one :meth:`SlotDecoder.generate` call went (seconds, tokens)."""

    requests: int = 0
    slots: int = 0
    cache_len: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0
    decode_steps: int = 0
    prefill_s: float = 0.0
    decode_s: float = 0.0
    capture_s: float = 0.0
    graphs: int = 0
    stop_check_s: float = 0.0
    wall_s: float = 0.0
    kv_token_reads: int = 0  # sum over decode steps of the cached tokens of active rows (for the roofline)
    span_token_reads: int = 0  # sum over decode steps of slots x span actually read (bucket padding included)
    cuda_graphs: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _SlotForward:
    """What the attention layers need for one forward; travels through the model as a keyword argument."""

    keys: list[torch.Tensor]  # per layer [slots, kv_heads, cache_len, head_dim]
    values: list[torch.Tensor]
    rows: torch.Tensor  # slot index of each batch row
    decode: bool
    write_at: torch.Tensor | None = None  # decode: [slots] cache index of the new token
    mask: torch.Tensor | None = None  # decode: [slots, 1, 1, span] bool, True = attend
    span: int = 0


def slot_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention over the slot cache (registered as :data:`ATTENTION_NAME`).

    Prefill: ``query`` [rows, heads, n, dim] of right-padded prompts; keys/values are written to the rows'
    slots, attention is plain causal (padding comes after every real token, so no mask is needed).
    Decode: one token per slot; its key/value go to ``write_at``, then each slot attends to its first
    ``span`` cached positions behind its length mask.
    """
    state: _SlotForward | None = kwargs.get("medbench_slots")
    if state is None:
        raise RuntimeError(f"attention '{ATTENTION_NAME}' only runs inside SlotDecoder.generate")
    k_cache, v_cache = state.keys[module.layer_idx], state.values[module.layer_idx]
    if not state.decode:
        n = key.shape[2]
        k_cache[state.rows, :, :n] = key
        v_cache[state.rows, :, :n] = value
        out = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scaling, enable_gqa=True)
        return out.transpose(1, 2).contiguous(), None
    rows, kv_heads, head_dim = query.shape[0], key.shape[1], query.shape[-1]
    k_cache[state.rows, :, state.write_at] = key[:, :, 0]
    v_cache[state.rows, :, state.write_at] = value[:, :, 0]
    # Heads h = g * n_rep + r share KV head g: fold r into the query length so K/V are read once, not n_rep times.
    grouped = query.reshape(rows, kv_heads, -1, head_dim)
    out = F.scaled_dot_product_attention(
        grouped, k_cache[:, :, : state.span], v_cache[:, :, : state.span], attn_mask=state.mask, scale=scaling
    )
    return out.reshape(rows, 1, -1, head_dim), None


AttentionInterface.register(ATTENTION_NAME, slot_attention)


def compile_decoder_layers(model: torch.nn.Module) -> int:
    """Compile each decoder layer in place with ``torch.compile`` (inductor fuses the ~40 small kernels of a
    layer's norms, rotary embedding, activation and residual adds), leaving the slot attention itself out of the
    graph. Every layer runs the same code, so one compilation serves all of them; the first generation pays it
    (tens of seconds). Returns the number of layers compiled."""
    AttentionInterface.register(ATTENTION_NAME, torch.compiler.disable(slot_attention))
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = base.get_decoder().layers
    for layer in layers:
        layer.compile()
    return len(layers)


def unsupported_reason(model: torch.nn.Module) -> str | None:
    """Why the slot decoder cannot run this model exactly (None when it can)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config.get_text_config()
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder models are not supported"
    if not getattr(base, "_can_set_attn_implementation", lambda: False)():
        return f"{type(base).__name__} does not route attention through transformers' AttentionInterface"
    layer_types = getattr(config, "layer_types", None) or []
    if any(t != "full_attention" for t in layer_types):
        return f"layer types {sorted(set(layer_types))}: only full attention is supported (no sliding window)"
    if getattr(config, "attn_logit_softcapping", None):
        return "attention logit soft-capping is not supported"
    return None


class SlotDecoder:
    """Greedy continuation of many prompts through one model (a ``PreTrainedModel`` or a PEFT model).

    Args:
        model: causal LM; PEFT adapters stay unmerged and run as the model's own LoRA layers.
        eos_token_ids: ids that end a request (the model's ``generation_config.eos_token_id``, as ``generate``).
        stop_tokenizer: tokenizer used to decode continuations for ``stop`` strings.
        max_slots: most requests decoded together ("auto": as many as ``memory_fraction`` of free GPU memory
            holds, at most 256).
        span_bucket: decode attends over the first multiple of this many cached positions that holds every
            active row; one CUDA graph per bucket.
        prefill_tokens: most prompt tokens (rows x longest prompt) per prefill forward.
        cuda_graphs: capture the decode step (default: on for CUDA).
        stop_check_every: decode steps between stop-string checks (a request that hit a stop string wastes at
            most this many steps; its text is cut at the stop string anyway).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        eos_token_ids: Sequence[int],
        stop_tokenizer,
        pad_token_id: int,
        max_slots: int | str = "auto",
        span_bucket: int = 256,
        prefill_tokens: int = 16384,
        cuda_graphs: bool | None = None,
        memory_fraction: float = 0.6,
        stop_check_every: int = 16,
    ) -> None:
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(f"medbench-fast cannot decode this model: {reason}; use the 'hf' backend")
        self.model = model
        self.base = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.body = self.base.get_decoder()
        self.head = self.base.get_output_embeddings()
        config = self.base.config.get_text_config()
        self.n_layers = config.num_hidden_layers
        self.kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.eos = np.array(sorted({int(t) for t in eos_token_ids}), dtype=np.int64)
        self.tokenizer = stop_tokenizer
        self.pad_token_id = int(pad_token_id)
        self.max_slots = max_slots
        self.span_bucket = int(span_bucket)
        self.prefill_tokens = int(prefill_tokens)
        self.device = next(self.base.parameters()).device
        self.dtype = next(p for p in self.base.parameters() if p.is_floating_point()).dtype
        self.cuda_graphs = self.device.type == "cuda" if cuda_graphs is None else bool(cuda_graphs)
        self.memory_fraction = memory_fraction
        self.stop_check_every = max(1, int(stop_check_every))
        self.stats = GenerationStats()

    # ---- sizing -------------------------------------------------------------------------------------------
    @property
    def kv_bytes_per_token(self) -> int:
        return 2 * self.n_layers * self.kv_heads * self.head_dim * torch.finfo(self.dtype).bits // 8

    def _slots_for(self, n_requests: int, cache_len: int) -> int:
        if self.max_slots != "auto":
            return max(1, min(int(self.max_slots), n_requests))
        if self.device.type != "cuda":
            return max(1, min(64, n_requests))
        free, _ = torch.cuda.mem_get_info(self.device)
        fits = int(free * self.memory_fraction) // (cache_len * self.kv_bytes_per_token)
        if fits < 1:
            raise torch.cuda.OutOfMemoryError(
                f"one request of {cache_len} tokens needs {cache_len * self.kv_bytes_per_token / 2**30:.1f} GiB "
                f"of KV cache; {free / 2**30:.1f} GiB free. Lower max_gen_toks or max_length."
            )
        return max(1, min(256, fits, n_requests))

    @contextmanager
    def _slot_attention(self) -> Iterator[None]:
        previous = self.base.config._attn_implementation
        self.base.set_attn_implementation(ATTENTION_NAME)
        try:
            yield
        finally:
            self.base.set_attn_implementation(previous)

    # ---- forwards -----------------------------------------------------------------------------------------
    def _prefill(self, slot_ids: list[int], prompts: list[Sequence[int]]) -> np.ndarray:
        """Prefill prompts into their slots; returns each prompt's first generated token."""
        lens = [len(p) for p in prompts]
        # few distinct shapes: attention libraries (cuDNN) build a plan per shape
        width = min(-(-max(lens) // 64) * 64, self._cache_len)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, : len(p)] = torch.as_tensor(p, dtype=torch.long)
        ids = ids.to(self.device)
        rows = torch.as_tensor(slot_ids, dtype=torch.long, device=self.device)
        positions = torch.arange(width, device=self.device).expand(len(prompts), width)
        state = _SlotForward(self._keys, self._values, rows=rows, decode=False)
        hidden = self.body(input_ids=ids, position_ids=positions, use_cache=False, medbench_slots=state)
        last = torch.as_tensor(lens, device=self.device) - 1
        first = self.head(hidden.last_hidden_state[torch.arange(len(prompts), device=self.device), last])
        first = first.argmax(-1)
        self._tokens[rows] = first
        self._lengths[rows] = torch.as_tensor(lens, dtype=torch.long, device=self.device)
        return first.cpu().numpy()

    def _decode_step(self, span: int) -> None:
        """One token for every slot; reads and writes only the static tensors (CUDA-graph safe)."""
        mask = (self._positions[:span][None, :] <= self._lengths[:, None]).view(-1, 1, 1, span)
        state = _SlotForward(
            self._keys, self._values, rows=self._rows, decode=True, write_at=self._lengths, mask=mask, span=span
        )
        hidden = self.body(
            input_ids=self._tokens[:, None], position_ids=self._lengths[:, None], use_cache=False,
            medbench_slots=state,
        )
        logits = self.head(hidden.last_hidden_state[:, -1])
        self._tokens.copy_(logits.argmax(-1))
        self._lengths.add_(1).clamp_(max=self._cache_len - 1)

    def _run_step(self, span: int) -> None:
        if not self.cuda_graphs:
            self._decode_step(span)
            return
        graph = self._graphs.get(span)
        if graph is None:
            graph = self._capture(span)
        if graph is None:  # capture failed: eager from now on
            self._decode_step(span)
        else:
            graph.replay()

    def _capture(self, span: int) -> torch.cuda.CUDAGraph | None:
        t0 = time.perf_counter()
        saved = self._tokens.clone(), self._lengths.clone()
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up outside the graph: lazy inits, library workspaces
                self._decode_step(span)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self._tokens.copy_(saved[0])
            self._lengths.copy_(saved[1])
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                self._decode_step(span)
        except RuntimeError as err:  # a host sync or an uncapturable op somewhere in the model
            log.warning("CUDA graph capture failed (%s); decoding eagerly", err)
            self.cuda_graphs = False
            self._tokens.copy_(saved[0])
            self._lengths.copy_(saved[1])
            return None
        self._graphs[span] = graph
        self.stats.graphs += 1
        self.stats.capture_s += time.perf_counter() - t0
        return graph

    # ---- the loop -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        requests: Sequence[GenerationRequest],
        on_finish: Callable[[int, GenerationResult], None] | None = None,
    ) -> list[GenerationResult]:
        """Continue every request greedily; results come back in request order. ``on_finish(index, result)``
        is called as each request completes (progress bars, incremental saving)."""
        t_start = time.perf_counter()
        n = len(requests)
        results: list[GenerationResult | None] = [None] * n
        if n == 0:
            return []
        for i, r in enumerate(requests):
            if len(r.prompt) == 0:
                raise ValueError(f"request {i} has an empty prompt; a causal LM needs at least one token")
            if r.max_new_tokens < 1:
                raise ValueError(f"request {i} asks for max_new_tokens={r.max_new_tokens}; expected >= 1")
        need = max(len(r.prompt) + r.max_new_tokens for r in requests)
        cache_len = -(-need // self.span_bucket) * self.span_bucket
        slots = self._slots_for(n, cache_len)
        self.stats = stats = GenerationStats(
            requests=n, slots=slots, cache_len=cache_len, cuda_graphs=self.cuda_graphs,
            prompt_tokens=sum(len(r.prompt) for r in requests),
        )
        shape = (slots, self.kv_heads, cache_len, self.head_dim)
        # Zeros, not empty: masked-out positions still enter attention's product with V, and 0 * NaN is NaN.
        self._keys = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.n_layers)]
        self._values = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in range(self.n_layers)]
        self._tokens = torch.zeros(slots, dtype=torch.long, device=self.device)
        self._lengths = torch.zeros(slots, dtype=torch.long, device=self.device)
        self._positions = torch.arange(cache_len, device=self.device)
        self._rows = torch.arange(slots, device=self.device)
        self._cache_len = cache_len
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.cuda_graphs else None
        host_tokens = torch.empty(slots, dtype=torch.long, pin_memory=self.device.type == "cuda")

        max_new = max(r.max_new_tokens for r in requests)
        history = np.zeros((slots, max_new), dtype=np.int64)
        count = np.zeros(slots, dtype=np.int64)
        length = np.zeros(slots, dtype=np.int64)  # host mirror of self._lengths for active slots
        owner = np.full(slots, -1, dtype=np.int64)
        limit = np.zeros(slots, dtype=np.int64)
        started = np.zeros(slots, dtype=np.float64)
        stop_window = {
            stops: self.stop_check_every + 2 + max(len(self.tokenizer.encode(s, add_special_tokens=False))
                                                    for s in stops)
            for stops in {r.stop for r in requests if r.stop}
        }
        # Longest prompts first, as lm-eval orders them: memory problems show at once, estimates err high.
        pending = deque(sorted(range(n), key=lambda i: -len(requests[i].prompt)))
        refill_at = max(1, slots // 8)

        def finish(slot: int, reason: str) -> None:
            idx = int(owner[slot])
            result = GenerationResult(history[slot, : count[slot]].tolist(), reason,
                                      seconds=time.perf_counter() - started[slot],
                                      concurrency=int((owner >= 0).sum()))
            results[idx] = result
            stats.generated_tokens += int(count[slot])
            owner[slot] = -1
            if on_finish is not None:
                on_finish(idx, result)

        def check_new_tokens(slots_: np.ndarray) -> None:
            for s in slots_[np.isin(history[slots_, count[slots_] - 1], self.eos)]:
                finish(int(s), "eos")
            live = slots_[owner[slots_] >= 0]
            for s in live[count[live] >= limit[live]]:
                finish(int(s), "length")

        def check_stops(slots_: np.ndarray) -> None:
            t0 = time.perf_counter()
            todo = [int(s) for s in slots_ if requests[owner[s]].stop]
            if todo:
                windows = [
                    history[s, max(0, count[s] - stop_window[requests[owner[s]].stop]) : count[s]].tolist()
                    for s in todo
                ]
                texts = self.tokenizer.batch_decode(windows, skip_special_tokens=False)
                for s, text in zip(todo, texts):
                    if any(stop in text for stop in requests[owner[s]].stop):
                        finish(s, "stop")
            stats.stop_check_s += time.perf_counter() - t0

        with self._slot_attention():
            while pending or (owner >= 0).any():
                free = np.flatnonzero(owner < 0)
                active = len(owner) - len(free)
                if pending and len(free) and (active == 0 or len(free) >= min(refill_at, len(pending))):
                    t0 = time.perf_counter()
                    admitted = [pending.popleft() for _ in range(min(len(free), len(pending)))]
                    new_slots = free[: len(admitted)]
                    started[new_slots] = t0
                    start = 0
                    while start < len(admitted):  # chunks of at most prefill_tokens (rows x longest prompt)
                        width = len(requests[admitted[start]].prompt)
                        rows = max(1, self.prefill_tokens // width)
                        chunk, chunk_slots = admitted[start : start + rows], new_slots[start : start + rows]
                        first = self._prefill(chunk_slots.tolist(), [requests[i].prompt for i in chunk])
                        owner[chunk_slots] = chunk
                        limit[chunk_slots] = [requests[i].max_new_tokens for i in chunk]
                        length[chunk_slots] = [len(requests[i].prompt) for i in chunk]
                        history[chunk_slots, 0] = first
                        count[chunk_slots] = 1
                        start += rows
                    stats.prefill_s += time.perf_counter() - t0
                    check_new_tokens(new_slots)
                    check_stops(new_slots[owner[new_slots] >= 0])
                    continue
                live = np.flatnonzero(owner >= 0)
                span = min(cache_len, -(-(int(length[live].max()) + 1) // self.span_bucket) * self.span_bucket)
                t0 = time.perf_counter()
                self._run_step(span)
                host_tokens.copy_(self._tokens, non_blocking=True)
                if self.device.type == "cuda":
                    torch.cuda.current_stream(self.device).synchronize()
                stats.decode_s += time.perf_counter() - t0
                stats.decode_steps += 1
                stats.kv_token_reads += int((length[live] + 1).sum())
                stats.span_token_reads += slots * span
                history[live, count[live]] = host_tokens.numpy()[live]
                count[live] += 1
                length[live] += 1
                check_new_tokens(live)
                if stats.decode_steps % self.stop_check_every == 0:
                    check_stops(live[owner[live] >= 0])

        self._keys = self._values = []  # free the cache (and the graphs) before the next task
        self._graphs = {}
        stats.wall_s = time.perf_counter() - t_start
        return results  # type: ignore[return-value]
