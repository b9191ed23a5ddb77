"""Recipe configs: one YAML file per recipe, loaded, overridden from the command line and validated.

A config has these sections. ``model``, ``lora``, ``data``, ``output``, ``eval``, ``provenance`` and
``warmup`` are medbench's own: each is a documented dataclass below (one field, one docstring), and the
fields' types are what validation checks, so a section's YAML keys, defaults, checks and the attributes the
recipes read (``cfg.model.name``) are one definition. ``training`` is passed to TRL's ``SFTConfig`` /
``GRPOConfig`` unchanged, so it is validated against TRL's own dataclass (one source of truth for what a
training argument is called). A GRPO config may add ``warmup``: a short SFT on GRPO training rows written in
the recipe's ``<reasoning>/<answer>`` layout before GRPO proper (Unsloth's "pre fine-tune for formatting"),
for a model that never writes the layout by itself and so would get no reward; its ``training`` mapping goes
to TRL's ``SFTConfig``.
Every config file starts with a comment line giving the exact command that runs it.

Overrides use dotted keys with YAML values, e.g. ``training.max_steps=2 model.name=/path/to/model``.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from medbench.tasks.errors import MedbenchError, did_you_mean

RecipeName = Literal["sft", "grpo"]
RECIPES: tuple[RecipeName, ...] = ("sft", "grpo")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

#: A ``model.name`` that means "build medbench's tiny random-weight Qwen2 in the output directory".
TINY_MODEL = "medbench-tiny"
#: Sources whose rows carry reasoning text a warm-up can write: GSM8K's worked solutions, PubMedQA's long answers.
WARMUP_SOURCES = ("gsm8k", "pubmedqa_artificial")
_ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ConfigError(MedbenchError):
    """A recipe config is missing, malformed or names an unknown field; the message says where and the fix."""


@dataclass(frozen=True)
class ModelSection:
    """``model:`` — the model a recipe trains and how it is loaded."""

    name: str | None = None
    """A hub id, a local directory, or ``medbench-tiny`` (the tiny random-weight Qwen2, built by the CLI)."""
    max_seq_length: int = 2048
    """Longest training sequence, in tokens."""
    load_in_4bit: bool = True
    """Load the weights in 4-bit (QLoRA; needs a CUDA GPU)."""
    dtype: str | None = None
    """Weights dtype (``bfloat16``, ``float16``, ``float32``); ``None``: the backend's choice."""
    fast_inference: bool = False
    """GRPO generation through vLLM, on a CUDA GPU with vLLM installed: Unsloth's ``fast_inference`` (its vLLM
    engine shares the LoRA weights) on ``unsloth``, TRL's ``use_vllm`` in colocate mode (the same process, merged
    weights pushed to vLLM every step) on ``trl``; elsewhere generation runs through transformers."""
    gpu_memory_utilization: float = 0.5
    """vLLM's share of GPU memory (with ``fast_inference``)."""
    chat_template: str | None = None
    """A chat template to set on the tokenizer; ``None``: the tokenizer's own."""
    adapter: str | None = None
    """A LoRA adapter folder to go on training (e.g. GRPO from the SFT adapter): one adapter over the base then
    holds every stage; its rank, alpha and target modules must equal the lora section's."""


@dataclass(frozen=True)
class LoraSection:
    """``lora:`` — the LoRA adapter attached to the model."""

    r: int = 16
    """Rank."""
    alpha: float = 16
    """``lora_alpha``."""
    dropout: float = 0.0
    """``lora_dropout``."""
    target_modules: list[str] = field(default_factory=lambda: list(_ALL_LINEAR))
    """The projections that get an adapter."""
    bias: str = "none"
    """PEFT's ``bias``."""
    gradient_checkpointing: str | bool = "unsloth"
    """``unsloth`` (Unsloth's offloaded checkpointing), ``true`` or ``false``."""
    random_state: int = 3407
    """Seed of the LoRA A matrices."""


@dataclass(frozen=True)
class SftData:
    """``data:`` of an SFT recipe — medical-o1 chain-of-thought rows."""

    dataset: str = "FreedomIntelligence/medical-o1-reasoning-SFT"
    """Hub dataset id."""
    config: str = "en"
    """Hub dataset config."""
    split: str = "train[0:500]"
    """The slice trained on (``train[A:B]``)."""
    data_dir: str | None = None
    """A local data folder instead of the hub (``sample``: the bundled tasks/sample_data)."""


@dataclass(frozen=True)
class GrpoData:
    """``data:`` of a GRPO recipe — GSM8K + PubMedQA pqa_artificial + Health_Benchmarks prompts."""

    sources: list[str] = field(default_factory=lambda: ["gsm8k", "pubmedqa_artificial", "health_benchmarks"])
    """Training sources (see ``medbench.trainers.data.GRPO_SOURCES``)."""
    health_specialties: str | list[str] = "all"
    """Health_Benchmarks specialties: ``all`` or a list."""
    max_context_chars: int = 1024
    """PubMedQA rows with a longer context are left out (the recipe's filter)."""
    max_prompt_tokens: int = 1024
    """Prompts longer than this are dropped in data preparation (TRL 1.15 has no max_prompt_length)."""
    limit_per_source: int | None = None
    """At most this many rows per source; ``None``: all."""
    shuffle_seed: int = 3407
    """Seed of the shuffle that mixes the sources."""
    data_dir: str | None = None
    """A local data folder instead of the hub (``sample``: the bundled tasks/sample_data)."""


@dataclass(frozen=True)
class OutputSection:
    """``output:`` — what is saved, where."""

    dir: str | None = None
    """The output folder (required): adapter, merged model, trainer state, provenance."""
    save_merged_16bit: bool = True
    """Also save the merged 16-bit model."""
    push_to_hub: str | None = None
    """A hub repository to push to (needs HF_TOKEN)."""
    gguf_quantization: str | None = None
    """Also save a GGUF with this quantization (Unsloth)."""


@dataclass(frozen=True)
class EvalSection:
    """``eval:`` — a small medbench slice during training (``medbench.harness.run.evaluate``)."""

    every_n_steps: int | None = None
    """Evaluate every N optimizer steps (and at the end); ``None``: never."""
    tasks: list[str] = field(default_factory=lambda: ["medbench_pubmedqa"])
    """medbench task or group names."""
    limit: int = 8
    """Documents per task: the seeded, label-stratified sample ``medbench bench --limit N`` takes."""
    max_new_tokens: int = 256
    """Token limit of each completion."""
    data_dir: str | None = None
    """Evaluation data folder; ``None``: the data section's."""


@dataclass(frozen=True)
class ProvenanceSection:
    """``provenance:`` — what the saved checkpoints say they are."""

    role: str | None = None
    """Lineage role (base / sft / grpo); ``None``: the recipe's name."""
    parent: str | None = None
    """The model trained from; ``None``: the adapter it went on training (model.adapter), else the base."""


@dataclass(frozen=True)
class WarmupSection:
    """``warmup:`` — GRPO's optional format warm-up (see the module docstring); ``steps`` 0 means none."""

    steps: int = 0
    """Optimizer steps of the warm-up SFT; 0: no warm-up."""
    sources: list[str] = field(default_factory=lambda: list(WARMUP_SOURCES))
    """GRPO sources with reasoning text to write in the layout (a subset of :data:`WARMUP_SOURCES`)."""
    rows: int | None = None
    """At most this many rows (after the GRPO shuffle); ``None``: all."""
    training: dict[str, Any] = field(default_factory=dict)
    """TRL ``SFTConfig`` fields (``max_steps`` is set from ``steps``)."""


#: The medbench-owned sections and their dataclasses (``data`` depends on the recipe).
_SECTION_TYPES: dict[str, type] = {
    "model": ModelSection, "lora": LoraSection, "output": OutputSection, "eval": EvalSection,
    "provenance": ProvenanceSection, "warmup": WarmupSection,
}
_DATA_TYPES: dict[RecipeName, type] = {"sft": SftData, "grpo": GrpoData}
_SECTIONS = ("recipe", "model", "lora", "data", "training", "output", "eval", "provenance", "warmup")


@dataclass(frozen=True)
class RecipeConfig:
    """A validated recipe config. ``training`` holds TRL config keyword arguments as written in the file."""

    recipe: RecipeName
    model: ModelSection
    lora: LoraSection
    data: SftData | GrpoData
    training: dict[str, Any]
    output: OutputSection
    eval: EvalSection
    provenance: ProvenanceSection
    warmup: WarmupSection = field(default_factory=WarmupSection)
    source: str = "<dict>"
    overrides: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The effective config as plain data (what provenance records and :meth:`sha256` hashes)."""
        return {
            "recipe": self.recipe,
            "model": asdict(self.model),
            "lora": asdict(self.lora),
            "data": asdict(self.data),
            "training": copy.deepcopy(self.training),
            "output": asdict(self.output),
            "eval": asdict(self.eval),
            "provenance": asdict(self.provenance),
            **({"warmup": asdict(self.warmup)} if self.warmup.steps else {}),
        }

    def sha256(self) -> str:
        """Hash of the effective config (after overrides), recorded in provenance."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def output_dir(self) -> Path:
        return Path(str(self.output.dir))


def _unknown(kind: str, name: str, known: list[str] | tuple[str, ...], where: str) -> ConfigError:
    return ConfigError(f"{where}: unknown {kind} {name!r}{did_you_mean(name, known)}; known: "
                       f"{', '.join(sorted(known))}")


def _accepted(annotation: Any) -> tuple[type, ...]:
    """The Python types a YAML value may have for a field annotation: ``float`` also takes an int (YAML gives
    ``0`` where ``0.0`` is meant), ``X | None`` also takes null, ``list[str]`` any list."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return tuple(t for arg in typing.get_args(annotation) for t in _accepted(arg))
    if annotation is type(None):
        return (type(None),)
    if annotation is float:
        return (float, int)
    return (origin or annotation,)


def _check_section(section: str, values: Any, cls: type, where: str) -> Any:
    """Build the section's dataclass from its YAML mapping: unknown keys name the closest field, a value of
    the wrong type says what the field takes, missing keys get the field's default."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: section {section!r} must be a mapping of field: value, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key, value in values.items():
        if key not in hints:
            raise _unknown(f"field in section {section!r}", key, known, where)
        accepted = _accepted(hints[key])
        # bool is an int subclass and must not pass as a number
        ok = isinstance(value, accepted) and not (isinstance(value, bool) and bool not in accepted)
        if not ok:
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in accepted)
            raise ConfigError(f"{where}: {section}.{key} must be {expected}, got {value!r}")
    return cls(**copy.deepcopy(values))


def _yaml_loader():
    """PyYAML's safe loader with YAML 1.2's scalars: only true/false are booleans (``save_strategy: no`` stays
    the string TRL expects) and ``2e-4`` is a float (YAML 1.1 wants ``2.0e-4``)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                 list("tTfF"))
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789."))
    return Loader


def _yaml(text: str) -> Any:
    import yaml

    return yaml.load(text, Loader=_yaml_loader())  # a SafeLoader subclass: no arbitrary objects


def _parse_override(text: str) -> tuple[list[str], Any]:
    import yaml

    if "=" not in text:
        raise ConfigError(
            f"override {text!r} is not of the form section.field=value (e.g. training.max_steps=2)"
        )
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"override {text!r}: the key must be section.field (e.g. training.max_steps=2)")
    try:
        value = _yaml(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: the value is not valid YAML ({e})") from e
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with dotted ``key=value`` overrides applied."""
    out = copy.deepcopy(raw)
    for text in overrides:
        parts, value = _parse_override(text)
        if parts[0] not in _SECTIONS or parts[0] == "recipe":
            raise _unknown("section", parts[0], [s for s in _SECTIONS if s != "recipe"], f"override {text!r}")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {p!r} is not a section")
        node[parts[-1]] = value
    return out


def trl_config_class(recipe: RecipeName):
    """TRL's config dataclass for a recipe (imported lazily: TRL imports transformers)."""
    if recipe == "sft":
        from trl import SFTConfig

        return SFTConfig
    from trl import GRPOConfig

    return GRPOConfig


def validate_training_keys(recipe: RecipeName, training: dict[str, Any], where: str) -> None:
    """Every ``training`` key must be a field of TRL's config for this recipe."""
    import dataclasses

    known = [f.name for f in dataclasses.fields(trl_config_class(recipe))]
    for key in training:
        if key not in known:
            raise _unknown(f"TRL {trl_config_class(recipe).__name__} field", key, known, f"{where}: training")


def from_dict(raw: dict[str, Any], *, source: str = "<dict>", overrides: list[str] | None = None,
              check_training: bool = True) -> RecipeConfig:
    """Validate a raw config mapping (as read from YAML) into a :class:`RecipeConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: a recipe config must be a YAML mapping, got {type(raw).__name__}")
    for key in raw:
        if key not in _SECTIONS:
            raise _unknown("section", key, _SECTIONS, source)
    recipe = raw.get("recipe")
    if recipe not in RECIPES:
        raise ConfigError(f"{source}: 'recipe' must be one of {list(RECIPES)}, got {recipe!r}")
    sections = {name: _check_section(name, raw.get(name), cls, source) for name, cls in _SECTION_TYPES.items()}
    data = _check_section("data", raw.get("data"), _DATA_TYPES[recipe], source)
    model, output, warmup = sections["model"], sections["output"], sections["warmup"]
    if not model.name:
        raise ConfigError(f"{source}: model.name is required (a hub id, a local directory or {TINY_MODEL!r})")
    if not output.dir:
        raise ConfigError(f"{source}: output.dir is required (where the adapter and merged model are saved)")
    prov = sections["provenance"]
    sections["provenance"] = dataclasses.replace(prov, role=prov.role or recipe)
    training = raw.get("training") or {}
    if not isinstance(training, dict):
        raise ConfigError(f"{source}: section 'training' must be a mapping of TRL config fields")
    if check_training:
        validate_training_keys(recipe, training, source)
    if warmup.steps:
        if recipe != "grpo":
            raise ConfigError(f"{source}: a warmup section belongs to a GRPO config (it teaches the GRPO layout "
                              f"before GRPO); an SFT config trains on its own data")
        if warmup.steps < 0:
            raise ConfigError(f"{source}: warmup.steps must be 0 (no warm-up) or a positive number of steps")
        for name in warmup.sources:
            if name not in WARMUP_SOURCES:
                raise _unknown("warmup source (a GRPO source with reasoning text)", name, list(WARMUP_SOURCES),
                               f"{source}: warmup.sources")
        if "max_steps" in warmup.training:
            raise ConfigError(f"{source}: warmup.training.max_steps: give warmup.steps instead")
        if check_training:
            validate_training_keys("sft", warmup.training, f"{source}: warmup")
    if recipe == "grpo":
        from .data import GRPO_SOURCES

        for name in data.sources:
            if name not in GRPO_SOURCES:
                raise _unknown("GRPO data source", name, list(GRPO_SOURCES), f"{source}: data.sources")
    return RecipeConfig(recipe=recipe, data=data, training=dict(training), source=source,
                        overrides=list(overrides or []), **sections)


def resolve_config_path(path: str | Path) -> Path:
    """A config path as given, or the name of a bundled config (``grpo_qwen25_3b_medical``)."""
    p = Path(path)
    if p.is_file():
        return p
    bundled = CONFIG_DIR / (p.name if p.suffix else f"{p.name}.yaml")
    if bundled.is_file():
        return bundled
    names = sorted(c.stem for c in CONFIG_DIR.glob("*.yaml"))
    raise ConfigError(f"config file {str(path)!r} not found{did_you_mean(p.stem, names)}; bundled configs "
                      f"({CONFIG_DIR}): {', '.join(names)}")


def load_config(path: str | Path, overrides: list[str] | None = None, *, check_training: bool = True) -> RecipeConfig:
    """Read a recipe YAML, apply overrides, validate. Errors name the file, the field and the fix."""
    import yaml

    p = resolve_config_path(path)
    try:
        raw = _yaml(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from e
    raw = apply_overrides(raw or {}, list(overrides or []))
    return from_dict(raw, source=str(p), overrides=overrides, check_training=check_training)


def first_line_command(path: str | Path) -> str:
    """The command that a config file's first comment line says runs it."""
    line = Path(path).read_text(encoding="utf-8").splitlines()[0]
    return line.lstrip("#").strip()
