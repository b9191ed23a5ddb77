"""The bench spec (YAML + flags) and checkpoint resolution: what users type, and the errors they get."""

from __future__ import annotations

import json
import textwrap

import pytest
from medbench.harness.run.checkpoints import (
    CheckpointError,
    compute_content_hash,
    resolve_checkpoint,
)
from medbench.harness.run.spec import (
    CheckpointSpec,
    SpecError,
    build_spec,
    load_spec_file,
    parse_checkpoint_arg,
)
from medbench.tasks.provenance import DataSlice, Provenance, write_provenance

# -- spec -------------------------------------------------------------------------------------------------


def test_checkpoint_arg_forms(tmp_path):
    assert parse_checkpoint_arg("base=Qwen/Qwen2.5-3B-Instruct") == CheckpointSpec("base", "Qwen/Qwen2.5-3B-Instruct")
    assert parse_checkpoint_arg("grpo=Qwen/Qwen2.5-3B-Instruct+./out/a") == CheckpointSpec(
        "grpo", adapter="./out/a", base="Qwen/Qwen2.5-3B-Instruct")
    plus_dir = tmp_path / "model+v2"
    plus_dir.mkdir()
    assert parse_checkpoint_arg(f"x={plus_dir}").source == str(plus_dir)  # an existing path is never split
    with pytest.raises(SpecError, match=r"expected NAME=SOURCE"):
        parse_checkpoint_arg("Qwen/Qwen2.5-3B-Instruct")
    with pytest.raises(SpecError, match=r"contains '/'"):
        parse_checkpoint_arg("a/b=gpt2")


def test_spec_file_and_cli_overrides(tmp_path):
    (tmp_path / "data").mkdir()  # data_dir must exist (checked when the spec is built)
    path = tmp_path / "bench.yaml"
    path.write_text(textwrap.dedent("""
        checkpoints:
          base: Qwen/Qwen2.5-3B-Instruct
          grpo: {adapter: ./adapters/grpo, base: Qwen/Qwen2.5-3B-Instruct}
        tasks:
          - medbench_pubmedqa
          - {name: medbench_medical_cot, max_new_tokens: 1024, chat_template: false}
        limit: 100
        max_new_tokens: 512
        data_dir: data
        output: runs/nightly
    """))
    spec = build_spec(load_spec_file(path), {
        "checkpoints": ["grpo=./new_grpo", "sft=./sft"], "tasks": "medbench_medical_cot,medbench_gsm8k",
        "limit": "20", "seed": 7, "batch_size": "8",
    })
    assert [c.name for c in spec.checkpoints] == ["base", "grpo", "sft"]
    assert spec.checkpoint("grpo").source == "./new_grpo"  # the flag replaced the file's grpo
    assert [t.name for t in spec.tasks] == ["medbench_medical_cot", "medbench_gsm8k"]
    assert spec.task_options("medbench_medical_cot").max_new_tokens == 1024  # per-task options survive
    assert (spec.limit, spec.seed, spec.batch_size, spec.max_new_tokens) == (20, 7, 8, 512)
    assert spec.data_dir == str(tmp_path / "data")  # relative to the spec file, not the working directory
    assert spec.output == str(tmp_path / "runs/nightly")
    assert build_spec(None, {"checkpoints": ["a=gpt2"], "tasks": "t", "limit": "0.25"}).limit == 0.25


@pytest.mark.parametrize("yaml_text, message", [
    ("checkpoints: {base: gpt2}\ntasks: [t]\nlimt: 3\n", r"unknown key 'limt' \(did you mean 'limit'\?\)"),
    ("checkpoints: {base: {adaptor: ./a}}\ntasks: [t]\n", r"checkpoints\.base: unknown key 'adaptor'.*'adapter'"),
    ("checkpoints: {base: gpt2}\ntasks: [{name: t, max_new_tokens: -1}]\n", r"tasks\[0\]\.max_new_tokens.*positive"),
    ("checkpoints: {base: gpt2}\ntasks: [t]\ndtype: fp16\n", r"dtype: 'fp16' is not one of"),
    ("checkpoints: {base: gpt2}\ntasks: [t]\nbatch_size: big\n", r"batch_size: expected an integer, 'auto'"),
    ("checkpoints: {base: gpt2}\ntasks: [t]\nreference: bse\n", r"'bse' is not a checkpoint \(did you mean 'base'"),
    ("checkpoints: {base: gpt2}\ntasks: [t, t]\n", r"listed twice"),
    ("tasks: [t]\n", r"no checkpoints"),
    ("checkpoints: {base: gpt2}\n", r"no tasks"),
    ("checkpoints: [base\n", r"not valid YAML"),
])
def test_spec_errors_name_the_place_and_the_fix(tmp_path, yaml_text, message):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml_text)
    with pytest.raises(SpecError, match=message):
        build_spec(load_spec_file(path), {})


def test_cli_errors_name_the_flag():
    with pytest.raises(SpecError, match=r"--limit: expected documents per task"):
        build_spec(None, {"checkpoints": ["a=gpt2"], "tasks": "t", "limit": "-3"})
    with pytest.raises(SpecError, match=r"--backend: 'vlm' is not one of auto, hf, vllm, medbench-fast \(did you mean 'vllm'"):
        build_spec(None, {"checkpoints": ["a=gpt2"], "tasks": "t", "backend": "vlm"})


# -- checkpoints ------------------------------------------------------------------------------------------


def test_local_model_and_adapter_are_resolved(tiny_model_dir, tiny_lora_adapter_dir):
    full = resolve_checkpoint(CheckpointSpec("base", str(tiny_model_dir)))
    assert (full.kind, full.model, full.adapter) == ("local", str(tiny_model_dir), None)
    # an adapter directory is detected; its base comes from adapter_config.json; it is not merged
    ad = resolve_checkpoint(CheckpointSpec("lora", str(tiny_lora_adapter_dir)))
    assert ad.kind == "adapter"
    assert ad.model == str(tiny_model_dir.resolve())
    assert ad.adapter == str(tiny_lora_adapter_dir.resolve())
    assert ad.adapter_rank == 4
    explicit = resolve_checkpoint(parse_checkpoint_arg(f"lora={tiny_model_dir}+{tiny_lora_adapter_dir}"))
    assert explicit.model == ad.model and not explicit.warnings


def test_content_hash_is_of_the_weights(tiny_model_dir, tiny_lora_adapter_dir, tmp_path):
    import hashlib

    full = compute_content_hash(resolve_checkpoint(CheckpointSpec("base", str(tiny_model_dir))))
    want = hashlib.sha256((tiny_model_dir / "model.safetensors").read_bytes()).hexdigest()
    assert full.files == {"model.safetensors": want}
    ad = compute_content_hash(resolve_checkpoint(CheckpointSpec("lora", str(tiny_lora_adapter_dir))))
    assert set(ad.files) == {"base/model.safetensors", "adapter/adapter_model.safetensors"}
    assert ad.content_hash != full.content_hash
    memo: dict = {}
    compute_content_hash(resolve_checkpoint(CheckpointSpec("base", str(tiny_model_dir))), memo)
    assert list(memo.values()) == [want]  # a resumed run reuses the digest instead of re-reading weights


def test_provenance_is_read(tiny_model_dir, tmp_path):
    import shutil

    ck_dir = tmp_path / "sft"
    shutil.copytree(tiny_model_dir, ck_dir)
    prov = Provenance(role="sft", parent="base-id", recipe="sft", config={}, config_source="sft.yaml",
                      config_sha256="0", backend="trl", data=DataSlice([], 0, "0"), steps=2)
    write_provenance(ck_dir, prov)
    ck = resolve_checkpoint(CheckpointSpec("sft", str(ck_dir)))
    assert ck.role == "sft" and ck.to_meta()["parent"] == "base-id"
    assert ck.provenance == prov.to_dict()  # the trainers' record, read by the one reader
    # the bench reads provenance through the same schema check as the trainers: a fragment without a
    # schema_version (or of another version) is refused with the fix, never half-read
    for foreign in ({"role": "sft", "parent": "base-id"}, {**prov.to_dict(), "schema_version": 99}):
        (ck_dir / "medbench_provenance.json").write_text(json.dumps(foreign))
        with pytest.raises(CheckpointError, match=r"provenance schema_version .* is not 1.*re-save the checkpoint"):
            resolve_checkpoint(CheckpointSpec("sft", str(ck_dir)))
    (ck_dir / "medbench_provenance.json").write_text("{broken")
    with pytest.raises(CheckpointError, match=r"medbench_provenance.json is not valid JSON"):
        resolve_checkpoint(CheckpointSpec("sft", str(ck_dir)))


def test_missing_checkpoints_get_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"checkpoint 'grpo': source \./nope/adapter does not exist"):
        resolve_checkpoint(CheckpointSpec("grpo", "./nope/adapter"))
    with pytest.raises(CheckpointError, match=r"neither a local directory nor in the local Hugging Face cache"):
        resolve_checkpoint(CheckpointSpec("base", "no-such-org/no-such-model-xyz"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"neither config.json \(a full model\) nor adapter_config.json"):
        resolve_checkpoint(CheckpointSpec("x", str(tmp_path / "empty")))


def test_adapter_whose_base_does_not_match(tiny_lora_adapter_dir, tmp_path):
    from medbench.harness.models.tiny import build_tiny_model

    other = build_tiny_model(tmp_path / "wider", seed=3, hidden_size=32)
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(parse_checkpoint_arg(f"lora={other}+{tiny_lora_adapter_dir}"))
    msg = str(err.value)
    assert "does not fit base" in msg and "q_proj takes 32 -> 32 features" in msg
    assert "give the base the adapter was trained on: lora=" in msg


def test_adapter_whose_recorded_base_is_gone(tiny_model_dir, tiny_lora_adapter_dir, tmp_path):
    import shutil

    moved = tmp_path / "adapter"
    shutil.copytree(tiny_lora_adapter_dir, moved)
    cfg = json.loads((moved / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "/content/drive/base_model"
    (moved / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"trained on '/content/drive/base_model'.*not available here"):
        resolve_checkpoint(CheckpointSpec("lora", str(moved)))
    ok = resolve_checkpoint(parse_checkpoint_arg(f"lora={tiny_model_dir}+{moved}"))
    assert ok.warnings and "records base '/content/drive/base_model'" in ok.warnings[0]


def test_every_spec_option_is_a_bench_flag_and_every_flag_an_override():
    """The spec's dataclasses are the one list of options: a spec key marked as a flag has its ``--flag`` on
    ``medbench bench``, and each bench flag reaches the spec (none is silently ignored)."""
    import argparse

    from medbench.harness.cli import bench
    from medbench.harness.run.spec import FLAG_KEYS, TOP_KEYS

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    flags = {a.dest for a in parser._actions if a.option_strings and a.dest != "help"}
    assert set(FLAG_KEYS) <= flags
    run_only = {"spec", "checkpoint", "tasks", "no_report", "verbose"}  # how to run, or lists handled apart
    assert flags - run_only == set(FLAG_KEYS)
    args = parser.parse_args(["--limit", "5", "--tensor-parallel-size", "2", "--reference", "base"])
    overrides = bench.overrides_from_args(args)
    assert (overrides["limit"], overrides["tensor_parallel_size"], overrides["reference"]) == ("5", 2, "base")
    spec = build_spec(None, {**overrides, "checkpoints": ["base=gpt2"], "tasks": "t"})
    assert (spec.limit, spec.vllm.tensor_parallel_size, spec.reference) == (5, 2, "base")
    assert set(TOP_KEYS) >= {"checkpoints", "tasks", "vllm", "task_metadata"}
    with pytest.raises(SpecError, match=r"--tensor-parallel-size: expected a positive integer, got 0"):
        build_spec(None, {"checkpoints": ["base=gpt2"], "tasks": "t", "tensor_parallel_size": 0})
