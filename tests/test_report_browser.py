"""The report in a real headless Chromium: it loads offline under its CSP with no console error, the sample
browser's filters change what is shown, model text stays text, and screenshots are kept in artifacts/.

Skipped only when no chromium binary can be found (CI installs Debian's `chromium`, see .ci/run).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from medbench.harness.run.rundir import load_run
from medbench.reports.render import render_report
from report_cdp import Chromium, chromium_binary
from report_fixture import XSS, build_fixture_run

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    pytest.importorskip("websocket", reason="websocket-client is in the `dev` extra")
    root = build_fixture_run(tmp_path_factory.mktemp("browser") / "run")
    return root, render_report([root], progress=None)


def _count(b: Chromium) -> int:
    return int(b.evaluate("document.getElementById('sb-count').dataset.count"))


def _settle(b: Chromium, expected: int) -> None:
    b.wait_until(f"document.getElementById('sb-count').dataset.count === '{expected}'", timeout=10)


def test_report_loads_filters_and_shows_model_text_as_text(rendered):
    root, report = rendered
    run = load_run(root)
    samples = run.samples()
    n_questions = samples[["task", "doc_key"]].drop_duplicates().shape[0]
    unparseable_any = samples[samples["outcome"] == "unparseable"][["task", "doc_key"]].drop_duplicates().shape[0]
    broken_by_grpo = sum(p["n_broken"] for p in run.pair_metrics() if p["checkpoint"] == "grpo")
    sft_wrong_pubmed = int(((samples["checkpoint"] == "sft") & (samples["task"] == "pubmedqa")
                            & (samples["outcome"] == "wrong")).sum())

    with Chromium(width=1400, height=1800) as b:
        seconds = b.open(report)
        assert seconds < 20
        assert _count(b) == n_questions
        assert b.evaluate("window.medbenchReport.shown()") == 25  # first page only
        # The showcase is pinned above the filters, with every checkpoint's completion.
        assert b.evaluate("document.querySelectorAll('#showcase-list .col').length") == 3
        assert "cystometry" in b.evaluate("document.getElementById('showcase-list').textContent")
        b.screenshot(ARTIFACTS / "report_top.png")

        b.set_value("f-outcome", "2")  # unparseable, for any checkpoint
        _settle(b, unparseable_any)
        assert 0 < unparseable_any < n_questions
        b.set_value("f-outcome", "")

        flip = b.evaluate("[...document.querySelectorAll('#f-flip option')]"
                          ".find(o => o.textContent === 'broken by grpo (vs base)').value")
        b.set_value("f-flip", flip)
        _settle(b, broken_by_grpo)
        assert broken_by_grpo > 0
        assert b.evaluate("[...document.querySelectorAll('#sample-list .flip.broken')]"
                          ".some(e => e.textContent === 'broken by grpo (vs base)')")
        b.set_value("f-flip", "")

        # Checkpoint + outcome + task: one column per question, and exactly the matching questions.
        b.set_value("f-task", "0")
        b.set_value("f-checkpoint", "1")
        b.set_value("f-outcome", "1")
        _settle(b, sft_wrong_pubmed)
        assert b.evaluate("[...document.querySelectorAll('#sample-list .question')]"
                          ".every(q => q.querySelectorAll('.col').length === 1)")
        for sel, value in (("f-task", ""), ("f-checkpoint", ""), ("f-outcome", "")):
            b.set_value(sel, value)
        _settle(b, n_questions)

        # Free-text search finds the hostile completion; it is shown as text and runs nothing.
        b.set_value("f-search", "alert(1)", event="input")
        _settle(b, 1)
        assert b.evaluate(f"document.getElementById('sample-list').textContent.includes({XSS!r})")
        assert b.evaluate("document.querySelectorAll('#sample-list script, #sample-list img').length") == 0
        b.evaluate("document.querySelector('#sample-list details').open = true")
        b.evaluate("document.getElementById('samples').scrollIntoView()")
        time.sleep(0.2)
        b.screenshot(ARTIFACTS / "report_samples_search.png")
        b.set_value("f-search", "", event="input")
        _settle(b, n_questions)

        # Pagination.
        b.evaluate("document.getElementById('pg-next').click()")
        assert b.evaluate("document.getElementById('pg-info').textContent") == \
            f"page 2 of {-(-n_questions // 25)}"
        b.evaluate("document.getElementById('samples').scrollIntoView()")
        time.sleep(0.2)
        b.screenshot(ARTIFACTS / "report_samples.png")

        assert b.dialogs == []
        assert b.problems == []
    for name in ("report_top.png", "report_samples_search.png", "report_samples.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000
