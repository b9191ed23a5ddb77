"""compute_metrics on a fixture whose every number was computed by hand (see the comments)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_runs import rows_from_outcomes, sample_row
from medbench.harness.run.records import TaskMetrics
from medbench.harness.run.rundir import load_run
from medbench.harness.stats import paired as stats
from medbench.harness.stats.metrics import compute_metrics, document_indicators, metrics_for_run
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
        reasoning_tokens=[5, None, 5, 5, 5, 5, 5, 5],     # one missing -> the whole run falls back to words
        reasoning_words=[1, 2, 3, 4, 5, 6, 7, 100],       # mean 16, median 4.5, p90 7 + 0.3*93 = 34.9
        answer_tokens=None, answer_words=3, completion_words=[10, 20, 30, 40, 50, 60, 70, 80],
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
    assert rec["judge_agreement"] is None and rec["judge_kind"] is None and rec["n_judged"] == 0
    assert rec["task_version"] == 1


def test_lengths_in_tokens_by_hand():
    frame = pd.DataFrame([r for r in _fixture_rows() if r["checkpoint"] == "base" and r["task"] == "pubmedqa"])
    out = compute_metrics(frame, ["base"])
    (rec,) = [r for r in out.per_task if r.subgroup is None]
    assert out.length_unit == rec.reasoning_length_unit == rec.answer_length_unit == "tokens"
    assert (rec.reasoning_tokens_mean, rec.reasoning_tokens_median) == (45.0, 45.0)
    assert rec.reasoning_tokens_p90 == pytest.approx(73.0)
    assert rec.answer_tokens_mean == 2.0
    assert (rec.completion_tokens_mean, rec.completion_tokens_median) == (14.0, 14.0)


def test_one_length_unit_for_the_whole_run(metrics):
    """One sft sample lacks its token count: every record of the run is in words (before, base stayed in
    tokens beside sft in words, so one table mixed the two units)."""
    assert metrics.length_unit == metrics["length_unit"] == "words"
    assert {r.reasoning_length_unit for r in metrics.per_task} == {"words"}
    assert {r.answer_length_unit for r in metrics.per_task} == {"words"}
    base = _record(metrics, "base", "pubmedqa")
    assert (base["reasoning_tokens_mean"], base["answer_tokens_mean"]) == (10.0, 1.0)  # its word counts
    assert base["completion_tokens_median"] is None  # no completion word counts in base's rows: not measured
    rec = _record(metrics, "sft", "pubmedqa")
    assert (rec["n_correct"], rec["n_wrong"], rec["n_unparseable"]) == (6, 1, 1)
    assert rec["think_ok_rate"] == 6 / 8
    assert rec["reasoning_tokens_mean"] == 16.0
    assert rec["reasoning_tokens_median"] == 4.5
    assert rec["reasoning_tokens_p90"] == pytest.approx(34.9)
    assert rec["answer_tokens_mean"] == 3.0
    assert (rec["completion_tokens_mean"], rec["completion_tokens_median"]) == (45.0, 45.0)


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
    text = json.dumps(metrics.to_dict(), allow_nan=False)
    assert json.loads(text) == metrics  # a record equals its JSON form


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
    with pytest.raises(ValueError, match="did you mean 'b'"):
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
    assert run.task_metrics() == json.loads(json.dumps(out.to_dict()["per_task"]))  # what write_run stored
    assert run.metrics == out and isinstance(run.metrics.per_task[0], TaskMetrics)  # read back typed


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


def test_flexible_accuracy_and_unclosed_tag_rate_by_hand():
    rows = rows_from_outcomes(
        "a", "pubmedqa", "CUUW",
        # primary correct -> flexible correct; two unparseable, one rescued by the flexible reading
        flexible_outcome=["correct", "correct", "unparseable", "wrong"],
        unclosed_tag=[F, T, T, F],
    )
    (rec,) = compute_metrics(pd.DataFrame(rows), ["a"]).per_task
    assert rec.accuracy == 1 / 4 and rec.flexible_accuracy == 2 / 4  # beside it, never folded into it
    assert rec.unclosed_tag_rate == 2 / 4


def test_metrics_that_do_not_apply_to_a_loglikelihood_task_are_null():
    """A loglikelihood task chooses its answer: no format, truncation, flexible reading or length. Schema-1
    graders said format_strict=True, truncated=False and 0 words for it, which showed as "strict format
    100%" and "median reasoning 0 words"; now they are null, per document and per record."""
    ll = {"layout": "loglikelihood", "format_strict": T, "format_soft": T, "truncated": F, "unclosed_tag": None,
          "reasoning_words": 0, "answer_words": 0, "reasoning_tokens": None, "answer_tokens": None,
          "completion_tokens": None}
    rows = rows_from_outcomes("a", "pubmedqa_ll", "CWC", **ll) + rows_from_outcomes("a", "pubmedqa", "CC")
    out = compute_metrics(pd.DataFrame(rows), ["a"])
    rec = next(r for r in out.per_task if r.task == "pubmedqa_ll")
    assert rec.accuracy == 2 / 3 and rec.strict_accuracy == 2 / 3
    for name in ("flexible_accuracy", "format_strict_rate", "format_soft_rate", "think_ok_rate", "unclosed_tag_rate",
                 "truncation_rate", "reasoning_tokens_mean", "reasoning_tokens_median", "reasoning_tokens_p90",
                 "answer_tokens_mean", "completion_tokens_mean", "completion_tokens_median",
                 "reasoning_length_unit", "answer_length_unit"):
        assert rec[name] is None, name
    gen = next(r for r in out.per_task if r.task == "pubmedqa")
    assert gen.format_strict_rate == 1.0 and gen.reasoning_length_unit == out.length_unit == "tokens"
    docs = document_indicators(pd.DataFrame(rows))
    assert docs.loc[docs["task"] == "pubmedqa_ll", ["format_strict", "truncated"]].isna().all().all()


def test_loglikelihood_only_run_has_no_length_unit():
    ll = {"layout": "loglikelihood", "reasoning_tokens": None, "answer_tokens": None, "completion_tokens": None}
    out = compute_metrics(pd.DataFrame(rows_from_outcomes("a", "ll", "CW", **ll)), ["a"])
    assert out.length_unit is None and out.per_task[0].reasoning_tokens_median is None


def test_metrics_json_keeps_every_schema_1_key(metrics):
    """metrics.json stays backward compatible: the same keys as schema 1 (the committed fixture), new ones added."""
    v1 = json.loads((Path(__file__).parent / "data" / "run_schema_v1" / "metrics.json").read_text())
    now = metrics.to_dict()
    assert set(v1) <= set(now) and "length_unit" in now
    for section in ("per_task", "pairs", "methods"):
        old = v1[section][0] if isinstance(v1[section], list) else v1[section]
        new = now[section][0] if isinstance(now[section], list) else now[section]
        assert set(old) <= set(new), section
    added = set(now["per_task"][0]) - set(v1["per_task"][0])
    assert added == {"flexible_accuracy", "unclosed_tag_rate", "completion_tokens_mean", "completion_tokens_median",
                     "accuracy_proxy"}


def test_every_metric_is_computed_and_named_once(metrics):
    from medbench.harness.gate.rules import GATE_METRICS
    from medbench.harness.run.records import METRICS

    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    rec = metrics.per_task[0].to_dict()
    assert set(names) <= set(rec)  # compute_metrics fills every metric the list names
    assert set(GATE_METRICS) == set(names)  # and the gate accepts exactly those


# -- one statistic across the table: Holm, parents, proxy (issue 13, section 2) ------------------------------


def _lineage_frame():
    # 20 documents per task; base 10/20 on both tasks.
    base = rows_from_outcomes("base", "t1", "C" * 10 + "W" * 10) + rows_from_outcomes("base", "t2", "C" * 10 + "W" * 10)
    # SFT fixes 8 documents of t1 (p = 2 * 1/256), nothing on t2.
    sft = (rows_from_outcomes("sft", "t1", "C" * 18 + "W" * 2)
           + rows_from_outcomes("sft", "t2", "C" * 10 + "W" * 10))
    # GRPO breaks 3 of SFT's t1 answers (fixed 0, broken 3 against SFT) and fixes 1 of t2.
    grpo = (rows_from_outcomes("grpo", "t1", "WWW" + "C" * 15 + "W" * 2)
            + rows_from_outcomes("grpo", "t2", "C" * 11 + "W" * 9))
    order = [{"name": "base", "role": "base"}, {"name": "sft", "role": "sft"}, {"name": "grpo", "role": "grpo"}]
    return pd.DataFrame(base + sft + grpo), order


def test_each_checkpoint_is_compared_with_its_parent_too():
    frame, order = _lineage_frame()
    out = compute_metrics(frame, order)
    assert [(p.reference, p.checkpoint, p.task) for p in out.pairs] == [
        ("base", "sft", "t1"), ("base", "grpo", "t1"), ("base", "sft", "t2"), ("base", "grpo", "t2")]
    # GRPO against SFT (its parent by lineage); SFT's parent is the base, already in pairs
    assert [(p.reference, p.checkpoint, p.task) for p in out.parent_pairs] == [("sft", "grpo", "t1"),
                                                                               ("sft", "grpo", "t2")]
    t1 = out.parent_pairs[0]
    assert (t1.n_fixed, t1.n_broken, t1.accuracy_diff) == (0, 3, pytest.approx(-3 / 20))
    assert t1.mcnemar_p == pytest.approx(2 * 1 / 8)
    assert t1.broken == ("t1:0", "t1:1", "t1:2")
    # the provenance parent wins over the role rule
    named = [order[0], order[1], {"name": "grpo", "role": "grpo", "parent": "base"}]
    assert compute_metrics(frame, named).parent_pairs == ()


def test_p_values_are_holm_adjusted_across_every_comparison_raw_kept_beside():
    frame, order = _lineage_frame()
    out = compute_metrics(frame, order)
    family = out.all_pairs()
    assert len(family) == 6
    raw = [p.mcnemar_p for p in family]
    assert [p.mcnemar_p_adjusted for p in family] == pytest.approx(stats.holm_adjust(raw))
    assert all(p.mcnemar_p_adjusted >= p.mcnemar_p for p in family)
    assert [p.significant for p in family] == [p.mcnemar_p_adjusted <= 0.05 for p in family]
    sft_t1 = out.pairs[0]
    assert sft_t1.mcnemar_p == pytest.approx(2 / 256) and sft_t1.significant  # 8 fixed, 0 broken survives Holm
    assert out.methods.multiplicity.startswith("Holm across the 6 comparisons")
    assert "does not decide" in out.methods.decision and out.methods.alpha == 0.05


def test_proxy_judged_accuracy_is_flagged_on_records_and_comparisons(metrics):
    assert _record(metrics, "base", "medical_cot")["accuracy_proxy"] is True  # judge_kind mixed: proxy + none
    assert _record(metrics, "sft", "medical_cot")["accuracy_proxy"] is False
    assert _record(metrics, "base", "pubmedqa")["accuracy_proxy"] is False
    by_task = {p["task"]: p for p in metrics["pairs"]}
    assert by_task["medical_cot"]["accuracy_proxy"] is True  # either side's proxy makes the comparison proxy
    assert by_task["pubmedqa"]["accuracy_proxy"] is False
    # a file written before the flag reads it from judge_kind, by the same rule
    old = {k: v for k, v in _record(metrics, "base", "medical_cot").to_dict().items() if k != "accuracy_proxy"}
    assert TaskMetrics.from_dict(old).accuracy_proxy is True


def test_the_summary_marks_significance_by_the_adjusted_test_and_labels_proxy(metrics):
    from medbench.harness.run.summary import HEADER, PROXY, SIGNIFICANT, format_summary, summary_rows

    frame, order = _lineage_frame()
    rows = {(r[1], i): dict(zip(HEADER, r)) for i, r in enumerate(summary_rows(compute_metrics(frame, order),
                                                                                ["base", "sft", "grpo"]))}
    cells = [c for (ck, _), c in rows.items() if ck == "sft"][0]  # t1 first
    assert cells["diff vs ref, pp [CI] p"].endswith(f"adj={2 / 256 * 6:.2g} {SIGNIFICANT}")
    grpo = [c for (ck, _), c in rows.items() if ck == "grpo"][0]
    assert grpo["vs parent, pp p"].startswith("sft: -15.0 p=0.25 adj=")
    assert not grpo["vs parent, pp p"].endswith(SIGNIFICANT)
    text = format_summary(metrics, ["base", "sft"])
    line = next(ln for ln in text.splitlines() if ln.startswith("medical_cot"))
    assert "% [" in line and f" {PROXY}" in line  # the base's proxy-judged accuracy
    sft_line = text.splitlines()[text.splitlines().index(line) + 1]
    assert sft_line.rstrip().split("  ")[0] == "" and f" {PROXY}" in sft_line and SIGNIFICANT not in sft_line
    assert "this test alone decides" in text and "never marked significant" in text


def test_a_significant_proxy_comparison_is_never_shown_as_a_plain_significant_gain():
    from medbench.harness.run.records import PairMetrics
    from medbench.harness.run.summary import PROXY, SIGNIFICANT, _comparison

    gain = dict(task="cot", reference="base", checkpoint="sft", n_paired=50, accuracy_diff=0.3, mcnemar_p=1e-6,
                mcnemar_p_adjusted=1e-5, significant=True)
    assert _comparison(PairMetrics(**gain, accuracy_proxy=False)).endswith(f" {SIGNIFICANT}")
    shown = _comparison(PairMetrics(**gain, accuracy_proxy=True))
    assert shown.endswith(f" {PROXY}") and SIGNIFICANT not in shown
