"""Train SFT or GRPO checkpoints with the bundled recipes (Unsloth on a GPU, plain TRL + PEFT elsewhere).

Examples:

    medbench train sft --config trainers/configs/sft_r1_llama8b_medical.yaml
    medbench train grpo --config grpo_qwen25_3b_medical --backend trl training.max_steps=10
    medbench train overlap --config sft_r1_llama8b_medical --data-dir ./data
    medbench train overlap --train-file my_data.jsonl --question-field question

Overrides are dotted section.field=value pairs (YAML values) applied on top of the config file.
Every saved directory gets a medbench_provenance.json that `medbench bench` reads to label checkpoints.
"""

from __future__ import annotations

import argparse


def _add_recipe_parser(sub, name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--config", required=True,
                   help="recipe YAML file, or the name of a bundled config (see trainers/configs/)")
    p.add_argument("--backend", default="auto", choices=["auto", "unsloth", "trl"],
                   help="auto (default): unsloth on a CUDA GPU when installed, else trl (plain TRL + PEFT)")
    p.add_argument("--data-dir", default=None,
                   help="read training data from local files in this folder instead of the hub "
                        "(same as data.data_dir=DIR; $MEDBENCH_DATA_DIR also works)")
    p.add_argument("--output-dir", default=None, help="where to save (same as output.dir=DIR)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps "
                   "(same as training.max_steps=N)")
    p.add_argument("overrides", nargs="*", metavar="SECTION.FIELD=VALUE",
                   help="config overrides, e.g. training.learning_rate=1e-4 model.name=/path/to/model")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the examples' line breaks
    sub = parser.add_subparsers(dest="train_command", metavar="RECIPE", required=True)
    _add_recipe_parser(sub, "sft", "Supervised fine-tuning on clinical chain-of-thought (the <think> recipe).")
    _add_recipe_parser(sub, "grpo", "GRPO on GSM8K + PubMedQA + Health_Benchmarks with medbench's graders as rewards.")
    ov = sub.add_parser("overlap", help="Check that no training question appears in a medbench evaluation set.",
                        description="Check training data against medbench's evaluation sets by normalised "
                                    "question hash; exit 1 when any training question is also evaluated.")
    src = ov.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="a recipe config: check the data it trains on")
    src.add_argument("--train-file", help="your own training file (.jsonl, .json, .csv or .parquet)")
    ov.add_argument("--question-field", default="question",
                    help="with --train-file: the field holding the question text (default: question)")
    ov.add_argument("--data-dir", default=None,
                    help="local data folder for both training and evaluation data ($MEDBENCH_DATA_DIR also works)")
    ov.add_argument("--tasks", nargs="*", default=None,
                    help="evaluation task names to check against (default: every medbench task)")
    ov.add_argument("--limit", type=int, default=None,
                    help="check only the first N documents of each evaluation task")


def _overrides(args: argparse.Namespace) -> list[str]:
    out = list(getattr(args, "overrides", []) or [])
    if getattr(args, "data_dir", None):
        out.append(f"data.data_dir={args.data_dir}")
    if getattr(args, "output_dir", None):
        out.append(f"output.dir={args.output_dir}")
    if getattr(args, "max_steps", None) is not None:
        out.append(f"training.max_steps={args.max_steps}")
    return out


def _run_recipe(args: argparse.Namespace) -> int:
    import dataclasses

    # Order matters: pick the backend and import Unsloth (when it runs) before anything imports transformers.
    from medbench.trainers.backends import activate, select_backend

    choice = select_backend(args.backend)  # errors (MedbenchError) are reported by medbench.harness.cli.main
    activate(choice)

    from medbench.trainers.config import TINY_MODEL, ConfigError, load_config

    cfg = load_config(args.config, _overrides(args))
    if cfg.recipe != args.train_command:
        raise ConfigError(f"{cfg.source} is a {cfg.recipe!r} recipe; run it with `medbench train {cfg.recipe}`")
    if cfg.model.name == TINY_MODEL:  # the tiny configs' model: built here, the recipes never build one
        from medbench.harness.models.tiny import build_tiny_model

        tiny = str(build_tiny_model(cfg.output_dir / "tiny_base_model"))
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=tiny))
    if cfg.recipe == "sft":
        from medbench.trainers import sft as recipe
    else:
        from medbench.trainers import grpo as recipe
    saved = recipe.run(cfg, choice)
    for name, path in saved.items():
        print(f"{name}\t{path}")
    return 0


def _run_overlap(args: argparse.Namespace) -> int:
    from medbench.trainers.config import load_config
    from medbench.trainers.overlap import check_config_overlap, check_file_overlap

    if args.config:
        overrides = [f"data.data_dir={args.data_dir}"] if args.data_dir else []
        report = check_config_overlap(load_config(args.config, overrides, check_training=False),
                                      tasks=args.tasks, limit=args.limit, data_dir=args.data_dir)
    else:
        report = check_file_overlap(args.train_file, args.question_field, tasks=args.tasks,
                                    limit=args.limit, data_dir=args.data_dir)
    print(report.summary())
    return 0 if report.clean else 1


def run(args: argparse.Namespace) -> int:
    if args.train_command == "overlap":
        return _run_overlap(args)
    return _run_recipe(args)
