"""The training half of ``medbench demo``: the demo's SFT and GRPO LoRA adapters on SmolLM2-135M-Instruct.

Training both recipes inside the demo's five minutes on two CPU cores could not move anything measurable (a
LoRA SFT step of two clinical rows takes seconds, a GRPO step with six sampled completions much longer), so the
demo evaluates **committed adapters** that these same functions produced (:data:`COMMITTED_ADAPTERS`,
``trainers/demo_adapters/{sft,grpo}``) and ``medbench demo --train`` retrains them from scratch.

Lineage, and why one adapter holds it: SFT trains a LoRA adapter on the base with the bundled SFT recipe
(``sft_smollm2_demo.yaml``: the ``<think>`` template on medical-o1 rows 0–47). GRPO *goes on training that
adapter* (``model.adapter``) with the bundled GRPO recipe (``grpo_smollm2_demo.yaml``: the recipe's five
rewards, thin adapters over medbench's graders), after the config's short format warm-up — as Unsloth's Qwen3
GRPO notebook does it (same LoRA: a few SFT steps on examples in the custom layout, then GRPO). So each
checkpoint is one adapter over the same base, evaluated unmerged as users evaluate theirs
(``sft=BASE+adapters/sft``, ``grpo=BASE+adapters/grpo``); nothing is merged or cached besides the base, and the
provenance parent chain reads base → sft → grpo (the SFT's parent is the base's hub id, GRPO's the SFT adapter).

Each adapter is exported (:func:`export_adapter`) as a small self-contained folder: the LoRA weights in float16
(rank 2 on every projection: 1.2 MB), ``adapter_config.json`` naming the base by its hub id (a local path would
not travel), the trainer's ``medbench_provenance.json`` and ``trainer_state.json`` (every step's loss or reward).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from .backends import select_backend
from .config import load_config

#: The demo's two recipe configs (trainers/configs/).
SFT_CONFIG = "sft_smollm2_demo"
GRPO_CONFIG = "grpo_smollm2_demo"
#: The adapters the demo evaluates unless ``--train`` asks for new ones (shipped in the package).
COMMITTED_ADAPTERS = Path(__file__).resolve().parent / "demo_adapters"
#: What an exported adapter folder holds.
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "medbench_provenance.json", "trainer_state.json")
#: The base the adapters are trained on, by name (the prepared local folder is this model).
BASE_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def export_adapter(trained: Path, dest: Path, *, base_id: str = BASE_ID, trainer_state: Path | None = None) -> Path:
    """Copy a trained adapter to ``dest`` as the demo ships it: weights in float16, the base named ``base_id``.

    float16 rather than bfloat16: LoRA weights are small numbers, where float16's 10-bit mantissa keeps three
    times the precision of bfloat16's 7 bits, and none is outside its range. PEFT casts them back to the base's
    float32 when it loads the adapter.
    """
    import torch
    from safetensors.torch import load_file, save_file

    dest.mkdir(parents=True, exist_ok=True)
    weights = load_file(str(trained / "adapter_model.safetensors"))
    too_big = [k for k, v in weights.items() if v.is_floating_point() and v.abs().max() > 6e4]
    if too_big:
        raise ValueError(f"{trained}: LoRA weights {too_big[:3]} exceed float16's range; keep them in float32")
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
              str(dest / "adapter_model.safetensors"), metadata={"format": "pt"})
    (dest / "adapter_model.safetensors").chmod(0o644)  # safetensors writes 0600; the folder is for reading
    config = json.loads((trained / "adapter_config.json").read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_id
    (dest / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    shutil.copy(trained / "medbench_provenance.json", dest / "medbench_provenance.json")
    if trainer_state is not None and trainer_state.is_file():
        shutil.copy(trainer_state, dest / "trainer_state.json")
    return dest


def train_demo_adapters(base_model: str | Path, out_dir: str | Path, *, work_dir: str | Path | None = None,
                        data_dir: str = "sample", sft_overrides: list[str] | tuple[str, ...] = (),
                        grpo_overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Path]:
    """Train the demo's SFT adapter on ``base_model``, then GRPO on top of it; export both under ``out_dir``.

    Args:
        base_model: the local SmolLM2 folder (``medbench.harness.models.smollm2.prepare_smollm2``).
        out_dir: where ``sft/`` and ``grpo/`` are exported (:func:`export_adapter`).
        work_dir: the recipes' own output folders (default ``out_dir/_training``).
        data_dir: the training data folder (default: the bundled sample data).
        sft_overrides, grpo_overrides: config overrides (``section.field=value``), e.g. fewer steps.
    Returns:
        ``{"sft": <sft adapter folder>, "grpo": <grpo adapter folder>}``.
    """
    from . import grpo, sft

    out = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else out / "_training"
    backend = select_backend("trl")
    sft_cfg = load_config(SFT_CONFIG, [f"model.name={base_model}", f"data.data_dir={data_dir}",
                                       f"output.dir={work / 'sft'}", *sft_overrides])
    sft_dir = export_adapter(Path(sft.run(sft_cfg, backend)["adapter"]), out / "sft",
                             trainer_state=work / "sft" / "trainer_state.json")
    grpo_cfg = load_config(GRPO_CONFIG, [f"model.name={base_model}", f"model.adapter={sft_dir}",
                                         f"data.data_dir={data_dir}", f"output.dir={work / 'grpo'}",
                                         *grpo_overrides])
    with warnings.catch_warnings():
        # PEFT looks the base up by the hub id the exported SFT adapter names, to see whether its vocabulary
        # changed (it did not: LoRA trains no embeddings); offline that look-up fails and it says so
        warnings.filterwarnings("ignore", message="Could not find a config file")
        grpo_dir = export_adapter(Path(grpo.run(grpo_cfg, backend)["adapter"]), out / "grpo",
                                  trainer_state=work / "grpo" / "trainer_state.json")
    return {"sft": sft_dir, "grpo": grpo_dir}


def adapter_summary(adapter_dir: Path) -> dict[str, Any]:
    """What an exported adapter is, for the demo's status line and the tests: rank, modules, size, steps."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    prov = json.loads((adapter_dir / "medbench_provenance.json").read_text(encoding="utf-8"))
    return {"r": config.get("r"), "target_modules": sorted(config.get("target_modules") or []),
            "bytes": (adapter_dir / "adapter_model.safetensors").stat().st_size, "role": prov.get("role"),
            "steps": prov.get("steps"), "warmup_steps": (prov.get("warmup") or {}).get("steps"),
            "parent": prov.get("parent")}
