"""List the medbench tasks: names, versions, answer layouts and types, groups, token budgets.

  medbench tasks                      # every task and group
  medbench tasks medbench_mcq         # the tasks a group holds
  medbench tasks --json               # machine-readable
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="task or group names to show (default: all tasks)")
    parser.add_argument("--json", action="store_true", help="print JSON (one object per task) instead of a table")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from medbench.tasks import registry

    specs = registry.expand(list(args.names)) if args.names else registry.list_tasks()
    if args.json:
        print(json.dumps([asdict(s) for s in specs], indent=2))
        return 0
    header = ["task", "version", "family", "scored by", "layout", "answer", "group", "max tokens"]
    rows = [[s.name, s.version, s.family, "generation" if s.output_type == "generate_until" else "loglikelihood",
             s.layout or "-", s.answer + (f" ({s.letters})" if s.letters else ""), s.group or "-",
             str(s.max_gen_toks or "-")] for s in specs]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if not args.names:
        groups = registry.groups()
        print("\ngroups: " + ", ".join(f"{g} ({len(m)} tasks)" for g, m in groups.items()))
    return 0
