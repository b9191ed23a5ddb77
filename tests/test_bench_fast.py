"""``medbench bench --backend medbench-fast``: the fast backend is wired exactly like ``hf`` (same HFLM arguments,
adapters unmerged), so on the tiny model it gives the same samples as ``--backend hf``. Runs on CPU."""

from __future__ import annotations

import json

import pytest
from medbench.harness.cli import main
from medbench.harness.run.rundir import load_run
from medbench.harness.run.spec import SpecError, build_spec
from test_bench import bench_args

KEY = ["checkpoint", "task", "doc_key"]
SAME = ["prompt", "completion", "outcome", "extracted", "format_strict", "truncated", "completion_tokens"]


@pytest.mark.slow
def test_fast_backend_gives_the_same_samples_as_hf(tiny_model_dir, tiny_lora_adapter_dir, tmp_path):
    from medbench.harness.backends.slot_decoder import unsupported_reason
    from transformers import AutoModelForCausalLM

    # the tiny Qwen2 takes the fast paths (no silent fall-back to the stock generation)
    assert unsupported_reason(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))) is None
    cks = (f"base={tiny_model_dir}", f"lora={tiny_lora_adapter_dir}")
    runs = {}
    for backend in ("hf", "medbench-fast"):
        out = tmp_path / backend
        assert main(bench_args(out, *cks, extra=("--backend", backend, "--no-report"))) == 0
        runs[backend] = load_run(out)
    hf, fast = (runs[b].samples().sort_values(KEY).reset_index(drop=True) for b in ("hf", "medbench-fast"))
    assert runs["medbench-fast"].meta["settings"]["backend"] == "medbench-fast"
    assert len(hf) == len(fast) == 2 * 2 * 2
    for col in SAME:
        assert hf[col].equals(fast[col]), f"{col}: hf {hf[col].tolist()} != fast {fast[col].tolist()}"
    # the loglikelihood task's per-choice scores agree too (shared-context scoring, float32 logits)
    ll = hf["task"] == "medbench_pubmedqa_ll"
    for a, b in zip(hf.loc[ll, "loglikelihoods"], fast.loc[ll, "loglikelihoods"]):
        assert json.loads(a) == pytest.approx(json.loads(b), abs=1e-4)
    # the adapter was applied (unmerged) on the fast path as on the stock one
    gen = fast[fast["task"] == "medbench_pubmedqa"]
    assert set(gen[gen.checkpoint == "base"]["completion"]) != set(gen[gen.checkpoint == "lora"]["completion"])


def test_backend_names_are_checked_with_the_closest_match():
    with pytest.raises(SpecError, match=r"'medbench_fast' is not one of auto, hf, vllm, medbench-fast "
                                        r"\(did you mean 'medbench-fast'\?\)"):
        build_spec(None, {"checkpoints": ["base=./m"], "tasks": "t", "backend": "medbench_fast"})
