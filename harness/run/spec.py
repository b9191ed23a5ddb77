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

import difflib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

DTYPES = ("auto", "float32", "float16", "bfloat16")
#: ``auto`` (the default) is medbench-fast on a CUDA GPU and stock hf on a CPU (see
#: medbench.harness.backends.lm_backends.resolve_backend for why, with the measured numbers).
BACKENDS = ("auto", "hf", "vllm", "medbench-fast")
#: Lineage roles a checkpoint can have (provenance, the spec's ``role``, or its name).
ROLES = ("base", "sft", "grpo")

#: Spec-file keys at the top level, with what each one holds (used in error messages).
TOP_KEYS: dict[str, str] = {
    "checkpoints": "a mapping NAME: SOURCE (or NAME: {source|adapter, base, revision, role})",
    "tasks": "a list of task or group names, or {name, max_new_tokens, chat_template} entries",
    "limit": "documents per task: a positive integer, or a fraction in (0, 1)",
    "data_dir": "a local data directory (instead of the Hugging Face hub)",
    "batch_size": "an integer, 'auto' or 'auto:N'",
    "dtype": "one of " + ", ".join(DTYPES),
    "load_in_4bit": "true or false",
    "max_new_tokens": "a positive integer (every generative task; a task entry may override it)",
    "chat_template": "true or false: the default for tasks that don't say (default: decided per task)",
    "seed": "an integer",
    "output": "the run directory",
    "backend": "one of " + ", ".join(BACKENDS),
    "device": "a torch device such as cuda, cuda:1 or cpu (default: the first GPU, else the CPU)",
    "trust_remote_code": "true or false (default false)",
    "reference": "the checkpoint that others are compared with (default: provenance role 'base', else first)",
    "vllm": "vLLM options: {tensor_parallel_size, data_parallel_size, gpu_memory_utilization, max_model_len}",
    "task_metadata": "a mapping passed to every task's lm-eval metadata (e.g. {sft_train_rows: 1})",
}
CHECKPOINT_KEYS = ("source", "adapter", "base", "revision", "role")
TASK_KEYS = ("name", "max_new_tokens", "chat_template")
VLLM_KEYS = ("tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization", "max_model_len")


class SpecError(ValueError):
    """The bench spec (file or flags) is invalid; the message names where, what, and the expected form."""


def _did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


@dataclass(frozen=True)
class CheckpointSpec:
    """A named checkpoint as the user wrote it, before it is resolved (see :mod:`.checkpoints`).

    Exactly one of ``source`` (a hub id or a local directory: a full model or an adapter) and ``adapter`` is
    set; ``base`` optionally names the base model of an adapter; ``role`` (base / sft / grpo) states the
    checkpoint's place in the lineage when no provenance file does.
    """

    name: str
    source: str | None = None
    adapter: str | None = None
    base: str | None = None
    revision: str | None = None
    role: str | None = None

    def describe(self) -> str:
        if self.adapter:
            return f"{self.base or '<base from adapter_config.json>'} + adapter {self.adapter}"
        if self.base:
            return f"{self.base} + {self.source}"
        return str(self.source)


@dataclass(frozen=True)
class TaskOptions:
    """One task (or group, expanded later) and its per-task overrides."""

    name: str
    max_new_tokens: int | None = None
    chat_template: bool | None = None


@dataclass(frozen=True)
class VllmOptions:
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None


@dataclass(frozen=True)
class BenchSpec:
    """Everything ``medbench bench`` needs to know, validated."""

    checkpoints: tuple[CheckpointSpec, ...]
    tasks: tuple[TaskOptions, ...]
    limit: int | float | None = None
    data_dir: str | None = None
    batch_size: int | str = "auto"
    dtype: str = "auto"
    load_in_4bit: bool = False
    max_new_tokens: int | None = None
    chat_template: bool | None = None
    seed: int = 1234
    output: str | None = None
    backend: str = "auto"
    device: str | None = None
    trust_remote_code: bool = False
    reference: str | None = None
    vllm: VllmOptions = field(default_factory=VllmOptions)
    task_metadata: dict[str, Any] = field(default_factory=dict)

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
    for key in value:
        if key not in CHECKPOINT_KEYS:
            raise SpecError(f"{where}: unknown key {key!r}{_did_you_mean(str(key), CHECKPOINT_KEYS)}; "
                            f"valid keys: {', '.join(CHECKPOINT_KEYS)}")
    vals = {k: (None if value.get(k) is None else str(value[k])) for k in CHECKPOINT_KEYS}
    if bool(vals["source"]) == bool(vals["adapter"]):
        raise SpecError(f"{where}: give exactly one of 'source' (a model or adapter) and 'adapter'")
    if vals["role"] is not None:
        vals["role"] = _choice(vals["role"], ROLES, f"{where}.role")
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


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise SpecError(f"{where}: expected true or false, got {value!r}")


def _pos_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f"{where}: expected a positive integer, got {value!r}")
    return value


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
        for key in item:
            if key not in TASK_KEYS:
                raise SpecError(f"{at}: unknown key {key!r}{_did_you_mean(str(key), TASK_KEYS)}; "
                                f"valid keys: {', '.join(TASK_KEYS)}")
        mnt = item.get("max_new_tokens")
        ct = item.get("chat_template")
        out.append(TaskOptions(
            name=str(item["name"]),
            max_new_tokens=None if mnt is None else _pos_int(mnt, f"{at}.max_new_tokens"),
            chat_template=None if ct is None else _bool(ct, f"{at}.chat_template"),
        ))
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{where}: task {dupes[0]!r} is listed twice")
    return out


def _limit(value: Any, where: str) -> int | float:
    if isinstance(value, bool):
        raise SpecError(f"{where}: expected {TOP_KEYS['limit']}, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value) if "." in value else int(value)
        except ValueError:
            raise SpecError(f"{where}: expected {TOP_KEYS['limit']}, got {value!r}") from None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, float) and 0 < value < 1:
        return value
    if isinstance(value, float) and value >= 1 and value.is_integer():
        return int(value)
    raise SpecError(f"{where}: expected {TOP_KEYS['limit']}, got {value!r}")


def _batch_size(value: Any, where: str) -> int | str:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and (value == "auto" or (value.startswith("auto:") and value[5:].isdigit())):
        return value
    raise SpecError(f"{where}: expected {TOP_KEYS['batch_size']}, got {value!r}")


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise SpecError(f"{where}: {value!r} is not one of {', '.join(choices)}"
                        f"{_did_you_mean(str(value), choices)}")
    return str(value)


def _vllm(value: Any, where: str) -> VllmOptions:
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}: expected {TOP_KEYS['vllm']}")
    for key in value:
        if key not in VLLM_KEYS:
            raise SpecError(f"{where}: unknown key {key!r}{_did_you_mean(str(key), VLLM_KEYS)}; "
                            f"valid keys: {', '.join(VLLM_KEYS)}")
    opts = VllmOptions()
    for key in ("tensor_parallel_size", "data_parallel_size"):
        if value.get(key) is not None:
            opts = replace(opts, **{key: _pos_int(value[key], f"{where}.{key}")})
    if value.get("max_model_len") is not None:
        opts = replace(opts, max_model_len=_pos_int(value["max_model_len"], f"{where}.max_model_len"))
    gmu = value.get("gpu_memory_utilization")
    if gmu is not None:
        if isinstance(gmu, bool) or not isinstance(gmu, (int, float)) or not 0 < gmu <= 1:
            raise SpecError(f"{where}.gpu_memory_utilization: expected a number in (0, 1], got {gmu!r}")
        opts = replace(opts, gpu_memory_utilization=float(gmu))
    return opts


def load_spec_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a spec YAML into a plain mapping (validated later by :func:`build_spec`)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise SpecError(f"--spec {p}: no such file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecError(f"{p}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{p}: expected a mapping with keys such as {', '.join(list(TOP_KEYS)[:4])}, ...")
    for key in data:
        if key not in TOP_KEYS:
            raise SpecError(f"{p}: unknown key {key!r}{_did_you_mean(str(key), tuple(TOP_KEYS))}; "
                            f"valid keys: {', '.join(TOP_KEYS)}")
    # Relative paths in a committed spec are relative to the spec file, not to the working directory.
    base_dir = p.resolve().parent
    for key in ("data_dir", "output"):
        if isinstance(data.get(key), str) and not os.path.isabs(os.path.expanduser(data[key])):
            data[key] = str(base_dir / data[key])
    data["__file__"] = str(p)
    return data


def build_spec(file_data: Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None) -> BenchSpec:
    """Validate a spec from file data (:func:`load_spec_file`) and command-line overrides.

    ``overrides`` uses the same keys as the file; ``None`` values mean "not given". Override rules:
    ``checkpoints`` given on the command line replace the file's checkpoint of the same name and append new
    ones; ``tasks`` replace the file's task list (per-task options from the file are kept for tasks named
    in both); any other key replaces the file's value.
    """
    data = dict(file_data or {})
    where_file = str(data.pop("__file__", "spec"))
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}

    checkpoints = _checkpoints_from_yaml(data["checkpoints"], f"{where_file}: checkpoints") \
        if data.get("checkpoints") is not None else []
    for ck in overrides.pop("checkpoints", []) or []:
        ck = ck if isinstance(ck, CheckpointSpec) else parse_checkpoint_arg(str(ck))
        checkpoints = [c for c in checkpoints if c.name != ck.name] + [ck]
    names = [c.name for c in checkpoints]
    if not checkpoints:
        raise SpecError("no checkpoints: give --checkpoint NAME=SOURCE (once per checkpoint) or a spec file "
                        "with a 'checkpoints' mapping")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"{where_file}: checkpoint name {dupes[0]!r} is used twice; names must be unique")

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
    if merged.get("limit") is not None:
        kwargs["limit"] = _limit(merged["limit"], at("limit"))
    if merged.get("data_dir") is not None:
        kwargs["data_dir"] = str(Path(os.path.expanduser(str(merged["data_dir"]))).resolve())
    if merged.get("batch_size") is not None:
        kwargs["batch_size"] = _batch_size(merged["batch_size"], at("batch_size"))
    if merged.get("dtype") is not None:
        kwargs["dtype"] = _choice(merged["dtype"], DTYPES, at("dtype"))
    for key in ("load_in_4bit", "trust_remote_code", "chat_template"):
        if merged.get(key) is not None:
            kwargs[key] = _bool(merged[key], at(key))
    if merged.get("max_new_tokens") is not None:
        kwargs["max_new_tokens"] = _pos_int(merged["max_new_tokens"], at("max_new_tokens"))
    if merged.get("seed") is not None:
        seed = merged["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise SpecError(f"{at('seed')}: expected an integer, got {seed!r}")
        kwargs["seed"] = seed
    if merged.get("output") is not None:
        kwargs["output"] = str(merged["output"])
    if merged.get("backend") is not None:
        kwargs["backend"] = _choice(merged["backend"], BACKENDS, at("backend"))
    if merged.get("device") is not None:
        kwargs["device"] = str(merged["device"])
    if merged.get("reference") is not None:
        ref = str(merged["reference"])
        if ref not in names:
            raise SpecError(f"{at('reference')}: {ref!r} is not a checkpoint{_did_you_mean(ref, names)}; "
                            f"checkpoints: {', '.join(names)}")
        kwargs["reference"] = ref
    vllm_data = dict(merged.get("vllm") or {})
    for key in VLLM_KEYS:  # flat command-line overrides, e.g. --tensor-parallel-size
        if overrides.get(key) is not None:
            vllm_data[key] = overrides[key]
    if vllm_data:
        kwargs["vllm"] = _vllm(vllm_data, at("vllm"))
    if merged.get("task_metadata") is not None:
        tm = merged["task_metadata"]
        if not isinstance(tm, Mapping) or "data_dir" in tm:
            raise SpecError(f"{at('task_metadata')}: expected a mapping of lm-eval task metadata (data_dir has "
                            f"its own key)")
        kwargs["task_metadata"] = dict(tm)
    spec = BenchSpec(checkpoints=tuple(checkpoints), tasks=tuple(tasks), **kwargs)
    if spec.load_in_4bit and spec.dtype == "float32":
        raise SpecError(f"{at('load_in_4bit')}: 4-bit loading computes in float16/bfloat16; "
                        f"drop --dtype float32 or --load-in-4bit")
    return spec
