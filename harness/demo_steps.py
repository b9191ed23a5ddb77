"""The steps of ``medbench demo``, one function each, so a step can be added (training, the report) as one call.

The demo's second checkpoint is a LoRA adapter that a few dozen plain-PyTorch steps teach the GRPO recipe's
``<reasoning>/<answer>`` layout, on the recipe's own training sources in the bundled sample data (GSM8K train,
PubMedQA ``pqa_artificial`` and the train side of Health_Benchmarks; never an evaluation document). It is evaluated without merging.
The difference the benchmark then shows is real and honest: format compliance rises, parseable answers
appear, and accuracy stays where a two-layer random model can reach.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

#: Every task family on the bundled sample data (only three Health_Benchmarks specialties ship there).
DEMO_TASKS = (
    "medbench_pubmedqa", "medbench_pubmedqa_ll", "medbench_health_cardiology", "medbench_medical_cot",
    "medbench_gsm8k", "medbench_medmcqa", "medbench_medqa", "medbench_mmlu_medical",
)
#: The Health_Benchmarks specialties in the sample data (their train side of medbench's hash split trains the
#: adapter; the evaluation task reads only the eval side).
SAMPLE_HEALTH_SPECIALTIES = ("Cardiology", "Lab_Medicine", "Dermatology")
#: The sample medical-o1 file has four rows; held out are the rows after the SFT slice, so take one for SFT.
DEMO_TASK_METADATA = {"sft_train_rows": 1}


#: Width of the demo's base model: at 64 a random two-layer model can't learn the answer layout in a few dozen
#: steps (its logits stay nearly uniform); at 256 forty steps suffice, and generation costs about the same.
DEMO_HIDDEN_SIZE = 256
#: What the format adapter learns to write as its reasoning (short: the demo's token budget is small).
FORMAT_REASONING = "Short."


def build_base(models_dir: Path, seed: int = 0) -> Path:
    """The demo's base checkpoint: a two-layer random Qwen2 with a BPE tokenizer trained on the bundled data."""
    from .tiny_models import build_tiny_model

    return build_tiny_model(models_dir / "base", seed=seed, hidden_size=DEMO_HIDDEN_SIZE)


def _format_examples(tokenizer: Any) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) in the GRPO layout, from the recipe's training sources (sample data)."""
    from medbench.tasks import prompts
    from medbench.trainers.data import grpo_rows

    rows, _ = grpo_rows({"sources": ["gsm8k", "pubmedqa_artificial", "health_benchmarks"], "data_dir": "sample",
                         "max_context_chars": 1024, "health_specialties": list(SAMPLE_HEALTH_SPECIALTIES)})
    examples = []
    for row in rows:
        messages = [{"role": "system", "content": prompts.SYSTEM_PROMPT}, {"role": "user", "content": row["user"]}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        completion = (f"<reasoning>\n{FORMAT_REASONING}\n</reasoning>\n<answer>\n{row['answer']}\n</answer>"
                      + tokenizer.eos_token)
        examples.append((tokenizer(prompt, add_special_tokens=False)["input_ids"],
                         tokenizer(completion, add_special_tokens=False)["input_ids"]))
    return examples


def tune_format_adapter(base_dir: Path, out_dir: Path, *, steps: int = 40, seed: int = 0,
                        lr: float = 5e-3, norm_lr: float = 0.5) -> Path:
    """Train a LoRA adapter (r 16 on every linear layer, plus the RMSNorm scales) on the answer layout, full
    batch; save it unmerged. 40 steps take the loss from 7.7 (uniform) to about 0.2."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        modules_to_save=["norm"]))
    examples = _format_examples(tokenizer)
    width = max(len(p) + len(c) for p, c in examples)
    pad = tokenizer.pad_token_id
    ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (p, c) in enumerate(examples):
        seq = p + c
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, len(p): len(seq)] = torch.tensor(c)  # learn the completion only
        mask[i, : len(seq)] = 1
    # A random two-layer model's logits are bounded by its final norm's scale (all ~1), so LoRA alone can't make
    # the next token confident; the norms are trained too (PEFT's modules_to_save), with a larger step.
    norms = [p for n, p in model.named_parameters() if p.requires_grad and "norm" in n]
    others = [p for n, p in model.named_parameters() if p.requires_grad and "norm" not in n]
    optimizer = torch.optim.AdamW([{"params": others, "lr": lr}, {"params": norms, "lr": norm_lr}],
                                  weight_decay=0.0)
    model.train()
    start, loss_first, loss = time.monotonic(), None, None
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss_first = loss_first if loss_first is not None else float(loss.detach())
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    (out_dir / "medbench_demo_training.json").write_text(json.dumps({
        "what": "LoRA adapter taught the <reasoning>/<answer> layout (medbench demo)",
        "data": "bundled sample data: GSM8K train, PubMedQA pqa_artificial, Health_Benchmarks train side",
        "steps": steps, "lr": lr, "norm_lr": norm_lr, "examples": len(examples), "loss_first": loss_first,
        "loss_last": float(loss.detach()) if loss is not None else None, "seconds": round(time.monotonic() - start, 1),
    }, indent=2))
    return out_dir


def demo_spec(output: Path, checkpoints: dict[str, Path], *, limit: int, max_new_tokens: int, seed: int,
              batch_size: int | str = "auto"):
    """The bench spec the demo runs: every task family on the bundled sample data, greedy, small limits."""
    from medbench.tasks.loaders import SAMPLE_DATA_DIR

    from .spec import build_spec

    return build_spec(None, {
        "checkpoints": [f"{name}={path}" for name, path in checkpoints.items()],
        "tasks": ",".join(DEMO_TASKS),
        "limit": limit,
        "max_new_tokens": max_new_tokens,
        "seed": seed,
        "batch_size": batch_size,
        "data_dir": str(SAMPLE_DATA_DIR),
        "output": str(output),
        "reference": next(iter(checkpoints)),
        "task_metadata": DEMO_TASK_METADATA,
    })


def bench(spec: Any, verbose: bool = False):
    """Run the benchmark (the main job of ``medbench bench``) and return its outcome."""
    from .runner import run_bench

    return run_bench(spec, verbose=verbose)
