"""The training half of ``medbench demo``: base → SFT → GRPO on the tiny model, on CPU, in well under a minute.

Both recipes run exactly as ``medbench train`` runs them (the tiny configs ``sft_tiny_cpu.yaml`` and
``grpo_tiny_cpu.yaml``, the ``trl`` backend, the bundled sample data): the SFT step trains the base, the GRPO
step trains the SFT checkpoint, and each saved model carries its provenance, so ``medbench bench`` orders
them base → sft → grpo by lineage.
"""

from __future__ import annotations

from pathlib import Path

from . import grpo, sft
from .backends import select_backend
from .config import load_config


def demo_train(base_dir: str | Path, out_dir: str | Path, data_dir: str | Path | None = None, *,
               sft_steps: int = 2, grpo_steps: int = 2) -> dict[str, Path]:
    """Train an SFT then a GRPO checkpoint from the tiny model in ``base_dir``.

    Args:
        base_dir: the base model directory (e.g. built by ``medbench.harness.tiny_models.build_tiny_model``).
        out_dir: where ``sft/`` and ``grpo/`` are written (adapter, merged model, provenance each).
        data_dir: the local data folder (default: the bundled sample data).
    Returns:
        ``{"sft": <merged SFT model dir>, "grpo": <merged GRPO model dir>}``.
    """
    out = Path(out_dir)
    data = str(data_dir) if data_dir is not None else "sample"
    backend = select_backend("trl")
    sft_cfg = load_config("sft_tiny_cpu", [f"model.name={base_dir}", f"data.data_dir={data}",
                                           f"output.dir={out / 'sft'}", f"training.max_steps={sft_steps}"])
    sft_saved = sft.run(sft_cfg, backend)
    grpo_cfg = load_config("grpo_tiny_cpu", [f"model.name={sft_saved['merged_16bit']}", f"data.data_dir={data}",
                                             f"output.dir={out / 'grpo'}", f"training.max_steps={grpo_steps}"])
    grpo_saved = grpo.run(grpo_cfg, backend)
    return {"sft": Path(sft_saved["merged_16bit"]), "grpo": Path(grpo_saved["merged_16bit"])}
