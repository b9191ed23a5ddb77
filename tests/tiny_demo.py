"""A tiny base → SFT → GRPO for the tests: medbench's tiny random-weight Qwen2, primed to write the GRPO layout.

This was the offline demo before the demo ran a real model (``medbench demo`` now uses SmolLM2-135M-Instruct and
committed adapters, ``medbench.trainers.demo``); it stays here because a recipe test needs a model that trains in
seconds and still earns GRPO rewards. The base is the tiny model given a short full-parameter "instruction
tuning" on the GRPO recipe's own *training* rows (GSM8K train, PubMedQA ``pqa_artificial``, the train side of
Health_Benchmarks; never an evaluation document), so that it answers in the ``<reasoning>/<answer>`` layout and
GRPO's rewards vary within a group. Both recipes then run exactly as ``medbench train`` runs them (the tiny
configs ``sft_tiny_cpu.yaml`` and ``grpo_tiny_cpu.yaml``, the ``trl`` backend, the bundled sample data).
"""

from __future__ import annotations

import json
from pathlib import Path

from medbench.trainers.backends import select_backend
from medbench.trainers.config import load_config

#: What the primed base writes after a question: the recipe's layout with a one-word reasoning, so the whole
#: layout fits a 32-token budget.
_PRIMER = "<reasoning>\nShort.\n</reasoning>\n<answer>\n{answer}\n</answer>"
#: Scale of the base's token embeddings over the tiny model's random init (std 0.02 → 0.16). LoRA trains neither
#: the embeddings nor the final norm, and with the default init they bound every logit of a 64-wide model to
#: about ±1, so no LoRA update could make a token likely; a trained model's embeddings are that much larger.
EMBEDDING_SCALE = 8.0
#: Priming steps (one training row each) and learning rate: enough that the base writes the layout for most
#: evaluation prompts, under greedy decoding.
BASE_STEPS = 200
BASE_LR = 3e-3

_MARKER = "medbench_tiny_demo_base.json"


def build_demo_base(out_dir: str | Path, *, data_dir: str | Path | None = None, steps: int = BASE_STEPS,
                    seed: int = 0) -> Path:
    """medbench's tiny model, primed to answer the GRPO recipe's prompts in its layout (see the module doc).

    Built once: a directory that already holds a base built with the same settings is returned as it is.
    """
    import torch
    from medbench.harness.models.tiny import build_tiny_model
    from medbench.tasks import prompts
    from medbench.trainers.data import grpo_rows
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    data = str(data_dir) if data_dir is not None else "sample"
    settings = {"primed_steps": steps, "seed": seed, "lr": BASE_LR, "embedding_scale": EMBEDDING_SCALE,
                "primer": _PRIMER, "data_dir": data}
    marker = out / _MARKER
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")) == settings:
        return out
    build_tiny_model(out, seed=seed)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(EMBEDDING_SCALE)
    cfg = load_config("grpo_tiny_cpu", [f"data.data_dir={data}"], check_training=False)
    rows = grpo_rows(cfg.data)[0]
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=BASE_LR)
    model.train()
    for step in range(steps):
        row = rows[step % len(rows)]
        messages = [{"role": "system", "content": prompts.SYSTEM_PROMPT}, {"role": "user", "content": row["user"]}]
        prompt = tok(tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
        answer = tok(_PRIMER.format(answer=row["answer"]) + tok.eos_token, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt + answer])
        labels = ids.clone()
        labels[:, : len(prompt)] = -100  # learn the answer, not the question
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    marker.write_text(json.dumps(settings) + "\n", encoding="utf-8")
    return out


def demo_train(base_dir: str | Path | None, out_dir: str | Path, data_dir: str | Path | None = None, *,
               sft_steps: int = 2, grpo_steps: int = 2, sft_overrides: tuple[str, ...] | list[str] = (),
               grpo_overrides: tuple[str, ...] | list[str] = ()) -> dict[str, Path]:
    """Train an SFT then a GRPO checkpoint from the base in ``base_dir``.

    Args:
        base_dir: the base model directory; ``None`` builds :func:`build_demo_base` under ``out_dir/base``.
        out_dir: where ``sft/`` and ``grpo/`` are written (adapter, merged model, provenance each).
        data_dir: the local data folder (default: the bundled sample data).
        sft_steps, grpo_steps: optimizer steps of each recipe.
        sft_overrides, grpo_overrides: further config overrides (``key=value``).
    Returns:
        ``{"base": <base dir>, "sft": <merged SFT model dir>, "grpo": <merged GRPO model dir>}``.
    """
    from medbench.trainers import grpo, sft

    out = Path(out_dir)
    if base_dir is None:
        base_dir = build_demo_base(out / "base", data_dir=data_dir)
    data = str(data_dir) if data_dir is not None else "sample"
    backend = select_backend("trl")
    sft_cfg = load_config("sft_tiny_cpu", [f"model.name={base_dir}", f"data.data_dir={data}",
                                           f"output.dir={out / 'sft'}", f"training.max_steps={sft_steps}",
                                           *sft_overrides])
    sft_saved = sft.run(sft_cfg, backend)
    grpo_cfg = load_config("grpo_tiny_cpu", [f"model.name={sft_saved['merged_16bit']}", f"data.data_dir={data}",
                                             f"output.dir={out / 'grpo'}", f"training.max_steps={grpo_steps}",
                                             *grpo_overrides])
    grpo_saved = grpo.run(grpo_cfg, backend)
    return {"base": Path(base_dir), "sft": Path(sft_saved["merged_16bit"]),
            "grpo": Path(grpo_saved["merged_16bit"])}
