"""Lineage order: base → SFT → GRPO without retyping it, also when the base is a hub model with no provenance file.

Roles come from the spec's ``role``, else provenance, else the checkpoint's name (base / sft / grpo), else
lineage (the model another checkpoint's provenance names as its parent is the base). The runner, the run API
and so the report share one ordering function.
"""

from __future__ import annotations

import shutil
import textwrap
from types import SimpleNamespace

import pytest
from fixtures_runs import rows_from_outcomes, write_run
from medbench.harness.run.checkpoints import ResolvedCheckpoint, resolve_checkpoint
from medbench.harness.run.rundir import RunWriter, checkpoint_roles, lineage_order, load_run
from medbench.harness.run.runner import checkpoint_entries, finalize
from medbench.harness.run.spec import CheckpointSpec, SpecError, build_spec, load_spec_file

HUB_BASE = "Qwen/Qwen2.5-3B-Instruct"


def _trained(name: str, role: str, parent: str, path: str) -> ResolvedCheckpoint:
    return ResolvedCheckpoint(name=name, kind="local", model=path, tokenizer=path,
                              provenance={"role": role, "parent": parent})


def _write_provenance(folder, role: str, parent: str) -> None:
    """A trainer's provenance file (schema-checked by the bench's reader: hand-written fragments are refused)."""
    from medbench.tasks.provenance import DataSlice, Provenance, write_provenance

    write_provenance(folder, Provenance(role=role, parent=parent, recipe=role, config={}, config_source="t.yaml",
                                        config_sha256="0", backend="trl", data=DataSlice([], 0, "0"), steps=1))


def test_a_hub_base_without_provenance_is_the_reference_when_an_sft_names_it_as_parent(tmp_path):
    # the user lists the trained checkpoints first and calls the hub model neither "base" nor anything known
    sft = _trained("mine-sft", "sft", HUB_BASE, "/ckpt/sft")
    grpo = _trained("mine-grpo", "grpo", "/ckpt/sft", "/ckpt/grpo")
    qwen = ResolvedCheckpoint(name="qwen", kind="hub", model=HUB_BASE, tokenizer=HUB_BASE)
    entries = checkpoint_entries([grpo, sft, qwen])
    assert [(e["name"], e["role"], e["role_source"]) for e in entries] == [
        ("qwen", "base", "parent"), ("mine-sft", "sft", "provenance"), ("mine-grpo", "grpo", "provenance")]

    # finalize computes the paired statistics against it (not against sft, the first with a role)
    writer = RunWriter(tmp_path / "run")
    for name, outcomes in (("mine-grpo", "CCCW"), ("mine-sft", "CCWW"), ("qwen", "CWWW")):
        writer.write_pair(name, "t", rows_from_outcomes(name, "t", outcomes))
    metrics = finalize(writer, SimpleNamespace(reference=None), [SimpleNamespace(name="t")], [grpo, sft, qwen])
    assert {(p["reference"], p["checkpoint"]) for p in metrics["pairs"]} == {("qwen", "mine-sft"),
                                                                           ("qwen", "mine-grpo")}


def test_parent_paths_match_however_they_are_written(tmp_path):
    base_dir = tmp_path / "models" / "base"
    base_dir.mkdir(parents=True)
    entries = [
        {"name": "sft", "role": "sft", "parent": str(tmp_path / "models" / ".." / "models" / "base") + "/",
         "model": "/ckpt/sft", "adapter": None},
        {"name": "start", "role": None, "parent": None, "model": str(base_dir), "adapter": None},
    ]
    assert checkpoint_roles(entries) == {"sft": "sft", "start": "base"}
    assert [c["name"] for c in lineage_order(entries)] == ["start", "sft"]
    # nobody's parent, no role: it keeps the order the user gave, after the checkpoints with roles
    entries.append({"name": "other", "role": None, "parent": None, "model": "org/other", "adapter": None})
    entries.insert(0, entries.pop())
    assert [c["name"] for c in lineage_order(entries)] == ["start", "sft", "other"]


def test_the_run_api_orders_an_older_run_json_the_same_way(tmp_path):
    # run.json written before roles were inferred: the hub base has role None
    rows = rows_from_outcomes("sft", "t", "CCWW") + rows_from_outcomes("qwen", "t", "CWWW")
    run_dir = write_run(tmp_path / "run", rows, checkpoints=[
        {"name": "sft", "role": "sft", "parent": HUB_BASE, "model": "/ckpt/sft"},
        {"name": "qwen", "role": None, "parent": None, "model": HUB_BASE},
    ])
    run = load_run(run_dir)
    assert run.checkpoint_names == ["qwen", "sft"]
    assert run.checkpoints[0]["role"] == "base"
    assert {(p["reference"], p["checkpoint"]) for p in run.pair_metrics()} == {("qwen", "sft")}


def test_a_checkpoint_named_base_is_the_base_unless_its_provenance_says_otherwise(tiny_model_dir, tmp_path):
    named = resolve_checkpoint(CheckpointSpec("base", str(tiny_model_dir)))
    assert (named.role, named.role_source) == ("base", "name")
    assert resolve_checkpoint(CheckpointSpec("start", str(tiny_model_dir))).role is None

    trained = tmp_path / "trained"
    shutil.copytree(tiny_model_dir, trained)
    _write_provenance(trained, "sft", str(tiny_model_dir))
    misnamed = resolve_checkpoint(CheckpointSpec("base", str(trained)))
    assert (misnamed.role, misnamed.role_source) == ("sft", "provenance")

    # CLI form: --checkpoint sft=... --checkpoint base=...  →  base first
    spec = build_spec(None, {"checkpoints": [f"sft={trained}", f"base={tiny_model_dir}"], "tasks": "t"})
    resolved = [resolve_checkpoint(c) for c in spec.checkpoints]
    assert [e["name"] for e in checkpoint_entries(resolved)] == ["base", "sft"]


def test_the_spec_states_a_role(tiny_model_dir, tmp_path):
    path = tmp_path / "bench.yaml"
    path.write_text(textwrap.dedent(f"""
        checkpoints:
          tuned: {{source: {tiny_model_dir}, role: sft}}
          start: {{source: {tiny_model_dir}, role: base}}
        tasks: [medbench_pubmedqa]
    """))
    spec = build_spec(load_spec_file(path))
    assert [(c.name, c.role) for c in spec.checkpoints] == [("tuned", "sft"), ("start", "base")]
    resolved = [resolve_checkpoint(c) for c in spec.checkpoints]
    assert [(e["name"], e["role"], e["role_source"]) for e in checkpoint_entries(resolved)] == [
        ("start", "base", "spec"), ("tuned", "sft", "spec")]

    path.write_text(f"checkpoints:\n  start: {{source: {tiny_model_dir}, role: bsae}}\ntasks: [x]\n")
    with pytest.raises(SpecError, match=r"checkpoints\.start\.role: 'bsae' is not one of base, sft, grpo "
                                        r"\(did you mean 'base'\?\)"):
        build_spec(load_spec_file(path))


def test_a_spec_role_that_contradicts_provenance_wins_with_a_warning(tiny_model_dir, tmp_path):
    trained = tmp_path / "trained"
    shutil.copytree(tiny_model_dir, trained)
    _write_provenance(trained, "grpo", "x")
    ck = resolve_checkpoint(CheckpointSpec("t", str(trained), role="sft"))
    assert ck.role == "sft"
    assert any("provenance says 'grpo'" in w for w in ck.warnings)
