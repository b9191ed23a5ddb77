"""The bench spec: which checkpoints, which tasks, how to run them.

A spec can be written as a YAML file that a team commits and runs in CI, given as command-line flags, or both
(flags override the file). Both routes go through :func:`build_spec`, so a mistake gets the same clear message
wherever it was made: the place (file and key, or flag), what was wrong, what was expected.

Example ``bench.yaml``::

    # medbench bench --spec bench.yaml
    checkpoints:
      base: Qwen/Qwen2.5-3B-Instruct          # a hub id or a local model directory
      sft: ./out/sft_merged
      grpo:                                    # a LoRA adapter, evaluated without merging
        adapter: ./out/grpo_adapter
        base: Qwen/Qwen2.5-3B-Instruct         # optional: read from adapter_config.json otherwise
      qwen:
        source: Qwen/Qwen2.5-7B-Instruct
        role: base                             # optional: base / sft / grpo, for the lineage order
    tasks:
      - medbench_pubmedqa
      - name: medbench_medical_cot
        max_new_tokens: 1024
        chat_template: false
    limit: 100
    max_new_tokens: 512
    output: runs/nightly

On the command line a checkpoint is ``NAME=SOURCE`` or ``NAME=BASE+ADAPTER``.

Roles order checkpoints base → sft → grpo in the run and the report. They come from the spec's ``role``, else
the trainer's provenance file, else the name (a checkpoint *named* base, sft or grpo has that role), else
lineage (a checkpoint that another one's provenance names as its parent is the base).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from medbench.tasks.errors import MedbenchError, did_you_mean
from medbench.tasks.provenance import ROLES

DTYPES = ("auto", "float32", "float16", "bfloat16")
#: ``auto`` (the default) is medbench-fast on a CUDA GPU and stock hf on a CPU (see
#: medbench.harness.backends.lm_backends.resolve_backend for why, with the measured numbers).
BACKENDS = ("auto", "hf", "vllm", "medbench-fast")
#: What ``limit`` takes (the spec key and ``--limit``).
LIMIT_FORMS = "documents per task: a positive integer, or a fraction in (0, 1]"


class SpecError(MedbenchError):
    """The bench spec (file or flags) is invalid; the message names where, what, and the expected form."""


# -- value checks: (value, where) -> the checked value, or a SpecError naming where -------------------------

Check = Callable[[Any, str], Any]


def _str(value: Any, where: str) -> str:
    return str(value)


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise SpecError(f"{where}: expected true or false, got {value!r}")


def _pos_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f"{where}: expected a positive integer, got {value!r}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where}: expected an integer, got {value!r}")
    return value


def _unit_fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise SpecError(f"{where}: expected a number in (0, 1], got {value!r}")
    return float(value)


def _limit(value: Any, where: str) -> int | float:
    """A count (``20``) or a fraction (``0.25``; ``1.0`` = all): written with a point, a fraction."""
    given = value
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            raise SpecError(f"{where}: expected {LIMIT_FORMS}, got {given!r}") from None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, float) and 0 < value <= 1:
        return value
    if isinstance(value, float) and value > 1 and value.is_integer():
        raise SpecError(f"{where}: expected {LIMIT_FORMS}, got {given!r}: a fraction is at most 1; for "
                        f"{int(value)} documents write {int(value)}")
    raise SpecError(f"{where}: expected {LIMIT_FORMS}, got {given!r}")


def check_limit(value: Any, where: str) -> int | float:
    """``--limit`` / ``limit:`` checked: the count or fraction it means, or a :class:`SpecError` naming
    ``where`` (for a command that must check it before it builds the whole spec, as ``medbench demo``)."""
    return _limit(value, where)


def _batch_size(value: Any, where: str) -> int | str:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and (value == "auto" or (value.startswith("auto:") and value[5:].isdigit())):
        return value
    raise SpecError(f"{where}: expected an integer, 'auto' or 'auto:N', got {value!r}")


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise SpecError(f"{where}: {value!r} is not one of {', '.join(choices)}"
                        f"{did_you_mean(str(value), choices)}")
    return str(value)


def _one_of(choices: tuple[str, ...]) -> Check:
    return lambda value, where: _choice(value, choices, where)


def _directory(value: Any, where: str) -> str:
    """An existing directory, as an absolute path; checked here so that a wrong ``--data-dir`` is reported
    under its own name before anything loads (not once per checkpoint, after each model has loaded)."""
    path = Path(os.path.expanduser(str(value))).resolve()
    if not path.is_dir():
        what = "is a file" if path.exists() else "does not exist"
        raise SpecError(f"{where}: {value!r} {what} (resolved to {path}); expected a data folder laid out like "
                        f"tasks/sample_data, or leave it out to read the Hugging Face hub")
    return str(path)


def _task_metadata(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or "data_dir" in value:
        raise SpecError(f"{where}: expected a mapping of lm-eval task metadata (data_dir has its own key)")
    return dict(value)


def option(default: Any = None, *, doc: str, check: Check | None = None, flag: bool = True,
           factory: Callable[[], Any] | None = None) -> Any:
    """A spec field: its default, what it holds (``doc``: error messages and :data:`TOP_KEYS` say it), how a
    value is checked (``check(value, where)``), and whether a ``--flag`` of the same name overrides it."""
    meta = {"doc": doc, "check": check, "flag": flag}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _options(cls: type, value: Any, where: str, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A YAML mapping of one of the option dataclasses below, checked field by field: unknown keys name the
    closest one, every value goes through its field's check."""
    keys = [f.name for f in fields(cls) if f.name not in skip]
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected a mapping with keys {', '.join(keys)}, "
                        f"got {type(value).__name__}")
    for key in value:
        if key not in keys:
            raise SpecError(f"{where}: unknown key {key!r}{did_you_mean(str(key), keys)}; "
                            f"valid keys: {', '.join(keys)}")
    out: dict[str, Any] = {}
    for f in fields(cls):
        if f.name in value and value[f.name] is not None and f.metadata.get("check"):
            out[f.name] = f.metadata["check"](value[f.name], f"{where}.{f.name}")
    return out


@dataclass(frozen=True)
class CheckpointSpec:
    """A named checkpoint as the user wrote it, before it is resolved (see :mod:`.checkpoints`).

    Exactly one of ``source`` and ``adapter`` is set.
    """

    name: str = option(doc="the checkpoint's label in the run and the report (letters, digits, - _ .)")
    source: str | None = option(doc="a hub id or a local directory: a full model or a LoRA adapter",
                                check=_str)
    adapter: str | None = option(doc="a LoRA adapter (hub id or directory), evaluated without merging",
                                 check=_str)
    base: str | None = option(doc="the base model of an adapter (default: adapter_config.json's)", check=_str)
    revision: str | None = option(doc="a hub revision (branch, tag or commit)", check=_str)
    role: str | None = option(doc="base, sft or grpo: its place in the lineage when no provenance file says",
                              check=_one_of(ROLES))

    def describe(self) -> str:
        if self.adapter:
            return f"{self.base or '<base from adapter_config.json>'} + adapter {self.adapter}"
        if self.base:
            return f"{self.base} + {self.source}"
        return str(self.source)


@dataclass(frozen=True)
class TaskOptions:
    """One task (or group, expanded later) and its per-task overrides."""

    name: str = option(doc="a task or group name (see `medbench tasks`)", check=_str)
    max_new_tokens: int | None = option(doc="this task's token limit", check=_pos_int)
    chat_template: bool | None = option(doc="apply the tokenizer's chat template for this task", check=_bool)


@dataclass(frozen=True)
class VllmOptions:
    """How the vllm backend runs (each also a flag: ``--tensor-parallel-size`` …)."""

    tensor_parallel_size: int = option(1, doc="GPUs one model copy is split over", check=_pos_int)
    data_parallel_size: int = option(1, doc="model copies, each on its own GPUs", check=_pos_int)
    gpu_memory_utilization: float | None = option(
        doc="vLLM's share of GPU memory (default 0.9, or what is free at engine start when less is)",
        check=_unit_fraction)
    max_model_len: int | None = option(doc="the longest sequence vLLM plans memory for", check=_pos_int)


def _vllm_forms() -> str:
    return "{" + ", ".join(f.name for f in fields(VllmOptions)) + "}"


@dataclass(frozen=True)
class BenchSpec:
    """Everything ``medbench bench`` needs to know, validated. Each field is a spec-file key (and, where
    ``flag``, a ``--flag``); its ``doc`` is what error messages say it takes."""

    checkpoints: tuple[CheckpointSpec, ...] = option(
        (), flag=False, doc="a mapping NAME: SOURCE (or NAME: {source|adapter, base, revision, role})")
    tasks: tuple[TaskOptions, ...] = option(
        (), flag=False, doc="a list of task or group names, or {name, max_new_tokens, chat_template} entries")
    limit: int | float | None = option(
        doc=LIMIT_FORMS + " (a seeded sample that keeps each task's label mix)", check=_limit)
    data_dir: str | None = option(
        doc="a local data directory (instead of the Hugging Face hub)", check=_directory)
    batch_size: int | str = option("auto", doc="an integer, 'auto' or 'auto:N'", check=_batch_size)
    dtype: str = option("auto", doc="one of " + ", ".join(DTYPES), check=_one_of(DTYPES))
    load_in_4bit: bool = option(False, doc="true or false", check=_bool)
    max_new_tokens: int | None = option(
        doc="a positive integer (every generative task; a task entry may override it)", check=_pos_int)
    chat_template: bool | None = option(
        doc="true or false: the default for tasks that don't say (default: decided per task)", check=_bool)
    seed: int = option(1234, doc="an integer: the sample --limit takes, and lm-eval's seeds", check=_int)
    output: str | None = option(doc="the run directory", check=_str)
    backend: str = option("auto", doc="one of " + ", ".join(BACKENDS), check=_one_of(BACKENDS))
    device: str | None = option(
        doc="a torch device such as cuda, cuda:1 or cpu (default: the first GPU, else the CPU)", check=_str)
    trust_remote_code: bool = option(False, doc="true or false (default false)", check=_bool)
    reference: str | None = option(
        doc="the checkpoint that others are compared with (default: provenance role 'base', else first)",
        check=_str)
    vllm: VllmOptions = option(  # noqa: RUF009 - option() returns a dataclasses.field with a default_factory
        factory=VllmOptions, flag=False, doc="vLLM options: " + _vllm_forms())
    task_metadata: dict[str, Any] = option(  # noqa: RUF009 - the same
        factory=dict, flag=False, check=_task_metadata,
        doc="a mapping passed to every task's lm-eval metadata (e.g. {sft_train_rows: 1})")

    def checkpoint(self, name: str) -> CheckpointSpec:
        for c in self.checkpoints:
            if c.name == name:
                return c
        raise KeyError(name)

    def task_options(self, name: str) -> TaskOptions | None:
        for t in self.tasks:
            if t.name == name:
                return t
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for run.json (no secrets: tokens are never part of a spec)."""
        return asdict(self)


#: Spec-file keys at the top level, with what each one holds (used in error messages): the fields above.
TOP_KEYS: dict[str, str] = {f.name: f.metadata["doc"] for f in fields(BenchSpec)}
CHECKPOINT_KEYS: tuple[str, ...] = tuple(f.name for f in fields(CheckpointSpec) if f.name != "name")
TASK_KEYS: tuple[str, ...] = tuple(f.name for f in fields(TaskOptions))
VLLM_KEYS: tuple[str, ...] = tuple(f.name for f in fields(VllmOptions))
#: The keys ``medbench bench`` flags override (``--max-new-tokens`` -> ``max_new_tokens``); ``--checkpoint``
#: and ``--tasks`` are handled apart (they add to and replace lists).
FLAG_KEYS: tuple[str, ...] = tuple(f.name for f in fields(BenchSpec) if f.metadata["flag"]) + VLLM_KEYS


# -- parsing ---------------------------------------------------------------------------------------------


def parse_checkpoint_arg(text: str) -> CheckpointSpec:
    """Parse ``--checkpoint NAME=SOURCE`` or ``NAME=BASE+ADAPTER``.

    A SOURCE that exists as a path is never split on ``+`` (a directory may contain one).
    """
    if "=" not in text:
        raise SpecError(
            f"--checkpoint {text!r}: expected NAME=SOURCE, e.g. --checkpoint base=Qwen/Qwen2.5-3B-Instruct "
            f"or --checkpoint grpo=./out/grpo_adapter or --checkpoint grpo=BASE_ID+./out/grpo_adapter"
        )
    name, source = (s.strip() for s in text.split("=", 1))
    where = f"--checkpoint {text!r}"
    _check_name(name, where)
    if not source:
        raise SpecError(f"{where}: the source after '=' is empty; give a hub id or a local directory")
    if "+" in source and not os.path.exists(os.path.expanduser(source)):
        base, adapter = (s.strip() for s in source.split("+", 1))
        if not base or not adapter:
            raise SpecError(f"{where}: expected BASE+ADAPTER with both parts, got {source!r}")
        return CheckpointSpec(name=name, adapter=adapter, base=base)
    return CheckpointSpec(name=name, source=source)


def _check_name(name: str, where: str) -> None:
    if not name:
        raise SpecError(f"{where}: the checkpoint name is empty; names label the checkpoint in the report")
    bad = [c for c in name if not (c.isalnum() or c in "-_.")]
    if bad:
        raise SpecError(
            f"{where}: checkpoint name {name!r} contains {''.join(sorted(set(bad)))!r}; "
            f"use letters, digits, '-', '_' or '.'"
        )


def _checkpoint_from_yaml(name: Any, value: Any, where: str) -> CheckpointSpec:
    name = str(name)
    _check_name(name, where)
    if isinstance(value, str):
        return parse_checkpoint_arg(f"{name}={value}")
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected a source string or a mapping with keys {CHECKPOINT_KEYS}, "
                        f"got {type(value).__name__}")
    vals = _options(CheckpointSpec, value, where, skip=("name",))
    if bool(vals.get("source")) == bool(vals.get("adapter")):
        raise SpecError(f"{where}: give exactly one of 'source' (a model or adapter) and 'adapter'")
    return CheckpointSpec(name=name, **vals)


def _checkpoints_from_yaml(value: Any, where: str) -> list[CheckpointSpec]:
    out: list[CheckpointSpec] = []
    if isinstance(value, Mapping):
        for name, v in value.items():
            out.append(_checkpoint_from_yaml(name, v, f"{where}.{name}"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, Mapping) or "name" not in item:
                raise SpecError(f"{where}[{i}]: a list entry needs a 'name' and a 'source' or 'adapter'")
            rest = {k: v for k, v in item.items() if k != "name"}
            out.append(_checkpoint_from_yaml(item["name"], rest, f"{where}[{i}]"))
    else:
        raise SpecError(f"{where}: expected {TOP_KEYS['checkpoints']}")
    return out


def _tasks_from_yaml(value: Any, where: str) -> list[TaskOptions]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise SpecError(f"{where}: expected {TOP_KEYS['tasks']}")
    out = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            out.append(TaskOptions(name=item))
            continue
        if not isinstance(item, Mapping) or "name" not in item:
            raise SpecError(f"{at}: expected a task name or a mapping with a 'name'")
        out.append(TaskOptions(**_options(TaskOptions, item, at)))
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{where}: task {dupes[0]!r} is listed twice")
    return out


def yaml_load_unique(text: str) -> Any:
    """``yaml.safe_load``, except that a key given twice in one mapping is an error (a
    ``yaml.constructor.ConstructorError`` with the line of both), where PyYAML keeps the last one silently: two
    checkpoints under one name in a spec, or two ``"*"`` entries in gate rules, would otherwise lose one
    without a word. The one YAML reader of medbench's own files (spec and gate rules)."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        loader.flatten_mapping(node)
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    f"while reading a mapping (first {key!r} at line {seen[key].line + 1})", seen[key],
                    f"duplicate key {key!r}: YAML would keep only the last one; merge the two", key_node.start_mark)
            seen[key] = key_node.start_mark
        return loader.construct_mapping(node, deep=deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader subclass: safe


_NAME_LINE = re.compile(r"^(task|group):[ \t]*([A-Za-z0-9_.\-]+)[ \t]*(?:#.*)?$", re.MULTILINE)


def declared_task_names() -> list[str]:
    """Every task and group name the task YAMLs declare (their top-level ``task:`` / ``group:`` line), read as
    text in milliseconds: what :func:`check_task_names` compares with before lm-eval indexes the YAMLs (about a
    second) or any heavy library is imported. The registry (:mod:`medbench.tasks.registry`, lm-eval's own
    index) stays the source of truth; tests/test_bad_input.py checks the two name the same tasks."""
    from medbench.tasks.registry import include_path

    names: list[str] = []
    for path in sorted(include_path().rglob("*.yaml")):
        if "__pycache__" not in path.parts:
            names += [m.group(2) for m in _NAME_LINE.finditer(path.read_text(encoding="utf-8"))]
    return sorted(set(names))


def check_task_names(spec: BenchSpec, where: str = "--tasks") -> None:
    """Raise :class:`SpecError` for a task or group name no task YAML declares, with the closest name, before
    anything heavy loads (a misspelled ``--tasks`` is reported in well under a second). ``where`` names the
    flag or the spec file's key the tasks came from."""
    from medbench.tasks.registry import UnknownTaskError

    known = declared_task_names()
    for t in spec.tasks:
        if t.name not in known:
            raise SpecError(f"{where}: {UnknownTaskError(t.name, known)}; see `medbench tasks`")


def load_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a spec YAML into a plain mapping (validated later by :func:`build_spec`)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SpecError(f"--spec {p}: no such file")
    try:
        data = yaml_load_unique(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{p}: expected a mapping with keys such as {', '.join(list(TOP_KEYS)[:4])}, ...")
    for key in data:
        if key not in TOP_KEYS:
            raise SpecError(f"{p}: unknown key {key!r}{did_you_mean(str(key), TOP_KEYS)}; "
                            f"valid keys: {', '.join(TOP_KEYS)}")
    # Relative paths in a committed spec are relative to the spec file, not to the working directory.
    base_dir = p.resolve().parent
    for key in ("data_dir", "output"):
        if isinstance(data.get(key), str) and not os.path.isabs(os.path.expanduser(data[key])):
            data[key] = str(base_dir / data[key])
    data["__file__"] = str(p)
    return data


def build_spec(file_data: Mapping[str, Any] | None = None,
               overrides: Mapping[str, Any] | None = None) -> BenchSpec:
    """Validate a spec from file data (:func:`load_spec_file`) and command-line overrides.

    ``overrides`` uses the same keys as the file (and the flat vLLM keys of :data:`FLAG_KEYS`); ``None``
    values mean "not given". Override rules: ``checkpoints`` given on the command line replace the file's
    checkpoint of the same name and append new ones; ``tasks`` replace the file's task list (per-task options
    from the file are kept for tasks named in both); any other key replaces the file's value. Every value is
    checked by its field's check (:class:`BenchSpec`).
    """
    data = dict(file_data or {})
    where_file = str(data.pop("__file__", "spec"))
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key in overrides:
        if key not in TOP_KEYS and key not in VLLM_KEYS:
            raise SpecError(f"unknown spec option {key!r}{did_you_mean(key, FLAG_KEYS)}; "
                            f"options: {', '.join(TOP_KEYS)}")

    checkpoints = _checkpoints_from_yaml(data["checkpoints"], f"{where_file}: checkpoints") \
        if data.get("checkpoints") is not None else []
    from_flags: dict[str, CheckpointSpec] = {}
    for ck in overrides.pop("checkpoints", []) or []:
        ck = ck if isinstance(ck, CheckpointSpec) else parse_checkpoint_arg(str(ck))
        if ck.name in from_flags:  # two flags, one name: one of them would silently vanish from the run
            raise SpecError(f"--checkpoint: the name {ck.name!r} is given twice ({from_flags[ck.name].describe()} "
                            f"and {ck.describe()}); names label the checkpoints, so each needs its own")
        from_flags[ck.name] = ck
        checkpoints = [c for c in checkpoints if c.name != ck.name] + [ck]  # a flag replaces the file's entry
    names = [c.name for c in checkpoints]
    if not checkpoints:
        raise SpecError("no checkpoints: give --checkpoint NAME=SOURCE (once per checkpoint) or a spec file "
                        "with a 'checkpoints' mapping")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{where_file}: checkpoint name {dupes[0]!r} is used twice; names must be unique")
    folded: dict[str, str] = {}
    for n in names:  # the run directory names files after checkpoints: on a case-insensitive disk they'd collide
        if n.casefold() in folded:
            raise SpecError(f"checkpoint names {folded[n.casefold()]!r} and {n!r} differ only in case; their "
                            f"files in the run directory would collide on macOS or Windows: rename one")
        folded[n.casefold()] = n

    tasks = _tasks_from_yaml(data["tasks"], f"{where_file}: tasks") if data.get("tasks") is not None else []
    if "tasks" in overrides:
        cli_tasks = _tasks_from_yaml(overrides.pop("tasks"), "--tasks")
        by_name = {t.name: t for t in tasks}
        tasks = [by_name.get(t.name, t) for t in cli_tasks]
    if not tasks:
        raise SpecError("no tasks: give --tasks NAME[,NAME...] (see `medbench tasks`) or a 'tasks' list "
                        "in the spec file")

    merged = {**{k: v for k, v in data.items() if k not in ("checkpoints", "tasks")}, **overrides}

    def at(key: str) -> str:
        return f"--{key.replace('_', '-')}" if key in overrides else f"{where_file}: {key}"

    kwargs: dict[str, Any] = {}
    for f in fields(BenchSpec):
        if f.name in ("checkpoints", "tasks", "vllm") or merged.get(f.name) is None:
            continue
        kwargs[f.name] = f.metadata["check"](merged[f.name], at(f.name))
    if kwargs.get("reference") is not None and kwargs["reference"] not in names:
        ref = kwargs["reference"]
        raise SpecError(f"{at('reference')}: {ref!r} is not a checkpoint{did_you_mean(ref, names)}; "
                        f"checkpoints: {', '.join(names)}")
    vllm = _options(VllmOptions, merged.get("vllm") or {}, at("vllm"))
    for f in fields(VllmOptions):  # flat command-line overrides, e.g. --tensor-parallel-size
        if overrides.get(f.name) is not None:
            vllm[f.name] = f.metadata["check"](overrides[f.name], at(f.name))
    if vllm:
        kwargs["vllm"] = VllmOptions(**vllm)
    spec = BenchSpec(checkpoints=tuple(checkpoints), tasks=tuple(tasks), **kwargs)
    if spec.load_in_4bit and spec.dtype == "float32":
        raise SpecError(f"{at('load_in_4bit')}: 4-bit loading computes in float16/bfloat16; "
                        f"drop --dtype float32 or --load-in-4bit")
    return spec
