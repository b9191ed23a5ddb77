"""``medbench demo``: offline, every task family, a real run directory, and a second checkpoint that really
differs from the base (its LoRA adapter learned the answer layout)."""

from __future__ import annotations

import pytest

from medbench.harness.cli import main
from medbench.harness.demo_steps import DEMO_TASKS
from medbench.harness.rundir import load_run
from medbench.tasks import registry


@pytest.mark.slow
def test_demo_writes_a_run_covering_every_family(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out), "--limit", "2"]) == 0
    run = load_run(out)
    assert run.meta["status"] == "complete"
    assert run.checkpoint_names == ["base", "format_lora"]
    assert {c["name"]: c["kind"] for c in run.meta["checkpoints"]} == {"base": "local", "format_lora": "adapter"}
    df = run.samples()
    assert set(df["task"]) == set(DEMO_TASKS)
    assert {registry.get_task(t).family for t in DEMO_TASKS} == set(registry.FAMILIES)

    # the adapter learned the <reasoning>/<answer> layout; the random base did not
    generative = df[df["layout"] == "xml"]
    rate = generative.groupby("checkpoint")["format_strict"].mean()
    assert rate["base"] == 0.0 and rate["format_lora"] >= 0.5

    out_text = capsys.readouterr().out
    assert "medbench_pubmedqa" in out_text and "format_lora" in out_text  # the summary table
