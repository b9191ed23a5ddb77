"""The report in a real headless Chromium, on a run with the real layout (52 Health specialty tasks): the first
screen holds the answer, Health appears pooled and as a heatmap, the sample browser's filters, links and
"expand all" work, a phone (390 px) gets no horizontal page overflow, model text stays text, nothing errs.

Skipped only when no chromium binary can be found (CI installs Debian's `chromium`, see .ci/run).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from medbench.harness.cli.report import render_runs
from medbench.harness.run.rundir import load_run
from medbench.harness.stats.compare import report_stats
from report_cdp import Chromium, chromium_binary
from report_fixture import XSS, build_fixture_run

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SIZES = {"pubmedqa": 200, "health": 5, "gsm8k": 150, "medical_cot": 12}

pytestmark = pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    pytest.importorskip("websocket", reason="websocket-client is in the `dev` extra")
    root = build_fixture_run(tmp_path_factory.mktemp("browser") / "run", sizes=SIZES)
    return root, render_runs([root], root / "report.html")


def _count(b: Chromium) -> int:
    return int(b.evaluate("document.getElementById('sb-count').dataset.count"))


def _settle(b: Chromium, expected: int) -> None:
    b.wait_until(f"document.getElementById('sb-count').dataset.count === '{expected}'", timeout=10)


def _bottom(b: Chromium, selector: str) -> float:
    return float(b.evaluate(f"document.querySelector({json.dumps(selector)}).getBoundingClientRect().bottom"))


def test_first_screen_holds_the_answer_with_health_pooled_and_a_heatmap(rendered):
    _, report = rendered
    with Chromium(width=1400, height=900) as b:
        b.open(report)
        height = b.evaluate("window.innerHeight")
        # The headline (per checkpoint: what got better or worse, significant or not) and the whole answer table
        # of task families, Health pooled among them, fit the first screen.
        assert _bottom(b, "#headline") <= height
        assert b.evaluate("document.querySelectorAll('#headline .verdict').length") == 2
        assert b.evaluate("[...document.querySelectorAll('#headline a.chip')].some(a => /[▲▼]/.test(a.textContent))")
        assert _bottom(b, '#answer-table tr[data-unit="medbench_health"]') <= height
        assert _bottom(b, "#answer-table") <= height
        assert "pooled" in b.evaluate("document.querySelector('#answer-table tr[data-unit=\"medbench_health\"]').textContent")
        b.screenshot(ARTIFACTS / "report_first_screen.png")
        # Health as a heatmap: 52 specialty rows, each cell a link into the browser.
        rows = "document.querySelectorAll('table.heatmap[data-unit=\"medbench_health\"] tbody tr')"
        assert b.evaluate(f"{rows}.length") == 52
        assert b.evaluate(f"[...{rows}].every(r => r.offsetHeight > 0 && r.querySelectorAll('td a').length === 3)")
        # The pooled row expands to its 52 specialties and folds back.
        b.evaluate("document.querySelector('#answer-table button.expand').click()")
        assert b.evaluate("document.querySelectorAll('#answer-table tr.child:not([hidden])').length") == 52
        b.evaluate("document.querySelector('#answer-table button.expand').click()")
        assert b.evaluate("document.querySelectorAll('#answer-table tr.child:not([hidden])').length") == 0
        assert b.problems == [] and b.dialogs == []


def test_sample_browser_filters_links_and_expand_all(rendered):
    root, report = rendered
    run = load_run(root)
    samples = run.samples()
    n_questions = samples[["task", "doc_key"]].drop_duplicates().shape[0]
    health = samples[samples["task"].str.startswith("medbench_health_")][["task", "doc_key"]].drop_duplicates()
    grpo_wrong_gsm8k = int(((samples["checkpoint"] == "grpo") & (samples["task"] == "medbench_gsm8k")
                            & (samples["outcome"] == "wrong")).sum())
    broken = next(c for c in report_stats([run]).comparisons  # the flips figure shows each step: grpo vs sft
                  if c.checkpoint == "grpo" and c.reference == "sft" and c.unit == "medbench_gsm8k")

    with Chromium(width=1400, height=1800) as b:
        b.open(report)
        assert _count(b) == n_questions
        assert b.evaluate("window.medbenchReport.shown()") == 25
        assert b.evaluate("document.querySelectorAll('#showcase-list .col').length") == 3
        assert "trained on it" in b.evaluate("document.querySelector('#showcase .caveat').textContent")

        b.set_value("f-family", "health")  # the Health family: its 52 tasks' questions
        _settle(b, len(health))
        b.set_value("f-task", "cardio", event="input")  # a part of a task name
        _settle(b, SIZES["health"])
        assert b.evaluate("[...document.querySelectorAll('#sample-list .question')]"
                          ".every(q => q.dataset.task === 'medbench_health_cardiology')")
        b.set_value("f-family", "")
        b.set_value("f-task", "", event="input")
        _settle(b, n_questions)

        # Choosing a checkpoint keeps the side-by-side view: every column stays, the chosen one is marked.
        b.set_value("f-task", "medbench_gsm8k", event="input")
        b.set_value("f-checkpoint", "grpo")
        b.set_value("f-outcome", "wrong")
        _settle(b, grpo_wrong_gsm8k)
        assert b.evaluate("[...document.querySelectorAll('#sample-list .question')]"
                          ".every(q => q.querySelectorAll('.col').length === 3 "
                          "&& q.querySelector('.col.chosen').dataset.checkpoint === 'grpo')")
        b.evaluate("document.getElementById('f-expand').click()")
        assert b.evaluate("[...document.querySelectorAll('#sample-list .completion details')].every(d => d.open)")
        b.evaluate("document.getElementById('pg-next').click()")  # new page: still expanded
        assert b.evaluate("[...document.querySelectorAll('#sample-list .completion details')].every(d => d.open)")
        b.screenshot(ARTIFACTS / "report_samples.png")
        # The address holds the view: a fresh page opened on it shows the same questions.
        url = b.evaluate("location.href")
        for part in ("#samples?", "outcome=wrong", "ck=grpo", "expand=1", "page=2"):
            assert part in url, (part, url)

    with Chromium(width=1400, height=1800) as b:
        b.call("Page.navigate", url=url)
        b.wait_event("Page.loadEventFired")
        b.wait_until("document.documentElement.dataset.ready === '1'")
        _settle(b, grpo_wrong_gsm8k)
        state = b.evaluate("window.medbenchReport.state()")
        assert (state["task"], state["ck"], state["outcome"], state["page"], state["expand"]) == \
            ("medbench_gsm8k", "grpo", "wrong", 1, True)
        assert b.evaluate("document.getElementById('f-outcome').value") == "wrong"
        assert abs(b.evaluate("document.getElementById('filters').getBoundingClientRect().top")) < 50  # scrolled

        # Figures and the heatmap link into the browser: a flip bar opens the broken questions.
        b.evaluate("document.getElementById('f-reset').click()")
        _settle(b, n_questions)
        href = b.evaluate("[...document.querySelectorAll('#fig-flips a')].map(a => a.getAttribute('href'))"
                          ".find(h => h.includes('task=medbench_gsm8k') && h.includes('broken%20by%20grpo'))")
        b.evaluate(f"location.hash = {json.dumps(href)}")
        _settle(b, broken.n_broken)
        b.evaluate("document.querySelector('table.heatmap td[data-checkpoint=\"grpo\"] a').click()")
        b.wait_until("window.medbenchReport.state().ck === 'grpo' && "
                     "window.medbenchReport.state().task.startsWith('medbench_health_')")

        # Free-text search finds the hostile completion; it is shown as text and runs nothing.
        b.evaluate("document.getElementById('f-reset').click()")
        b.set_value("f-search", "alert(1)", event="input")
        _settle(b, 1)
        assert b.evaluate(f"document.getElementById('sample-list').textContent.includes({XSS!r})")
        assert b.evaluate("document.querySelectorAll('#sample-list script, #sample-list img').length") == 0
        assert b.dialogs == [] and b.problems == []


def test_phone_width_has_no_horizontal_overflow_and_a_readable_summary(rendered):
    _, report = rendered
    with Chromium(width=390, height=844) as b:
        b.call("Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=2, mobile=True)
        b.open(report)
        time.sleep(0.2)
        assert b.evaluate("document.documentElement.scrollWidth") <= 390
        # The summary shows numbers, not only task names: a family card holds each checkpoint's accuracy.
        card = "document.querySelector('#answer-table tr[data-unit=\"medbench_pubmedqa\"]')"
        assert b.evaluate(f"{card}.getBoundingClientRect().right") <= 390
        assert b.evaluate(f"[...{card}.querySelectorAll('td')].every(td => td.offsetWidth > 200 && "
                          "/\\d+\\.\\d%/.test(td.textContent))")
        assert _bottom(b, "#headline") < 2 * 844
        b.screenshot(ARTIFACTS / "report_phone.png")
        assert b.problems == []
