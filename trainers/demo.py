"""The training half of ``medbench demo``: base → SFT → GRPO on the tiny model, on CPU, in well under a minute.

The demo's base is medbench's tiny random-weight Qwen2, given a few full-parameter steps that teach its
assistant turn to open with the recipe's ``<reasoning>/<answer>`` layout (:func:`build_demo_base`). A random
model never writes a tag, so every GRPO reward would be 0 for every completion, the group advantages 0 and
GRPO would have nothing to learn from; an instruct model (the recipe's Qwen2.5-3B-Instruct) follows the
system prompt some of the time, and the primed tiny model does too, so its rewards vary within a group.

Both recipes run exactly as ``medbench train`` runs them (the tiny configs ``sft_tiny_cpu.yaml`` and
``grpo_tiny_cpu.yaml``, the ``trl`` backend, the bundled sample data): the SFT step trains the base, the GRPO
step trains the SFT checkpoint, and each saved model carries its provenance, so ``medbench bench`` orders
them base → sft → grpo by lineage.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import grpo, sft
from .backends import select_backend
from .config import load_config

#: What the primed base learns to write (the recipe's layout; the reasoning is a fixed phrase).
_PRIMER = "<reasoning>\nLet me think step by step.\n</reasoning>\n<answer>\n{answer}\n</answer>"


def build_demo_base(out_dir: str | Path, *, data_dir: str | Path | None = None, steps: int = 40,
                    seed: int = 0) -> Path:
    """medbench's tiny model, primed to open its assistant turn with the recipe's layout (see above).

    The primer is the assistant turn alone (no question), with the answers of the bundled GRPO rows, so the
    model learns the layout and the shape of an answer, not which answer goes with which question.
    """
    import torch
    from medbench.harness.tiny_models import build_tiny_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .data import grpo_rows

    out = Path(out_dir)
    if (out / "medbench_demo_base.json").is_file():
        return out
    build_tiny_model(out, seed=seed)
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out)
    cfg = load_config("grpo_tiny_cpu", [f"data.data_dir={data_dir if data_dir is not None else 'sample'}"],
                      check_training=False)
    answers = [r["answer"] for r in grpo_rows(cfg.data)[0]]
    opener = tok.apply_chat_template([{"role": "user", "content": ""}], tokenize=False,
                                     add_generation_prompt=True).split("<|im_end|>")[-1].lstrip("\n")
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        text = opener + _PRIMER.format(answer=answers[step % len(answers)]) + tok.eos_token
        ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        labels = ids.clone()
        labels[:, : len(tok(opener, add_special_tokens=False)["input_ids"])] = -100
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    (out / "medbench_demo_base.json").write_text(json.dumps({"primed_steps": steps, "seed": seed}) + "\n")
    return out


def demo_train(base_dir: str | Path | None, out_dir: str | Path, data_dir: str | Path | None = None, *,
               sft_steps: int = 2, grpo_steps: int = 2) -> dict[str, Path]:
    """Train an SFT then a GRPO checkpoint from the base in ``base_dir``.

    Args:
        base_dir: the base model directory; ``None`` builds :func:`build_demo_base` under ``out_dir/base``.
        out_dir: where ``sft/`` and ``grpo/`` are written (adapter, merged model, provenance each).
        data_dir: the local data folder (default: the bundled sample data).
    Returns:
        ``{"base": <base dir>, "sft": <merged SFT model dir>, "grpo": <merged GRPO model dir>}``.
    """
    out = Path(out_dir)
    if base_dir is None:
        base_dir = build_demo_base(out / "base", data_dir=data_dir)
    data = str(data_dir) if data_dir is not None else "sample"
    backend = select_backend("trl")
    sft_cfg = load_config("sft_tiny_cpu", [f"model.name={base_dir}", f"data.data_dir={data}",
                                           f"output.dir={out / 'sft'}", f"training.max_steps={sft_steps}"])
    sft_saved = sft.run(sft_cfg, backend)
    grpo_cfg = load_config("grpo_tiny_cpu", [f"model.name={sft_saved['merged_16bit']}", f"data.data_dir={data}",
                                             f"output.dir={out / 'grpo'}", f"training.max_steps={grpo_steps}"])
    grpo_saved = grpo.run(grpo_cfg, backend)
    return {"base": Path(base_dir), "sft": Path(sft_saved["merged_16bit"]),
            "grpo": Path(grpo_saved["merged_16bit"])}
