"""How long does ``medbench demo`` take, start to finish, in a fresh process? (Target: about two minutes on a
2-core CPU machine.)

    python benchmarks/demo_time.py                      # one run; writes benchmarks/results/demo_time.json
    python benchmarks/demo_time.py --repeats 3

The demo runs as a user runs it (``python -m medbench.harness.cli demo``, imports included) into a temporary
directory. Recorded: wall time per repeat, the demo's own phase times (base built, SFT and GRPO trained, all
done; each counted from the start), the CPU count and the load average before each repeat (a shared machine
makes the number noisy: the load says how noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        load = os.getloadavg()[0]
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "medbench.harness.cli", "demo", "--output", f"{tmp}/demo"],
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
        wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"medbench demo failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    phases = {name: re.search(rf"{text} in (\d+)s", proc.stderr)
              for name, text in (("base_ready_s", "base ready"), ("models_ready_s", "models ready"),
                                 ("done_s", "done"))}
    return {"wall_s": round(wall, 1), **{k: int(m.group(1)) if m else None for k, m in phases.items()},
            "load_average_1min_before": round(load, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="how many fresh demo runs to time")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "demo_time.json"),
                        help="where to write the JSON result")
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.repeats)]
    from importlib import metadata

    result = {
        "benchmark": "medbench demo wall time (fresh process, imports included)",
        "command": "python benchmarks/demo_time.py" + (f" --repeats {args.repeats}" if args.repeats != 1 else ""),
        "runs": runs,
        "median_wall_s": sorted(r["wall_s"] for r in runs)[len(runs) // 2],
        "device": {"cpu_count": os.cpu_count(), "machine": platform.machine(), "platform": platform.platform()},
        "versions": {name: metadata.version(name) for name in ("medbench", "torch", "transformers", "lm-eval",
                                                                 "peft")},
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
