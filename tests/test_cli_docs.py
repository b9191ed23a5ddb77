"""Docs are tested: every CLI command has help text, every option is explained, and the README shows each
command; ``medbench --help`` stays instant (no heavy import at module level)."""

from __future__ import annotations

import argparse
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


def test_help_is_instant_and_imports_nothing_heavy():
    code = ("import sys; from medbench.harness.cli import build_parser; build_parser(); "
            "heavy = [m for m in ('torch', 'transformers', 'lm_eval', 'datasets', 'pandas') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"building the CLI imported {out}: import heavy libraries inside run()"
