"""medbench.harness.stats.compare: the comparisons a report shows, computed by the harness.

Each checkpoint against the base (metrics.json's) and against its parent (computed here with the same code),
Holm-adjusted across the table as one rule for every mark, proxy-judged units flagged, subgroups and runs
compared, and the length summaries the figures draw.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from medbench.harness.run.rundir import load_run
from medbench.harness.stats import paired
from medbench.harness.stats.compare import checkpoint_parents, report_stats
from medbench.harness.stats.metrics import compute_metrics
from report_fixture import CHECKPOINTS, build_fixture_run

SIZES = {"pubmedqa": 60, "health": 5, "gsm8k": 40, "medical_cot": 12}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return build_fixture_run(tmp_path_factory.mktemp("compare") / "run", specialties=3, sizes=SIZES)


@pytest.fixture(scope="module")
def stats(run_dir):
    return report_stats([load_run(run_dir)])


def test_parents_follow_provenance_not_the_shared_base_model_of_an_adapter():
    # grpo is an adapter on Qwen/Qwen2.5-3B-Instruct (the base's model) trained from runs/ckpt/sft-merged
    assert checkpoint_parents(load_order(CHECKPOINTS)) == {"base": None, "sft": "base", "grpo": "sft"}
    # no parent recorded: lineage by role; a checkpoint without a role has no parent
    bare = [{"name": "b", "role": "base"}, {"name": "s", "role": "sft"}, {"name": "g", "role": "grpo"},
            {"name": "x"}]
    assert checkpoint_parents(bare) == {"b": None, "s": "b", "g": "s", "x": None}
    two_sft = [{"name": "b", "role": "base"}, {"name": "s1", "role": "sft"}, {"name": "s2", "role": "sft"},
               {"name": "g", "role": "grpo"}]
    assert checkpoint_parents(two_sft)["g"] == "b"  # ambiguous SFT: fall back to the base, never guess


def load_order(entries):
    order = {"base": 0, "sft": 1, "grpo": 2}
    return sorted(entries, key=lambda c: order[c["role"]])


def test_each_checkpoint_is_compared_with_its_parent_by_the_metrics_code(run_dir, stats):
    run = load_run(run_dir)
    vs_parent = [c for c in stats.comparisons if c.checkpoint == "grpo" and c.reference == "sft"]
    units = {c.unit for c in vs_parent}
    assert units == set(run.task_names) | {"medbench_health"}
    assert all(c.vs_parent and not c.vs_base for c in vs_parent)
    samples = run.samples()
    direct = compute_metrics(samples[samples["checkpoint"].isin(["sft", "grpo"])],
                             [{"name": "sft"}, {"name": "grpo"}], reference="sft")
    by_task = {p["task"]: p for p in direct["pairs"]}
    for c in vs_parent:
        if c.kind == "task":
            p = by_task[c.unit]
            assert (c.diff, c.p_value, c.n_fixed, c.n_broken) == (p["accuracy_diff"], p["mcnemar_p"], p["n_fixed"],
                                                                  p["n_broken"])
            assert set(c.fixed) == set(p["fixed"])
    # sft's parent is the base: one comparison, both flags, not computed twice
    sft = [c for c in stats.comparisons if c.checkpoint == "sft" and c.unit == "medbench_pubmedqa"]
    assert len(sft) == 1 and sft[0].vs_base and sft[0].vs_parent
    # metrics.json's own comparisons are used as written
    metrics_pair = next(p for p in run.pair_metrics() if p["task"] == "medbench_gsm8k" and p["checkpoint"] == "grpo")
    mine = next(c for c in stats.comparisons if c.unit == "medbench_gsm8k" and c.checkpoint == "grpo"
                and c.reference == "base")
    assert mine.p_value == metrics_pair["mcnemar_p"] and mine.diff == metrics_pair["accuracy_diff"]


def test_every_mark_is_holm_adjusted_across_the_table(stats):
    summary = [c for c in stats.comparisons if c.family == "summary"]
    assert stats.family_sizes["summary"] == len(summary)
    expected = paired.holm_adjust([c.p_value for c in summary])
    assert [c.p_adjusted for c in summary] == pytest.approx(expected)
    assert all(c.significant == (c.p_adjusted <= stats.alpha) for c in summary)
    assert all(c.p_adjusted >= c.p_value for c in summary)
    assert "Holm" in stats.method and str(len(summary)) in stats.method and "bootstrap" in stats.method


def test_proxy_judged_units_are_flagged(stats):
    cot = [c for c in stats.comparisons if c.unit == "medbench_medical_cot"]
    assert cot and all(c.proxy for c in cot)
    assert not any(c.proxy for c in stats.comparisons if c.unit == "medbench_gsm8k")


def test_subgroups_of_a_task_are_compared_too(tmp_path):
    from fixtures_runs import rows_from_outcomes, write_run

    subjects = ["anatomy", "virology"] * 10
    rows = rows_from_outcomes("base", "mmlu", "CW" * 10, subgroup=subjects)
    rows += rows_from_outcomes("sft", "mmlu", "CC" * 10, subgroup=subjects)
    root = write_run(tmp_path / "run", rows, checkpoints=[{"name": "base", "role": "base"},
                                                          {"name": "sft", "role": "sft"}])
    stats = report_stats([load_run(root)])
    subs = {c.subgroup: c for c in stats.comparisons if c.kind == "subgroup"}
    assert set(subs) == {"anatomy", "virology"}
    assert subs["virology"].diff == 1.0 and subs["virology"].n_fixed == 10 and subs["anatomy"].diff == 0.0
    assert subs["virology"].task == "mmlu" and subs["virology"].unit == "mmlu / virology"


def test_the_same_checkpoint_is_compared_across_runs_on_shared_documents(run_dir, tmp_path):
    later = build_fixture_run(tmp_path / "later", specialties=3, seed=5,
                              sizes={"pubmedqa": 30, "health": 5, "gsm8k": 20, "medical_cot": 6})
    stats = report_stats([load_run(run_dir), load_run(later)])
    across = [c for c in stats.comparisons if c.family == "across runs"]
    assert {(c.reference_run, c.run) for c in across} == {(0, 1)}
    assert {c.checkpoint for c in across} == {"base", "sft", "grpo"}
    c = next(c for c in across if c.unit == "medbench_pubmedqa" and c.checkpoint == "grpo")
    assert c.n_paired == 30  # the later run's documents, all also in the earlier one
    assert stats.family_sizes["across runs"] == len(across)
    assert paired.holm_adjust([x.p_value for x in across]) == pytest.approx([x.p_adjusted for x in across])


def test_length_summaries_are_quantiles_of_the_samples_without_the_showcase(run_dir, stats):
    samples = load_run(run_dir).samples()
    s = next(x for x in stats.lengths if x.checkpoint == "sft" and x.unit == "medbench_medical_cot")
    part = samples[(samples["checkpoint"] == "sft") & (samples["task"] == "medbench_medical_cot") & ~samples["showcase"]]
    assert s.n == len(part) and s.length_unit == "tokens"
    assert s.quantiles == pytest.approx(tuple(np.quantile(part["reasoning_tokens"].astype(float),
                                                          [0.05, 0.25, 0.5, 0.75, 0.95])))
    pooled = next(x for x in stats.lengths if x.checkpoint == "sft" and x.unit == "medbench_health")
    assert pooled.kind == "group" and pooled.n == 3 * SIZES["health"]
    assert any(b.unit == "medbench_pubmedqa" for b in stats.length_bins)


def test_parent_comparisons_are_read_from_metrics_json_when_it_has_them(run_dir, stats, monkeypatch):
    """metrics.json compares each checkpoint with its parent itself: the report reads those records (no second
    compute_metrics over the samples, issue 14: 1.4 s of a 30k-sample report), and gets the very numbers the
    recomputation gives for a file written before parent_pairs existed."""
    import dataclasses

    from medbench.harness.stats import compare

    run = load_run(run_dir)
    assert any(p["checkpoint"] == "grpo" and p["reference"] == "sft" for p in run.metrics["parent_pairs"])
    monkeypatch.setattr(compare, "compute_metrics", lambda *a, **k: pytest.fail("parent pairs recomputed"))
    from_file = report_stats([run])
    monkeypatch.undo()
    older = load_run(run_dir)
    older.metrics = dataclasses.replace(older.metrics, parent_pairs=(), parent_group_pairs=())
    recomputed = report_stats([older])
    assert repr(from_file.comparisons) == repr(recomputed.comparisons) == repr(stats.comparisons)
    assert from_file.family_sizes == recomputed.family_sizes
