"""The GRPO recipe: Qwen2.5-3B-Instruct on GSM8K + PubMedQA + Health_Benchmarks, as the Unsloth tutorial does it.

    medbench train grpo --config trainers/configs/grpo_qwen25_3b_medical.yaml

1. Read GSM8K main + PubMedQA ``pqa_artificial`` (contexts < 1024 characters) + Health_Benchmarks (train
   side of the fixed hash split), each row checked against its dataset's schema.
2. Load the model (4-bit, vLLM fast inference where installed) and attach LoRA r 64 / alpha 64.
3. Shuffle the rows into prompts with the recipe's system prompt; drop prompts over 1024 tokens.
   Optional (``warmup`` in the config, off in the recipe): a short SFT on GRPO rows written in the recipe's
   ``<reasoning>/<answer>`` layout, for a model that never writes it and so would earn no reward — what
   Unsloth's Qwen3 GRPO notebook calls "pre fine-tune for formatting" (same LoRA, SFTTrainer, then GRPO).
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
from .data import grpo_rows, prepare_format_warmup, prepare_grpo
from .rewards import RECIPE_REWARDS
from .session import Session, announce, output_dir, run_training, save


def setup(cfg: RecipeConfig, backend: BackendChoice) -> Session:
    """Model + LoRA, prompts, rewards and the TRL trainer, ready to train."""
    assert cfg.recipe == "grpo", f"grpo.setup got a {cfg.recipe!r} config"
    if cfg.output.push_to_hub:
        hub_token()  # fail before training, not after, when the token is missing
    output_dir(cfg)
    rows = grpo_rows(cfg.data)  # read and check the data before spending minutes loading the model

    adjustments = []
    base = resolve_model_name(cfg.model.name, cfg.output_dir)
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
    if cfg.warmup.steps:  # prepared once GRPO's trainer exists: see run_warmup
        session.warmup_step = _warmup(session, rows)
    announce(session)
    return session


def _warmup(session: Session, rows):
    """Prepare the format warm-up: TRL's SFTTrainer on the same (LoRA) model, over GRPO rows written in the
    layout. Returns a function that builds and runs it (:func:`train` calls it before GRPO)."""
    import dataclasses
    import time

    from trl import SFTConfig, SFTTrainer

    from .progress import TrainingProgress, replace_transformers_display

    cfg = session.cfg
    warm = prepare_format_warmup(cfg.data, cfg.warmup, session.tokenizer, rows)
    session.data.notes.extend(warm.notes)
    as_sft = dataclasses.replace(
        cfg, recipe="sft", training={**cfg.warmup.training, "max_steps": cfg.warmup.steps},
        output=dataclasses.replace(cfg.output, dir=str(cfg.output_dir / "format_warmup")))
    changed: list = []
    kwargs = training_kwargs(as_sft, session.backend, changed)
    kwargs.setdefault("max_length", cfg.model.max_seq_length)
    kwargs.setdefault("save_strategy", "no")
    for a in changed:  # the same machine adjustments as GRPO's, recorded under the warm-up's own keys
        session.adjustments.append(dataclasses.replace(a, field=f"warmup.{a.field}"))
    args = SFTConfig(**kwargs)
    session.warmup = {"what": "SFT on GRPO rows in the <reasoning>/<answer> layout before GRPO (format warm-up)",
                      "data": warm.sources[0], "steps": 0, "losses": []}

    def run_warmup() -> None:
        # Each TRL trainer patches the model's forward with its own fused LM head (GRPO's computes log-probs and
        # entropy at its temperature, SFT's also token accuracy): the warm-up's patch goes on top of GRPO's for
        # the warm-up, and GRPO's own is put back before GRPO trains.
        base = session.model.get_base_model() if hasattr(session.model, "get_base_model") else session.model
        grpo_forward = base.__dict__.get("forward")
        trainer = SFTTrainer(model=session.model, args=args, train_dataset=warm.dataset,
                             processing_class=session.tokenizer,
                             callbacks=[TrainingProgress("medbench train: grpo format warm-up")])
        replace_transformers_display(trainer)
        t0 = time.perf_counter()
        try:
            trainer.train()
        finally:
            if grpo_forward is not None:
                base.forward = grpo_forward
            else:
                base.__dict__.pop("forward", None)
        history = trainer.state.log_history
        session.warmup.update(steps=int(trainer.state.global_step),
                              losses=[round(float(h["loss"]), 4) for h in history if "loss" in h],
                              train_runtime_s=round(time.perf_counter() - t0, 3))

    return run_warmup


def train(session: Session) -> int:
    """The format warm-up (when configured), then GRPO; returns GRPO's optimizer steps."""
    if session.warmup_step is not None:
        session.warmup_step()
        session.warmup_step = None
    return run_training(session)


def run(cfg: RecipeConfig, backend: BackendChoice) -> dict[str, str]:
    """Set up, train and save; returns what was saved (name -> path)."""
    session = setup(cfg, backend)
    train(session)
    return save(session)
