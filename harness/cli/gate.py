"""Compare a candidate run with a baseline under YAML rules; exit 0 pass, 1 regression, 2 usage/config error.

The baseline is a run directory or a file from `medbench baseline save`. Statistical checks are paired
when both runs scored the same documents, unpaired otherwise (the output says which). The gate fails closed
(exit 1): a gated checkpoint that failed in its run, a task the rules name or one side lacks (unless
`allow_missing: true`), or no applicable check at all is a failure, never a pass. A metrics.json that
disagrees with its samples.parquet is a damaged input (exit 2). Rules: see examples/gate-rules.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--candidate", required=True, metavar="RUN",
                        help="run directory of the candidate (the --output of `medbench bench`)")
    parser.add_argument("--baseline", required=True, metavar="RUN_OR_FILE",
                        help="baseline: a run directory, or a file written by `medbench baseline save`")
    parser.add_argument("--rules", required=True, metavar="FILE",
                        help="YAML rules file (per task, task group or \"*\": metric -> min, max, max_drop, "
                             "max_increase, max_change, max_changed_documents, non_inferiority_margin); see "
                             "examples/gate-rules.yaml")
    parser.add_argument("--candidate-checkpoint", metavar="NAME",
                        help="checkpoint of the candidate run to gate (default: the last in lineage order)")
    parser.add_argument("--baseline-checkpoint", metavar="NAME",
                        help="baseline checkpoint to compare with (default: the same name; the base checkpoint "
                             "when candidate and baseline are the same run)")
    parser.add_argument("--all-checkpoints", action="store_true",
                        help="gate every candidate checkpoint against the baseline checkpoint of the same name")
    parser.add_argument("--holm", action="store_true",
                        help="Holm-correct the statistical checks across all rules (also `holm: true` in the rules)")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write a Markdown summary (e.g. \"$GITHUB_STEP_SUMMARY\" or a PR-comment file)")
    parser.add_argument("--junit", metavar="FILE", help="also write JUnit XML, one test case per rule check")


def _write(path: str, text: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    from medbench.harness.gate.baseline import BaselineFileError, load_scored
    from medbench.harness.gate.evaluate import Closed, choose_checkpoints, evaluate_gate
    from medbench.harness.gate.outputs import render_junit, render_markdown, render_terminal
    from medbench.harness.gate.rules import GateConfigError, load_rules
    from medbench.harness.run.rundir import RunDirError

    try:
        rules = load_rules(args.rules)
        candidate = load_scored(args.candidate)
        baseline = load_scored(args.baseline)
        pairs = choose_checkpoints(candidate, baseline, args.candidate_checkpoint, args.baseline_checkpoint,
                                   args.all_checkpoints)
        result = evaluate_gate(candidate, baseline, rules, pairs, holm=args.holm)
        if args.all_checkpoints:
            ungated = [c for c in candidate.checkpoints if c not in baseline.checkpoints]
            if ungated:
                result.notes.append(f"not gated (no baseline checkpoint of that name): {', '.join(ungated)}")
            for lost in (c for c in baseline.checkpoints if c not in candidate.checkpoints):
                result.closed.append(Closed(None, lost, None, (
                    f"baseline checkpoint {lost!r} has no checkpoint of that name in the candidate run: it was "
                    f"not benchmarked, so it is not gated")))
    except (GateConfigError, RunDirError, BaselineFileError) as e:
        print(f"medbench gate: error: {e}", file=sys.stderr)
        return 2
    print(render_terminal(result))
    try:
        if args.markdown:
            _write(args.markdown, render_markdown(result))
        if args.junit:
            _write(args.junit, render_junit(result))
    except OSError as e:
        print(f"medbench gate: error: cannot write output ({e}); the verdict above stands", file=sys.stderr)
        return 2
    return result.exit_code
