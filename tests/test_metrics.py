"""compute_metrics on a fixture whose every number was computed by hand (see the comments)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fixtures_runs import rows_from_outcomes, sample_row
from medbench.harness.stats import paired as stats
from medbench.harness.stats.metrics import compute_metrics, metrics_for_run
from medbench.harness.run.rundir import load_run
from statsmodels.stats.proportion import proportion_confint

T, F = True, False


def _fixture_rows() -> list[dict]:
    # pubmedqa, 8 documents; docs 0-3 are subgroup "cardio", 4-7 "neuro".
    sub = ["cardio"] * 4 + ["neuro"] * 4
    base = rows_from_outcomes(
        "base", "pubmedqa", "CCWUCWCC", subgroup=sub,
        strict_correct=[F, T, F, F, T, F, T, T],          # 4/8
        format_strict=[T, T, T, F, T, F, T, T],           # 6/8
        format_soft=[T, T, T, F, T, T, T, T],             # 7/8
        truncated=[F, F, F, T, F, F, F, F],               # 1/8
        reasoning_tokens=[10, 20, 30, 40, 50, 60, 70, 80],  # mean 45, median 45, p90 70 + 0.3*10 = 73
        answer_tokens=2,
    )
    # A showcase sample: shown in the report, never counted.
    base.append(sample_row("base", "pubmedqa", "pubmedqa:showcase", "wrong", showcase=True, subgroup="cardio"))
    sft = rows_from_outcomes(
        "sft", "pubmedqa", "CWCCCCUC", subgroup=sub, layout="think",
        think_ok=[T, T, F, T, T, T, F, T],                # 6/8
        reasoning_tokens=[5, None, 5, 5, 5, 5, 5, 5],     # one missing -> the group falls back to words
        reasoning_words=[1, 2, 3, 4, 5, 6, 7, 100],       # mean 16, median 4.5, p90 7 + 0.3*93 = 34.9
        answer_tokens=None, answer_words=3,
    )
    # medical_cot: free text judged by an offline proxy; one sample without a verdict.
    judged = rows_from_outcomes(
        "base", "medical_cot", "CCWW", judge_agree=[T, F, T, None], judge_kind=["proxy"] * 3 + [None],
    )
    judged += rows_from_outcomes("sft", "medical_cot", "CCCW")
    return base + sft + judged


@pytest.fixture
def metrics():
    frame = pd.DataFrame(_fixture_rows())
    # lineage order given with base second: the reference is picked by role, not position
    return compute_metrics(frame, [{"name": "sft", "role": "sft"}, {"name": "base", "role": "base"}])


def _record(metrics, checkpoint, task, subgroup=None):
    (rec,) = [r for r in metrics["per_task"]
              if (r["checkpoint"], r["task"], r["subgroup"]) == (checkpoint, task, subgroup)]
    return rec


def test_whole_task_record_by_hand(metrics):
    rec = _record(metrics, "base", "pubmedqa")
    assert (rec["n"], rec["n_correct"], rec["n_wrong"], rec["n_unparseable"]) == (8, 5, 2, 1)  # showcase excluded
    assert rec["accuracy"] == 5 / 8
    assert rec["unparseable_rate"] == 1 / 8  # shown apart; counts against accuracy, not as "wrong"
    low, high = proportion_confint(5, 8, method="wilson")
    assert rec["accuracy_ci_low"] == pytest.approx(low) and rec["accuracy_ci_high"] == pytest.approx(high)
    assert rec["strict_accuracy"] == 4 / 8
    assert rec["format_strict_rate"] == 6 / 8
    assert rec["format_soft_rate"] == 7 / 8
    assert rec["truncation_rate"] == 1 / 8
    assert rec["think_ok_rate"] is None  # not a think layout: undefined, not 0
    assert rec["reasoning_length_unit"] == "tokens"
    assert (rec["reasoning_tokens_mean"], rec["reasoning_tokens_median"]) == (45.0, 45.0)
    assert rec["reasoning_tokens_p90"] == pytest.approx(73.0)
    assert (rec["answer_length_unit"], rec["answer_tokens_mean"]) == ("tokens", 2.0)
    assert rec["judge_agreement"] is None and rec["judge_kind"] is None and rec["n_judged"] == 0
    assert rec["task_version"] == 1


def test_word_fallback_and_think_rate(metrics):
    rec = _record(metrics, "sft", "pubmedqa")
    assert (rec["n_correct"], rec["n_wrong"], rec["n_unparseable"]) == (6, 1, 1)
    assert rec["think_ok_rate"] == 6 / 8
    assert rec["reasoning_length_unit"] == "words"  # said so, never mixed with tokens
    assert rec["reasoning_tokens_mean"] == 16.0
    assert rec["reasoning_tokens_median"] == 4.5
    assert rec["reasoning_tokens_p90"] == pytest.approx(34.9)
    assert (rec["answer_length_unit"], rec["answer_tokens_mean"]) == ("words", 3.0)


def test_subgroup_records(metrics):
    cardio = _record(metrics, "base", "pubmedqa", "cardio")
    neuro = _record(metrics, "base", "pubmedqa", "neuro")
    assert (cardio["n"], cardio["accuracy"], cardio["unparseable_rate"]) == (4, 0.5, 0.25)
    assert (neuro["n"], neuro["accuracy"]) == (4, 0.75)
    low, high = proportion_confint(3, 4, method="wilson")
    assert neuro["accuracy_ci_low"] == pytest.approx(low) and neuro["accuracy_ci_high"] == pytest.approx(high)
    # whole-task record comes first, then subgroups sorted by name
    order = [(r["task"], r["subgroup"]) for r in metrics["per_task"] if r["checkpoint"] == "base"]
    assert order[:3] == [("pubmedqa", None), ("pubmedqa", "cardio"), ("pubmedqa", "neuro")]


def test_single_subgroup_covering_the_task_adds_no_duplicate_record():
    rows = rows_from_outcomes("a", "health_cardiology", "CW", subgroup="cardiology")
    out = compute_metrics(pd.DataFrame(rows), ["a"])
    assert [r["subgroup"] for r in out["per_task"]] == [None]


def test_judge_agreement(metrics):
    rec = _record(metrics, "base", "medical_cot")
    assert rec["judge_agreement"] == pytest.approx(2 / 3) and rec["n_judged"] == 3
    assert rec["judge_kind"] == "proxy"


def test_pair_flips_by_hand(metrics):
    assert metrics["methods"]["reference"] == "base"
    (pair,) = [p for p in metrics["pairs"] if p["task"] == "pubmedqa"]
    assert (pair["reference"], pair["checkpoint"], pair["n_paired"]) == ("base", "sft", 8)
    # base CCWUCWCC vs sft CWCCCCUC: fixed docs 2 (W→C), 3 (U→C), 5 (W→C); broken 1 (C→W), 6 (C→U)
    assert pair["fixed"] == ["pubmedqa:2", "pubmedqa:3", "pubmedqa:5"] and pair["n_fixed"] == 3
    assert pair["broken"] == ["pubmedqa:1", "pubmedqa:6"] and pair["n_broken"] == 2
    assert (pair["reference_accuracy"], pair["checkpoint_accuracy"]) == (5 / 8, 6 / 8)
    assert pair["accuracy_diff"] == pytest.approx(1 / 8)
    assert pair["mcnemar_p"] == 1.0  # 2 * P(X <= 2 | 5, 1/2) = 2 * 16/32, capped at 1
    ref = np.array([1, 1, 0, 0, 1, 0, 1, 1.0])
    cand = np.array([1, 0, 1, 1, 1, 1, 0, 1.0])
    assert (pair["diff_ci_low"], pair["diff_ci_high"]) == stats.paired_bootstrap_diff_ci(ref, cand)
    assert pair["diff_ci_low"] <= 1 / 8 <= pair["diff_ci_high"]


def test_metrics_json_serialisable(metrics):
    text = json.dumps(metrics)
    assert "NaN" not in text


def test_partial_overlap_counts_unpaired_documents():
    rows = rows_from_outcomes("a", "t", "CCWW") + rows_from_outcomes("b", "t", "CCC", keys=["t:0", "t:1", "t:9"])
    (pair,) = compute_metrics(pd.DataFrame(rows), ["a", "b"])["pairs"]
    assert (pair["n_paired"], pair["n_reference_only"], pair["n_checkpoint_only"]) == (2, 2, 1)
    assert pair["accuracy_diff"] == 0.0 and pair["fixed"] == [] and pair["broken"] == []


def test_explicit_reference_and_errors():
    rows = rows_from_outcomes("a", "t", "CW") + rows_from_outcomes("b", "t", "WC")
    frame = pd.DataFrame(rows)
    out = compute_metrics(frame, ["a", "b"], reference="b")
    assert [(p["reference"], p["checkpoint"]) for p in out["pairs"]] == [("b", "a")]
    with pytest.raises(ValueError, match="closest: 'b'"):
        compute_metrics(frame, ["a", "b"], reference="bb")
    with pytest.raises(ValueError, match="scored once"):
        compute_metrics(pd.DataFrame(rows + rows[:1]), ["a", "b"])
    with pytest.raises(ValueError, match="outcome"):
        compute_metrics(frame.assign(outcome=["correct", "maybe", "wrong", "correct"]), ["a", "b"])
    with pytest.raises(ValueError, match="lack columns"):
        compute_metrics(frame.drop(columns=["format_soft"]), ["a", "b"])


def test_metrics_for_run_reads_run_order(make_run):
    rows = rows_from_outcomes("sft", "t", "CC") + rows_from_outcomes("base", "t", "CW")
    run_dir = make_run("run", rows, checkpoints=[{"name": "sft", "role": "sft"}, {"name": "base", "role": "base"}])
    run = load_run(run_dir)
    out = metrics_for_run(run)
    assert [r["checkpoint"] for r in out["per_task"]] == ["base", "sft"]  # lineage order from run.json
    assert out["pairs"][0]["reference"] == "base"
    assert run.task_metrics() == json.loads(json.dumps(out["per_task"]))  # what write_run stored


def test_group_records_pool_their_tasks():
    rows = (rows_from_outcomes("a", "h_cardio", "CCWW", group="health")
            + rows_from_outcomes("a", "h_neuro", "CCCU", group="health")
            + rows_from_outcomes("a", "gsm", "WW")
            + rows_from_outcomes("b", "h_cardio", "CCCC", group="health")
            + rows_from_outcomes("b", "h_neuro", "WCCC", group="health"))
    out = compute_metrics(pd.DataFrame(rows), ["a", "b"])
    (health_a,) = [r for r in out["per_group"] if (r["checkpoint"], r["group"]) == ("a", "health")]
    assert health_a["tasks"] == ["h_cardio", "h_neuro"] and "task" not in health_a
    assert (health_a["n"], health_a["n_correct"], health_a["n_unparseable"]) == (8, 5, 1)
    assert health_a["accuracy"] == 5 / 8  # size-weighted, like lm-eval's group score
    (pair,) = out["group_pairs"]
    # cardio: docs 2, 3 fixed; neuro: doc 0 broken, doc 3 fixed (U -> C)
    assert (pair["group"], pair["n_paired"], pair["n_fixed"], pair["n_broken"]) == ("health", 8, 3, 1)
    assert pair["accuracy_diff"] == pytest.approx(2 / 8) and "fixed" not in pair
    assert [p["task"] for p in out["pairs"]] == ["h_cardio", "h_neuro"]  # b has no gsm: no pair
    assert sum(r["n"] for r in out["per_task"] if r["checkpoint"] == "a" and r["subgroup"] is None) == 10
