"""``--limit N`` is a fair sample: seeded, stratified by label or subject, the same documents for every
checkpoint, recorded in run.json; evaluation during training scores the same documents through the same path.

Before, ``--limit N`` took the first N documents, and PubMedQA's official test ids are ordered by label (276
"yes", then 169 "no", then 55 "maybe"): any limit up to 276 scored only "yes" questions.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
from medbench.harness.cli import main
from medbench.harness.run.evaluate import (
    ModelEvaluator,
    load_task,
    make_task_manager,
    plan_tasks,
    sample_task,
)
from medbench.harness.run.rundir import load_run
from medbench.harness.run.sampling import DocItem, draw_sample, sample_size

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "tasks" / "sample_data"


def _pubmedqa_sample(data_dir: Path, limit, seed: int = 1234, task: str = "medbench_pubmedqa"):
    (planned,) = plan_tasks([task])
    loaded = load_task(make_task_manager(str(data_dir)), planned, seed=seed)
    docs = list(loaded["tasks"][task].eval_docs)
    return sample_task(loaded, planned, limit, seed=seed), docs


# -- the sample itself ---------------------------------------------------------------------------------------


def test_pubmedqa_limit_30_on_the_real_test_split_holds_yes_no_and_maybe(realdata):
    sample, docs = _pubmedqa_sample(realdata, 30)
    assert len(docs) == 500
    assert {d["final_decision"] for d in docs[:30]} == {"yes"}  # what the first 30 documents were
    labels = Counter(docs[i]["final_decision"] for i in sample.doc_ids)
    # the test split's 276 / 169 / 55 mix, allocated to 30 documents
    assert labels == {"yes": 17, "no": 10, "maybe": 3} == sample.strata
    assert (sample.method, sample.by, len(sample.doc_ids), sample.total) == ("stratified", "label", 30, 500)
    assert list(sample.doc_ids) == sorted(sample.doc_ids)  # lm-eval maps its doc ids through a sorted list
    again, _ = _pubmedqa_sample(realdata, 30)
    assert again.doc_ids == sample.doc_ids  # seeded: the same documents every time
    other, _ = _pubmedqa_sample(realdata, 30, seed=7)
    assert other.doc_ids != sample.doc_ids and Counter(other.strata) == Counter(sample.strata)
    # a fraction: 10% of 500, the same mix; the loglikelihood variant of the task scores the same questions
    tenth, _ = _pubmedqa_sample(realdata, 0.1)
    assert len(tenth.doc_ids) == 50 and set(tenth.strata) == {"yes", "no", "maybe"}
    ll, _ = _pubmedqa_sample(realdata, 30, task="medbench_pubmedqa_ll")
    assert ll.doc_ids == sample.doc_ids


def test_a_task_of_several_subjects_is_stratified_by_subject():
    items = [DocItem(i, f"k{i}", subgroup="anatomy" if i < 90 else "genetics", label="ABCD"[i % 4])
             for i in range(100)]
    s = draw_sample(items, 10, 1234, task="t", answer="choice")
    assert (s.method, s.by, s.strata) == ("stratified", "subgroup", {"anatomy": 9, "genetics": 1})


def test_the_sample_depends_on_the_documents_not_their_order():
    items = [DocItem(i, f"pmid{1000 + i}", None, ["yes", "no", "maybe"][i % 3]) for i in range(60)]
    s = draw_sample(items, 12, 1234, task="t", answer="yesno")
    shuffled = items[:]
    random.Random(0).shuffle(shuffled)
    moved = [DocItem(pos, it.doc_key, it.subgroup, it.label) for pos, it in enumerate(shuffled)]
    t = draw_sample(moved, 12, 1234, task="t", answer="yesno")
    assert sorted(items[i].doc_key for i in s.doc_ids) == sorted(moved[i].doc_key for i in t.doc_ids)
    assert s.strata == t.strata == {"maybe": 4, "no": 4, "yes": 4}


def test_showcase_documents_are_always_scored_within_the_limit_and_numbers_are_not_labels():
    items = [DocItem(0, "showcase", None, "free text", showcase=True)]
    items += [DocItem(i, f"k{i}", None, str(i)) for i in range(1, 40)]
    s = draw_sample(items, 5, 1234, task="t", answer="number")
    assert 0 in s.doc_ids and len(s.doc_ids) == 5 and (s.method, s.by) == ("random", None)
    assert draw_sample(items, 100, 1234, task="t", answer="number").method == "all"


@pytest.mark.parametrize("limit, total, n", [(30, 500, 30), (0.1, 500, 50), (0.001, 500, 1), (1.0, 500, 500),
                                             (900, 500, 500)])
def test_sample_size_of_a_count_or_a_fraction(limit, total, n):
    assert sample_size(limit, total) == n


# -- through medbench bench and medbench demo ----------------------------------------------------------------


@pytest.mark.slow
def test_two_checkpoints_score_the_same_sampled_documents_recorded_in_run_json(tiny_model_dir,
                                                                              tiny_lora_adapter_dir, realdata,
                                                                              tmp_path):
    out = tmp_path / "run"
    args = ["bench", "--checkpoint", f"base={tiny_model_dir}",
            "--checkpoint", f"lora={tiny_lora_adapter_dir}", "--tasks", "medbench_pubmedqa_ll",
            "--limit", "30", "--batch-size", "4", "--data-dir", str(realdata), "--output", str(out), "--no-report"]
    assert main(args) == 0
    run = load_run(out)
    recorded = run.meta["sample"]
    assert (recorded["limit"], recorded["seed"]) == (30, 1234)
    entry = recorded["tasks"]["medbench_pubmedqa_ll"]
    assert (entry["method"], entry["by"], entry["n"], entry["of"]) == ("stratified", "label", 30, 500)
    df = run.samples()
    ids = {ck: sorted(g["doc_id"].tolist()) for ck, g in df.groupby("checkpoint")}
    assert ids["base"] == ids["lora"] == entry["doc_ids"]
    assert set(df["target"]) == {"yes", "no", "maybe"}
    # the paired comparison pairs every document
    (pair,) = [p for p in run.metrics["pairs"] if p["task"] == "medbench_pubmedqa_ll"]
    assert pair["n_paired"] == 30 and pair["n_reference_only"] == pair["n_checkpoint_only"] == 0
    # resuming the finished run reuses it (same sample), and an older limited run without a recorded sample
    # (the first-N slicing) is refused with the way out instead of mixing two samples
    assert main(args) == 0
    meta = json.loads((out / "run.json").read_text())
    del meta["sample"]
    (out / "run.json").write_text(json.dumps(meta))
    assert main(args) == 1


def test_bad_limits_are_usage_errors_before_anything_loads(tiny_model_dir, tmp_path, capsys):
    base = ["bench", "--checkpoint", f"base={tiny_model_dir}", "--tasks", "medbench_pubmedqa_ll",
            "--data-dir", str(SAMPLE_DATA), "--output", str(tmp_path / "r"), "--no-report"]
    for bad, why in (("abc", "got 'abc'"), ("0", "got '0'"), ("1.5", "got '1.5'"), ("20.0", "write 20")):
        assert main([*base, "--limit", bad]) == 2
        err = capsys.readouterr().err
        assert "medbench bench: error: --limit: expected documents per task: a positive integer, or a " \
               "fraction in (0, 1]" in err and why in err, err
    assert not (tmp_path / "r").exists()
    # medbench demo checks it before it prepares the model (it used to end in a traceback)
    assert main(["demo", "--limit", "abc"]) == 2
    assert "medbench demo: error: --limit: expected documents per task" in capsys.readouterr().err


@pytest.mark.slow
def test_a_fractional_limit_runs(tiny_model_dir, tmp_path):
    out = tmp_path / "half"
    assert main(["bench", "--checkpoint", f"base={tiny_model_dir}", "--tasks", "medbench_pubmedqa_ll",
                 "--limit", "0.5", "--batch-size", "4", "--data-dir", str(SAMPLE_DATA), "--output", str(out),
                 "--no-report"]) == 0
    run = load_run(out)
    entry = run.meta["sample"]["tasks"]["medbench_pubmedqa_ll"]
    assert entry["n"] == -(-entry["of"] // 2) and len(run.samples()) == entry["n"]


# -- evaluation during training: the same documents, the same grading ----------------------------------------


@pytest.mark.slow
def test_the_training_evaluator_scores_the_benchs_documents_with_its_graders(tiny_model_dir, tmp_path):
    from medbench.harness.run.runner import draw_samples
    from medbench.harness.run.spec import build_spec
    from transformers import AutoModelForCausalLM, AutoTokenizer

    evaluator = ModelEvaluator(["medbench_pubmedqa_ll"], limit=3, data_dir=str(SAMPLE_DATA))
    spec = build_spec(None, {"checkpoints": [f"base={tiny_model_dir}"], "tasks": "medbench_pubmedqa_ll",
                             "limit": 3, "data_dir": str(SAMPLE_DATA), "output": str(tmp_path)})
    bench = draw_samples(spec, plan_tasks(["medbench_pubmedqa_ll"]), make_task_manager(spec.data_dir))
    assert evaluator.samples["medbench_pubmedqa_ll"].doc_ids == bench["medbench_pubmedqa_ll"].doc_ids
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir))
    evaluation = evaluator(model, AutoTokenizer.from_pretrained(str(tiny_model_dir)))
    chosen = list(evaluator.samples["medbench_pubmedqa_ll"].doc_ids)
    assert sorted(r["doc_id"] for r in evaluation.rows) == chosen
    assert {r["outcome"] for r in evaluation.rows} <= {"correct", "wrong", "unparseable"}
    flat = evaluation.flat_metrics()
    n_correct = sum(r["outcome"] == "correct" for r in evaluation.rows)
    assert flat["medbench/medbench_pubmedqa_ll/accuracy"] == n_correct / 3
    assert flat["medbench/medbench_pubmedqa_ll/n"] == 3
