"""``medbench demo``: offline, the whole loop base → SFT → GRPO → bench → report, on every task family, with
checkpoints that really differ from the base (the report shows what each training step changed)."""

from __future__ import annotations

import json

import pytest
from medbench.harness.cli import main
from medbench.harness.demo_steps import DEMO_TASKS
from medbench.harness.rundir import load_run
from medbench.tasks import registry
from medbench.trainers.provenance import read_provenance


@pytest.mark.slow
def test_demo_trains_benches_and_reports_the_whole_loop(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out)]) == 0
    run = load_run(out)
    assert run.meta["status"] == "complete"

    # lineage: the trainers' provenance orders sft and grpo; the base is the base by name, and the reference
    assert run.checkpoint_names == ["base", "sft", "grpo"]
    cks = {c["name"]: c for c in run.meta["checkpoints"]}
    assert {n: (c["role"], c["role_source"]) for n, c in cks.items()} == {
        "base": ("base", "name"), "sft": ("sft", "provenance"), "grpo": ("grpo", "provenance")}
    sft_prov, grpo_prov = read_provenance(cks["sft"]["model"]), read_provenance(cks["grpo"]["model"])
    assert sft_prov.parent == cks["base"]["model"] and grpo_prov.parent == cks["sft"]["model"]
    assert sft_prov.data.sources[0]["split"] == "train[0:1]"  # disjoint from the held-out medical_cot rows
    assert {p["reference"] for p in run.pair_metrics()} == {"base"}

    df = run.samples()
    assert set(df["task"]) == set(DEMO_TASKS)
    assert {registry.get_task(t).family for t in DEMO_TASKS} == set(registry.FAMILIES)

    # what the training changed, as the report shows it: the primed base writes the <reasoning>/<answer>
    # layout; SFT on the <think> template learned to close a think block (medical_cot answers become
    # parseable) and lost the other layout; GRPO's steps pushed its completions back towards <reasoning> tags
    xml = df[df["layout"] == "xml"]
    strict = xml.groupby("checkpoint")["format_strict"].mean()
    assert strict["base"] >= 0.8 and strict["sft"] < strict["base"]
    think = df[df["task"] == "medbench_medical_cot"]
    parseable = think.groupby("checkpoint")["outcome"].apply(lambda s: (s != "unparseable").mean())
    assert parseable["base"] == 0.0 and parseable["sft"] > 0.5
    reasoning = xml.groupby("checkpoint")["reasoning_tokens"].median()
    assert reasoning["grpo"] > reasoning["sft"]

    # the report is written into the run directory and its path printed; the summary table is on stdout
    report = out / "report.html"
    assert report.is_file() and "grpo" in report.read_text(encoding="utf-8")
    stdout = capsys.readouterr().out
    assert f"report: {report}" in stdout
    assert "medbench_pubmedqa" in stdout and "grpo" in stdout
    assert json.loads((out / "models" / "base" / "medbench_demo_base.json").read_text())["primed_steps"] > 0


@pytest.mark.slow
def test_demo_without_training_or_report_benches_the_base_alone(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out), "--no-train", "--no-report", "--limit", "1"]) == 0
    run = load_run(out)
    assert run.checkpoint_names == ["base"]
    assert not (out / "report.html").exists() and not (out / "models" / "sft").exists()
