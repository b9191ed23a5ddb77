"""The GRPO recipe: Qwen2.5-3B-Instruct on GSM8K + PubMedQA + Health_Benchmarks, as the Unsloth tutorial does it.

    medbench train grpo --config trainers/configs/grpo_qwen25_3b_medical.yaml

1. Read GSM8K main + PubMedQA ``pqa_artificial`` (contexts < 1024 characters) + Health_Benchmarks (train
   side of the fixed hash split), each row checked against its dataset's schema.
2. Load the model (4-bit, vLLM fast inference where installed) and attach LoRA r 64 / alpha 64.
3. Shuffle the rows into prompts with the recipe's system prompt; drop prompts over 1024 tokens.
4. Train with TRL's GRPOTrainer and the recipe's five rewards (XML count, soft format, strict format,
   answer-type validity, correctness), which are thin adapters over medbench's graders: the model is rewarded
   by the same function that scores it in ``medbench bench``.
5. Save the adapter, the tokenizer and a merged 16-bit model, each with its ``medbench_provenance.json``.

The same lifecycle (``setup`` → ``train`` → ``save``) runs on both backends; ``run`` does all three.
"""

from __future__ import annotations

from .backends import BackendChoice, hub_token, load_model, resolve_model_name, training_kwargs
from .callback import attach_callbacks, callbacks_for
from .config import RecipeConfig
from .data import grpo_rows, prepare_grpo
from .rewards import RECIPE_REWARDS
from .session import Session, announce, output_dir, run_training, save


def setup(cfg: RecipeConfig, backend: BackendChoice) -> Session:
    """Model + LoRA, prompts, rewards and the TRL trainer, ready to train."""
    assert cfg.recipe == "grpo", f"grpo.setup got a {cfg.recipe!r} config"
    if cfg.output["push_to_hub"]:
        hub_token()  # fail before training, not after, when the token is missing
    output_dir(cfg)
    rows = grpo_rows(cfg.data)  # read and check the data before spending minutes loading the model

    adjustments = []
    base = resolve_model_name(cfg.model["name"], cfg.output_dir)
    model, tokenizer = load_model(cfg, base, backend, adjustments)

    data = prepare_grpo(cfg.data, tokenizer, rows)

    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(**training_kwargs(cfg, backend, adjustments))
    session = Session(cfg=cfg, backend=backend, base_model=base, model=model, tokenizer=tokenizer, data=data,
                      adjustments=adjustments)
    session.trainer = GRPOTrainer(
        model=model,
        reward_funcs=list(RECIPE_REWARDS),
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
