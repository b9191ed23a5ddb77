"""Score several checkpoints on the same tasks and write a run directory.

Examples:

  medbench bench --checkpoint base=Qwen/Qwen2.5-3B-Instruct --checkpoint grpo=./out/grpo_adapter \\
      --tasks medbench_pubmedqa,medbench_health --limit 100 --output runs/grpo-vs-base
  medbench bench --spec bench.yaml --limit 20          # a committed spec; flags override it

A checkpoint is NAME=SOURCE: a hub id, a local model directory, or a LoRA adapter directory (its base is read
from adapter_config.json and the adapter is evaluated without merging); NAME=BASE+ADAPTER names the base.
At the end the HTML report is written to RUN_DIR/report.html (skip it with --no-report; `medbench report`
renders it later). A checkpoint named base, sft or grpo gets that lineage role unless its provenance file says
otherwise; in a spec file give `role:`. Run the same command again to resume an interrupted run. Several GPUs
(hf, medbench-fast; one model copy per GPU, lm-eval's data parallelism, the same run directory as one GPU):
`torchrun --nproc_per_node 2 -m medbench.harness.cli bench ...` or `accelerate launch --multi_gpu
--num_processes 2 -m medbench.harness.cli bench ...`; vLLM in one process: --tensor-parallel-size /
--data-parallel-size.
Exit status: 0 all finished, 1 a checkpoint failed or the disk filled (finished work kept), 2 a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``bench`` and ``demo`` (how to run, not what to run)."""
    parser.add_argument("--limit", type=str, default=None,
                        help="documents per task: a count N, or a fraction in (0, 1] (default: all); a seeded "
                             "sample (--seed) that keeps each task's label and subject mix, the same documents "
                             "for every checkpoint, recorded in run.json")
    parser.add_argument("--batch-size", default=None,
                        help="generation batch size: an integer, 'auto' or 'auto:N' (default auto: the largest "
                             "that fits the GPU; 1 on a CPU)")
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="token limit for every generative task (default: each task's own; a spec file can "
                             "set it per task)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 1234)")
    parser.add_argument("--output", "-o", default=None,
                        help="run directory (bench default: runs/bench-<hash of the settings>, so the same "
                             "command resumes into the same directory)")
    parser.add_argument("--no-report", action="store_true",
                        help="don't render RUN_DIR/report.html at the end (`medbench report RUN_DIR` does it later)")
    parser.add_argument("--verbose", action="store_true", help="show lm-eval's and transformers' own logs")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--spec", default=None, help="a bench spec YAML file; the flags below override it")
    parser.add_argument("--checkpoint", "-c", action="append", default=None, metavar="NAME=SOURCE",
                        help="a checkpoint: NAME=HUB_ID, NAME=./model_dir, NAME=./adapter_dir or "
                             "NAME=BASE+ADAPTER (repeat for each checkpoint)")
    parser.add_argument("--tasks", "-t", default=None,
                        help="comma-separated task or group names (see `medbench tasks`), e.g. "
                             "medbench_pubmedqa,medbench_health or medbench for all")
    parser.add_argument("--data-dir", default=None,
                        help="read datasets from this local folder instead of the Hugging Face hub")
    parser.add_argument("--dtype", default=None, choices=["auto", "float32", "float16", "bfloat16"],
                        help="weights dtype (default auto: the model's own)")
    parser.add_argument("--load-in-4bit", action=argparse.BooleanOptionalAction, default=None,
                        help="load weights in 4-bit NF4 (bitsandbytes, CUDA only)")
    parser.add_argument("--chat-template", action=argparse.BooleanOptionalAction, default=None,
                        help="apply the tokenizer's chat template for every task (default: per task — on for "
                             "the <reasoning>/<answer> tasks, off for the <think> and loglikelihood tasks)")
    from medbench.harness.run.spec import BACKENDS  # stdlib-only module: `medbench --help` stays instant

    parser.add_argument("--backend", default=None, choices=list(BACKENDS),
                        help="auto (default: medbench-fast on a CUDA GPU, hf on a CPU), hf (transformers through "
                             "lm-eval), medbench-fast (the same model with medbench's fast greedy generation and "
                             "shared-context scoring; same results, 15x stock hf on an H200) or vllm (the `vllm` extra; "
                             "fastest once its engine has started, which takes minutes: for large runs)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cuda:0 or cpu (hf backend)")
    parser.add_argument("--trust-remote-code", action=argparse.BooleanOptionalAction, default=None,
                        help="allow a model's own Python code from the hub (default off)")
    parser.add_argument("--reference", default=None,
                        help="checkpoint the others are compared with (default: provenance role 'base', else "
                             "the first)")
    parser.add_argument("--tensor-parallel-size", type=int, default=None,
                        help="vLLM: split one model over this many GPUs (default 1)")
    parser.add_argument("--data-parallel-size", type=int, default=None,
                        help="vLLM: this many engines, one per GPU group (default 1; lm-eval runs them as ray "
                             "actors: needs `pip install ray`)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=None,
                        help="vLLM share of GPU memory to use (default 0.9, or what is free at engine "
                             "start when less is)")
    parser.add_argument("--max-model-len", type=int, default=None, help="vLLM maximum sequence length")
    add_run_options(parser)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The spec overrides the flags give: one per spec option (:data:`medbench.harness.run.spec.FLAG_KEYS`,
    read from the spec's dataclasses), ``None`` where a flag was not given."""
    from medbench.harness.run.spec import FLAG_KEYS

    out = {k: getattr(args, k, None) for k in FLAG_KEYS}
    out["checkpoints"] = getattr(args, "checkpoint", None)
    out["tasks"] = getattr(args, "tasks", None)
    return out


def default_output(spec) -> str:
    """runs/bench-<hash>: the same checkpoints, tasks and settings always map to the same directory."""
    # (a checkpoint's role doesn't change its results, and leaving it out keeps older directories resumable)
    ident = json.dumps({"checkpoints": [{k: v for k, v in c.__dict__.items() if k != "role"}
                                        for c in spec.checkpoints],
                        "tasks": [t.__dict__ for t in spec.tasks],
                        "settings": [spec.limit, spec.seed, spec.dtype, spec.load_in_4bit, spec.backend,
                                     spec.max_new_tokens, spec.chat_template]}, sort_keys=True, default=str)
    return f"runs/bench-{hashlib.sha256(ident.encode()).hexdigest()[:10]}"


def report_outcome(outcome, stream=None) -> int:
    """Print the summary table and the failures; return the exit status."""
    from medbench.harness.run.rundir import load_run
    from medbench.harness.run.summary import format_summary

    stream = stream or sys.stdout
    run = load_run(outcome.run_dir)
    print(format_summary(run.metrics, run.checkpoint_names), file=stream)
    print(f"\nrun directory: {outcome.run_dir}", file=stream)
    if outcome.errors:
        print("\nfailed checkpoints (their finished tasks are kept; fix and run the same command to resume):",
              file=sys.stderr)
        for name, msg in outcome.errors.items():
            print(f"  {name}: {msg}", file=sys.stderr)
        return 1
    return 0


def write_report(run_dir, stream=None) -> bool:
    """Render ``run_dir``'s HTML report and print its path; on failure say why (the run itself is kept)."""
    from medbench.harness.cli.report import render_runs  # the report's composition: comparisons, then render
    from medbench.tasks.errors import MedbenchError

    stream = stream or sys.stdout
    try:
        path = render_runs([run_dir])
    except (MedbenchError, OSError) as e:  # the bench itself finished: exit 1, with the way to retry
        print(f"error: the report could not be written ({e}); the run directory is complete: try "
              f"`medbench report {run_dir}`", file=sys.stderr)
        return False
    print(f"report: {path}", file=stream)
    return True


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    if not args.verbose:
        os.environ.setdefault("TQDM_DISABLE", "1")  # lm-eval's own bars; medbench prints progress with ETA

    from medbench.harness.run.shard import current_launch
    from medbench.harness.run.spec import build_spec, check_task_names, load_spec_file

    def make_spec():
        file_data = load_spec_file(args.spec) if args.spec else None
        spec = build_spec(file_data, overrides_from_args(args))
        # a misspelled task name, reported before anything heavy is imported
        check_task_names(spec, "--tasks" if args.tasks else f"{args.spec}: tasks")
        if not spec.output:
            spec = dataclasses.replace(spec, output=default_output(spec))
            if current_launch().main:
                print(f"run directory: {spec.output} (give --output to choose)", file=sys.stderr)
        return spec

    return bench_and_report(make_spec, verbose=args.verbose, no_report=args.no_report)


def bench_and_report(make_spec, *, verbose: bool, no_report: bool) -> int:
    """Build the spec, run the bench, print the summary and write the report; the exit status of both
    `medbench bench` and `medbench demo` (0 done, 1 a checkpoint, the disk or the report failed, 2 usage)."""
    from medbench.harness.run.runner import run_bench
    from medbench.harness.run.shard import current_launch

    # a SpecError or CheckpointError (exit 2) or BenchError (exit 1) is reported by medbench.harness.cli.main
    outcome = run_bench(make_spec(), verbose=verbose)
    if not current_launch().main:
        return 0 if outcome.ok else 1  # under torchrun / accelerate launch, rank 0 prints and writes the report
    status = report_outcome(outcome)
    if not no_report and not write_report(outcome.run_dir):
        status = status or 1
    return status
