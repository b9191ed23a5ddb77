"""`medbench gate` / `medbench baseline save`: verdicts computed by hand on fixture runs, exit codes, outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fixtures_runs import rows_from_outcomes
from medbench.harness.cli import main
from medbench.harness.gate.baseline import load_scored
from medbench.harness.gate.evaluate import choose_checkpoints, evaluate_gate
from medbench.harness.gate.rules import GateConfigError, load_rules, parse_rules

# Baseline: pubmedqa docs 0-39 correct, 40-47 wrong, 48-49 unparseable (80%); medqa alternating (50%).
BASE_PUBMED = "C" * 40 + "W" * 8 + "U" * 2
MEDQA = "CW" * 10


def _flip(outcomes: str, broken: range, fixed: range) -> str:
    out = list(outcomes)
    for i in broken:
        out[i] = "W"
    for i in fixed:
        out[i] = "C"
    return "".join(out)


# Regressed: 12 broken, 2 fixed -> 30/50 = 60%; one-sided exact McNemar p = P(X >= 12 | 14) = 106/16384.
BAD_PUBMED = _flip(BASE_PUBMED, range(12), range(40, 42))
# Noise: 2 broken, 1 fixed -> 39/50 = 78%; p = P(X >= 2 | 3) = 4/8.
OK_PUBMED = _flip(BASE_PUBMED, range(2), range(40, 41))

RULES = """
alpha: 0.05
rules:
  "*":
    accuracy: {non_inferiority_margin: 0.0}
    truncation_rate: {max: 0.05}
  pubmedqa:
    accuracy: {min: 0.7, max_drop: 0.05}
    format_strict_rate: {min: 0.9}
"""
# Cases per run: pubmedqa 5 (NI, truncation, min, max_drop, format), medqa 2 (NI, truncation).


def _run(make_run, name: str, pubmed: str, medqa: str = MEDQA, checkpoint: str = "model", **kw) -> Path:
    rows = rows_from_outcomes(checkpoint, "pubmedqa", pubmed) + rows_from_outcomes(checkpoint, "medqa", medqa)
    return make_run(name, rows, **kw)


@pytest.fixture
def runs(make_run, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return {
        "baseline": _run(make_run, "baseline", BASE_PUBMED),
        "bad": _run(make_run, "bad", BAD_PUBMED),
        "ok": _run(make_run, "ok", OK_PUBMED),
        "rules": rules,
        "tmp": tmp_path,
    }


def _gate(runs, candidate, *extra, baseline=None):
    return main(["gate", "--candidate", str(candidate), "--baseline", str(baseline or runs["baseline"]),
                 "--rules", str(runs["rules"]), *extra])


def _junit(path: Path) -> tuple[ET.Element, list[ET.Element]]:
    root = ET.parse(path).getroot()
    return root, root.findall("./testsuite/testcase")


def test_noise_passes_with_exit_0_and_junit(runs, capsys):
    junit = runs["tmp"] / "out" / "gate.xml"
    md = runs["tmp"] / "summary.md"
    assert _gate(runs, runs["ok"], "--junit", str(junit), "--markdown", str(md)) == 0
    out = capsys.readouterr().out
    assert "passed: all 7 rule checks passed" in out
    assert "paired on the 50 documents" in out
    root, cases = _junit(junit)
    assert root.get("tests") == "7" and root.get("failures") == "0"
    assert len(cases) == 7 and not root.findall(".//failure")
    assert md.read_text().startswith("### ✅ medbench gate passed")


def test_regression_fails_with_exit_1_and_hand_verdicts(runs, capsys):
    junit = runs["tmp"] / "gate.xml"
    md = runs["tmp"] / "summary.md"
    assert _gate(runs, runs["bad"], "--junit", str(junit), "--markdown", str(md)) == 1
    out = capsys.readouterr().out
    assert "FAILED: 3 of 7 rule checks regressed" in out
    root, cases = _junit(junit)
    assert root.get("tests") == "7" and root.get("failures") == "3"
    failed = sorted(c.get("classname") + " " + c.get("name") for c in cases if c.find("failure") is not None)
    assert failed == [
        "medbench.gate.pubmedqa accuracy NI margin 0.0 pts",
        "medbench.gate.pubmedqa accuracy max_drop 5.0 pts",
        "medbench.gate.pubmedqa accuracy min 70.0%",
    ]
    assert all(c.find("failure").get("type") == "regression" for c in cases if c.find("failure") is not None)
    text = md.read_text()
    assert text.startswith("### ❌ medbench gate FAILED")
    assert "| ❌ | `pubmedqa` | `accuracy` | min 70.0% | 60.0% |" in text


def test_verdict_numbers_by_hand(runs):
    rules = load_rules(runs["rules"])
    cand, base = load_scored(runs["bad"]), load_scored(runs["baseline"])
    result = evaluate_gate(cand, base, rules, choose_checkpoints(cand, base))
    by = {(r.task, r.rule.metric, r.rule.check): r for r in result.results}
    ni = by[("pubmedqa", "accuracy", "non_inferiority_margin")]
    assert ni.status == "fail" and ni.test.paired
    assert ni.test.p_value == pytest.approx(106 / 16384)
    assert ni.test.diff == pytest.approx(-0.2)
    assert (ni.candidate_value, ni.baseline_value) == (0.6, 0.8)
    assert by[("medqa", "accuracy", "non_inferiority_margin")].test.p_value == 1.0  # no discordant pairs
    assert by[("pubmedqa", "format_strict_rate", "min")].candidate_value == 0.96  # 48 of 50 had the layout
    assert by[("pubmedqa", "format_strict_rate", "min")].status == "pass"
    assert by[("pubmedqa", "truncation_rate", "max")].status == "pass"
    # The same drop judged against a 25-point margin is not a regression beyond the margin.
    wide = parse_rules({"rules": {"pubmedqa": {"accuracy": {"non_inferiority_margin": 0.25}}}})
    (r,) = evaluate_gate(cand, base, wide, choose_checkpoints(cand, base)).results
    assert r.status == "pass" and r.test.method.startswith("Tango")


def test_holm_turns_two_borderline_failures_into_passes(make_run, runs, tmp_path):
    # 5 broken, 0 fixed on both tasks: one-sided p = 1/32 = 0.031 each; Holm: min(2 * 0.031, 1) = 0.0625 > 0.05.
    cand = _run(make_run, "borderline", _flip(BASE_PUBMED, range(5), range(0)), _flip(MEDQA, range(0, 10, 2), range(0)))
    rules = tmp_path / "ni.yaml"
    rules.write_text('rules: {"*": {accuracy: {non_inferiority_margin: 0.0}}}\n')
    args = ["gate", "--candidate", str(cand), "--baseline", str(runs["baseline"]), "--rules", str(rules)]
    assert main(args) == 1
    assert main(args + ["--holm"]) == 0
    rules.write_text('holm: true\nrules: {"*": {accuracy: {non_inferiority_margin: 0.0}}}\n')
    assert main(args) == 0


def test_baseline_file_round_trip_keeps_paired_tests(runs, capsys):
    saved = runs["tmp"] / "baselines" / "main.json"
    assert main(["baseline", "save", str(runs["baseline"]), "-o", str(saved)]) == 0
    assert "70 documents" in capsys.readouterr().out
    data = json.loads(saved.read_text())
    assert data["medbench_baseline"] == 1 and data["provenance"]["run_id"] == "baseline"
    assert len(data["documents"]["rows"]) == 70
    assert '["model", "pubmedqa", "pubmedqa:0", "correct"' in saved.read_text()  # one document per line
    assert _gate(runs, runs["bad"], baseline=saved) == 1
    out = capsys.readouterr().out
    assert "baseline file" in out and "paired on the 50 documents" in out and "FAILED: 3 of 7" in out
    assert _gate(runs, runs["ok"], baseline=saved) == 0


def test_different_documents_use_an_unpaired_test_and_say_so(make_run, runs, capsys):
    keys = [f"other:{i}" for i in range(50)]
    rows = rows_from_outcomes("model", "pubmedqa", BAD_PUBMED, keys=keys) + rows_from_outcomes("model", "medqa", MEDQA)
    cand = make_run("elsewhere", rows)
    assert _gate(runs, cand) == 1
    out = capsys.readouterr().out
    assert "pubmedqa: UNPAIRED" in out and "Fisher exact test, one-sided (unpaired)" in out
    result = evaluate_gate(load_scored(cand), load_scored(runs["baseline"]), load_rules(runs["rules"]),
                           [("model", "model")])
    ni = next(r for r in result.results if r.task == "pubmedqa" and r.rule.check == "non_inferiority_margin")
    assert not ni.test.paired and ni.status == "fail"  # 60% vs 80% on 50 each is still significant


def test_same_run_defaults_to_last_checkpoint_vs_base(make_run, tmp_path, capsys):
    rows = rows_from_outcomes("base", "pubmedqa", BASE_PUBMED) + rows_from_outcomes("sft", "pubmedqa", BAD_PUBMED)
    run = make_run("two", rows)
    rules = tmp_path / "r.yaml"
    rules.write_text('rules: {pubmedqa: {accuracy: {non_inferiority_margin: 0.0}}}\n')
    assert main(["gate", "--candidate", str(run), "--baseline", str(run), "--rules", str(rules)]) == 1
    assert "checkpoint sft" in capsys.readouterr().out
    assert main(["gate", "--candidate", str(run), "--baseline", str(run), "--rules", str(rules),
                 "--candidate-checkpoint", "base", "--baseline-checkpoint", "sft"]) == 0


def test_all_checkpoints_pairs_by_name(make_run, tmp_path):
    base_rows = rows_from_outcomes("base", "pubmedqa", BASE_PUBMED) + rows_from_outcomes("sft", "pubmedqa", BASE_PUBMED)
    cand_rows = rows_from_outcomes("base", "pubmedqa", BASE_PUBMED) + rows_from_outcomes("sft", "pubmedqa", BAD_PUBMED)
    b, c = make_run("b", base_rows), make_run("c", cand_rows)
    rules = tmp_path / "r.yaml"
    rules.write_text('rules: {"*": {accuracy: {non_inferiority_margin: 0.0}}}\n')
    junit = tmp_path / "j.xml"
    assert main(["gate", "--candidate", str(c), "--baseline", str(b), "--rules", str(rules), "--all-checkpoints",
                 "--junit", str(junit)]) == 1
    root = ET.parse(junit).getroot()
    suites = {s.get("name"): s.get("failures") for s in root.findall("testsuite")}
    assert suites == {"medbench gate: base vs base": "0", "medbench gate: sft vs sft": "1"}


def test_wildcard_rule_skips_where_not_measured_but_explicit_rule_is_an_error(runs, tmp_path, capsys):
    rules = tmp_path / "think.yaml"
    rules.write_text('rules: {"*": {think_ok_rate: {min: 0.9}}, pubmedqa: {accuracy: {min: 0.5}}}\n')
    junit = tmp_path / "j.xml"
    assert main(["gate", "--candidate", str(runs["ok"]), "--baseline", str(runs["baseline"]), "--rules", str(rules),
                 "--junit", str(junit)]) == 0
    root = ET.parse(junit).getroot()
    assert root.get("skipped") == "2" and len(root.findall(".//skipped")) == 2
    rules.write_text('rules: {pubmedqa: {think_ok_rate: {min: 0.9}}}\n')
    assert main(["gate", "--candidate", str(runs["ok"]), "--baseline", str(runs["baseline"]), "--rules", str(rules)]) == 2
    assert "think_ok_rate is not measured" in capsys.readouterr().err


def test_rules_can_name_a_task_group_pooled_over_its_tasks(make_run, tmp_path, capsys):
    # Two specialties of one group: each alone is too small to show the drop, pooled they show it.
    def rows(ck, a, b):
        return (rows_from_outcomes(ck, "h_cardio", a, group="health")
                + rows_from_outcomes(ck, "h_neuro", b, group="health"))
    base = make_run("hb", rows("m", "C" * 20, "C" * 20))
    cand = make_run("hc", rows("m", "W" * 4 + "C" * 16, "W" * 4 + "C" * 16))
    rules = tmp_path / "g.yaml"
    rules.write_text('rules: {"*": {accuracy: {non_inferiority_margin: 0.0}}, health: {accuracy: {non_inferiority_margin: 0.0}}}\n')
    junit = tmp_path / "g.xml"
    assert main(["gate", "--candidate", str(cand), "--baseline", str(base), "--rules", str(rules),
                 "--junit", str(junit)]) == 1
    cases = {c.get("classname"): c.find("failure") is not None for c in ET.parse(junit).getroot().iter("testcase")}
    # per task: 4 broken of 20, p = 1/16 > 0.05; pooled: 8 broken of 40, p = 1/256
    assert cases == {"medbench.gate.h_cardio": False, "medbench.gate.h_neuro": False, "medbench.gate.health": True}
    assert "health: paired on the 40 documents" in capsys.readouterr().out


def test_determinism_checks_catch_changes_that_cancel_out(make_run, runs, tmp_path, capsys):
    # OK_PUBMED breaks docs 0, 1 and fixes doc 40: accuracy moves 2 points, three documents changed.
    rules = tmp_path / "pin.yaml"
    rules.write_text('rules: {"*": {accuracy: {max_change: 0.0, max_changed_documents: 0}}}\n')
    args = ["gate", "--baseline", str(runs["baseline"]), "--rules", str(rules)]
    same = make_run("same", rows_from_outcomes("model", "pubmedqa", BASE_PUBMED) + rows_from_outcomes("model", "medqa", MEDQA))
    assert main(args + ["--candidate", str(same)]) == 0
    capsys.readouterr()
    # one fixed + one broken: accuracy unchanged, but two documents moved
    swapped = make_run("swapped", rows_from_outcomes("model", "pubmedqa", _flip(BASE_PUBMED, range(1), range(40, 41)))
                       + rows_from_outcomes("model", "medqa", MEDQA))
    assert main(args + ["--candidate", str(swapped)]) == 1
    out = capsys.readouterr().out
    assert "2 document(s) changed correct (allowed 0): pubmedqa:0, pubmedqa:40" in out
    assert "FAILED: 1 of 4 rule checks regressed" in out  # max_change passes: the rate did not move
    rules.write_text('rules: {"*": {accuracy: {max_change: 0.01}}}\n')
    assert main(args + ["--candidate", str(runs["ok"])]) == 1  # 80% -> 78%: moved 2 points


def test_task_version_change_is_reported(make_run, runs, capsys):
    cand = _run(make_run, "v2", OK_PUBMED, task_versions={"pubmedqa": 2})
    assert _gate(runs, cand) == 0
    assert "pubmedqa: task version differs (candidate 2, baseline 1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "rules_text, message",
    [
        ('rules: {pubmedq: {accuracy: {min: 0.5}}}', "did you mean 'pubmedqa'"),
        ('rules: {"*": {acuracy: {min: 0.5}}}', "did you mean 'accuracy'"),
        ('rules: {"*": {accuracy: {minimum: 0.5}}}', "did you mean 'min'"),
        ('rules: {"*": {accuracy: {min: 80}}}', "write 0.8 for 80%"),
        ('rules: {"*": {truncation_rate: {max_drop: 0.1}}}', "use max_increase"),
        ('rules: {"*": {reasoning_tokens_median: {non_inferiority_margin: 0.1}}}', "length summary"),
        ('alpha: 0.9\nrules: {"*": {accuracy: {min: 0.5}}}', "alpha"),
        ('alpah: 0.05\nrules: {"*": {accuracy: {min: 0.5}}}', "did you mean 'alpha'"),
        ('rules: {"*": {accuracy: {min: "high"}}}', "must be a number"),
        ('rules: [1, 2', "not valid YAML at line"),
        ('rules: {}', "'rules' must map task names"),
    ],
)
def test_bad_rules_exit_2_with_a_specific_message(runs, capsys, rules_text, message):
    runs["rules"].write_text(rules_text + "\n")
    assert _gate(runs, runs["ok"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medbench gate: error:") and message in err


def test_unknown_task_lists_what_exists(runs, capsys):
    runs["rules"].write_text('rules: {pubmedq: {accuracy: {min: 0.5}}}\n')
    assert _gate(runs, runs["ok"]) == 2
    assert "tasks and task groups there: ['pubmedqa', 'medqa']" in capsys.readouterr().err


def test_unreadable_inputs_exit_2(runs, capsys, tmp_path):
    assert _gate(runs, tmp_path / "missing") == 2
    assert "does not exist" in capsys.readouterr().err
    (runs["ok"] / "metrics.json").write_text("{not json")
    assert _gate(runs, runs["ok"]) == 2
    assert "metrics.json is not valid JSON" in capsys.readouterr().err
    bad_file = tmp_path / "baseline.json"
    bad_file.write_text('{"something": 1}')
    assert _gate(runs, runs["bad"], baseline=bad_file) == 2
    assert "not a medbench baseline file" in capsys.readouterr().err
    assert main(["gate", "--candidate", str(runs["bad"]), "--baseline", str(runs["baseline"]), "--rules",
                 str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read rules file" in capsys.readouterr().err


def test_unknown_checkpoint_exit_2(runs, capsys):
    assert _gate(runs, runs["ok"], "--candidate-checkpoint", "modle") == 2
    assert "did you mean 'model'" in capsys.readouterr().err
    assert main(["baseline", "save", str(runs["baseline"]), "-o", str(runs["tmp"] / "x.json"),
                 "--checkpoint", "nope"]) == 2


def test_missing_required_option_is_a_usage_error(runs):
    with pytest.raises(SystemExit) as e:
        main(["gate", "--candidate", str(runs["ok"]), "--baseline", str(runs["baseline"])])
    assert e.value.code == 2


def test_parse_rules_task_override_replaces_wildcard_for_same_check():
    rules = parse_rules({"rules": {"*": {"accuracy": {"min": 0.5, "max_drop": 0.1}}, "t": {"accuracy": {"min": 0.2}}}})
    got = {(r.task, r.check, r.threshold) for r in rules.for_task("t")}
    assert got == {("*", "max_drop", 0.1), ("t", "min", 0.2)}
    with pytest.raises(GateConfigError, match=r"task 't'.*groups there: \['u'\]"):
        rules.check_tasks(["u"], "the candidate")


def test_gate_never_imports_torch(runs):
    """The gate runs in CI jobs without a GPU stack: it must not pay for (or need) torch."""
    import subprocess
    import sys

    code = (
        "import sys; from medbench.harness.cli import main; "
        f"rc = main(['gate', '--candidate', {str(runs['ok'])!r}, '--baseline', {str(runs['baseline'])!r}, "
        f"'--rules', {str(runs['rules'])!r}]); "
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.stdout.strip().splitlines()[-1] == "NO-TORCH 0", out.stderr[-2000:]
