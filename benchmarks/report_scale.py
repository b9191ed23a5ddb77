"""How long `medbench report` takes for 3 checkpoints × 10,000 samples, and how the page behaves in Chromium.

Builds the report test fixture (tests/report_fixture.py: real grader records, real metrics) at scale, then
times ``render_report`` end to end (load run, figures, sample-browser payload, template, write) — building the
fixture is not timed. With a chromium binary and websocket-client available it also opens the page headless
and times: load until the browser is ready, a free-text search over all questions, a filter change and a page
turn (the page must stay responsive). Writes benchmarks/results/report_scale.json.

    python benchmarks/report_scale.py                # 3 × 10,000 samples
    python benchmarks/report_scale.py --per-task 250 # a quick run (3 × 1,000)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fixture and the CDP driver are shared with the tests

TASKS = ("pubmedqa", "health_benchmarks", "gsm8k", "medical_cot")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("medbench", "matplotlib", "jinja2", "pandas", "pyarrow", "numpy", "websocket-client"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _device() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "platform": platform.platform(),
            # the machine may be shared: a 1-minute load above the CPU count means the numbers are pessimistic
            "load_average_1m_at_start": round(os.getloadavg()[0], 2)}


def _browser_timings(report: Path) -> dict[str, object]:
    from report_cdp import Chromium, chromium_binary

    binary = chromium_binary()
    if binary is None:
        return {"skipped": "no chromium binary on PATH"}
    try:
        import websocket  # noqa: F401
    except ImportError:
        return {"skipped": "websocket-client not installed"}
    import subprocess

    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    with Chromium(width=1400, height=1800, timeout=300) as b:
        load_s = b.open(report)
        total = b.evaluate("window.medbenchReport.matching()")

        def timed(js_action: str) -> float:
            """Filter + re-render time measured inside the page (performance.now), excluding the debounce."""
            before = b.evaluate("window.medbenchReport.updates()")
            b.evaluate(js_action)
            b.wait_until(f"window.medbenchReport.updates() > {before}", timeout=120)
            return float(b.evaluate("window.medbenchReport.lastUpdateMs()")) / 1000

        def search(text: str) -> str:
            return (f"(() => {{ const e = document.getElementById('f-search'); e.value = {json.dumps(text)};"
                    " e.dispatchEvent(new Event('input')); })()")

        search_s = timed(search("zzz-no-such-text"))  # builds the lower-cased search index on first use
        search2_s = timed(search("reasoning cystometry"))
        clear_s = timed(search(""))
        filter_s = timed("(() => { const e = document.getElementById('f-outcome'); e.value = '2';"
                         " e.dispatchEvent(new Event('change')); })()")
        page_s = timed("document.getElementById('pg-next').click()")
        heap = b.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
        problems = list(b.problems)
    return {
        "chromium": version, "questions": total, "load_until_ready_s": round(load_s, 3),
        "first_search_all_questions_s": round(search_s, 3), "next_search_s": round(search2_s, 3),
        "search_cleared_s": round(clear_s, 3),
        "outcome_filter_s": round(filter_s, 3), "next_page_s": round(page_s, 3),
        "js_heap_mb": round(heap / 1e6, 1) if heap else None, "console_problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-task", type=int, default=2500,
                        help="documents per task (4 tasks × 3 checkpoints; 2500 → 3 × 10,000 samples)")
    parser.add_argument("--repeat", type=int, default=3, help="render this many times; the median is reported")
    parser.add_argument("--no-browser", action="store_true", help="skip the headless Chromium timings")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "report_scale.json",
                        help="where to write the JSON result")
    args = parser.parse_args(argv)

    import statistics

    from medbench.reports.render import render_report
    from report_fixture import build_fixture_run

    with tempfile.TemporaryDirectory(prefix="medbench-report-scale-") as tmp:
        t = time.perf_counter()
        run = build_fixture_run(Path(tmp) / "run", run_id="scale", sizes={k: args.per_task for k in TASKS})
        build_s = time.perf_counter() - t
        print(f"fixture run built in {build_s:.1f}s", file=sys.stderr)
        times, stages = [], []
        for i in range(args.repeat):
            log: list[str] = []
            start = time.perf_counter()
            out = render_report([run], Path(tmp) / "report.html", progress=log.append)
            times.append(time.perf_counter() - start)
            stages.append(log)
            print(f"render {i + 1}/{args.repeat}: {times[-1]:.2f}s", file=sys.stderr)
        import pandas as pd

        n_samples = len(pd.read_parquet(run / "samples.parquet", columns=["task"]))
        size_mb = out.stat().st_size / 1e6
        browser = {"skipped": "--no-browser"} if args.no_browser else _browser_timings(out)

    result = {
        "benchmark": "report_scale",
        "what": "render_report wall time for one run (3 checkpoints) incl. load, 6 figures, sample browser "
                "payload, template and write; then headless Chromium interaction timings",
        "command": "python " + " ".join(shlex.quote(a) for a in [str(Path(__file__).relative_to(REPO))]
                                        + (argv if argv is not None else sys.argv[1:])),
        "device": _device(),
        "versions": _versions(),
        "n_checkpoints": 3,
        "n_samples": n_samples,
        "render_seconds": {"median": round(statistics.median(times), 3), "all": [round(x, 3) for x in times]},
        "render_stages_last_run": stages[-1],
        "html_size_mb": round(size_mb, 2),
        "fixture_build_seconds_not_timed": round(build_s, 2),
        "browser": browser,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
