"""Which medbench tasks exist, read from their lm-eval YAMLs (the single source of truth).

A :class:`TaskSpec` is what the rest of medbench needs to know about a task without building it in lm-eval:
its output type, answer layout and type, valid letters, version, group and subgroup, token budget. The YAMLs
are indexed by lm-eval's own :class:`~lm_eval.tasks.TaskManager` (so ``include:`` templates merge exactly as
lm-eval merges them) and medbench's fields are read from each task's ``metadata`` block::

    metadata:
      version: 1          # bump when the prompt, the data selection or the grader changes
      family: pubmedqa    # one of FAMILIES
      layout: xml         # xml | think; absent for loglikelihood tasks
      answer: yesno       # yesno | choice | number | free
      letters: ABCD       # choice tasks only

Names resolve with "did you mean": ``get_task("medbench_pubmedq")`` raises :class:`UnknownTaskError` listing
the known names and the closest match.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import MedbenchError, closest, did_you_mean

FAMILIES = ("pubmedqa", "health", "medical_cot", "gsm8k", "medmcqa", "medqa", "mmlu_medical")
OUTPUT_TYPES = ("generate_until", "multiple_choice")
LAYOUTS = ("xml", "think")
ANSWERS = ("yesno", "choice", "number", "free")
#: The group that holds every task; never reported as a task's ``group``.
UMBRELLA = "medbench"


@dataclass(frozen=True)
class TaskSpec:
    """One lm-eval task as medbench sees it.

    ``letters`` are the letters the task's default (hub) source offers; a document may narrow or widen them
    with its own ``letters`` field (MedQA's local file has five options, the hub's four), and the grader
    follows the document. ``group`` is the most specific medbench group holding the task (``None`` when only
    the umbrella ``medbench`` holds it); ``subgroup`` is the Health_Benchmarks specialty of a per-specialty
    subtask (its ``dataset_kwargs.specialty``).
    """

    name: str
    family: str
    output_type: str
    layout: str | None
    answer: str
    letters: str
    version: str
    group: str | None
    subgroup: str | None
    max_gen_toks: int | None


class UnknownTaskError(MedbenchError, KeyError):
    """An unknown task or group name; the message lists what exists and the closest match."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown task or group {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}")
        self.name, self.known, self.suggestion = name, known, closest(name, known)

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class TaskConfigError(MedbenchError, ValueError):
    """A task YAML lm-eval cannot read, or one whose medbench metadata is missing or wrong."""


def include_path() -> Path:
    """The folder to give lm-eval: ``lm_eval --include_path <this>`` or ``TaskManager(include_path=...)``."""
    return Path(__file__).resolve().parent


def _bad(path: Any, problem: str) -> TaskConfigError:
    return TaskConfigError(f"{path}: {problem}")


def _spec(cfg: dict[str, Any], path: Path, group: str | None) -> TaskSpec:
    meta = cfg.get("metadata")
    if not isinstance(meta, dict) or "version" not in meta:
        raise _bad(path, "every medbench task needs a metadata block with a version")

    def pick(key: str, allowed: tuple[str, ...], *, required: bool = True) -> str | None:
        value = meta.get(key)
        if value is None and not required:
            return None
        if value not in allowed:
            raise _bad(path, f"metadata.{key} is {value!r}; expected one of {', '.join(allowed)}")
        return value

    output_type = cfg.get("output_type", "generate_until")
    if output_type not in OUTPUT_TYPES:
        raise _bad(path, f"output_type {output_type!r}; medbench tasks use {', '.join(OUTPUT_TYPES)}")
    layout = pick("layout", LAYOUTS, required=output_type == "generate_until")
    if output_type == "multiple_choice" and layout is not None:
        raise _bad(path, "a loglikelihood (multiple_choice) task has no answer layout; drop metadata.layout")
    answer = pick("answer", ANSWERS)
    letters = str(meta.get("letters") or "")
    if answer == "choice" and not letters:
        raise _bad(path, "a choice task needs metadata.letters (e.g. ABCD)")
    gen = cfg.get("generation_kwargs") or {}
    return TaskSpec(
        name=cfg["task"],
        family=pick("family", FAMILIES),  # type: ignore[arg-type]
        output_type=output_type,
        layout=layout,
        answer=answer,  # type: ignore[arg-type]
        letters=letters,
        version=str(meta["version"]),
        group=group,
        subgroup=(cfg.get("dataset_kwargs") or {}).get("specialty"),
        max_gen_toks=int(gen["max_gen_toks"]) if "max_gen_toks" in gen else None,
    )


@lru_cache(maxsize=1)
def _index() -> tuple[dict[str, TaskSpec], dict[str, list[str]]]:
    from lm_eval.tasks import TaskManager

    root = include_path()
    manager = TaskManager(include_path=str(root), include_defaults=False)
    entries = manager.task_index

    # lm-eval skips a YAML it cannot parse with only a debug log; medbench refuses to lose a task quietly.
    indexed = {Path(e.yaml_path).resolve() for e in entries.values() if e.yaml_path}
    for path in sorted(root.rglob("*.yaml")):
        if "__pycache__" not in path.parts and path.resolve() not in indexed:
            from lm_eval.tasks._yaml_loader import load_yaml

            try:
                cfg = load_yaml(path, resolve_func=False)
            except Exception as e:
                raise _bad(path, f"lm-eval cannot read this task YAML: {e}") from e
            if "task" in cfg or "group" in cfg:
                raise _bad(
                    path, "lm-eval did not index this task YAML: is its task or group name a duplicate?"
                )

    kinds = {name: e.kind.name for name, e in entries.items()}

    def leaves(name: str, seen: tuple[str, ...] = ()) -> list[str]:
        if name in seen:
            raise TaskConfigError(f"group cycle through {name!r}")
        entry = entries[name]
        if kinds[name] in ("TASK", "PY_TASK"):
            return [name]
        if kinds[name] == "TAG":
            return sorted(entry.tags)
        out: list[str] = []
        for member in entry.cfg.get("task", []):
            member_name = member if isinstance(member, str) else member.get("task") or member.get("group")
            if member_name not in entries:
                raise _bad(entry.yaml_path, f"group {name!r} lists unknown member {member_name!r}")
            out += [t for t in leaves(member_name, seen + (name,)) if t not in out]
        return out

    groups = {name: leaves(name) for name, kind in kinds.items() if kind == "GROUP"}
    specs: dict[str, TaskSpec] = {}
    for name, entry in entries.items():
        if kinds[name] != "TASK":
            continue
        holders = sorted(
            (g for g, members in groups.items() if name in members and g != UMBRELLA),
            key=lambda g: (len(groups[g]), g),
        )
        specs[name] = _spec(entry.cfg, entry.yaml_path, holders[0] if holders else None)
    return specs, groups


def list_tasks() -> list[TaskSpec]:
    """Every medbench task, sorted by name."""
    specs, _ = _index()
    return [specs[n] for n in sorted(specs)]


def groups() -> dict[str, list[str]]:
    """Group name -> the names of every task it holds (nested groups expanded), in YAML order."""
    _, grps = _index()
    return {g: list(members) for g, members in sorted(grps.items())}


def get_task(name: str) -> TaskSpec:
    specs, grps = _index()
    if name not in specs:
        raise UnknownTaskError(name, sorted(specs) + sorted(grps))
    return specs[name]


def expand(names: list[str]) -> list[TaskSpec]:
    """Task and group names -> the tasks they mean, each once, in the order given."""
    specs, grps = _index()
    out: list[str] = []
    for name in names:
        if name in specs:
            members = [name]
        elif name in grps:
            members = grps[name]
        else:
            raise UnknownTaskError(name, sorted(specs) + sorted(grps))
        out += [m for m in members if m not in out]
    return [specs[m] for m in out]
