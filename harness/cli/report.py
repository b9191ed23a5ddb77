"""Render one or more run directories to ONE self-contained HTML report (opens offline, safe to e-mail).

One run: the checkpoints side by side (base → SFT → GRPO), with confidence intervals, paired differences,
format compliance, figures and a sample browser. Several runs: compared on the tasks they share, checkpoint
names prefixed by run id (e.g. last week's GRPO run against today's).

Examples:
  medbench report runs/2026-03-02             # writes runs/2026-03-02/report.html
  medbench report runs/last-week runs/today -o compare.html
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "runs", nargs="+", metavar="RUN_DIR",
        help="run directory written by `medbench bench`; give several to compare runs that share tasks",
    )
    parser.add_argument(
        "-o", "--output", metavar="FILE", default=None,
        help="where to write the HTML report (default: RUN_DIR/report.html of the first run)",
    )
    parser.add_argument("--title", default=None, help="page title (default: 'medbench report: <run ids>')")
    parser.add_argument("-q", "--quiet", action="store_true", help="do not print progress to stderr")


def render_runs(run_dirs, output=None, *, title: str | None = None, progress=None):
    """Load ``run_dirs``, compute the comparisons the report shows (vs base, vs parent, across runs,
    Holm-adjusted: :func:`medbench.harness.stats.compare.report_stats`) and render the report; returns its path.

    The composition root of the report: statistics are computed here, on the harness side, and handed to the
    renderer, which computes none. ``medbench bench`` writes its report through this too.
    """
    import time

    from medbench.harness.run.rundir import RunDirError, load_run
    from medbench.harness.stats.compare import report_stats
    from medbench.reports.render import render_report

    runs = [load_run(p) for p in run_dirs]
    for run in runs:  # an empty metrics.json would render a report with nothing in it, looking like a result
        if not run.task_metrics():
            failed = run.meta.get("errors") or {}
            why = "".join(f"; {name} failed: {msg}" for name, msg in failed.items()) if isinstance(failed, dict) else ""
            raise RunDirError(f"{run.root / 'metrics.json'} has no results (no per_task records): no (checkpoint, "
                              f"task) pair of this run finished{why}. Finish the run (run the same `medbench bench` "
                              f"command again) before rendering it")
    t = time.perf_counter()
    stats = report_stats(runs)
    if progress:
        progress(f"comparisons: {len(stats.comparisons)} (Holm over {stats.family_sizes.get('summary', 0)}), "
                 f"{time.perf_counter() - t:.1f}s")
    return render_report(runs, output, stats=stats, title=title, progress=progress)


def run(args: argparse.Namespace) -> int:
    # a bad run directory, or runs that share no task, raise a MedbenchError: main() says so (exit 2)
    try:
        out = render_runs(args.runs, args.output, title=args.title, progress=None if args.quiet else _progress)
    except OSError as e:
        print(f"medbench report: error: cannot write the report ({e}); choose another path with -o FILE",
              file=sys.stderr)
        return 2
    print(out)
    return 0


def _progress(msg: str) -> None:
    print(f"[report] {msg}", file=sys.stderr, flush=True)
