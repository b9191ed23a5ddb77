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
