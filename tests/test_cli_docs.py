"""Docs are tested: every CLI command has help text, every option is explained, the README shows each command
and names each of its options, every repository path the README names exists; ``medbench --help`` stays
instant (no heavy import at module level)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest
from medbench.harness.cli import COMMANDS, build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_command_is_registered_and_built():
    built = _subparsers(build_parser())
    missing = [name for name in COMMANDS if name not in built]
    assert not missing, f"commands in COMMANDS without a module in harness/cli: {missing}"


def _undocumented(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    """Options without help text, recursing into nested subcommands (each of which needs a help line)."""
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions if (a.help or "").strip()}
            for choice, subparser in action.choices.items():
                if choice not in helped:
                    missing.append(f"{prefix} {choice} (subcommand help)")
                missing += _undocumented(subparser, f"{prefix} {choice}")
            continue
        if not (action.help or "").strip():
            missing.append(f"{prefix} {'/'.join(action.option_strings) or action.dest}")
    return missing


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_and_option_has_help(name):
    sub = _subparsers(build_parser()).get(name)
    if sub is None:
        pytest.fail(f"`medbench {name}` is not built (see test_every_command_is_registered_and_built)")
    assert COMMANDS[name][1].strip(), f"`medbench {name}` has no one-line help"
    assert (sub.description or "").strip(), f"`medbench {name}` has no description (module docstring)"
    undocumented = _undocumented(sub, f"medbench {name}")
    assert not undocumented, f"options without help text: {undocumented}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_appears_in_the_readme(name):
    text = README.read_text(encoding="utf-8")
    assert f"medbench {name}" in text, f"README.md does not show `medbench {name}`"


def _options(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, str]]:
    """(command, option) for every long option of ``parser`` and its nested subcommands; a boolean flag's
    ``--no-`` form is the same option."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            for choice, subparser in action.choices.items():
                found += _options(subparser, f"{prefix} {choice}")
            continue
        negated = isinstance(action, argparse.BooleanOptionalAction)
        found += [(prefix, o) for o in action.option_strings
                  if o.startswith("--") and not (negated and o.startswith("--no-"))]
    return found


def _mentions(text: str, option: str) -> bool:
    """``--output`` as a whole word: ``--output-dir`` does not document it."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_every_option_of_every_command_appears_in_the_readme():
    text = README.read_text(encoding="utf-8")
    options = [opt for name, sub in _subparsers(build_parser()).items() for opt in _options(sub, f"medbench {name}")]
    assert len(options) > 60, "the option scan found almost nothing: it is broken"
    missing = [f"{cmd} {opt}" for cmd, opt in options if not _mentions(text, opt)]
    assert not missing, f"options the README never names: {missing}"


def test_the_option_check_sees_a_missing_option():
    assert _mentions("use `--limit 20`", "--limit") and _mentions("--chat-template/--no-chat-template", "--chat-template")
    assert not _mentions("pass --output-dir DIR", "--output") and not _mentions("--max-steps", "--max")


def test_every_repository_path_the_readme_names_exists():
    """A path in backticks (``harness/stats/metrics.py``) exists in the repository, or in the data layout the
    loaders read (``medical_o1/medical_o1_sft.json`` inside a data folder; tasks/sample_data has them all)."""
    root = README.parent
    text = README.read_text(encoding="utf-8")
    paths = set(re.findall(r"`([\w.\-]+(?:/[\w.\-]+)+\.(?:py|md|yaml|yml|json|jsonl|jinja|toml|txt))`", text))
    assert len(paths) > 10, "the path scan found almost nothing: it is broken"
    gone = sorted(p for p in paths if not (root / p).exists() and not (root / "tasks" / "sample_data" / p).exists())
    assert not gone, f"the README names files that do not exist: {gone}"


def test_help_is_instant_and_imports_nothing_heavy():
    code = ("import sys; from medbench.harness.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'transformers', 'lm_eval', 'datasets', 'pandas') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"building the CLI imported {out}: import heavy libraries inside run()"
