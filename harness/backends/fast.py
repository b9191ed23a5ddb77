"""``medbench-fast``: lm-eval's ``hf`` model with a fast greedy generation path and shared-context scoring.

Select it like any lm-eval model once this module is imported (``medbench bench --backend medbench-fast``,
or ``lm_eval.simple_evaluate(model="medbench-fast", model_args="pretrained=...")``). It *is* lm-eval's
``HFLM`` (same loading, tokenisation, truncation, chat template, PEFT ``peft=`` adapters, result caching), so
tasks and the run directory are exactly the same; only two methods change:

- ``generate_until``: greedy requests go through :class:`~medbench.harness.backends.slot_decoder.SlotDecoder`
  (slot KV cache refilled as requests finish, decode step replayed from CUDA graphs). Output text is built
  exactly as ``HFLM`` builds it (decoded without special tokens, cut at the first ``until`` string). Requests that
  sample, or pass generation options other than greedy ones, go to ``HFLM.generate_until`` unchanged. Either way
  each generation's token count is taken from its generated ids (``generated_tokens``, ``on_generated``).
- ``_loglikelihood_tokens``: requests whose (truncated) contexts are equal are scored in one forward: the
  context once, each continuation's tokens packed after it behind a tree mask (one-token continuations such as
  PubMedQA's yes/no/maybe need no extra tokens at all), and logits are computed only where a continuation token
  is scored, in float32.

Extra model arguments (``--model_args``):

=================== =========================================================================================
max_slots           requests decoded together ("auto": what ~60% of free GPU memory holds, at most 256)
merge_lora          merge a ``peft=`` LoRA adapter into the weights for speed (default False). Caveat: the merged
                    weights are rounded to the model dtype (bf16) once, so logits differ from the unmerged
                    adapter by bf16 rounding and greedy completions can diverge after a near-tie.
cuda_graphs         capture the decode step in CUDA graphs (default: on for CUDA)
span_bucket         attention span granularity in tokens; one CUDA graph per bucket (default 256)
prefill_tokens      most prompt tokens per prefill forward (default 16384)
compile_layers      ``torch.compile`` each decoder layer (fuses its small kernels; the first generation pays
                    the compilation, tens of seconds; bf16 rounding of fused kernels can differ from eager)
score_tokens        most tokens per loglikelihood forward (default 16384)
=================== =========================================================================================

``batch_size`` is not used by the fast paths (their batches are sized in tokens and slots).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import (
    _add_special_kwargs,
    handle_stop_sequences,
    has_bos_prefix,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from medbench.harness.backends.lm_backends import GeneratedTokenCounts
from medbench.harness.backends.slot_decoder import (
    GenerationRequest,
    SlotDecoder,
    compile_decoder_layers,
    unsupported_reason,
)
from tqdm import tqdm

log = logging.getLogger(__name__)

#: gen_kwargs keys that do not change a greedy continuation (sampling knobs are ignored when do_sample=False).
_GREEDY_NEUTRAL = {"do_sample", "temperature", "top_p", "top_k", "min_p"}


def _is_greedy(kwargs: dict[str, Any]) -> bool:
    return not kwargs.get("do_sample") and not kwargs.get("temperature") and set(kwargs) <= _GREEDY_NEUTRAL


@register_model("medbench-fast")
class MedbenchFastLM(GeneratedTokenCounts, HFLM):
    """lm-eval ``hf`` model with fast greedy generation and shared-context loglikelihoods (see module doc).
    Every generation's token count comes from its generated ids (:class:`GeneratedTokenCounts`)."""

    def __init__(
        self,
        *args,
        max_slots: int | str = "auto",
        merge_lora: bool = False,
        cuda_graphs: bool | None = None,
        span_bucket: int = 256,
        prefill_tokens: int = 16384,
        score_tokens: int = 16384,
        compile_layers: bool = False,
        **kwargs,
    ) -> None:
        self._encoded: dict[str, list[int]] = {}  # tok_encode memo, filled for one loglikelihood call
        super().__init__(*args, **kwargs)
        if merge_lora:
            if not hasattr(self._model, "merge_and_unload"):
                raise ValueError("merge_lora=True needs a peft= adapter to merge; none was loaded")
            self._model = self._model.merge_and_unload()
        self.max_slots = max_slots
        self.cuda_graphs = cuda_graphs
        self.span_bucket = int(span_bucket)
        self.prefill_tokens = int(prefill_tokens)
        self.score_tokens = int(score_tokens)
        self.last_generation_stats: dict[str, Any] = {}
        self._unsupported = unsupported_reason(self.model) if self.backend == "causal" else "seq2seq model"
        if self._unsupported:
            log.warning("medbench-fast: %s; generation falls back to the stock hf path", self._unsupported)
        elif compile_layers:
            compile_decoder_layers(self.model)

    # ---- generation ---------------------------------------------------------------------------------------
    def _decoder(self) -> SlotDecoder:
        eos = self.model.generation_config.eos_token_id
        eos_ids = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
        return SlotDecoder(
            self.model, eos_token_ids=eos_ids, stop_tokenizer=self.tokenizer,
            pad_token_id=self.tokenizer.pad_token_id, max_slots=self.max_slots, span_bucket=self.span_bucket,
            prefill_tokens=self.prefill_tokens, cuda_graphs=self.cuda_graphs,
        )

    def _encode_prompts(self, contexts: list[str], max_ctx_len: int) -> list[list[int]]:
        """Token ids as ``HFLM.tok_batch_encode`` builds them for generation (same special-token rule, same left
        truncation to ``max_ctx_len``), minus the padding and the tensor round trip, which cost more than the
        tokenisation itself. The special-token rule is applied per prompt (stock applies the first prompt's
        to its whole batch; they differ only if some prompts start with BOS and others don't)."""
        bos = getattr(self.tokenizer, "bos_token", None)
        out: list[list[int]] = []
        cut = 0
        for start in range(0, len(contexts), 1024):
            chunk = contexts[start : start + 1024]
            with_bos = [has_bos_prefix(c, bos) for c in chunk]
            encoded: list[list[int] | None] = [None] * len(chunk)
            for starts_with_bos in (False, True):
                idx = [i for i, b in enumerate(with_bos) if b == starts_with_bos]
                if not idx:
                    continue
                special = ({"add_special_tokens": False} if starts_with_bos else
                           {} if self.add_bos_token is None else {"add_special_tokens": self.add_bos_token})
                ids = self.tokenizer([chunk[i] for i in idx], truncation=self.truncation, **special)["input_ids"]
                for i, row in zip(idx, ids):
                    encoded[i] = row[-max_ctx_len:]
                    cut += len(row) > max_ctx_len
            out += encoded  # type: ignore[arg-type]
        if cut:
            log.warning("%d prompts were longer than %d tokens and lost their beginning (left truncation, as the "
                        "stock hf model does); raise max_length or lower max_gen_toks to keep them", cut, max_ctx_len)
        return out

    def _completion_text(self, cont_toks: list[int], until: list[str]) -> str:
        """``HFLM.generate_until``'s post-processing of one continuation, unchanged."""
        if isinstance(self.think_end_token, int):
            marks = [i for i, t in enumerate(cont_toks) if t == self.think_end_token]
            if marks:
                cont_toks = cont_toks[marks[-1] + 1 :]
        s = self.tok_decode(cont_toks)
        if isinstance(self.think_end_token, int):
            s = s.lstrip()
        return postprocess_generated_text(
            generation=s, stop=until,
            think_end_token=self.think_end_token if isinstance(self.think_end_token, str) else None,
        )

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        if self._unsupported:
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        fast, slow = [], []
        plans: list[tuple[str, dict, list[str]] | None] = [None] * len(requests)
        by_budget: dict[int, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            context, gen_kwargs = req.args
            kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            max_gen_toks = kwargs.pop("max_gen_toks")
            if not _is_greedy(kwargs) or "max_length" in kwargs:
                slow.append(i)
                continue
            if self.max_length - max_gen_toks <= 0:
                raise ValueError(
                    f"request {i} asks for max_gen_toks={max_gen_toks}, which leaves no room for the prompt in "
                    f"the model's max_length={self.max_length}; lower max_gen_toks or raise max_length"
                )
            plans[i] = (context, gen_kwargs, until)
            by_budget[max_gen_toks].append(i)
            fast.append(i)
        results: list[str | None] = [None] * len(requests)
        if slow:
            log.info("medbench-fast: %d non-greedy requests go through the stock hf path", len(slow))
            for i, text in zip(slow, super().generate_until([requests[i] for i in slow], disable_tqdm)):
                results[i] = text
        if fast:
            gen_requests: list[GenerationRequest] = []
            order: list[int] = []
            for max_gen_toks, idxs in by_budget.items():
                prompts = self._encode_prompts([plans[i][0] for i in idxs], self.max_length - max_gen_toks)
                for i, prompt in zip(idxs, prompts):
                    stops = tuple(u for u in plans[i][2] if u)  # lm-eval ignores '' stop strings too
                    gen_requests.append(GenerationRequest(prompt, max_gen_toks, stops))
                    order.append(i)
            pbar = tqdm(total=len(order), disable=disable_tqdm or self.rank != 0,
                        desc="Running generate_until requests (medbench-fast)")

            def on_finish(k: int, result) -> None:
                i = order[k]
                context, gen_kwargs, until = plans[i]
                results[i] = self._completion_text(result.tokens, until)
                # (seconds, requests sharing them): the runner's per-sample generation time reads this, as it
                # reads the stock model's last batch
                self.last_batch = (result.seconds, result.concurrency)
                # the decoder may run a few steps past a stop string: count to where it stopped
                self.expect_counts([self.count_generation(result.tokens, gen_requests[k].max_new_tokens, until)])
                self.cache_hook.add_partial("generate_until", (context, gen_kwargs), results[i])
                pbar.update(1)

            decoder = self._decoder()
            decoder.generate(gen_requests, on_finish=on_finish)
            pbar.close()
            self.last_generation_stats = decoder.stats.as_dict()
        return results  # type: ignore[return-value]

    # ---- loglikelihood ------------------------------------------------------------------------------------
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """lm-eval's loglikelihood, with every string it will tokenise encoded up front in parallel batches
        (lm-eval encodes context and context + continuation one string at a time, twice per choice)."""
        texts: set[str] = set()
        for context, continuation in (req.args for req in requests):
            if context:
                n = len(context) - len(context.rstrip())  # _encode_pair moves trailing spaces to the continuation
                head, tail = (context[:-n], context[-n:] + continuation) if n else (context, continuation)
                texts.update((head, head + tail))
        self._encoded = self._encode_many(sorted(texts))
        try:
            return super().loglikelihood(requests, disable_tqdm=disable_tqdm)
        finally:
            self._encoded = {}

    def tok_encode(self, string: str, add_special_tokens: bool | None = None,
                   left_truncate_len: int | None = None, **kwargs) -> list[int]:
        if add_special_tokens is None and not left_truncate_len and not kwargs and string in self._encoded:
            return list(self._encoded[string])
        return super().tok_encode(string, add_special_tokens, left_truncate_len, **kwargs)

    def _encode_many(self, texts: list[str]) -> dict[str, list[int]]:
        """``tok_encode`` (default arguments) of many strings through the tokenizer's batch call."""
        bos = self.tokenizer.decode(self.prefix_token_id)
        groups: dict[tuple, list[str]] = defaultdict(list)
        for text in texts:
            kw = _add_special_kwargs(None, self.add_bos_token)
            if has_bos_prefix(text, bos):
                kw["add_special_tokens"] = False
            groups[tuple(sorted(kw.items()))].append(text)
        out: dict[str, list[int]] = {}
        for kw, group in groups.items():
            for start in range(0, len(group), 1024):
                chunk = group[start : start + 1024]
                out.update(zip(chunk, self.tokenizer(chunk, **dict(kw))["input_ids"]))
        return out

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs: int | None = None):
        """Score (context, continuation) pairs; pairs with the same context share one forward."""
        if self.backend != "causal":
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        # Group by the context the model actually sees (HFLM's left truncation of context + continuation).
        groups: dict[tuple[int, ...], dict[tuple[int, ...], list[int]]] = defaultdict(lambda: defaultdict(list))
        for i, (_, context_enc, continuation_enc) in enumerate(requests):
            if not context_enc or not continuation_enc or len(continuation_enc) > self.max_length:
                raise ValueError(
                    f"loglikelihood request {i}: context of {len(context_enc)} and continuation of "
                    f"{len(continuation_enc)} tokens; expected both non-empty and the continuation at most "
                    f"max_length={self.max_length}"
                )
            full = (context_enc + continuation_enc)[-(self.max_length + 1) :]
            prefix = tuple(full[: len(full) - len(continuation_enc)])
            groups[prefix][tuple(continuation_enc)].append(i)
        # Tree masks need an attention that takes a 4D mask; flash attention gets one row per long branch.
        can_pack = self.model.config._attn_implementation in ("sdpa", "eager")
        rows = []  # (prefix, [(continuation, request indices)])
        for prefix, branches in groups.items():
            items = list(branches.items())
            if can_pack:
                rows.append((prefix, items))
            else:
                rows.append((prefix, [b for b in items if len(b[0]) == 1]))
                rows += [(prefix, [b]) for b in items if len(b[0]) > 1]
        rows = [r for r in rows if r[1]]
        rows.sort(key=lambda r: -(len(r[0]) + sum(len(c) - 1 for c, _ in r[1])))

        out: list[tuple[float, bool] | None] = [None] * len(requests)
        pbar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0,
                    desc="Running loglikelihood requests (medbench-fast)")
        start = 0
        while start < len(rows):
            width = len(rows[start][0]) + sum(len(c) - 1 for c, _ in rows[start][1])
            batch = rows[start : start + max(1, self.score_tokens // width)]
            start += len(batch)
            for i, answer in self._score_rows(batch):
                out[i] = answer
                key = requests[i][0]
                if key is not None:
                    self.cache_hook.add_partial("loglikelihood", key, answer)
                pbar.update(1)
        pbar.close()
        return out

    @torch.no_grad()
    def _score_rows(self, rows):
        """One forward over right-padded rows ``prefix + branch tokens``; yields (request index, answer)."""
        layouts, width = [], 0
        for prefix, branches in rows:
            tokens, offsets = list(prefix), []
            for cont, _ in branches:
                offsets.append(len(tokens))
                tokens += cont[:-1]
            layouts.append((tokens, offsets))
            width = max(width, len(tokens))
        n = len(rows)
        # Few distinct shapes (attention libraries build a plan per shape), never past max_length positions.
        width = max(width, min(-(-width // 64) * 64, self.max_length))
        ids = torch.full((n, width), self.tokenizer.pad_token_id or 0, dtype=torch.long)
        positions = torch.arange(width).repeat(n, 1)
        tree = any(len(tokens) > len(prefix) for (tokens, _), (prefix, _) in zip(layouts, rows))
        allowed = torch.ones(width, width, dtype=torch.bool).tril().repeat(n, 1, 1) if tree else None
        for r, ((tokens, offsets), (prefix, branches)) in enumerate(zip(layouts, rows)):
            ids[r, : len(tokens)] = torch.as_tensor(tokens)
            for off, (cont, _) in zip(offsets, branches):
                end = off + len(cont) - 1
                positions[r, off:end] = torch.arange(len(prefix), len(prefix) + len(cont) - 1)
                if tree:
                    allowed[r, off:end, len(prefix) : off] = False  # a branch never sees earlier branches
        kwargs: dict[str, Any] = {}
        if tree:  # branch tokens sit after earlier branches but take positions right after the prefix
            kwargs["position_ids"] = positions.to(self.device)
            mask = torch.zeros(allowed.shape, dtype=self.model.dtype)
            mask.masked_fill_(~allowed, torch.finfo(self.model.dtype).min)
            kwargs["attention_mask"] = mask[:, None].to(self.device)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        hidden = base.get_decoder()(input_ids=ids.to(self.device), use_cache=False, **kwargs).last_hidden_state
        # Which hidden state predicts which continuation token.
        pick_row, pick_pos, targets, owners = [], [], [], []
        for r, ((tokens, offsets), (prefix, branches)) in enumerate(zip(layouts, rows)):
            for off, (cont, request_ids) in zip(offsets, branches):
                where = [len(prefix) - 1] + list(range(off, off + len(cont) - 1))
                pick_row += [r] * len(cont)
                pick_pos += where
                targets += list(cont)
                owners.append((request_ids, len(cont)))
        logits = base.get_output_embeddings()(
            hidden[torch.as_tensor(pick_row, device=hidden.device), torch.as_tensor(pick_pos, device=hidden.device)]
        )
        logprobs = F.log_softmax(logits.float(), dim=-1)
        target = torch.as_tensor(targets, device=logprobs.device)
        token_lp = logprobs.gather(1, target[:, None])[:, 0].cpu()
        greedy = (logprobs.argmax(-1) == target).cpu()
        k = 0
        for request_ids, length in owners:
            answer = (float(token_lp[k : k + length].sum()), bool(greedy[k : k + length].all()))
            k += length
            for i in request_ids:
                yield i, answer

