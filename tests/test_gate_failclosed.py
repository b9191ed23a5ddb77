"""`medbench gate` fails closed, decides monotonically in the margin, labels proxy-judged accuracy, and its
shipped examples work where a user puts them (issue 13, section 1).

Before: a candidate checkpoint that failed to load passed with `gate passed: all 0 rule checks passed` (exit 0);
a task one side lacked was skipped; metrics.json edited to disagree with samples.parquet gave "60.0% vs 60.0%"
beside "Δ −13.3 pts"; margin 0.02 failed a candidate that margin 0 passed; the example rules failed (exit 2) on
any run without medbench_health, and the example workflow installed the user's own repository as medbench.
"""

from __future__ import annotations

import json
import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from fixtures_runs import rows_from_outcomes
from medbench.harness.cli import build_parser, main
from medbench.harness.gate.baseline import load_scored
from medbench.harness.gate.evaluate import choose_checkpoints, evaluate_gate
from medbench.harness.gate.rules import load_rules, parse_rules

REPO = Path(__file__).resolve().parents[1]
BASE = "C" * 40 + "W" * 10
NI = 'rules: {"*": {accuracy: {non_inferiority_margin: 0.0}}}\n'


def _rules(tmp_path: Path, text: str = NI) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def _gate(candidate, baseline, rules, *extra) -> int:
    return main(["gate", "--candidate", str(candidate), "--baseline", str(baseline), "--rules", str(rules), *extra])


def _with_failed_checkpoint(run: Path, name: str, message: str = "OSError: not a safetensors file") -> Path:
    """What the bench runner leaves when a checkpoint failed: listed in run.json, its error recorded, no rows."""
    meta = json.loads((run / "run.json").read_text())
    meta["checkpoints"].append({"name": name, "role": "grpo"})
    meta["errors"] = {name: message}
    meta["status"] = "incomplete"
    (run / "run.json").write_text(json.dumps(meta))
    return run


# -- fails closed -------------------------------------------------------------------------------------------


def test_a_candidate_checkpoint_that_failed_in_its_run_fails_the_gate(make_run, tmp_path, capsys):
    base = make_run("base", rows_from_outcomes("model", "pubmedqa", BASE))
    # the candidate run: the base checkpoint finished, the gated (last) one failed to load
    cand = _with_failed_checkpoint(make_run("cand", rows_from_outcomes("base", "pubmedqa", BASE)), "grpo")
    junit = tmp_path / "g.xml"
    code = _gate(cand, base, _rules(tmp_path), "--baseline-checkpoint", "model", "--junit", str(junit))
    out = capsys.readouterr().out
    assert code == 1, out
    assert "candidate checkpoint 'grpo' failed in its run (OSError: not a safetensors file)" in out
    assert "passed" not in out.splitlines()[-1]
    root = ET.parse(junit).getroot()
    assert root.get("failures") == "1"
    assert root.find(".//failure").get("type") == "fails-closed"


def test_a_candidate_run_that_did_not_finish_is_not_a_pass(make_run, tmp_path, capsys):
    base = make_run("b", rows_from_outcomes("model", "pubmedqa", BASE))
    cand = make_run("c", rows_from_outcomes("model", "pubmedqa", BASE))
    meta = json.loads((cand / "run.json").read_text())
    (cand / "run.json").write_text(json.dumps({**meta, "status": "running"}))  # killed mid-run
    assert _gate(cand, base, _rules(tmp_path)) == 1
    assert "did not finish (run.json status 'running'" in capsys.readouterr().out


def test_zero_applicable_checks_is_not_a_pass(make_run, tmp_path, capsys):
    run = make_run("r", rows_from_outcomes("base", "pubmedqa", BASE) + rows_from_outcomes("sft", "pubmedqa", BASE))
    rules = _rules(tmp_path, 'rules: {"*": {think_ok_rate: {min: 0.9}}}\n')  # no think layout here: all skip
    assert _gate(run, run, rules) == 1
    out = capsys.readouterr().out
    assert "no rule check applied (1 skipped as not applicable)" in out and "nothing passed" in out


def test_a_task_the_other_side_has_must_be_on_both_unless_allowed(make_run, tmp_path, capsys):
    both = rows_from_outcomes("model", "pubmedqa", BASE) + rows_from_outcomes("model", "medqa", "CW" * 10)
    only_pubmed = rows_from_outcomes("model", "pubmedqa", BASE)
    full, partial = make_run("full", both), make_run("partial", only_pubmed)
    rules = _rules(tmp_path)
    # the candidate dropped a task the baseline has
    assert _gate(partial, full, rules) == 1
    assert "candidate checkpoint 'model' has no results for task 'medqa', which the other side has" in \
        capsys.readouterr().out
    # the candidate added a task the baseline never scored: nothing to compare it with
    assert _gate(full, partial, rules) == 1
    assert "baseline checkpoint 'model' has no results for task 'medqa'" in capsys.readouterr().out
    # an explicit rule option allows it; the relative check on the new task is then skipped, said so
    allowed = _rules(tmp_path, 'rules: {"*": {accuracy: {non_inferiority_margin: 0.0}}, '
                               'medqa: {allow_missing: true, accuracy: {min: 0.4}}}\n')
    assert _gate(partial, full, allowed) == 0
    assert "medqa: not in the candidate checkpoint; allowed by allow_missing" in capsys.readouterr().out
    assert _gate(full, partial, allowed) == 0
    out = capsys.readouterr().out
    assert "not applicable: the baseline lacks this task (allow_missing)" in out
    assert "50.0% ≥ min 40.0%" in out  # the absolute check on the new task still ran


def test_a_task_the_rules_name_must_be_there_and_a_typo_is_still_a_usage_error(make_run, tmp_path, capsys):
    base = make_run("b", rows_from_outcomes("model", "pubmedqa", BASE) + rows_from_outcomes("model", "medqa", BASE))
    cand = make_run("c", rows_from_outcomes("model", "pubmedqa", BASE))
    assert _gate(cand, base, _rules(tmp_path, "rules: {medqa: {accuracy: {min: 0.5}}}\n")) == 1
    assert "has no results for task 'medqa', which the rules name" in capsys.readouterr().out
    assert _gate(cand, base, _rules(tmp_path, "rules: {medq: {accuracy: {min: 0.5}}}\n")) == 2
    assert "did you mean 'medqa'" in capsys.readouterr().err


def test_all_checkpoints_fails_when_a_baseline_checkpoint_was_not_benchmarked(make_run, tmp_path, capsys):
    base = make_run("b", rows_from_outcomes("base", "pubmedqa", BASE) + rows_from_outcomes("grpo", "pubmedqa", BASE))
    cand = make_run("c", rows_from_outcomes("base", "pubmedqa", BASE))
    assert _gate(cand, base, _rules(tmp_path), "--all-checkpoints") == 1
    assert "baseline checkpoint 'grpo' has no checkpoint of that name in the candidate run" in \
        capsys.readouterr().out


def test_metrics_json_that_disagrees_with_samples_gives_no_verdict(make_run, tmp_path, capsys):
    base = make_run("b", rows_from_outcomes("model", "pubmedqa", "C" * 18 + "W" * 12))  # 60%
    cand = make_run("c", rows_from_outcomes("model", "pubmedqa", "C" * 14 + "W" * 16))  # 46.7%: -13.3 pts
    metrics = json.loads((cand / "metrics.json").read_text())
    record = metrics["per_task"][0]
    record.update(accuracy=0.6, n_correct=18, n_wrong=12)  # someone "fixed" the number by hand
    (cand / "metrics.json").write_text(json.dumps(metrics))
    rules = _rules(tmp_path, "rules: {pubmedqa: {accuracy: {min: 0.5, non_inferiority_margin: 0.0}}}\n")
    assert _gate(cand, base, rules) == 2
    err = capsys.readouterr().err
    assert "metrics.json disagrees with the per-document outcomes (accuracy 60.0% but the documents give 46.7% " \
           "(14/30))" in err
    assert "re-run `medbench bench` with the same --output" in err


def test_a_baseline_is_not_saved_from_a_failed_checkpoint(make_run, tmp_path, capsys):
    run = _with_failed_checkpoint(make_run("r", rows_from_outcomes("base", "pubmedqa", BASE)), "grpo")
    out = tmp_path / "baseline.json"
    assert main(["baseline", "save", str(run), "-o", str(out)]) == 2
    assert "checkpoint(s) 'grpo' failed in this run" in capsys.readouterr().err and not out.exists()
    assert main(["baseline", "save", str(run), "-o", str(out), "--checkpoint", "base"]) == 0


def test_duplicate_keys_in_the_rules_are_an_error_not_a_dropped_rule(make_run, tmp_path, capsys):
    run = make_run("r", rows_from_outcomes("model", "pubmedqa", BASE))
    text = 'rules:\n  "*": {accuracy: {min: 0.99}}\n  "*": {truncation_rate: {max: 0.5}}\n'
    assert _gate(run, run, _rules(tmp_path, text), "--baseline-checkpoint", "model",
                 "--candidate-checkpoint", "model") == 2
    assert "duplicate key '*'" in capsys.readouterr().err


# -- one statistic, monotone in the margin ------------------------------------------------------------------


def test_a_wider_margin_never_fails_what_a_narrower_one_passes(make_run, tmp_path):
    # b = 0 fixed, c = 4 broken, n = 30 (the case): exact one-sided McNemar p = 1/16 > 0.05
    base = make_run("b", rows_from_outcomes("model", "t", "C" * 30))
    cand = make_run("c", rows_from_outcomes("model", "t", "W" * 4 + "C" * 26))
    verdicts = {}
    for margin in (0.0, 0.02, 0.05):
        rules = parse_rules({"rules": {"t": {"accuracy": {"non_inferiority_margin": margin}}}})
        c, b = load_scored(cand), load_scored(base)
        (r,) = evaluate_gate(c, b, rules, choose_checkpoints(c, b)).results
        verdicts[margin] = (r.status, r.test.p_value)
    assert [v[0] for v in verdicts.values()] == ["pass", "pass", "pass"]
    assert verdicts[0.0][1] == pytest.approx(1 / 16)
    assert verdicts[0.0][1] <= verdicts[0.02][1] <= verdicts[0.05][1]


# -- proxy-judged accuracy is labelled ----------------------------------------------------------------------


def test_proxy_judged_accuracy_is_labelled_in_every_gate_output(make_run, tmp_path, capsys):
    judged = {"judge_kind": "proxy", "judge_agree": True, "layout": "think", "answer_type": "free"}
    base = make_run("b", rows_from_outcomes("model", "cot", "CCCW", **judged))
    cand = make_run("c", rows_from_outcomes("model", "cot", "CCCW", **judged))
    md = tmp_path / "g.md"
    assert _gate(cand, base, _rules(tmp_path, "rules: {cot: {accuracy: {min: 0.5}}}\n"), "--markdown", str(md)) == 0
    out = capsys.readouterr().out
    assert "75.0% (proxy)" in out and "judged by the offline similarity proxy" in out
    assert "75.0% (proxy)" in md.read_text()


# -- the shipped examples ------------------------------------------------------------------------------------


def _readme_bench_tasks() -> list[str]:
    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("## Benchmark checkpoints"):]
    first = re.search(r"medbench bench --checkpoint .*?--tasks (\S+)", block, re.DOTALL)
    assert first, "the README's bench example moved"
    return first.group(1).split(",")


def _example_run(make_run, name: str, tasks: list[str], checkpoint: str = "model", pubmed: str = "CCCW" * 10):
    rows = []
    for task in tasks:
        if task == "medbench_health":
            for specialty in ("cardiology", "neurology"):
                rows += rows_from_outcomes(checkpoint, f"medbench_health_{specialty}", "CCW" * 10,
                                           group="medbench_health")
        else:
            rows += rows_from_outcomes(checkpoint, task, pubmed if task == "medbench_pubmedqa" else "CW" * 10)
    return make_run(name, rows)


def _workflow() -> dict:
    return yaml.safe_load((REPO / "examples" / "github-actions" / "medbench-gate.yml").read_text())


def _workflow_step(prefix: str) -> str:
    (cmd,) = [s["run"] for s in _workflow()["jobs"]["gate"]["steps"] if str(s.get("run", "")).startswith(prefix)]
    return cmd


def test_example_rules_work_on_the_readmes_bench_example_and_the_workflows(make_run, capsys):
    rules = REPO / "examples" / "gate-rules.yaml"
    bench_argv = shlex.split(_workflow_step("medbench bench").replace("$MODEL", "./m"))[1:]
    workflow_tasks = build_parser().parse_args(bench_argv).tasks.split(",")
    readme_tasks = _readme_bench_tasks()
    assert readme_tasks == ["medbench_pubmedqa", "medbench_health"] and "medbench_gsm8k" in workflow_tasks
    for tasks in (readme_tasks, workflow_tasks):
        label = "_".join(t[-5:] for t in tasks)
        base, cand = _example_run(make_run, f"b{label}", tasks), _example_run(make_run, f"c{label}", tasks)
        assert _gate(cand, base, rules) == 0, capsys.readouterr()
        capsys.readouterr()
        worse = _example_run(make_run, f"w{label}", tasks, pubmed="CCWW" * 10)  # 75% -> 50% on PubMedQA
        assert _gate(worse, base, rules) == 1
        assert "FAIL medbench_pubmedqa accuracy" in capsys.readouterr().out


def test_example_workflow_is_copyable_into_a_model_repository():
    text = (REPO / "examples" / "github-actions" / "medbench-gate.yml").read_text()
    assert "github.repository" not in text  # the user's repository is not medbench
    install = _workflow_step("pip install")
    env = _workflow()["jobs"]["gate"]["env"]
    assert install == 'pip install "$MEDBENCH"' and env["MEDBENCH"].startswith("medbench")
    gate_args = build_parser().parse_args(shlex.split(_workflow_step("medbench gate"))[1:])
    # rules and baseline live in the user's repository, where the header says to copy them
    assert not gate_args.rules.startswith("examples/") and gate_args.rules in text.split("->", 2)[-1]
    assert f"-o {gate_args.baseline}" in text
    load_rules(REPO / "examples" / "gate-rules.yaml")  # the file the header says to copy is valid
