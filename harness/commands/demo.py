"""Run the whole loop offline on tiny built-in models and the bundled sample data (about two minutes on a CPU).

It builds a two-layer base model and a LoRA adapter taught the GRPO recipe's <reasoning>/<answer> layout,
benchmarks both on every task family (a few documents each) exactly as `medbench bench` does, writes a real
run directory (default runs/demo-<timestamp>) and prints the summary table. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .bench import add_run_options

    parser.add_argument("--train-steps", type=int, default=40,
                        help="optimizer steps for the demo's format adapter (default 40)")
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if not args.verbose:
        os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two-layer models: threads cost more than they save
    try:
        return _run_demo(args, time.monotonic())
    finally:
        torch.set_num_threads(threads)


def _run_demo(args: argparse.Namespace, t0: float) -> int:
    """The demo's steps, one call each: build the base, train the adapter, bench (later: the report)."""
    from pathlib import Path

    from medbench.harness import demo_steps
    from medbench.harness.checkpoints import CheckpointError
    from medbench.harness.rundir import RunWriter
    from medbench.harness.runner import BenchError
    from medbench.harness.spec import SpecError

    from .bench import report_outcome

    out = Path(args.output or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    RunWriter(out)  # the models live inside the run directory, so it is self-contained
    models = out / "models"
    seed = 0 if args.seed is None else args.seed
    print(f"[demo] building the tiny base model in {models / 'base'}", file=sys.stderr)
    base = demo_steps.build_base(models, seed=seed)
    print(f"[demo] teaching a LoRA adapter the <reasoning>/<answer> layout ({args.train_steps} steps)",
          file=sys.stderr)
    adapter = demo_steps.tune_format_adapter(base, models / "format_lora", steps=args.train_steps, seed=seed)
    print(f"[demo] models ready in {time.monotonic() - t0:.0f}s; benchmarking", file=sys.stderr)
    try:
        spec = demo_steps.demo_spec(
            out, {"base": base, "format_lora": adapter},
            limit=int(args.limit) if args.limit else 3,
            max_new_tokens=args.max_new_tokens or 32,
            seed=1234 if args.seed is None else args.seed,
            batch_size=args.batch_size or "auto",
        )
        outcome = demo_steps.bench(spec, verbose=args.verbose)
    except (SpecError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    status = report_outcome(outcome)
    print(f"[demo] done in {time.monotonic() - t0:.0f}s", file=sys.stderr)
    return status
