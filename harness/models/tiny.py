"""Tiny random-weight models built in-process, for the offline demo and the tests.

A two-layer Qwen2 (the GRPO recipe's architecture) is saved to a directory exactly like a hub checkpoint,
so every code path that loads a real model (lm-eval's ``hf`` model, PEFT, TRL) loads it unchanged.
The tokenizer is either a real one from a local folder (the tests use the real Qwen2 BPE files) or a small
byte-level BPE trained in a second on bundled text, so the demo needs nothing outside the repository.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

#: A ChatML template (the Qwen2.5 layout: system / user / assistant turns between im_start / im_end).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def _default_corpus() -> list[str]:
    """Text to train the demo tokenizer on: the bundled sample data and the layouts' tags."""
    from medbench.tasks import prompts

    texts = [prompts.SYSTEM_PROMPT, prompts.SFT_TRAIN_PROMPT, prompts.CYSTOMETRY_QUESTION]
    texts += ["<reasoning>", "</reasoning>", "<answer>", "</answer>", "<think>", "</think>",
              "yes no maybe A B C D E 0 1 2 3 4 5 6 7 8 9"]
    sample_dir = Path(__file__).resolve().parents[1] / "tasks" / "sample_data"
    if sample_dir.is_dir():
        for path in sorted(sample_dir.rglob("*")):
            if path.suffix in {".json", ".jsonl", ".csv"}:
                texts.append(path.read_text(encoding="utf-8"))
    return texts


def train_tokenizer(out_dir: Path, corpus: Iterable[str] | None = None, vocab_size: int = 2048):
    """Train a small byte-level BPE tokenizer with ChatML special tokens and save it to ``out_dir``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(corpus if corpus is not None else _default_corpus()), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    tokenizer_dir: str | Path | None = None,
    hidden_size: int = 64,
    num_layers: int = 2,
    chat_template: str | None = None,
) -> Path:
    """Build and save a tiny random-weight Qwen2 causal LM (and its tokenizer) to ``out_dir``.

    The same ``seed`` always gives the same weights, so demo and test results are reproducible.
    """
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer_dir is not None:
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        if chat_template is None and not tokenizer.chat_template:
            chat_template = CHATML_TEMPLATE
        if chat_template:
            tokenizer.chat_template = chat_template
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.save_pretrained(out)
    else:
        tokenizer = train_tokenizer(out)
    vocab = len(tokenizer)
    config = Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    (out / "medbench_tiny.json").write_text(json.dumps({"seed": seed, "hidden_size": hidden_size,
                                                        "num_layers": num_layers}))
    return out
