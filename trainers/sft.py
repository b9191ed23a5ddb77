"""The SFT recipe: DeepSeek-R1-Distill-Llama-8B on clinical chain-of-thought, as the Unsloth tutorial does it.

    medbench train sft --config trainers/configs/sft_r1_llama8b_medical.yaml

1. Read 500 rows of medical-o1-reasoning-SFT (``en``, ``train[0:500]``), each checked against the schema.
2. Load the model (4-bit) and attach LoRA r 16 / alpha 16 to every attention and MLP projection.
3. Render the rows with the ``<think>`` training template, the tokenizer's EOS appended.
4. Train with TRL's SFTTrainer: batch 2 x accumulation 4, 60 steps, lr 2e-4, linear schedule, 8-bit AdamW.
5. Save the adapter, the tokenizer and a merged 16-bit model (optionally GGUF and a hub push), each with its
   ``medbench_provenance.json``.

The same lifecycle (``setup`` → ``train`` → ``save``) runs on both backends; ``run`` does all three.
"""

from __future__ import annotations

from .backends import BackendChoice, hub_token, load_model, resolve_model_name, training_kwargs
from .callback import attach_callbacks, callbacks_for
from .config import RecipeConfig
from .data import load_sft_rows, prepare_sft
from .session import Session, announce, output_dir, run_training, save


def setup(cfg: RecipeConfig, backend: BackendChoice) -> Session:
    """Model + LoRA, data, and the TRL trainer, ready to train."""
    assert cfg.recipe == "sft", f"sft.setup got a {cfg.recipe!r} config"
    if cfg.output.push_to_hub:
        hub_token()  # fail before training, not after, when the token is missing
    output_dir(cfg)
    rows = load_sft_rows(cfg.data)  # read and check the data before spending minutes loading the model

    adjustments = []
    base = resolve_model_name(cfg.model.name, cfg.output_dir)
    model, tokenizer = load_model(cfg, base, backend, adjustments)

    data = prepare_sft(cfg.data, tokenizer.eos_token, rows)

    from trl import SFTConfig, SFTTrainer

    kwargs = training_kwargs(cfg, backend, adjustments)
    kwargs.setdefault("dataset_text_field", "text")
    kwargs.setdefault("max_length", cfg.model.max_seq_length)
    args = SFTConfig(**kwargs)
    session = Session(cfg=cfg, backend=backend, base_model=base, model=model, tokenizer=tokenizer, data=data,
                      adjustments=adjustments)
    session.trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=data.dataset,
        processing_class=tokenizer,
        callbacks=callbacks_for(session),
    )
    attach_callbacks(session.trainer)
    announce(session)
    return session


def train(session: Session) -> int:
    return run_training(session)


def run(cfg: RecipeConfig, backend: BackendChoice) -> dict[str, str]:
    """Set up, train and save; returns what was saved (name -> path)."""
    session = setup(cfg, backend)
    train(session)
    return save(session)
