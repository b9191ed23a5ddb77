"""The one error base of medbench, and the one "did you mean" hint.

Every error medbench raises on purpose (a bad spec, a missing checkpoint, a corrupt run directory, a rules
file with a typo, data that does not match its schema, …) derives from :class:`MedbenchError`. Its message
says what was wrong, where, and the fix; its :attr:`~MedbenchError.exit_code` says whose fault it was, so the
command line (``medbench.harness.cli.main``) maps every one of them to a message and an exit status in one
place: :data:`BAD_INPUT` (2) for something the user gave (a flag, a file, a name), :data:`RUN_FAILED` (1) for
a run that could not finish (a model that could not be prepared, a full disk).

It lives in ``tasks/`` because every other folder may import ``tasks`` and ``tasks`` imports nothing of ours.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: Exit status of a usage or input error: a flag, a file or a name the user gave is wrong.
BAD_INPUT = 2
#: Exit status of a run that started from valid input but could not finish.
RUN_FAILED = 1


class MedbenchError(Exception):
    """An error medbench raises on purpose; the message names what, where and the fix.

    Subclasses set :attr:`exit_code`; the CLI prints ``medbench <command>: error: <message>`` and exits
    with it, so no command catches its own list of error types.
    """

    #: The CLI's exit status for this error (:data:`BAD_INPUT` unless a subclass says otherwise).
    exit_code: int = BAD_INPUT


def closest(word: str, choices: Iterable[object]) -> str | None:
    """The choice closest to ``word`` (``difflib`` similarity ≥ 0.6, the one rule for every name medbench
    checks), or ``None`` when nothing is close."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return match[0] if match else None


def did_you_mean(word: str, choices: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for an error message, right after the unknown name; ``""`` when nothing is
    close. Errors name the fix: ``f"unknown task {name!r}{did_you_mean(name, known)}; known: ..."``."""
    match = closest(word, choices)
    return f" (did you mean {match!r}?)" if match is not None else ""


class BackendError(MedbenchError):
    """The chosen backend (evaluation: hf / vllm / medbench-fast; training: unsloth / trl) can't run what was
    asked here (a missing optional package, no GPU, an option it does not support); the message says why and
    what to install or choose instead."""
