"""Screenshots of the report in headless Chromium, as a person would first see it: desktop (1400 px) and phone
(390 px), the first screen and the whole page, for a realistic 55-task run and a small one.

    python benchmarks/report_screenshots.py --out /work/notes/shots            # builds both fixture runs
    python benchmarks/report_screenshots.py --report runs/x/report.html --out shots

Also prints, per page and width, what a reader needs: whether the page overflows horizontally, where the
summary and the Health row sit, and how long the page took to be ready.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

SECTIONS = ("#answer", "section.heat", "#fig-tasks", "#fig-flips", "#fig-format", "#fig-length",
            "#fig-acc-length", "#details", "#samples")
VIEWPORTS = {"desktop": (1400, 900), "phone": (390, 844)}

LAYOUT_JS = """(() => {
  const r = e => e ? e.getBoundingClientRect() : null;
  const health = document.querySelector('#answer-table tr.kind-group');
  return {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
          height: document.documentElement.scrollHeight,
          headlineBottom: (r(document.getElementById('headline')) || {}).bottom || null,
          tableTop: (r(document.getElementById('answer-table')) || {}).top || null,
          groupRowBottom: health ? r(health).bottom : null};
})()"""


def shoot(report: Path, out: Path, name: str, *, extra: bool = True) -> dict[str, object]:
    from report_cdp import Chromium

    facts: dict[str, object] = {}
    for label, (w, h) in VIEWPORTS.items():
        with Chromium(width=w, height=h, timeout=120) as b:
            if label == "phone":
                b.call("Emulation.setDeviceMetricsOverride", width=w, height=h, deviceScaleFactor=2, mobile=True)
            seconds = b.open(report)
            time.sleep(0.3)
            b.screenshot(out / f"{name}_{label}_first.png")
            b.screenshot(out / f"{name}_{label}_full.png", full_page=True)
            layout = b.evaluate(LAYOUT_JS)
            if label == "desktop" or extra:
                for sel in SECTIONS:
                    box = b.evaluate(f"(() => {{ const e = document.querySelector({json.dumps(sel)}); if (!e) return null;"
                                     " const r = e.getBoundingClientRect();"
                                     " return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })()")
                    if box:
                        x, y, bw, bh = box
                        data = b.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                      clip={"x": x, "y": y, "width": max(1, bw), "height": min(max(1, bh), 2400),
                                            "scale": 1})["data"]
                        safe = sel.strip("#.").replace(" ", "_")
                        (out / f"{name}_{label}_{safe}.png").write_bytes(base64.b64decode(data))
            if extra:
                b.evaluate("document.querySelector('button.expand') && document.querySelector('button.expand').click()")
                b.evaluate("document.getElementById('answer').scrollIntoView()")
                time.sleep(0.2)
                b.screenshot(out / f"{name}_{label}_expanded.png")
                b.evaluate("location.hash = '#samples?family=health&outcome=wrong&ck=grpo'")
                time.sleep(0.5)
                b.screenshot(out / f"{name}_{label}_samples.png")
            facts[label] = {"ready_s": round(seconds, 3), **layout, "problems": list(b.problems)}
    return facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "artifacts" / "shots")
    ap.add_argument("--report", type=Path, action="append", help="an existing report (default: build fixtures)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    facts = {}
    with tempfile.TemporaryDirectory(prefix="medbench-shots-") as tmp:
        reports: list[tuple[str, Path]] = []
        if args.report:
            reports = [(p.stem, p) for p in args.report]
        else:
            from medbench.harness.cli.report import render_runs
            from report_fixture import LONG_NAME, REALISTIC, build_fixture_run

            big = build_fixture_run(Path(tmp) / "realistic", run_id="realistic-55-tasks", sizes=REALISTIC)
            small = build_fixture_run(Path(tmp) / "small", run_id="small", specialties=2,
                                      sizes={"pubmedqa": 20, "health": 8, "gsm8k": 15, "medical_cot": 8},
                                      names={"grpo": LONG_NAME})
            reports = [("realistic", render_runs([big], Path(tmp) / "realistic.html")),
                       ("small", render_runs([small], Path(tmp) / "small.html"))]
        for name, path in reports:
            facts[name] = shoot(path, args.out, name)
    print(json.dumps(facts, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
