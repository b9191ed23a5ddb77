"""medbench reports: render run directories to one self-contained HTML file.

The report renders what the harness computed. ``medbench report`` (``medbench.harness.cli.report.render_runs``)
computes the comparisons first (vs base, vs parent, across runs, Holm-adjusted:
``medbench.harness.stats.compare.report_stats``) and passes them in::

    from medbench.harness.cli.report import render_runs
    render_runs(["runs/today"])                        # -> runs/today/report.html
    render_runs(["runs/last-week", "runs/today"], "compare.html")

``render_report`` alone renders metrics.json's comparisons with the base, without significance marks.
"""

from .render import ReportError, build_html, render_report

__all__ = ["ReportError", "build_html", "render_report"]
