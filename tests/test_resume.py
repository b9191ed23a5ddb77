"""Kill a bench run with SIGKILL in the middle of a task, run the same command again, and get exactly the
result of an uninterrupted run, without regenerating what had finished before the kill."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from medbench.harness.cli import main
from medbench.harness.run.rundir import RunWriter, load_run

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "tasks" / "sample_data"
FIRST_TASK = "medbench_gsm8k"


def _args(out: Path, base: Path, adapter: Path) -> list[str]:
    return ["bench", "--checkpoint", f"base={base}", "--checkpoint", f"lora={adapter}",
            "--tasks", f"{FIRST_TASK},medbench_pubmedqa", "--limit", "3", "--max-new-tokens", "32",
            "--batch-size", "1", "--data-dir", str(SAMPLE_DATA), "--output", str(out)]


def _cached_requests(db: Path) -> int:
    """Rows in lm-eval's sqlite request cache (read-only, while the run writes it)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1) as conn:
            return conn.execute('SELECT COUNT(*) FROM "unnamed"').fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_kill_mid_task_then_resume_equals_uninterrupted(tiny_model_dir, tiny_lora_adapter_dir, tmp_path):
    killed = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "medbench.harness.cli", *_args(killed, tiny_model_dir,
                                                                                   tiny_lora_adapter_dir)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    db = killed / "cache" / "base_rank0.db"
    deadline = time.monotonic() + 240
    try:
        # wait until some (not all) of the first task's generations are in the cache, then SIGKILL
        while time.monotonic() < deadline and proc.poll() is None:
            if _cached_requests(db) >= 1:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    cached_at_kill = _cached_requests(db)
    assert cached_at_kill >= 1
    assert not (killed / "partial" / f"base__{FIRST_TASK}.done").exists(), "killed after the task, not inside it"
    assert not (killed / "samples.parquet").exists()

    # the same command again: resumes, reusing the cached generations
    resumed = subprocess.run([sys.executable, "-m", "medbench.harness.cli",
                              *_args(killed, tiny_model_dir, tiny_lora_adapter_dir)],
                             env=env, capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f"base [1/2] {FIRST_TASK}: done" in resumed.stderr
    assert f"{cached_at_kill} from cache" in resumed.stderr  # finished generations were not redone
    assert RunWriter(killed).done_rows("base", FIRST_TASK) is not None

    # an uninterrupted run of the same command
    clean = tmp_path / "clean"
    assert main(_args(clean, tiny_model_dir, tiny_lora_adapter_dir)) == 0

    got = load_run(killed).samples().drop(columns=["gen_time_s"])
    want = load_run(clean).samples().drop(columns=["gen_time_s"])
    assert len(got) == 2 * 2 * 3
    assert got.equals(want)
    assert load_run(killed).metrics["per_task"] == load_run(clean).metrics["per_task"]
    assert load_run(killed).metrics["pairs"] == load_run(clean).metrics["pairs"]
