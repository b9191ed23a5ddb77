"""What the two recipes share: a training session (config, backend, model, data, trainer) and how it ends.

The recipes (``sft.py``, ``grpo.py``) differ in their data and their TRL trainer; loading, saving and the
provenance written next to every saved directory are the same, so they live here once.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .backends import Adjustment, BackendChoice, save_outputs, versions
from .config import RecipeConfig
from .data import PreparedData
from .provenance import DataSlice, Provenance, write_provenance


@dataclass
class Session:
    cfg: RecipeConfig
    backend: BackendChoice
    base_model: str  # the resolved base (hub id or directory)
    model: Any
    tokenizer: Any
    data: PreparedData
    trainer: Any = None
    adjustments: list[Adjustment] = field(default_factory=list)
    train_runtime_s: float | None = None
    eval_metrics: str | None = None
    warmup_step: Any = None  # GRPO's format warm-up (runs it), when the config has one
    warmup: dict[str, Any] | None = None  # what the warm-up did, for the provenance

    def provenance(self, steps: int) -> Provenance:
        p = self.cfg.provenance
        return Provenance(
            role=str(p.role),
            # the model trained from: the config's word, else the adapter it went on training, else the base
            parent=p.parent or self.cfg.model.adapter or self.base_model,
            recipe=self.cfg.recipe,
            config=self.cfg.to_dict(),
            config_source=self.cfg.source,
            config_sha256=self.cfg.sha256(),
            backend=self.backend.name,
            data=DataSlice(sources=self.data.sources, n_rows=len(self.data.dataset), sha256=self.data.sha256),
            steps=steps,
            adjustments=[a.to_dict() for a in self.adjustments],
            versions=versions(),
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            train_runtime_s=self.train_runtime_s,
            eval_metrics=self.eval_metrics,
            warmup=self.warmup,
        )


def say(msg: str) -> None:
    print(f"medbench train: {msg}", file=sys.stderr, flush=True)


def announce(session: Session) -> None:
    """Tell the user what will run, and every recipe value this machine could not honour."""
    cfg = session.cfg
    if session.backend.message:
        say(session.backend.message)
    say(f"{cfg.recipe} recipe on backend `{session.backend.name}`: {session.base_model}, "
        f"{len(session.data.dataset)} training rows, max_steps {cfg.training.get('max_steps')}")
    for note in session.data.notes:
        say(note)
    for a in session.adjustments:
        say(f"changed {a.describe()}")


def run_training(session: Session) -> int:
    """Train; returns the number of optimizer steps taken."""
    t0 = time.perf_counter()
    session.trainer.train()
    session.train_runtime_s = round(time.perf_counter() - t0, 3)
    return int(session.trainer.state.global_step)


def save(session: Session) -> dict[str, str]:
    """Save adapter, tokenizer, merged model (and GGUF / hub push when configured), each with its provenance."""
    steps = int(session.trainer.state.global_step)
    saved = save_outputs(session.model, session.tokenizer, session.cfg, session.backend, session.base_model)
    # the training log (losses, rewards, learning rate per step), in transformers' own format
    session.trainer.state.save_to_json(str(session.cfg.output_dir / "trainer_state.json"))
    saved["trainer_state"] = str(session.cfg.output_dir / "trainer_state.json")
    prov = session.provenance(steps)
    eval_log = session.cfg.output_dir / session.eval_metrics if session.eval_metrics else None
    for key in ("adapter", "merged_16bit", "gguf"):
        if key in saved:
            write_provenance(saved[key], prov)
            if eval_log is not None and eval_log.is_file():  # the training curve travels with the checkpoint
                shutil.copy(eval_log, Path(saved[key]) / eval_log.name)
    write_provenance(session.cfg.output_dir, prov)
    for key, value in saved.items():
        if key.endswith("_error"):
            say(f"warning: {value}")
    say(f"saved to {session.cfg.output_dir}: " + ", ".join(k for k in saved if not k.endswith("_error")))
    return saved


def output_dir(cfg: RecipeConfig) -> Path:
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    return cfg.output_dir
