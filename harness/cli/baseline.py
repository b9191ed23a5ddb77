"""Save a small baseline file from a run directory, for `medbench gate --baseline FILE`.

The file keeps per-document outcomes by doc_key (so paired tests still work), the per-task metrics and the
run's provenance; documents are one per line so a baseline update reviews well. Commit it next to your code.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    save = sub.add_parser("save", help="write a baseline file from a finished run directory",
                          description="Write a baseline file from a finished run directory.")
    save.add_argument("run_dir", metavar="RUN_DIR", help="run directory (the --output of `medbench bench`)")
    save.add_argument("-o", "--output", required=True, metavar="FILE",
                      help="baseline file to write (JSON; overwritten if it exists)")
    save.add_argument("--checkpoint", action="append", metavar="NAME",
                      help="checkpoint to keep (repeatable; default: all of the run's checkpoints)")


def run(args: argparse.Namespace) -> int:
    from medbench.harness.gate.baseline import save_baseline
    from medbench.harness.run.rundir import RunDirError

    try:
        summary = save_baseline(args.run_dir, args.output, args.checkpoint)
    except RunDirError as e:
        print(f"medbench baseline: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"medbench baseline: error: cannot write {args.output}: {e}", file=sys.stderr)
        return 2
    print(
        f"wrote {summary['path']} ({summary['bytes'] / 1024:.1f} KiB): checkpoints {summary['checkpoints']}, "
        f"tasks {summary['tasks']}, {summary['documents']} documents"
    )
    return 0
