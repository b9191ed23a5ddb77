"""The terminal summary shows metrics.json as computed: flexible beside accuracy, "—" where a number does not
apply (never "strict format 100%" for a loglikelihood task), lengths in the run's one unit."""

from __future__ import annotations

import pandas as pd
from fixtures_runs import rows_from_outcomes
from medbench.harness.run.summary import HEADER, NOT_APPLICABLE, format_summary, summary_rows
from medbench.harness.stats.metrics import compute_metrics

LL = {"layout": "loglikelihood", "format_strict": True, "format_soft": True, "truncated": False, "reasoning_words": 0,
      "answer_words": 0, "reasoning_tokens": None, "answer_tokens": None, "completion_tokens": None}


def _metrics():
    rows = (rows_from_outcomes("base", "gen", "CUUW", flexible_outcome=["correct", "correct", "wrong", "wrong"],
                               reasoning_tokens=[10, 20, 30, 40], completion_tokens=[50, 60, 70, 80])
            + rows_from_outcomes("sft", "gen", "CCCW", flexible_outcome="correct")
            + rows_from_outcomes("base", "ll", "CW", **LL) + rows_from_outcomes("sft", "ll", "CC", **LL))
    return compute_metrics(pd.DataFrame(rows), [{"name": "base", "role": "base"}, "sft"])


def _cells(rows, task, checkpoint):
    current = None
    for r in rows:
        current = r[0] or current
        if (current, r[1]) == (task, checkpoint):
            return dict(zip(HEADER, r))
    raise AssertionError(f"no row for {task} / {checkpoint}")


def test_flexible_beside_accuracy_and_lengths_in_the_run_unit():
    rows = summary_rows(_metrics(), ["base", "sft"])
    base = _cells(rows, "gen", "base")
    assert base["accuracy [95% CI]"].startswith("25.0% [") and base["flexible"] == "50.0%"
    assert (base["median reasoning"], base["median completion"]) == ("25 tok", "65 tok")
    assert _cells(rows, "gen", "sft")["diff vs ref, pp [CI] p"].startswith("+50.0 [")


def test_numbers_that_do_not_apply_show_a_dash():
    rows = summary_rows(_metrics(), ["base", "sft"])
    ll = _cells(rows, "ll", "base")
    assert ll["accuracy [95% CI]"].startswith("50.0%")
    for col in ("flexible", "strict format", "truncated", "median reasoning", "median completion"):
        assert ll[col] == NOT_APPLICABLE, col
    text = format_summary(_metrics().to_dict(), ["base", "sft"])  # metrics.json's plain object works too
    assert "reference: base" in text and f"{NOT_APPLICABLE} = does not apply" in text
