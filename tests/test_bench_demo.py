"""``medbench demo``: SmolLM2-135M-Instruct, the committed SFT and GRPO adapters, every task family, the report.

Only what holds on every machine is asserted: lineage and roles, every family scored, well-formed records, the
report, adapters that load and change what the model writes, the same command twice giving the same samples on
one machine, and ``--train`` moving LoRA weights with finite losses. No assertion depends on a training outcome
or on bit-identical floats across CPUs. The gate rules of ``.ci/demo-gate-rules.yaml`` are shown to pass the
demo against its own baseline, to tolerate a document changing per task, and to fail a real regression.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
from medbench.harness.cli import demo_steps, main
from medbench.harness.cli.demo_steps import DEMO_TASKS
from medbench.harness.run.rundir import load_run
from medbench.tasks import registry
from medbench.trainers import demo as trainers_demo
from medbench.trainers.config import load_config
from medbench.trainers.provenance import read_provenance

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / ".ci" / "demo-gate-rules.yaml"
#: Documents per task in these tests (the demo's default is 8): enough for every check here, and quick.
LIMIT = "2"
SAMPLE_FIELDS = ["checkpoint", "task", "doc_key", "prompt", "completion", "outcome", "extracted", "format_strict",
                 "format_soft", "think_ok", "truncated", "reasoning_tokens", "answer_tokens", "completion_tokens"]


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


def _demo(out: Path, *extra: str) -> tuple[int, str, str]:
    return _run_cli(["demo", "--output", str(out), "--limit", LIMIT, *extra])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, smollm2_dir):
    out = tmp_path_factory.mktemp("demo") / "run"
    status, stdout, stderr = _demo(out)
    assert status == 0, stderr[-3000:]
    return out, stdout, stderr


# -- what is benchmarked (no model) ---------------------------------------------------------------------------


def test_the_demo_covers_every_task_family_with_a_token_budget_each():
    assert {registry.get_task(t).family for t in DEMO_TASKS} == set(registry.FAMILIES)
    for task, budget in demo_steps.DEMO_TASK_BUDGETS.items():
        assert registry.get_task(task).output_type == "generate_until" and 0 < budget <= 256, task


def test_the_data_view_uses_real_files_where_present_and_the_samples_otherwise(tmp_path, realdata):
    from medbench.tasks.loaders import SAMPLE_DATA_DIR, load_gsm8k, load_health

    real = demo_steps.data_view(tmp_path / "real", realdata)
    assert set(real.origin.values()) == {"real", "sample"}
    assert {k for k, v in real.origin.items() if v == "sample"} == {"health_benchmarks", "medical_o1"}
    assert (tmp_path / "real" / "gsm8k" / "test.jsonl").resolve() == (realdata / "gsm8k" / "test.jsonl").resolve()
    assert len(load_gsm8k(str(tmp_path / "real"))["test"]) == 1319  # the real test split, through the loader
    assert "real pubmedqa" in real.describe() and "bundled sample health_benchmarks" in real.describe()

    bare = demo_steps.data_view(tmp_path / "bare", None)
    assert set(bare.origin.values()) == {"sample"}
    assert (tmp_path / "bare" / "pubmedqa" / "ori_pqal.json").resolve() == SAMPLE_DATA_DIR / "pubmedqa" / "ori_pqal.json"
    assert len(load_health("Cardiology", str(tmp_path / "bare"))["test"]) > 0
    # assembling again over an existing view (a resumed demo) keeps it as it is
    assert demo_steps.data_view(tmp_path / "bare", None).origin == bare.origin


def test_the_committed_adapters_are_what_the_demo_configs_train():
    """The committed adapters were trained with the demo configs as they are (after changing a config, rebuild
    them: `medbench demo --train --adapters-out trainers/demo_adapters`); each is small, stored in float16,
    names its base by hub id, and the provenance chain reads base -> sft -> grpo."""
    from safetensors import safe_open

    sft_cfg, grpo_cfg = load_config(trainers_demo.SFT_CONFIG), load_config(trainers_demo.GRPO_CONFIG)
    assert sft_cfg.lora == grpo_cfg.lora  # GRPO goes on training the SFT adapter
    for name, cfg in (("sft", sft_cfg), ("grpo", grpo_cfg)):
        folder = trainers_demo.COMMITTED_ADAPTERS / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(trainers_demo.ADAPTER_FILES)
        config = json.loads((folder / "adapter_config.json").read_text())
        assert (config["r"], config["lora_alpha"]) == (cfg.lora.r, cfg.lora.alpha)
        assert sorted(config["target_modules"]) == sorted(cfg.lora.target_modules)
        assert config["base_model_name_or_path"] == trainers_demo.BASE_ID
        weights = folder / "adapter_model.safetensors"
        assert weights.stat().st_size <= 2_100_000
        with safe_open(str(weights), framework="pt") as fh:
            assert {str(fh.get_tensor(k).dtype) for k in fh.keys()} == {"torch.float16"}  # noqa: SIM118
        prov = read_provenance(folder)
        assert (prov.role, prov.recipe, prov.backend) == (name, name, "trl")
        # trained with the config as it is now (a config change needs the adapters rebuilt: see the docstring)
        assert {k: prov.config[k] for k in ("lora", "data", "training")} == \
            {k: cfg.to_dict()[k] for k in ("lora", "data", "training")}
        if cfg.warmup.steps:
            assert prov.config["warmup"] == cfg.to_dict()["warmup"]
        assert prov.steps == cfg.training["max_steps"]
        state = json.loads((folder / "trainer_state.json").read_text())
        logged = [h for h in state["log_history"] if "loss" in h or "reward" in h]
        assert len(logged) == prov.steps
    sft_prov, grpo_prov = (read_provenance(trainers_demo.COMMITTED_ADAPTERS / n) for n in ("sft", "grpo"))
    assert sft_prov.parent == trainers_demo.BASE_ID
    assert Path(grpo_prov.parent).name == "sft" and grpo_prov.config["model"]["adapter"] == grpo_prov.parent
    assert sft_prov.data.sources[0]["split"] == f"train[0:{demo_steps.DEMO_TASK_METADATA['sft_train_rows']}]"
    assert grpo_prov.warmup["steps"] == grpo_cfg.warmup.steps and len(grpo_prov.warmup["losses"]) > 0


def test_the_committed_adapters_ship_in_the_package():
    """pyproject's package-data must carry every committed adapter file, or an installed medbench has none."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    globs = data["medbench.trainers"]
    for path in trainers_demo.COMMITTED_ADAPTERS.rglob("*"):
        if path.is_file():
            rel = path.relative_to(REPO / "trainers").as_posix()
            assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not in package-data {globs}"


# -- the demo, end to end --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_demo_benches_base_sft_and_grpo_on_every_family_and_writes_the_report(demo_run):
    out, stdout, stderr = demo_run
    run = load_run(out)
    assert run.meta["status"] == "complete"
    assert run.meta["spec"]["backend"] == demo_steps.DEMO_BACKEND

    # lineage: the adapters' provenance gives sft and grpo their roles; the base is the base by name and the
    # reference of every paired comparison
    assert run.checkpoint_names == ["base", "sft", "grpo"]
    cks = {c["name"]: c for c in run.meta["checkpoints"]}
    assert {n: (c["role"], c["role_source"]) for n, c in cks.items()} == {
        "base": ("base", "name"), "sft": ("sft", "provenance"), "grpo": ("grpo", "provenance")}
    assert {c["kind"] for n, c in cks.items() if n != "base"} == {"adapter"}  # evaluated unmerged
    assert cks["sft"]["model"] == cks["grpo"]["model"] == cks["base"]["model"]
    assert {Path(c["adapter"]).name for n, c in cks.items() if n != "base"} == {"sft", "grpo"}
    assert {p["reference"] for p in run.pair_metrics()} == {"base"}

    # every family, every checkpoint, well-formed records
    df = run.samples()
    assert set(df["task"]) == set(DEMO_TASKS)
    assert df.groupby("task")["checkpoint"].nunique().eq(3).all()
    assert set(df["outcome"]) <= {"correct", "wrong", "unparseable"}
    assert df.groupby(["checkpoint", "task"]).size().le(int(LIMIT)).all()
    generated = df[df["layout"].notna()]
    assert generated["completion"].map(lambda c: isinstance(c, str)).all()
    assert (generated["completion_tokens"] >= 0).all() and (generated["reasoning_tokens"] >= 0).all()
    metrics = {(m["checkpoint"], m["task"]): m for m in run.task_metrics() if m.get("subgroup") is None}
    assert {k for k in metrics} >= {(c, t) for c in ("base", "sft", "grpo") for t in DEMO_TASKS}

    # where the data came from is said, and the report is written and named on stdout with the summary
    assert "[demo] data: real pubmedqa" in stderr or "bundled hand-written samples" in stderr
    report = out / "report.html"
    assert report.is_file() and "grpo" in report.read_text(encoding="utf-8")
    assert f"report: {report}" in stdout and "medbench_pubmedqa" in stdout


@pytest.mark.slow
def test_the_adapters_change_what_the_model_writes(demo_run):
    """Each adapter loaded and moved the base's greedy completions (not how: that is a training outcome)."""
    df = load_run(demo_run[0]).samples()
    gen = df[df["layout"].notna()].pivot_table(index=["task", "doc_key"], columns="checkpoint",
                                               values="completion", aggfunc="first")
    assert (gen["sft"] != gen["base"]).any()
    assert (gen["grpo"] != gen["base"]).any()
    assert (gen["grpo"] != gen["sft"]).any()


@pytest.mark.slow
def test_the_same_demo_twice_gives_the_same_samples(demo_run, tmp_path):
    first = load_run(demo_run[0]).samples()
    status, _, stderr = _demo(tmp_path / "again")
    assert status == 0, stderr[-3000:]
    second = load_run(tmp_path / "again").samples()
    key = ["checkpoint", "task", "doc_key"]
    a = first[SAMPLE_FIELDS].sort_values(key).reset_index(drop=True)
    b = second[SAMPLE_FIELDS].sort_values(key).reset_index(drop=True)
    assert a.equals(b)


@pytest.mark.slow
def test_demo_train_with_a_few_steps_moves_the_lora_weights_and_the_losses_are_finite(tmp_path, smollm2_dir):
    import torch
    from safetensors.torch import load_file

    out = tmp_path / "demo"
    # two SFT and warm-up steps: the configs' learning-rate warm-up makes every first step's rate 0
    status, _, stderr = _run_cli(["demo", "--output", str(out), "--limit", "1", "--train", "--sft-steps", "2",
                                  "--warmup-steps", "2", "--grpo-steps", "1", "--no-report"])
    assert status == 0, stderr[-3000:]
    models = out / "models"
    sft, grpo = load_file(str(models / "sft" / "adapter_model.safetensors")), \
        load_file(str(models / "grpo" / "adapter_model.safetensors"))
    # LoRA's B matrices start at zero: after the SFT steps every one has moved
    b = {k: v for k, v in sft.items() if "lora_B" in k}
    assert len(b) == 30 * 7 and all(v.abs().sum() > 0 for v in b.values())
    # GRPO (after its warm-up steps) went on training that adapter: same tensors, other values
    assert sft.keys() == grpo.keys() and any(not torch.equal(sft[k], grpo[k]) for k in sft)

    sft_prov, grpo_prov = read_provenance(models / "sft"), read_provenance(models / "grpo")
    assert (sft_prov.steps, grpo_prov.steps, grpo_prov.warmup["steps"]) == (2, 1, 2)
    assert sft_prov.parent == trainers_demo.BASE_ID and grpo_prov.parent == str(models / "sft")
    assert all(math.isfinite(x) for x in grpo_prov.warmup["losses"])
    for name, key in (("sft", "loss"), ("grpo", "loss")):
        history = json.loads((models / name / "trainer_state.json").read_text())["log_history"]
        values = [h[key] for h in history if key in h]
        assert values and all(math.isfinite(v) for v in values), (name, history)
    grpo_log = [h for h in json.loads((models / "grpo" / "trainer_state.json").read_text())["log_history"]
                if "reward" in h]
    assert len(grpo_log) == 1 and math.isfinite(grpo_log[0]["reward"])

    # the bench ran on the adapters just trained
    cks = {c["name"]: c for c in load_run(out).meta["checkpoints"]}
    assert {n: Path(c["adapter"]) for n, c in cks.items() if c["adapter"]} == {"sft": models / "sft",
                                                                                 "grpo": models / "grpo"}


# -- the CI gate on the demo -----------------------------------------------------------------------------------


def _gate(candidate: Path, baseline: Path) -> tuple[int, str]:
    status, stdout, stderr = _run_cli(["gate", "--candidate", str(candidate), "--baseline", str(baseline),
                                       "--rules", str(RULES), "--all-checkpoints"])
    return status, stdout + stderr


@pytest.mark.slow
def test_the_demo_gate_rules_tolerate_a_changed_document_and_fail_a_real_regression(demo_run, tmp_path):
    from fixtures_runs import write_run
    from medbench.harness.gate.baseline import save_baseline

    out = demo_run[0]
    baseline = tmp_path / "baseline.json"
    save_baseline(out, baseline)
    status, text = _gate(out, baseline)
    assert status == 0, text

    # noise as another CPU may make it: one document per checkpoint and task changes its outcome and layout
    run = load_run(out)
    df = run.samples()
    flipped = df.copy()
    for _, group in df[df["showcase"].ne(True)].groupby(["checkpoint", "task"]):
        i = group.index[0]
        flipped.loc[i, "outcome"] = "wrong" if df.loc[i, "outcome"] == "correct" else "correct"
        if df.loc[i, "layout"] == "xml":
            flipped.loc[i, "format_strict"] = not bool(df.loc[i, "format_strict"])
    noisy = write_run(tmp_path / "noisy", flipped.to_dict(orient="records"),
                      [{"name": c["name"], "role": c["role"]} for c in run.meta["checkpoints"]])
    status, text = _gate(noisy, baseline)
    assert status == 0, text

    # a real regression: the GRPO checkpoint is the base model (its adapter lost), benchmarked as the demo does
    from medbench.harness.cli.bench import bench_and_report

    base = Path(run.meta["checkpoints"][0]["model"])
    broken = tmp_path / "grpo-is-base"
    spec = demo_steps.demo_spec(broken, {"grpo": str(base)}, out / "data", limit=LIMIT)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert bench_and_report(lambda: spec, verbose=False, no_report=True) == 0
    status, text = _gate(broken, baseline)
    assert status == 1, text
    assert "format_strict_rate" in text and "grpo" in text
