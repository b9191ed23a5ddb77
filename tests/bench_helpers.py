"""Helpers for the bench tests: a LoRA adapter on a tiny model (built in-process, nothing downloaded)."""

from __future__ import annotations

from pathlib import Path


def build_lora_adapter(base_dir: Path, out_dir: Path, *, seed: int = 1, r: int = 4) -> Path:
    """Save a PEFT LoRA adapter for the model in ``base_dir``; its B matrices are random (PEFT starts them at
    zero, which would make the adapter a no-op), so the adapted model's outputs differ from the base's."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    peft_model = get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"],
                                                  lora_dropout=0.0, task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.5)
    peft_model.save_pretrained(str(out_dir))
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(out_dir))
    return Path(out_dir)
