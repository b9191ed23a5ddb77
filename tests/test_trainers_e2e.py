"""The recipes end to end on CPU: a few steps of SFT and GRPO on the tiny model with the `trl` backend.

LoRA's B matrices start at exactly zero and weight decay keeps a zero at zero, so a B matrix that is not zero
after training was moved by a gradient step: that is the check that the recipe trained.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from medbench.tasks.loaders import SAMPLE_DATA_DIR
from medbench.trainers.backends import select_backend
from medbench.trainers.config import load_config
from medbench.trainers.provenance import read_provenance

pytestmark = pytest.mark.slow


def _lora_b(adapter_dir: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return {k: v for k, v in weights.items() if "lora_B" in k}


def _assert_every_lora_b_moved(adapter_dir: Path, n_layers: int = 2, n_targets: int = 7) -> None:
    b = _lora_b(adapter_dir)
    assert len(b) == n_layers * n_targets  # every projection the recipe names got an adapter
    still_zero = [k for k, v in b.items() if not v.abs().sum() > 0]
    assert not still_zero, f"LoRA B matrices never updated: {still_zero}"


#: A log dict as transformers prints it (PrinterCallback, or tqdm.write under its bar): "{'loss': '2.31', ...".
RAW_LOG_DICT = re.compile(r"\{'(loss|reward|grad_norm|learning_rate|train_runtime|epoch)'")


def _assert_progress_not_log_dicts(out: str, err: str, recipe: str, metrics: str) -> None:
    """What a person sees while a recipe trains: medbench's progress line ending in its done line, and none
    of the raw log dicts transformers prints by default (those stay in trainer_state.json)."""
    assert not RAW_LOG_DICT.search(out) and not RAW_LOG_DICT.search(err), (out + err)[:2000]
    done = re.findall(rf"^medbench train: {recipe} done, 2/2 steps in \d+s, {metrics}$", err,
                      flags=re.MULTILINE)
    assert len(done) == 1, err[-2000:]


def test_sft_recipe_trains_saves_and_evaluates_during_training(tiny_model_dir, tmp_path, capfd):
    from medbench.trainers import sft
    from medbench.trainers.callback import CHECKPOINT_EVAL_FILE, EVAL_FILE

    cfg = load_config("sft_tiny_cpu", [
        f"model.name={tiny_model_dir}", f"output.dir={tmp_path / 'sft'}", "training.max_steps=2",
        "training.save_strategy=steps", "training.save_steps=1",
        "eval.every_n_steps=1", "eval.tasks=[medbench_gsm8k]", "eval.limit=2", "eval.max_new_tokens=8",
    ])
    session = sft.setup(cfg, select_backend("trl"))
    # the recipe's text: <think> template, EOS appended
    assert session.data.dataset[0]["text"].endswith(session.tokenizer.eos_token)
    assert session.trainer.args.optim == "adamw_torch" and session.trainer.args.seed == 3407
    assert sft.train(session) == 2
    _assert_progress_not_log_dicts(*capfd.readouterr(), "sft", r"loss \d+\.\d{3} \(mean \d+\.\d{3}\)")
    saved = sft.save(session)

    _assert_every_lora_b_moved(Path(saved["adapter"]))
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(saved["merged_16bit"])
    assert str(merged.dtype) == "torch.bfloat16"
    for key in ("adapter", "merged_16bit"):
        prov = read_provenance(saved[key])
        assert (prov.role, prov.recipe, prov.backend, prov.steps) == ("sft", "sft", "trl", 2)
        assert prov.parent == str(tiny_model_dir)
        assert prov.data.n_rows == len(session.data.dataset) > 0 and len(prov.data.sha256) == 64
        assert prov.data.sources[0]["split"] == "train[0:500]"
        assert prov.config["training"]["learning_rate"] == 2e-4 and prov.eval_metrics == EVAL_FILE
        assert prov.versions["trl"] and prov.versions["transformers"]

    # evaluation during training: one record per step, in the output dir and beside each checkpoint
    lines = [json.loads(x) for x in (tmp_path / "sft" / EVAL_FILE).read_text().splitlines()]
    assert [e["step"] for e in lines] == [1, 2]
    doc_ids = lines[0]["scoring"]["doc_ids"]["medbench_gsm8k"]
    assert len(doc_ids) == 2  # the documents `medbench bench --limit 2` scores, the same at every step
    for e in lines:
        assert e["scoring"]["tasks"] == ["medbench_gsm8k"] and len(e["samples"]) == 2
        assert sorted(s["doc_id"] for s in e["samples"]) == doc_ids
        # the bench's grade records and metric names (metrics.json's), not lm-eval's per-task aggregates
        m = e["metrics"]
        assert 0.0 <= m["medbench/medbench_gsm8k/accuracy"] <= 1.0 and m["medbench/medbench_gsm8k/n"] == 2
        assert m["medbench/medbench_gsm8k/accuracy"] == sum(s["outcome"] == "correct" for s in e["samples"]) / 2
        assert {"outcome", "extracted", "format_strict", "truncated"} <= set(e["samples"][0])
    assert (Path(saved["merged_16bit"]) / EVAL_FILE).read_text() == (tmp_path / "sft" / EVAL_FILE).read_text()
    for step in (1, 2):
        ckpt = tmp_path / "sft" / f"checkpoint-{step}"
        assert json.loads((ckpt / CHECKPOINT_EVAL_FILE).read_text())["step"] == step
        assert read_provenance(ckpt).steps == step
    logged = [h for h in session.trainer.state.log_history if "medbench/medbench_gsm8k/accuracy" in h]
    assert [h["step"] for h in logged] == [1, 2]
    # the per-step logs were not printed, but they are all kept
    history = json.loads((tmp_path / "sft" / "trainer_state.json").read_text())["log_history"]
    assert [h["step"] for h in history if "loss" in h] == [1, 2]


def test_grpo_recipe_shows_progress_with_reward_not_log_dicts(tiny_model_dir, tmp_path, capfd):
    from medbench.trainers import grpo

    cfg = load_config("grpo_tiny_cpu", [f"model.name={tiny_model_dir}", f"output.dir={tmp_path / 'grpo'}",
                                        "training.max_steps=2", "output.save_merged_16bit=false"])
    session = grpo.setup(cfg, select_backend("trl"))
    assert grpo.train(session) == 2
    _assert_progress_not_log_dicts(*capfd.readouterr(), "grpo",
                                   r"reward -?\d+\.\d{2} \(format -?\d+\.\d{2}, correctness \d+\.\d{2}\)")
    steps = [h for h in session.trainer.state.log_history if "reward" in h]
    assert [h["step"] for h in steps] == [1, 2]


def test_demo_trains_base_to_sft_to_grpo_with_lineage(tmp_path):
    from tiny_demo import demo_train  # the tiny primed base of the tests (tests/tiny_demo.py)

    out = demo_train(None, tmp_path / "train", SAMPLE_DATA_DIR)
    assert set(out) == {"base", "sft", "grpo"}
    sft_prov, grpo_prov = read_provenance(out["sft"]), read_provenance(out["grpo"])
    assert (sft_prov.role, sft_prov.parent) == ("sft", str(out["base"]))
    assert (grpo_prov.role, grpo_prov.parent) == ("grpo", str(out["sft"]))
    assert grpo_prov.steps == 2
    from medbench.tasks.loaders import load_health
    from medbench.tasks.splits import health_split

    health_train = sum(health_split(d["Questions"]) == "train" for spec in ("Cardiology", "Dermatology",
                       "Lab_Medicine") for d in load_health(spec, str(SAMPLE_DATA_DIR))["test"])
    # gsm8k train, pqa-a with contexts < 1024 characters, the train side of Health_Benchmarks
    assert [s["n_rows"] for s in grpo_prov.data.sources] == [64, 46, health_train]
    _assert_every_lora_b_moved(tmp_path / "train" / "sft" / "adapter")
    _assert_every_lora_b_moved(tmp_path / "train" / "grpo" / "adapter")

    # GRPO was scored by the recipe's five rewards, and they varied within a group (else nothing to learn)
    history = json.loads((tmp_path / "train" / "grpo" / "trainer_state.json").read_text())["log_history"]
    steps = [h for h in history if "reward" in h]
    assert len(steps) == 2
    for name in ("xmlcount_reward", "soft_format_reward", "strict_format_reward", "answer_type_reward",
                 "correctness_reward"):
        assert f"rewards/{name}/mean" in steps[0]
    assert any(h["reward_std"] > 0 for h in steps)
