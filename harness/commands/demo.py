"""Run the whole loop offline on tiny built-in models and the bundled sample data (about a minute on a CPU).

base → SFT → GRPO → bench → report: it builds a two-layer base model primed to answer in the GRPO recipe's
<reasoning>/<answer> layout, trains an SFT checkpoint from it and a GRPO checkpoint from that with the bundled
recipes (`trl` backend, CPU), benchmarks the three on every task family (a few documents each) exactly as
`medbench bench` does, prints the summary table and writes the HTML report. Everything lands in one run
directory (default runs/demo-<timestamp>; the models under RUN_DIR/models). Nothing is downloaded, and the
same seed gives the same samples and metrics.

Examples:
  medbench demo                          # writes runs/demo-<timestamp>/report.html
  medbench demo --output runs/demo --no-train   # the base model only: a quick look at the harness
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .bench import add_run_options

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--sft-steps", type=int, default=None,
                        help="optimizer steps of the demo's SFT recipe (default 100)")
    parser.add_argument("--grpo-steps", type=int, default=None,
                        help="optimizer steps of the demo's GRPO recipe (default 40)")
    parser.add_argument("--no-train", action="store_true",
                        help="skip the SFT and GRPO steps and benchmark the base model alone")
    add_run_options(parser)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if not args.verbose:
        os.environ.setdefault("TQDM_DISABLE", "1")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two-layer models: threads cost more than they save (and one thread is deterministic)
    try:
        return _run_demo(args, time.monotonic())
    finally:
        torch.set_num_threads(threads)


def _say(text: str) -> None:
    print(f"[demo] {text}", file=sys.stderr, flush=True)


def _run_demo(args: argparse.Namespace, t0: float) -> int:
    """The demo's steps, one call each: build the base, train SFT and GRPO, bench, report."""
    import contextlib
    from pathlib import Path

    from medbench.harness import demo_steps
    from medbench.harness.rundir import RunWriter
    from medbench.tasks.loaders import SAMPLE_DATA_DIR

    # The one place the harness imports trainers: the demo builds its checkpoints with the bundled recipes
    # before benchmarking them (the same exception DESIGN.md allows trainers' eval callback, in reverse). Lazy,
    # so that nothing else in the harness depends on trainers.
    from medbench.trainers import demo as trainers_demo

    from .bench import bench_and_report

    out = Path(args.output or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    RunWriter(out)  # the models live inside the run directory, so it is self-contained
    models = out / "models"
    # The trainers print their own progress (TRL's logs) to stdout; the demo's stdout is the summary table.
    quiet = contextlib.nullcontext() if args.verbose else contextlib.redirect_stdout(sys.stderr)
    with quiet:
        _say(f"building the tiny base model in {models / 'base'}")
        base = trainers_demo.build_demo_base(models / "base", data_dir=SAMPLE_DATA_DIR)
        checkpoints = {"base": base}
        if not args.no_train:
            sft_steps = trainers_demo.DEMO_SFT_STEPS if args.sft_steps is None else args.sft_steps
            grpo_steps = trainers_demo.DEMO_GRPO_STEPS if args.grpo_steps is None else args.grpo_steps
            _say(f"base ready in {time.monotonic() - t0:.0f}s; training SFT ({sft_steps} steps) and GRPO "
                 f"({grpo_steps} steps) with the bundled recipes (trl backend)")
            trained = trainers_demo.demo_train(
                base, models, SAMPLE_DATA_DIR, sft_steps=sft_steps, grpo_steps=grpo_steps,
                sft_overrides=[f"data.split={demo_steps.sft_split()}", *trainers_demo.DEMO_SFT_OVERRIDES],
                grpo_overrides=list(trainers_demo.DEMO_GRPO_OVERRIDES),
            )
            checkpoints = {"base": base, "sft": trained["sft"], "grpo": trained["grpo"]}
    _say(f"models ready in {time.monotonic() - t0:.0f}s; benchmarking")
    status = bench_and_report(
        lambda: demo_steps.demo_spec(
            out, checkpoints,
            limit=int(args.limit) if args.limit else demo_steps.DEMO_LIMIT,
            max_new_tokens=args.max_new_tokens or demo_steps.DEMO_MAX_NEW_TOKENS,
            seed=1234 if args.seed is None else args.seed,
            batch_size=args.batch_size or "auto",
        ),
        verbose=args.verbose,
        no_report=args.no_report,
    )
    _say(f"done in {time.monotonic() - t0:.0f}s")
    return status
