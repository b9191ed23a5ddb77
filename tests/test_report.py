"""`medbench report`: the numbers on the page are metrics.json's, the file is self-contained and safe.

The fixture run (tests/report_fixture.py) is graded by the real grader and its metrics computed by
medbench.harness.stats.metrics; these tests read the rendered HTML back with lxml and compare.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from lxml import html as lxml_html
from medbench.harness.cli import main as cli_main
from medbench.harness.run.rundir import RunDirError, RunWriter, load_run
from medbench.reports.render import ReportError, render_report, safe_json_for_script
from report_fixture import XSS, build_fixture_run

HOSTILE = '<img src=x onerror="alert(2)">'


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory) -> Path:
    return build_fixture_run(tmp_path_factory.mktemp("report") / "run-a", run_id="run-a")


@pytest.fixture(scope="module")
def report(fixture_run) -> tuple[str, lxml_html.HtmlElement]:
    out = render_report([fixture_run], progress=None)
    text = out.read_text(encoding="utf-8")
    return text, lxml_html.fromstring(text)


def _data(doc) -> dict:
    (block,) = doc.xpath('//script[@id="medbench-data"]')
    assert block.get("type") == "application/json"
    return json.loads(block.text)


def _cell(row, col: str) -> str:
    (td,) = row.xpath(f'./td[@data-col="{col}"]')
    return " ".join(td.text_content().split())


def test_summary_table_shows_metrics_json_numbers(fixture_run, report):
    _, doc = report
    run = load_run(fixture_run)
    overall = [r for r in run.task_metrics() if r["subgroup"] is None]
    pairs = {(p["task"], p["checkpoint"]): p for p in run.pair_metrics()}
    rows = doc.xpath('//table[@id="summary-table"]/tbody/tr')
    assert len(rows) == len(overall) == 12
    by_key = {(r.get("data-task"), r.get("data-checkpoint")): r for r in rows}
    for m in overall:
        row = by_key[(m["task"], m["checkpoint"])]
        assert _cell(row, "n") == str(m["n"])
        assert _cell(row, "accuracy") == f"{m['accuracy'] * 100:.1f}%"
        assert _cell(row, "ci") == f"{m['accuracy_ci_low'] * 100:.1f}–{m['accuracy_ci_high'] * 100:.1f}"
        assert _cell(row, "unparseable") == f"{m['unparseable_rate'] * 100:.1f}%"
        assert _cell(row, "truncation") == f"{m['truncation_rate'] * 100:.1f}%"
        assert _cell(row, "format_strict") == f"{m['format_strict_rate'] * 100:.1f}%"
        assert _cell(row, "format_soft") == f"{m['format_soft_rate'] * 100:.1f}%"
        assert _cell(row, "median_tokens") == f"{m['reasoning_tokens_median']:.0f} tokens"
        pair = pairs.get((m["task"], m["checkpoint"]))
        if pair is None:
            assert _cell(row, "diff") == "reference"
            continue
        diff = _cell(row, "diff")
        assert f"{pair['accuracy_diff'] * 100:+.1f} pts" in diff
        assert f"[{pair['diff_ci_low'] * 100:+.1f}, {pair['diff_ci_high'] * 100:+.1f}]" in diff
        (td,) = row.xpath('./td[@data-col="diff"]')
        significant = pair["mcnemar_p"] < 0.05
        expected = ("sig-up" if pair["accuracy_diff"] > 0 else "sig-down") if significant else "ns"
        assert expected in td.get("class").split(), (m["task"], m["checkpoint"], pair["mcnemar_p"])
        assert ("▲" in diff or "▼" in diff) == significant
        p = pair["mcnemar_p"]
        assert _cell(row, "p") == (f"p={p:.3f}" if p >= 0.001 else "p<0.001")
    # The fixture is built so that at least one difference is significant and one is not: both marks show.
    classes = " ".join(td.get("class") for td in doc.xpath('//td[@data-col="diff"]'))
    assert "sig-up" in classes and "ns" in classes
    # Judge agreement of the free-text task, labelled proxy.
    cot = by_key[("medical_cot", "grpo")]
    judge = next(m for m in overall if m["task"] == "medical_cot" and m["checkpoint"] == "grpo")
    assert _cell(cot, "judge") == f"{judge['judge_agreement'] * 100:.1f}% proxy"


def test_header_lists_checkpoints_in_lineage_order_with_provenance(report):
    _, doc = report
    rows = doc.xpath('//table[@id="checkpoints-table"]/tbody/tr')
    assert [r.get("data-checkpoint") for r in rows] == ["base", "sft", "grpo"]  # run.json has grpo first
    grpo = rows[2].text_content()
    assert "Qwen/Qwen2.5-3B-Instruct + adapter runs/ckpt/grpo-lora (not merged)" in grpo
    assert "parent runs/ckpt/sft-merged" in grpo and "steps 250" in grpo and "2800 rows" in grpo
    assert "no chat template" in rows[1].text_content()  # the runner's checkpoint warning
    tasks = {r.xpath("./td")[0].text_content(): r.xpath("./td")[1].text_content()
             for r in doc.xpath('//table[@id="tasks-table"]/tbody/tr')}
    assert tasks == {"pubmedqa": "1", "health_benchmarks": "1", "gsm8k": "1", "medical_cot": "2"}
    facts = dict(zip([dt.text_content() for dt in doc.xpath('//dl[@class="facts"]/dt')],
                     [dd.text_content() for dd in doc.xpath('//dl[@class="facts"]/dd')]))
    assert facts["backend"] == "hf" and facts["status"] == "complete"
    assert facts["duration"] == "32m 12s"
    assert facts["evaluation time"] == "32m 07s (base 9m 22s, sft 12m 40s, grpo 10m 04s)"
    assert facts["hardware"].startswith("1× NVIDIA H100 80GB HBM3 (79.1 GiB), CUDA 12.8, 125.7 GiB RAM")
    assert "lm-eval=0.4.13" in facts["versions"] and "vllm" not in facts["versions"]
    assert facts["git"] == "e697b79c0ffe (with uncommitted changes)"


def test_every_figure_is_an_inline_svg(report):
    _, doc = report
    figures = {f.get("id"): f for f in doc.xpath("//figure")}
    assert set(figures) == {"fig-accuracy", "fig-format", "fig-length", "fig-acc-length",
                            "fig-subgroups-health_benchmarks", "fig-flips"}
    for fig in figures.values():
        (img,) = fig.xpath(".//img")
        prefix = "data:image/svg+xml;base64,"
        assert img.get("src").startswith(prefix)
        svg = base64.b64decode(img.get("src")[len(prefix):]).decode("utf-8")
        assert "<svg" in svg and img.get("alt")
    heat = base64.b64decode(figures["fig-subgroups-health_benchmarks"].xpath(".//img")[0].get("src").split(",")[1])
    assert all(s.encode() in heat for s in ("Cardiology", "Pediatrics"))


def test_sample_browser_data_has_every_question_flip_and_the_showcase_first(fixture_run, report):
    _, doc = report
    data = _data(doc)
    run = load_run(fixture_run)
    samples = run.samples()
    assert data["checkpoints"] == ["base", "sft", "grpo"]
    assert len(data["questions"]) == samples[["task", "doc_key"]].drop_duplicates().shape[0]
    first = data["questions"][0]
    assert first["s"] == 1 and "cystometry" in first["q"]
    assert [data["outcomes"][c["o"]] for c in first["c"]] == ["wrong", "correct", "correct"]
    assert all(c["j"][0] == "proxy" and c["j"][3] for c in first["c"])  # rationale, labelled proxy
    by_id = {(data["tasks"][q["t"]], q["id"]): q for q in data["questions"]}
    for pair in run.pair_metrics():
        for kind in ("fixed", "broken"):
            label = data["flips"].index(f"{kind} by {pair['checkpoint']} (vs {pair['reference']})")
            tagged = {q["id"] for (task, _), q in by_id.items() if task == pair["task"] and label in q["f"]}
            assert tagged == set(pair[kind])
    # Each cell is the sample as written: same completion, outcome and extracted answer.
    row = samples[(samples["checkpoint"] == "sft") & (samples["doc_key"] == "pubmedqa:00001")].iloc[0]
    cell = by_id[("pubmedqa", "pubmedqa:00001")]["c"][1]
    assert cell["txt"] == row["completion"] and XSS in cell["txt"]
    assert data["outcomes"][cell["o"]] == row["outcome"] and cell["x"] == row["extracted"]
    # The reasoning span the browser collapses is the grader's reasoning (UTF-16 offsets, here ASCII-only).
    rs, re_ = cell["r"]
    assert "I will inject" in cell["txt"][rs:re_] and "<reasoning>" not in cell["txt"][rs:re_]


def test_model_text_cannot_become_markup(report):
    text, doc = report
    assert XSS not in text  # never verbatim anywhere in the file
    scripts = doc.xpath("//script")
    assert len(scripts) == 2  # the data block and our own script; nothing from a completion
    assert scripts[0].get("type") == "application/json" and scripts[1].get("type") is None
    assert not doc.xpath('//*[@id="sample-list"]//*')  # rendered client-side, with textContent only
    js = (Path(__file__).parents[1] / "reports" / "static" / "report.js").read_text()
    assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write|\beval\(", js)


def test_hostile_names_in_run_json_are_escaped(tmp_path):
    root = build_fixture_run(tmp_path / "hostile", sizes={"pubmedqa": 4, "health_benchmarks": 5, "gsm8k": 3,
                                                          "medical_cot": 2})
    meta = load_run(root).meta
    meta["checkpoints"][1]["model"] = HOSTILE
    meta["environment"]["hardware"] = {"processor": XSS}
    RunWriter(root).write_meta({k: v for k, v in meta.items() if k != "schema_version"})
    text = render_report([root], progress=None).read_text(encoding="utf-8")
    doc = lxml_html.fromstring(text)
    assert not doc.xpath("//img[@src='x']") and XSS not in text and HOSTILE not in text
    assert HOSTILE in doc.xpath('//tr[@data-checkpoint="base"]')[0].text_content()
    assert XSS in doc.xpath('//dl[@class="facts"]')[0].text_content()


@pytest.mark.parametrize("payload", [XSS, "</script><script>alert(3)</script>", "<!--", "a\u2028b\u2029c", "&lt;"])
def test_json_for_script_cannot_close_the_block_and_round_trips(payload):
    encoded = safe_json_for_script({"t": payload})
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded
    assert "\u2028" not in encoded and "\u2029" not in encoded
    assert json.loads(encoded) == {"t": payload}


def test_content_security_policy_allows_exactly_the_inlined_code(report):
    text, doc = report
    (meta,) = doc.xpath('//meta[@http-equiv="Content-Security-Policy"]')
    policy = dict(d.strip().split(" ", 1) for d in meta.get("content").split(";"))
    assert policy["default-src"] == "'none'" and policy["img-src"] == "data:"
    (style,) = re.findall(r"<style>(.*?)</style>", text, re.DOTALL)
    script = re.findall(r"<script>(.*?)</script>", text, re.DOTALL)[-1]

    def sha(s: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"

    assert policy["style-src"] == sha(style) and policy["script-src"] == sha(script)
    assert "unsafe" not in meta.get("content")
    # Nothing external: every src / href is inline data or an in-page anchor.
    for attr in doc.xpath("//@src | //@href"):
        assert attr.startswith(("data:", "#")), attr
    assert not re.search(r"https?://", style + script)


def test_compare_two_runs_prefixes_checkpoints_and_keeps_shared_tasks(tmp_path, fixture_run):
    other = build_fixture_run(tmp_path / "run-b", run_id="run-b", seed=7,
                              sizes={"pubmedqa": 12, "health_benchmarks": 10, "gsm8k": 6, "medical_cot": 3})
    out = render_report([fixture_run, other], tmp_path / "cmp" / "compare.html", progress=None)
    doc = lxml_html.fromstring(out.read_text(encoding="utf-8"))
    keys = [r.get("data-checkpoint") for r in doc.xpath('//table[@id="checkpoints-table"]/tbody/tr')]
    assert keys == ["run-a/base", "run-a/sft", "run-a/grpo", "run-b/base", "run-b/sft", "run-b/grpo"]
    run_b = load_run(other)
    m = next(r for r in run_b.task_metrics() if r["checkpoint"] == "grpo" and r["task"] == "gsm8k"
             and r["subgroup"] is None)
    (row,) = doc.xpath('//table[@id="summary-table"]/tbody/tr[@data-task="gsm8k"][@data-checkpoint="run-b/grpo"]')
    assert _cell(row, "accuracy") == f"{m['accuracy'] * 100:.1f}%"
    data = _data(doc)
    assert data["checkpoints"] == keys
    # The same document from both runs is one question with six columns, side by side.
    q = next(q for q in data["questions"] if q["id"] == "gsm8k:00002")
    assert all(c is not None for c in q["c"])
    # Across runs: each checkpoint against its namesake in the earlier run, paired on shared documents.
    samples = {key: frame for key, frame in _paired_frames(fixture_run, other)}
    for row in doc.xpath('//table[@id="cross-table"]/tbody/tr'):
        name = row.get("data-checkpoint").split("/", 1)[1]
        assert row.get("data-reference") == f"run-a/{name}"
        a, b = samples[(row.get("data-task"), name)]
        merged = a.merge(b, on="doc_key")
        assert _cell(row, "n_paired") == str(len(merged)) == str(len(b))
        fixed = int(((merged["outcome_x"] != "correct") & (merged["outcome_y"] == "correct")).sum())
        broken = int(((merged["outcome_x"] == "correct") & (merged["outcome_y"] != "correct")).sum())
        assert (_cell(row, "n_fixed"), _cell(row, "n_broken")) == (str(fixed), str(broken))
        diff = (fixed - broken) / len(merged)
        assert f"{diff * 100:+.1f} pts" in _cell(row, "diff")
    assert len(doc.xpath('//table[@id="cross-table"]/tbody/tr')) == 3 * 4
    assert "fixed by run-b/grpo (vs run-a/grpo)" in data["flips"]


def _paired_frames(run_a: Path, run_b: Path):
    a, b = load_run(run_a).samples(), load_run(run_b).samples()
    a, b = a[~a["showcase"]], b[~b["showcase"]]
    for (task, ck), part in b.groupby(["task", "checkpoint"]):
        ref = a[(a["task"] == task) & (a["checkpoint"] == ck)]
        yield (task, ck), (ref[["doc_key", "outcome"]], part[["doc_key", "outcome"]])


def test_runs_without_a_shared_task_are_refused_with_the_task_lists(tmp_path, fixture_run):
    other = build_fixture_run(tmp_path / "run-c", run_id="run-c",
                              sizes={"pubmedqa": 3, "health_benchmarks": 3, "gsm8k": 3, "medical_cot": 2})
    meta = load_run(other).meta
    for t in meta["tasks"]:
        t["name"] = "other_" + t["name"]
    RunWriter(other).write_meta({k: v for k, v in meta.items() if k != "schema_version"})
    with pytest.raises(ReportError, match=r"share no task.*run-a: pubmedqa.*run-c: other_pubmedqa"):
        render_report([fixture_run, other], tmp_path / "x.html", progress=None)
    assert not (tmp_path / "x.html").exists()


def test_cli_writes_the_default_file_and_reports_bad_input(tmp_path, fixture_run, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(fixture_run, run)
    (run / "report.html").unlink(missing_ok=True)
    assert cli_main(["report", str(run), "-q"]) == 0
    assert (run / "report.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert cli_main(["report", str(run), "-o", str(tmp_path / "out" / "r.html"), "-q"]) == 0
    assert (tmp_path / "out" / "r.html").exists()

    assert cli_main(["report", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (run / "metrics.json").write_text("{broken", encoding="utf-8")
    assert cli_main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert "metrics.json is not valid JSON" in err and "corrupt" in err
    with pytest.raises(RunDirError):
        load_run(run)


def test_report_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        cli_main(["report", "--help"])
    out = capsys.readouterr().out
    for option in ("RUN_DIR", "--output", "--title", "--quiet"):
        assert option in out


def test_collapsible_spans_are_utf16_offsets_of_the_graders_regions(fixture_run):
    """The browser slices completions by UTF-16 offsets; an emoji before the answer must not shift them."""
    from medbench.reports.render import browser_payload, combine_runs
    from medbench.tasks.graders import parse_layout

    data = browser_payload(combine_runs([load_run(fixture_run)]))
    layouts = {"medical_cot": "think"}
    checked_astral = 0
    for q in data["questions"]:
        for cell in q["c"]:
            units = cell["txt"].encode("utf-16-le")
            parsed = parse_layout(cell["txt"], layouts.get(data["tasks"][q["t"]], "xml"))
            for span, expected in ((cell["r"], parsed.reasoning), (cell["a"], parsed.answer)):
                if span is not None:
                    assert units[2 * span[0]:2 * span[1]].decode("utf-16-le") == expected
            checked_astral += cell["a"] is not None and "\U0001fa7a" in cell["txt"]
    assert checked_astral > 0  # the fixture's 🩺 sits before some answers


def test_minimal_single_checkpoint_run_renders_without_optional_parts(tmp_path):
    """One checkpoint, one task, no judge, no subgroups, no provenance: nothing to compare, nothing invented."""
    from fixtures_runs import rows_from_outcomes, write_run

    rows = rows_from_outcomes("only", "pubmedqa", "CCWU", completion=XSS, question=None)
    root = write_run(tmp_path / "mini", rows)
    text = render_report([root], progress=None).read_text(encoding="utf-8")
    doc = lxml_html.fromstring(text)
    (row,) = doc.xpath('//table[@id="summary-table"]/tbody/tr')
    assert _cell(row, "accuracy") == "50.0%" and _cell(row, "unparseable") == "25.0%"
    assert _cell(row, "diff") == "—" and not doc.xpath('//td[@data-col="judge"]')
    assert {f.get("id") for f in doc.xpath("//figure")} >= {"fig-accuracy", "fig-format"}
    assert "fig-flips" not in text and "per-subgroup heatmap (no task" in text
    data = _data(doc)
    assert len(data["questions"]) == 4 and data["questions"][0]["q"] == "Question pubmedqa:0?"  # prompt fallback
    assert XSS not in text and not doc.xpath('//*[@id="showcase"]')
