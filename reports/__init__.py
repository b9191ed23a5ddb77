"""medbench reports: render a run directory to one self-contained HTML file.

    from medbench.reports import render_report
    render_report(["runs/today"])                      # -> runs/today/report.html
    render_report(["runs/last-week", "runs/today"], "compare.html")
"""

from .render import ReportError, build_html, render_report

__all__ = ["ReportError", "build_html", "render_report"]
