"""`--backend auto` (the default): medbench-fast on a CUDA GPU, where stock hf with lm-eval's `auto` batch probe
spent minutes to choose batch 3 (issue 15); the reference hf on a CPU. A named backend is always what runs."""

from __future__ import annotations

import pytest
from medbench.harness.backends.lm_backends import resolve_backend
from medbench.harness.run.spec import build_spec


def _spec(**overrides):
    return build_spec({"checkpoints": {"m": "some/model"}, "tasks": ["medbench_pubmedqa"]}, overrides)


def test_auto_is_the_default_and_means_medbench_fast_on_a_gpu():
    assert _spec().backend == "auto"
    assert resolve_backend(_spec(device="cuda")) == "medbench-fast"
    assert resolve_backend(_spec(device="cuda:1")) == "medbench-fast"


def test_auto_means_hf_on_a_cpu():
    assert resolve_backend(_spec(device="cpu")) == "hf"


@pytest.mark.parametrize("name", ["hf", "medbench-fast", "vllm"])
def test_a_named_backend_is_kept(name):
    assert resolve_backend(_spec(backend=name, device="cuda")) == name
    assert resolve_backend(_spec(backend=name, device="cpu")) == name


class _RecordingVLLM:
    """Stands in for lm-eval's VLLM class (vLLM needs a CUDA machine): records the arguments medbench passes."""

    seen: dict = {}

    def __init__(self, **kwargs):
        _RecordingVLLM.seen = kwargs


@pytest.fixture
def fake_vllm(monkeypatch):
    import sys
    import types

    module = types.ModuleType("lm_eval.models.vllm_causallms")
    module.VLLM = _RecordingVLLM
    monkeypatch.setitem(sys.modules, "lm_eval.models.vllm_causallms", module)
    return _RecordingVLLM


def test_vllm_never_gets_batch_auto(fake_vllm, tmp_path):
    """lm-eval's VLLM turns `auto` into vLLM's own tqdm bar, and under medbench's TQDM_DISABLE=1 vLLM 0.26 divides
    by that disabled bar's zero elapsed time: every checkpoint failed with ZeroDivisionError on an H200."""
    from medbench.harness.backends.lm_backends import VLLM_AUTO_BATCH, build_lm
    from medbench.harness.run.checkpoints import ResolvedCheckpoint

    ck = ResolvedCheckpoint(name="m", kind="local", model=str(tmp_path))
    build_lm(ck, _spec(backend="vllm"))
    assert fake_vllm.seen["batch_size"] == VLLM_AUTO_BATCH
    assert VLLM_AUTO_BATCH >= 256  # at least the runner's chunk: vLLM schedules each chunk whole
    build_lm(ck, _spec(backend="vllm", batch_size=32))
    assert fake_vllm.seen["batch_size"] == 32
