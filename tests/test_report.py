"""`medbench report`: the answer first, numbers that are metrics.json's and the harness's, a safe file.

The fixture run (tests/report_fixture.py) has the layout of a real run: 3 checkpoints with lineage, PubMedQA,
the 52 Health_Benchmarks specialty tasks of the real registry, GSM8K and the proxy-judged free-text task,
graded by the real grader, metrics by medbench.harness.stats.metrics, comparisons by
medbench.harness.stats.compare. These tests read the rendered HTML back with lxml and compare.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from lxml import html as lxml_html
from medbench.harness.cli import main as cli_main
from medbench.harness.cli.report import render_runs
from medbench.harness.run.rundir import RunDirError, RunWriter, load_run
from medbench.harness.stats.compare import report_stats
from medbench.reports.render import ReportError, decode_payload, render_report, safe_json_for_script
from report_fixture import LONG_NAME, XSS, XSS_MORE, build_fixture_run, health_specialties

HOSTILE = '<img src=x onerror="alert(2)">'
#: All 52 specialties (few documents each), and enough PubMedQA and GSM8K for the fixture's significant changes.
SIZES = {"pubmedqa": 500, "health": 10, "gsm8k": 300, "medical_cot": 20}


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory) -> Path:
    return build_fixture_run(tmp_path_factory.mktemp("report") / "run-a", run_id="run-a", sizes=SIZES)


@pytest.fixture(scope="module")
def stats(fixture_run):
    return report_stats([load_run(fixture_run)])


@pytest.fixture(scope="module")
def report(fixture_run) -> tuple[str, lxml_html.HtmlElement]:
    out = render_runs([fixture_run], fixture_run / "report.html")
    text = out.read_text(encoding="utf-8")
    return text, lxml_html.fromstring(text)


def _data(doc) -> dict:
    (block,) = doc.xpath('//script[@id="medbench-data"]')
    assert block.get("type") == "application/octet-stream"
    return decode_payload(block.text)


def _text(node) -> str:
    return " ".join(node.text_content().split())


def _cell(row, col: str) -> str:
    (td,) = row.xpath(f'./td[@data-col="{col}"]')
    return _text(td)


def _cmp(stats, unit: str, checkpoint: str, reference: str):
    (c,) = [c for c in stats.comparisons if c.unit == unit and c.checkpoint == checkpoint and c.reference == reference]
    return c


def test_the_answer_table_shows_each_family_with_its_changes_vs_base_and_vs_parent(fixture_run, report, stats):
    _, doc = report
    run = load_run(fixture_run)
    top = doc.xpath('//table[@id="answer-table"]/tbody/tr[not(contains(@class, "child"))]')
    assert [r.get("data-unit") for r in top] == ["medbench_pubmedqa", "medbench_health", "medbench_gsm8k",
                                                 "medbench_medical_cot"]
    per_task = {(r["task"], r["checkpoint"]): r for r in run.task_metrics() if r["subgroup"] is None}
    per_group = {(r["group"], r["checkpoint"]): r for r in run.metrics["per_group"]}
    for row in top:
        unit = row.get("data-unit")
        for ck in ("base", "sft", "grpo"):
            (td,) = row.xpath(f'./td[@data-checkpoint="{ck}"]')
            m = per_group.get((unit, ck)) or per_task[(unit, ck)]
            assert _text(td.xpath('.//span[@class="acc"]')[0]) == f"{m['accuracy'] * 100:.1f}%"
            assert f"n={m['n']}" in _text(td)
            deltas = {d.get("data-reference"): d for d in td.xpath('.//span[contains(@class, "delta")]')}
            expected = {"base": set(), "sft": {"base"}, "grpo": {"sft", "base"}}[ck]
            assert set(deltas) == expected, (unit, ck)
            for ref, span in deltas.items():
                c = _cmp(stats, unit, ck, ref)
                assert f"{c.diff * 100:+.1f}" in _text(span)
                classes = span.get("class").split()
                if c.proxy:
                    assert "sig-up" not in classes and "sig-down" not in classes and "proxy" in _text(span)
                else:
                    assert ("sig-up" in classes or "sig-down" in classes) == c.significant
    # The fixture's story reads off the first screen: GRPO broke PubMedQA against its parent SFT.
    regress = doc.xpath('//div[@class="verdict"][@data-checkpoint="grpo"]/p[@data-relation="parent"]'
                        '/a[contains(@class, "sig-down")]')
    c = _cmp(stats, "medbench_pubmedqa", "grpo", "sft")
    assert c.significant and c.diff < 0
    assert [_text(a) for a in regress] == [f"▼ PubMedQA {c.diff * 100:+.1f}"]


def test_health_is_one_pooled_row_that_expands_to_the_52_registry_specialties(report, fixture_run):
    _, doc = report
    specialties = health_specialties()
    assert len(specialties) == 52
    (pooled,) = doc.xpath('//table[@id="answer-table"]/tbody/tr[@data-unit="medbench_health"]')
    assert "Health_Benchmarks" in _text(pooled) and "pooled" in _text(pooled)
    (button,) = pooled.xpath(".//button[@class='expand']")
    children = doc.xpath(f'//table[@id="answer-table"]/tbody/tr[@data-parent="{button.get("data-target")}"]')
    assert sorted(r.get("data-unit") for r in children) == specialties
    assert all(r.get("hidden") is not None for r in children)  # collapsed until asked
    # 52 specialties are not 156 summary rows: the first screen has four rows.
    assert len(doc.xpath('//table[@id="answer-table"]/tbody/tr[not(@hidden)]')) == 4


def test_heatmap_cells_hold_n_and_the_change_vs_the_parent(report, stats, fixture_run):
    _, doc = report
    run = load_run(fixture_run)
    (table,) = doc.xpath('//table[@class="heatmap"][@data-unit="medbench_health"]')
    rows = table.xpath("./tbody/tr")
    assert sorted(r.get("data-task") for r in rows) == health_specialties()
    n = {(r["task"], r["checkpoint"]): r["n"] for r in run.task_metrics()}
    changes = []
    for row in rows:
        task = row.get("data-task")
        base, sft, grpo = (row.xpath(f'./td[@data-checkpoint="{ck}"]')[0] for ck in ("base", "sft", "grpo"))
        for ck, td in (("base", base), ("sft", sft), ("grpo", grpo)):
            assert f"n={n[(task, ck)]}" in _text(td)
            href = td.xpath(".//a")[0].get("href")
            assert href == f"#samples?task={task}&ck={ck}"
        assert base.get("data-diff") is None  # the root has no parent
        for ck, td, parent in (("sft", sft, "base"), ("grpo", grpo, "sft")):
            c = _cmp(stats, task, ck, parent)
            assert td.get("data-diff") == f"{c.diff * 100:+.1f}"
            assert ("hm-sig" in td.get("class")) == c.significant
        changes.append(_cmp(stats, task, "grpo", "sft").diff)
    assert changes == sorted(changes, reverse=True)  # sorted by the last checkpoint's change
    # Cardiology is built to collapse under GRPO: its cell is at the bottom, in the darkest red.
    assert rows[-1].get("data-task") == "medbench_health_cardiology"
    assert "hm-n4" in rows[-1].xpath('./td[@data-checkpoint="grpo"]')[0].get("class")


def test_significance_is_the_holm_adjusted_test_and_the_page_says_so(report, stats):
    _, doc = report
    summary = [c for c in stats.comparisons if c.family == "summary"]
    assert stats.family_sizes["summary"] == len(summary) == 55 * 2 + 1 * 2 + 55 + 1  # 2 vs base, 1 vs parent
    # A raw p below 0.05 that does not survive the correction is not marked.
    raw_only = [c for c in summary if c.p_value < 0.05 and not c.significant]
    assert raw_only, "the fixture should hold a comparison significant only before the correction"
    method = _text(doc.xpath('//p[contains(@class, "method")]')[0])
    assert f"Holm-adjusted across the {len(summary)} comparisons" in method and "bootstrap" in method
    for c in raw_only:
        if c.kind == "task" and c.reference == "base" and c.checkpoint == "sft":
            (row,) = doc.xpath(f'//table[contains(@class, "details-table")]/tbody/tr[@data-task="{c.unit}"]'
                               '[@data-checkpoint="sft"]')
            td = row.xpath('./td[@data-col="diff"]')[0]
            assert "ns" in td.get("class").split() and "adj." in _cell(row, "p")


def test_proxy_judged_accuracy_is_labelled_wherever_it_is_shown(report, stats):
    _, doc = report
    cot_cells = doc.xpath('//table[@id="answer-table"]/tbody/tr[@data-unit="medbench_medical_cot"]/td')
    assert cot_cells and all("proxy" in _text(td) for td in cot_cells)
    details = doc.xpath('//table[contains(@class, "details-table")]/tbody/tr[@data-task="medbench_medical_cot"]')
    assert len(details) == 3 and all("proxy" in _cell(r, "accuracy") for r in details)
    for c in stats.comparisons:
        if c.unit == "medbench_medical_cot":
            assert c.proxy
    # Never a plain significant gain: no sig-up class anywhere on a proxy-judged unit.
    assert not doc.xpath('//tr[@data-unit="medbench_medical_cot"]//*[contains(@class, "sig-up")]')
    assert not doc.xpath('//a[contains(@class, "sig-up")][contains(., "medical-o1")]')
    svg = doc.xpath('//figure[@id="fig-tasks"]/div[@class="fig-body"]/svg')[0]
    assert "medical-o1 CoT · proxy" in _text(svg)


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
    assert len(tasks) == 55 and tasks["medbench_pubmedqa"] == "2"
    facts = dict(zip([dt.text_content() for dt in doc.xpath('//dl[@class="facts"]/dt')],
                     [dd.text_content() for dd in doc.xpath('//dl[@class="facts"]/dd')]))
    assert facts["backend"] == "hf" and facts["status"] == "complete"
    assert facts["duration"] == "32m 12s"
    assert facts["hardware"].startswith("1× NVIDIA H100 80GB HBM3 (79.1 GiB), CUDA 12.8, 125.7 GiB RAM")
    assert "lm-eval=0.4.13" in facts["versions"] and "vllm" not in facts["versions"]
    assert facts["git"] == "e697b79c0ffe (with uncommitted changes)"
    # Run metadata comes after the answer, not before it.
    ids = [s.get("id") for s in doc.xpath("//main/section[@id]")]
    assert ids.index("answer") < ids.index("run") and ids[-1] == "run"


def test_figures_are_inline_svg_one_row_per_task_and_link_into_the_browser(report):
    _, doc = report
    figures = {f.get("id"): f for f in doc.xpath("//figure")}
    assert set(figures) == {"fig-tasks", "fig-flips", "fig-format", "fig-length", "fig-acc-length"}
    assert not doc.xpath("//figure//img")  # inline SVG, nothing to decode
    (svg,) = figures["fig-tasks"].xpath('./div[@class="fig-body"]/svg')
    labels = svg.xpath(".//a/text")
    # 55 tasks + the pooled Health row, each a link into the sample browser
    assert len(labels) == 56
    hrefs = {a.get("href") for a in svg.xpath(".//a")}
    assert "#samples?task=medbench_health_cardiology" in hrefs and "#samples?family=health" in hrefs
    flips = figures["fig-flips"].xpath(".//a/@href")
    assert "#samples?task=medbench_pubmedqa&flip=broken%20by%20grpo%20%28vs%20sft%29" in flips
    for fig in figures.values():
        for s in fig.xpath('./div[@class="fig-body"]/svg'):
            assert s.get("viewbox")
            assert not s.xpath(".//*[@style]")  # the CSP allows no style attributes


def test_flip_bars_are_rates_per_paired_question(report, stats):
    _, doc = report
    (fig,) = doc.xpath('//figure[@id="fig-flips"]')
    text = _text(fig)
    c = next(c for c in stats.comparisons if c.unit == "medbench_health" and c.checkpoint == "grpo"
             and c.reference == "sft")
    assert f"{c.n_broken / c.n_paired * 100:.1f}% ({c.n_broken})" in text
    assert f"{c.n_fixed / c.n_paired * 100:.1f}% ({c.n_fixed})" in text


def test_figures_keep_their_size_whatever_the_checkpoint_names(tmp_path):
    sizes = {"pubmedqa": 6, "health": 3, "gsm8k": 5, "medical_cot": 4}
    short = build_fixture_run(tmp_path / "short", specialties=1, sizes=sizes)
    long = build_fixture_run(tmp_path / "long", specialties=1, sizes=sizes, names={"grpo": LONG_NAME})

    def widths(root):
        doc = lxml_html.fromstring(render_runs([root], root / "r.html").read_text(encoding="utf-8"))
        return [svg.get("width") for svg in doc.xpath('//figure/div[@class="fig-body"]/svg')]

    assert widths(short) == widths(long)


def test_sample_browser_data_has_every_question_flip_and_the_showcase_first(fixture_run, report, stats):
    _, doc = report
    data = _data(doc)
    samples = load_run(fixture_run).samples()
    assert data["checkpoints"] == ["base", "sft", "grpo"]
    assert len(data["questions"]) == samples[["task", "doc_key"]].drop_duplicates().shape[0]
    first = data["questions"][0]
    assert first["s"] == 1 and "cystometry" in first["q"]
    assert [data["outcomes"][c["o"]] for c in first["c"]] == ["wrong", "correct", "correct"]
    assert all(c["j"][0] == "proxy" and c["j"][3] for c in first["c"])  # rationale, labelled proxy
    assert data["families"] == ["pubmedqa", "health", "gsm8k", "medical_cot"]
    by_id = {(data["tasks"][q["t"]], q["id"]): q for q in data["questions"]}
    task_cmps = [c for c in stats.comparisons if c.kind == "task"]
    assert {(c.checkpoint, c.reference) for c in task_cmps} == {("sft", "base"), ("grpo", "base"), ("grpo", "sft")}
    for c in task_cmps:
        for kind in ("fixed", "broken"):
            label = data["flips"].index(f"{kind} by {c.checkpoint} (vs {c.reference})")
            tagged = {q["id"] for (task, _), q in by_id.items() if task == c.unit and label in q["f"]}
            assert tagged == set(getattr(c, kind))
    row = samples[(samples["checkpoint"] == "sft") & (samples["doc_key"] == "medbench_pubmedqa:00001")].iloc[0]
    cell = by_id[("medbench_pubmedqa", "medbench_pubmedqa:00001")]["c"][1]
    assert cell["txt"] == row["completion"] and XSS in cell["txt"]
    assert data["outcomes"][cell["o"]] == row["outcome"] and cell["x"] == row["extracted"] is not None
    rs, re_ = cell["r"]
    assert "I will inject" in cell["txt"][rs:re_] and "<reasoning>" not in cell["txt"][rs:re_]


def test_showcase_carries_its_caveat(report):
    _, doc = report
    (caveat,) = doc.xpath('//*[@id="showcase"]//p[@class="caveat"]')
    assert "trained on it" in _text(caveat) and "never counted" in _text(caveat)


def test_loglikelihood_tasks_show_a_dash_where_generation_metrics_do_not_apply(tmp_path):
    root = build_fixture_run(tmp_path / "ll", specialties=1, loglikelihood=True,
                             sizes={"pubmedqa": 6, "health": 3, "gsm8k": 4, "medical_cot": 3, "pubmedqa_ll": 12})
    doc = lxml_html.fromstring(render_runs([root], root / "r.html").read_text(encoding="utf-8"))
    rows = doc.xpath('//table[contains(@class, "details-table")]/tbody/tr[@data-task="medbench_pubmedqa_ll"]')
    assert len(rows) == 3
    for row in rows:
        for col in ("format_strict", "format_soft", "unparseable", "truncation", "median_tokens"):
            assert _cell(row, col) == "—", col
        assert _cell(row, "accuracy").endswith("%")
    generative = doc.xpath('//table[contains(@class, "details-table")]/tbody/tr[@data-task="medbench_pubmedqa"]')
    assert all(_cell(r, "format_strict").endswith("%") for r in generative)
    assert "not applicable: scored by loglikelihood" in _text(doc.xpath('//figure[@id="fig-format"]')[0])


def test_model_text_cannot_become_markup(report):
    text, doc = report
    for payload in (XSS, *XSS_MORE):
        assert payload not in text  # never verbatim anywhere in the file
    scripts = doc.xpath("//script")
    assert len(scripts) == 2  # the data block and our own script; nothing from a completion
    assert scripts[0].get("type") == "application/octet-stream" and scripts[1].get("type") is None
    assert re.fullmatch(r"[A-Za-z0-9+/=]+", scripts[0].text.strip())  # base64: nothing can close the block
    assert not doc.xpath('//*[@id="sample-list"]//*')  # rendered client-side, with textContent only
    js = (Path(__file__).parents[1] / "reports" / "static" / "report.js").read_text()
    assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write|\beval\(", js)


def test_hostile_names_in_run_json_are_escaped(tmp_path):
    root = build_fixture_run(tmp_path / "hostile", specialties=2,
                             sizes={"pubmedqa": 4, "health": 3, "gsm8k": 3, "medical_cot": 2})
    meta = load_run(root).meta
    meta["checkpoints"][1]["model"] = HOSTILE
    meta["environment"]["hardware"] = {"processor": XSS}
    meta["tasks"][0]["family"] = XSS  # a family label reaches the filters and the figures
    RunWriter(root).write_meta({k: v for k, v in meta.items() if k != "schema_version"})
    text = render_runs([root], root / "r.html").read_text(encoding="utf-8")
    doc = lxml_html.fromstring(text)
    assert not doc.xpath("//img[@src='x']") and XSS not in text and HOSTILE not in text
    assert HOSTILE in doc.xpath('//table[@id="checkpoints-table"]/tbody/tr[@data-checkpoint="base"]')[0].text_content()
    assert XSS in doc.xpath('//dl[@class="facts"]')[0].text_content()
    assert XSS in _text(doc.xpath('//select[@id="f-family"]')[0])


@pytest.mark.parametrize("payload", [XSS, "</script><script>alert(3)</script>", "<!--", "a\u2028b\u2029c", "&lt;"])
def test_json_for_script_cannot_close_the_block_and_round_trips(payload):
    encoded = safe_json_for_script({"t": payload})
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded
    assert "\u2028" not in encoded and "\u2029" not in encoded
    import json

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
    assert not doc.xpath("//*[@style]")  # a style attribute would be refused by the CSP
    # Nothing external: every src / href is inline data or an in-page anchor (the SVG namespace is no fetch).
    for attr in doc.xpath("//@src | //@href"):
        assert attr.startswith(("data:", "#")), attr
    assert not re.search(r"https?://", style + script)


def test_without_the_harness_comparisons_nothing_is_marked_significant(tmp_path):
    root = build_fixture_run(tmp_path / "plain", specialties=2,
                             sizes={"pubmedqa": 60, "health": 10, "gsm8k": 60, "medical_cot": 4})
    doc = lxml_html.fromstring(render_report([root], root / "r.html", progress=None).read_text(encoding="utf-8"))
    assert "without the harness's comparisons" in _text(doc.xpath('//p[contains(@class, "method")]')[0])
    assert not doc.xpath('//*[contains(@class, "sig-up") or contains(@class, "sig-down")][not(contains(@class, "pill"))]')
    # metrics.json's comparisons with the base are still shown, with their raw p.
    (row,) = doc.xpath('//table[contains(@class, "details-table")]/tbody/tr[@data-task="medbench_gsm8k"]'
                       '[@data-checkpoint="grpo"]')
    assert "vs base" in _cell(row, "diff") and _cell(row, "p").startswith("p")


def test_compare_two_runs_prefixes_checkpoints_and_keeps_shared_tasks(tmp_path, fixture_run):
    other = build_fixture_run(tmp_path / "run-b", run_id="run-b", seed=7)
    out = render_runs([fixture_run, other], tmp_path / "cmp" / "compare.html")
    doc = lxml_html.fromstring(out.read_text(encoding="utf-8"))
    keys = [r.get("data-checkpoint") for r in doc.xpath('//table[@id="checkpoints-table"]/tbody/tr')]
    assert keys == ["run-a/base", "run-a/sft", "run-a/grpo", "run-b/base", "run-b/sft", "run-b/grpo"]
    run_b = load_run(other)
    m = next(r for r in run_b.task_metrics() if r["checkpoint"] == "grpo" and r["task"] == "medbench_gsm8k"
             and r["subgroup"] is None)
    (row,) = doc.xpath('//table[contains(@class, "details-table")]/tbody/tr[@data-task="medbench_gsm8k"]'
                       '[@data-checkpoint="run-b/grpo"]')
    assert _cell(row, "accuracy") == f"{m['accuracy'] * 100:.1f}%"
    assert "vs run-b/sft" in _cell(row, "diff")  # the parent within its own run
    data = _data(doc)
    assert data["checkpoints"] == keys
    q = next(q for q in data["questions"] if q["id"] == "medbench_gsm8k:00002")
    assert all(c is not None for c in q["c"])  # one question, six columns side by side
    a, b = load_run(fixture_run).samples(), run_b.samples()
    rows = doc.xpath('//table[@id="cross-table"]/tbody/tr')
    assert len(rows) == 3 * (55 + 1)  # every task and the pooled group, per checkpoint
    for row in rows:
        task = row.get("data-task")
        if task == "medbench_health":
            continue
        name = row.get("data-checkpoint").split("/", 1)[1]
        assert row.get("data-reference") == f"run-a/{name}"
        left = a[(a["task"] == task) & (a["checkpoint"] == name) & ~a["showcase"]][["doc_key", "outcome"]]
        right = b[(b["task"] == task) & (b["checkpoint"] == name) & ~b["showcase"]][["doc_key", "outcome"]]
        merged = left.merge(right, on="doc_key")
        fixed = int(((merged["outcome_x"] != "correct") & (merged["outcome_y"] == "correct")).sum())
        broken = int(((merged["outcome_x"] == "correct") & (merged["outcome_y"] != "correct")).sum())
        assert (_cell(row, "n_paired"), _cell(row, "n_fixed"), _cell(row, "n_broken")) == \
            (str(len(merged)), str(fixed), str(broken))
    assert "fixed by run-b/grpo (vs run-a/grpo)" in data["flips"]


def test_runs_without_a_shared_task_are_refused_with_the_task_lists(tmp_path, fixture_run):
    other = build_fixture_run(tmp_path / "run-c", run_id="run-c", specialties=1,
                              sizes={"pubmedqa": 3, "health": 3, "gsm8k": 3, "medical_cot": 2})
    meta = load_run(other).meta
    for t in meta["tasks"]:
        t["name"] = "other_" + t["name"]
    RunWriter(other).write_meta({k: v for k, v in meta.items() if k != "schema_version"})
    with pytest.raises(ReportError, match=r"share no task.*run-a: medbench_pubmedqa.*run-c: other_medbench_pubmedqa"):
        render_report([fixture_run, other], tmp_path / "x.html", progress=None)
    assert not (tmp_path / "x.html").exists()


def test_cli_writes_the_default_file_and_reports_bad_input(tmp_path, fixture_run, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(fixture_run, run)
    (run / "report.html").unlink(missing_ok=True)
    assert cli_main(["report", str(run), "-q"]) == 0
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "Holm-adjusted" in page  # the CLI passes the comparisons
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
    checked_astral = 0
    for q in data["questions"]:
        layout = "think" if data["tasks"][q["t"]] == "medbench_medical_cot" else "xml"
        for cell in q["c"]:
            units = cell["txt"].encode("utf-16-le")
            parsed = parse_layout(cell["txt"], layout)
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
    text = render_runs([root], root / "report.html").read_text(encoding="utf-8")
    doc = lxml_html.fromstring(text)
    (row,) = doc.xpath('//table[@id="answer-table"]/tbody/tr')
    assert "50.0%" in _text(row)
    (detail,) = doc.xpath('//table[contains(@class, "details-table")]/tbody/tr')
    assert _cell(detail, "accuracy") == "50.0%" and _cell(detail, "unparseable") == "25.0%"
    assert _cell(detail, "diff") == "reference" and not doc.xpath('//td[@data-col="judge"]')
    assert "nothing to compare" in _text(doc.xpath('//div[@id="headline"]')[0])
    assert {f.get("id") for f in doc.xpath("//figure")} >= {"fig-tasks", "fig-format"}
    assert "fig-flips" not in text and not doc.xpath('//table[@class="heatmap"]')
    data = _data(doc)
    assert len(data["questions"]) == 4 and data["questions"][0]["q"] == "Question pubmedqa:0?"  # prompt fallback
    assert XSS not in text and not doc.xpath('//*[@id="showcase"]')


def test_a_task_with_subgroups_gets_a_heatmap_of_them(tmp_path):
    """A task that reports subgroups (MMLU subjects, or an old single-task Health layout) expands to them."""
    from fixtures_runs import rows_from_outcomes, write_run

    subjects = ["anatomy", "virology", "anatomy", "virology"] * 5
    rows = rows_from_outcomes("base", "mmlu", "CWCW" * 5, subgroup=subjects)
    rows += rows_from_outcomes("tuned", "mmlu", "CCCC" * 5, subgroup=subjects)
    root = write_run(tmp_path / "subjects", rows)
    doc = lxml_html.fromstring(render_runs([root], root / "r.html").read_text(encoding="utf-8"))
    (table,) = doc.xpath('//table[@class="heatmap"]')
    assert [r.get("data-unit") for r in table.xpath("./tbody/tr")] == ["mmlu / virology", "mmlu / anatomy"]
    cell = table.xpath('./tbody/tr[@data-unit="mmlu / virology"]/td[@data-checkpoint="tuned"]')[0]
    assert cell.get("data-diff") == "+100.0" and "n=10" in _text(cell)
