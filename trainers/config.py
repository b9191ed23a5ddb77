"""Recipe configs: one YAML file per recipe, loaded, overridden from the command line and validated.

A config has these sections. ``model``, ``lora``, ``data``, ``output``, ``eval`` and ``provenance`` are
medbench's own and are checked here field by field; ``training`` is passed to TRL's ``SFTConfig`` /
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
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

RecipeName = Literal["sft", "grpo"]
RECIPES: tuple[RecipeName, ...] = ("sft", "grpo")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

#: A ``model.name`` that means "build medbench's tiny random-weight Qwen2 in the output directory".
TINY_MODEL = "medbench-tiny"

# Each medbench-owned section: field -> (accepted python types, default). ``None`` in types means nullable.
_MODEL_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "name": ((str,), None),
    "max_seq_length": ((int,), 2048),
    "load_in_4bit": ((bool,), True),
    "dtype": ((str, type(None)), None),
    "fast_inference": ((bool,), False),
    "gpu_memory_utilization": ((float, int), 0.5),
    "chat_template": ((str, type(None)), None),
    # a LoRA adapter folder to go on training (e.g. GRPO from the SFT adapter): one adapter over the base then
    # holds every stage; its rank, alpha and target modules must equal the lora section's
    "adapter": ((str, type(None)), None),
}
_LORA_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "r": ((int,), 16),
    "alpha": ((int, float), 16),
    "dropout": ((float, int), 0.0),
    "target_modules": ((list,), ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    "bias": ((str,), "none"),
    "gradient_checkpointing": ((str, bool), "unsloth"),
    "random_state": ((int,), 3407),
}
_OUTPUT_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "dir": ((str,), None),
    "save_merged_16bit": ((bool,), True),
    "push_to_hub": ((str, type(None)), None),
    "gguf_quantization": ((str, type(None)), None),
}
_EVAL_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "every_n_steps": ((int, type(None)), None),
    "tasks": ((list,), ["medbench_pubmedqa"]),
    "limit": ((int,), 8),
    "max_new_tokens": ((int,), 256),
    "data_dir": ((str, type(None)), None),
}
_PROVENANCE_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "role": ((str,), None),
    "parent": ((str, type(None)), None),
}
_DATA_FIELDS: dict[RecipeName, dict[str, tuple[tuple[type, ...], Any]]] = {
    "sft": {
        "dataset": ((str,), "FreedomIntelligence/medical-o1-reasoning-SFT"),
        "config": ((str,), "en"),
        "split": ((str,), "train[0:500]"),
        "data_dir": ((str, type(None)), None),
    },
    "grpo": {
        "sources": ((list,), ["gsm8k", "pubmedqa_artificial", "health_benchmarks"]),
        "health_specialties": ((str, list), "all"),
        "max_context_chars": ((int,), 1024),
        "max_prompt_tokens": ((int,), 1024),
        "limit_per_source": ((int, type(None)), None),
        "shuffle_seed": ((int,), 3407),
        "data_dir": ((str, type(None)), None),
    },
}
#: The optional format warm-up of a GRPO config (see the module docstring); ``steps`` 0 means none.
_WARMUP_FIELDS: dict[str, tuple[tuple[type, ...], Any]] = {
    "steps": ((int,), 0),
    "sources": ((list,), ["gsm8k", "pubmedqa_artificial"]),  # sources with reasoning text to write
    "rows": ((int, type(None)), None),  # at most this many rows (after the GRPO shuffle); null: all
    "training": ((dict,), {}),  # TRL SFTConfig fields (max_steps is set from ``steps``)
}
#: Sources whose rows carry reasoning text a warm-up can write: GSM8K's worked solutions, PubMedQA's long answers.
WARMUP_SOURCES = ("gsm8k", "pubmedqa_artificial")
_SECTIONS = ("recipe", "model", "lora", "data", "training", "output", "eval", "provenance", "warmup")


class ConfigError(ValueError):
    """A recipe config is missing, malformed or names an unknown field; the message says where and the fix."""


@dataclass
class RecipeConfig:
    """A validated recipe config. ``training`` holds TRL config keyword arguments as written in the file."""

    recipe: RecipeName
    model: dict[str, Any]
    lora: dict[str, Any]
    data: dict[str, Any]
    training: dict[str, Any]
    output: dict[str, Any]
    eval: dict[str, Any]
    provenance: dict[str, Any]
    warmup: dict[str, Any] = field(default_factory=lambda: {"steps": 0})
    source: str = "<dict>"
    overrides: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "model": self.model,
            "lora": self.lora,
            "data": self.data,
            "training": self.training,
            "output": self.output,
            "eval": self.eval,
            "provenance": self.provenance,
            **({"warmup": self.warmup} if self.warmup.get("steps") else {}),
        }

    def sha256(self) -> str:
        """Hash of the effective config (after overrides), recorded in provenance."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def output_dir(self) -> Path:
        return Path(self.output["dir"])


def _unknown(kind: str, name: str, known: list[str] | tuple[str, ...], where: str) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"{where}: unknown {kind} {name!r}.{hint} Known: {', '.join(sorted(known))}.")


def _check_section(
    section: str, values: Any, spec: dict[str, tuple[tuple[type, ...], Any]], where: str
) -> dict[str, Any]:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: section {section!r} must be a mapping of field: value, got {values!r}")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in spec:
            raise _unknown(f"field in section {section!r}", key, list(spec), where)
        types, _ = spec[key]
        # YAML gives ints for "0" where a float is meant; bool is an int subclass and must not pass as one.
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            expected = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise ConfigError(f"{where}: {section}.{key} must be {expected}, got {value!r}")
        out[key] = value
    for key, (_, default) in spec.items():
        out.setdefault(key, copy.deepcopy(default))
    return out


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
    model = _check_section("model", raw.get("model"), _MODEL_FIELDS, source)
    if not model["name"]:
        raise ConfigError(f"{source}: model.name is required (a hub id, a local directory or {TINY_MODEL!r})")
    lora = _check_section("lora", raw.get("lora"), _LORA_FIELDS, source)
    data = _check_section("data", raw.get("data"), _DATA_FIELDS[recipe], source)
    output = _check_section("output", raw.get("output"), _OUTPUT_FIELDS, source)
    if not output["dir"]:
        raise ConfigError(f"{source}: output.dir is required (where the adapter and merged model are saved)")
    ev = _check_section("eval", raw.get("eval"), _EVAL_FIELDS, source)
    prov = _check_section("provenance", raw.get("provenance"), _PROVENANCE_FIELDS, source)
    prov["role"] = prov["role"] or recipe
    training = raw.get("training") or {}
    if not isinstance(training, dict):
        raise ConfigError(f"{source}: section 'training' must be a mapping of TRL config fields")
    if check_training:
        validate_training_keys(recipe, training, source)
    warmup = _check_section("warmup", raw.get("warmup"), _WARMUP_FIELDS, source)
    if warmup["steps"]:
        if recipe != "grpo":
            raise ConfigError(f"{source}: a warmup section belongs to a GRPO config (it teaches the GRPO layout "
                              f"before GRPO); an SFT config trains on its own data")
        if warmup["steps"] < 0:
            raise ConfigError(f"{source}: warmup.steps must be 0 (no warm-up) or a positive number of steps")
        for name in warmup["sources"]:
            if name not in WARMUP_SOURCES:
                raise _unknown("warmup source (a GRPO source with reasoning text)", name, list(WARMUP_SOURCES),
                               f"{source}: warmup.sources")
        if "max_steps" in warmup["training"]:
            raise ConfigError(f"{source}: warmup.training.max_steps: give warmup.steps instead")
        if check_training:
            validate_training_keys("sft", warmup["training"], f"{source}: warmup")
    if recipe == "grpo":
        from .data import GRPO_SOURCES

        for name in data["sources"]:
            if name not in GRPO_SOURCES:
                raise _unknown("GRPO data source", name, list(GRPO_SOURCES), f"{source}: data.sources")
    return RecipeConfig(recipe=recipe, model=model, lora=lora, data=data, training=dict(training),
                        output=output, eval=ev, provenance=prov, warmup=warmup, source=source,
                        overrides=list(overrides or []))


def resolve_config_path(path: str | Path) -> Path:
    """A config path as given, or the name of a bundled config (``grpo_qwen25_3b_medical``)."""
    p = Path(path)
    if p.is_file():
        return p
    bundled = CONFIG_DIR / (p.name if p.suffix else f"{p.name}.yaml")
    if bundled.is_file():
        return bundled
    names = sorted(c.stem for c in CONFIG_DIR.glob("*.yaml"))
    close = difflib.get_close_matches(p.stem, names, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"config file {str(path)!r} not found.{hint} Bundled configs ({CONFIG_DIR}): {', '.join(names)}")


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
