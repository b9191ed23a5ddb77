"""How long `medbench report` takes on a realistic run, how big the file is, and how the page behaves in Chromium.

The run (tests/report_fixture.py, real grader records, real metrics, real run-directory writer; questions and
reasoning are real PubMedQA / GSM8K text, so the compressed sample text has a real size) has the real layout: 3 checkpoints with lineage, PubMedQA (500), the 52 Health_Benchmarks specialty tasks of the registry
(30 questions each), GSM8K (1,319) and medical-o1 CoT (200): 55 tasks, 3 × 3,579 samples. Building it is not
timed. Timed, end to end as ``medbench report`` runs it (:func:`medbench.harness.cli.report.render_runs`): load
the run, compute the comparisons (vs base, vs parent, Holm), figures, the sample-browser payload, the
template, the write; the median of ``--repeat`` runs in one process, and one ``medbench report`` command as a
fresh process (imports included). With a chromium binary it then opens the page headless and times: load
until the page is ready (samples unpacked, first page drawn), a search over all questions, a filter change,
a page turn.

Goals (issue 14): render ≤ 5 s, file ≤ 5 MB, Chromium ready ≤ 1 s.

    python benchmarks/report_scale.py                      # writes benchmarks/results/report_scale.json
    python benchmarks/report_scale.py --scale 3            # 3 × the realistic sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fixture and the CDP driver are shared with the tests

GOALS = {"render_s": 5.0, "html_mb": 5.0, "chromium_ready_s": 1.0}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("medbench", "jinja2", "markupsafe", "pandas", "pyarrow", "numpy", "websocket-client"):
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


def _browser_timings(report: Path, repeat: int) -> dict[str, object]:
    from report_cdp import Chromium, chromium_binary

    binary = chromium_binary()
    if binary is None:
        return {"skipped": "no chromium binary on PATH"}
    try:
        import websocket  # noqa: F401
    except ImportError:
        return {"skipped": "websocket-client not installed"}

    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    loads = []
    with Chromium(width=1400, height=900, timeout=300) as b:
        for _ in range(repeat):
            loads.append(b.open(report))  # navigation start → samples unpacked and the first page drawn
        total = b.evaluate("window.medbenchReport.matching()")
        paint = b.evaluate("(() => { const p = performance.getEntriesByType('paint')"
                           ".find(e => e.name === 'first-contentful-paint'); return p ? p.startTime : null; })()")

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
        filter_s = timed("(() => { const e = document.getElementById('f-outcome'); e.value = 'unparseable';"
                         " e.dispatchEvent(new Event('change')); })()")
        page_s = timed("document.getElementById('pg-next').click()")
        heap = b.evaluate("performance.memory ? performance.memory.usedJSHeapSize : null")
        problems = list(b.problems)
    return {
        "chromium": version, "questions": total,
        "ready_s": {"median": round(statistics.median(loads), 3), "all": [round(x, 3) for x in loads]},
        "first_contentful_paint_s": round(paint / 1000, 3) if paint is not None else None,
        "first_search_all_questions_s": round(search_s, 3), "next_search_s": round(search2_s, 3),
        "search_cleared_s": round(clear_s, 3), "outcome_filter_s": round(filter_s, 3), "next_page_s": round(page_s, 3),
        "js_heap_mb": round(heap / 1e6, 1) if heap else None, "console_problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the realistic sizes (1 = 3 × 3,579)")
    parser.add_argument("--reasoning-scale", type=float, default=1.0,
                        help="multiply the reasoning length (1 = 40/110/70 words for base/SFT/GRPO)")
    parser.add_argument("--repeat", type=int, default=3, help="render this many times; the median is reported")
    parser.add_argument("--no-browser", action="store_true", help="skip the headless Chromium timings")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "report_scale.json",
                        help="where to write the JSON result")
    args = parser.parse_args(argv)

    from medbench.harness.cli.report import render_runs
    from report_fixture import REALISTIC, build_fixture_run

    sizes = {k: max(1, round(v * args.scale)) for k, v in REALISTIC.items() if k != "pubmedqa_ll"}
    with tempfile.TemporaryDirectory(prefix="medbench-report-scale-") as tmp:
        t = time.perf_counter()
        run = build_fixture_run(Path(tmp) / "run", run_id="realistic-55-tasks", sizes=sizes,
                                reasoning_scale=args.reasoning_scale)
        build_s = time.perf_counter() - t
        print(f"fixture run built in {build_s:.1f}s", file=sys.stderr)
        times, stages = [], []
        for i in range(args.repeat):
            log: list[str] = []
            start = time.perf_counter()
            out = render_runs([run], Path(tmp) / "report.html", progress=log.append)
            times.append(time.perf_counter() - start)
            stages.append(log)
            print(f"render {i + 1}/{args.repeat}: {times[-1]:.2f}s", file=sys.stderr)
        cli = [sys.executable, "-m", "medbench.harness.cli", "report", str(run), "-o", str(Path(tmp) / "cli.html"),
               "-q"]
        start = time.perf_counter()
        proc = subprocess.run(cli, capture_output=True, text=True, check=False)
        cli_s = time.perf_counter() - start
        if proc.returncode:
            print(proc.stderr, file=sys.stderr)
        import pandas as pd

        frame = pd.read_parquet(run / "samples.parquet", columns=["task", "completion"])
        completion_mb = float(frame["completion"].str.len().sum()) / 1e6
        size_mb = out.stat().st_size / 1e6
        browser = {"skipped": "--no-browser"} if args.no_browser else _browser_timings(out, args.repeat)

    median = statistics.median(times)
    ready = browser.get("ready_s", {}).get("median") if isinstance(browser.get("ready_s"), dict) else None
    result = {
        "benchmark": "report_scale",
        "what": "medbench report on a realistic run (3 checkpoints × 55 tasks: PubMedQA, 52 Health specialties, "
                "GSM8K, medical-o1): load + comparisons (vs base, vs parent, Holm) + figures + sample browser "
                "payload + template + write, in-process (median) and as a fresh `medbench report` process; then "
                "headless Chromium: navigation to ready (samples unpacked, first page drawn) and interactions",
        "command": "python " + " ".join(shlex.quote(a) for a in [str(Path(__file__).relative_to(REPO))]
                                        + (argv if argv is not None else sys.argv[1:])),
        "device": _device(),
        "versions": _versions(),
        "sizes": sizes,
        "n_checkpoints": 3,
        "n_tasks": int(frame["task"].nunique()),
        "n_samples": len(frame),
        "reasoning_scale": args.reasoning_scale,
        "completion_text_mega_chars": round(completion_mb, 2),
        "html_bytes_per_sample": round(size_mb * 1e6 / len(frame)),
        "render_seconds": {"median": round(median, 3), "all": [round(x, 3) for x in times]},
        "cli_process_seconds": round(cli_s, 3),
        "render_stages_last_run": stages[-1],
        "html_size_mb": round(size_mb, 2),
        "goals": GOALS,
        "met": {"render_s": median <= GOALS["render_s"], "cli_process_s": cli_s <= GOALS["render_s"],
                "html_mb": size_mb <= GOALS["html_mb"],
                "chromium_ready_s": ready is not None and ready <= GOALS["chromium_ready_s"]},
        "fixture_build_seconds_not_timed": round(build_s, 2),
        "browser": browser,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
