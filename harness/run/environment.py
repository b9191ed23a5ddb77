"""What a run ran on: package versions, the git commit, the hardware. Recorded in run.json so that two runs
can be compared knowing what changed besides the checkpoints."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions change results (or explain a difference in speed).
PACKAGES = (
    "medbench", "lm-eval", "torch", "transformers", "peft", "accelerate", "datasets", "tokenizers",
    "trl", "vllm", "bitsandbytes", "unsloth", "pandas", "numpy", "scipy", "statsmodels",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_info(start: Path | None = None) -> dict[str, Any]:
    """The medbench source tree's commit and whether it had uncommitted changes (``None`` outside git)."""
    here = start or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha or None, "dirty": bool(dirty)}


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def cpu_model() -> str | None:
    """The CPU's model name ("Intel(R) Xeon(R) Platinum 8480+"): float32 training on CPU is not bit-identical
    across processors, so a run records which one it ran on. ``platform.processor()`` is empty on most Linux
    systems; there the name comes from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def hardware() -> dict[str, Any]:
    """CPU, memory and accelerators of this machine."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": sys.version.split()[0],
        "gpus": [],
        "cuda": None,
    }
    try:
        import torch

        if torch.cuda.is_available():
            info["cuda"] = torch.version.cuda
            info["gpus"] = [
                {"name": torch.cuda.get_device_name(i),
                 "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                for i in range(torch.cuda.device_count())
            ]
    except ImportError:
        pass
    return info


def environment() -> dict[str, Any]:
    """Everything above, as one mapping for run.json."""
    return {"packages": package_versions(), "git": git_info(), "hardware": hardware()}
