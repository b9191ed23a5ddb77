"""Checkpoint sources: a hub id, a local model directory, or a base model plus a LoRA adapter.

:func:`resolve_checkpoint` turns what the user wrote (:class:`~medbench.harness.run.spec.CheckpointSpec`) into a
:class:`ResolvedCheckpoint` *before* any model is loaded, so a typo, a missing directory or an adapter that
doesn't fit its base fails in a second with a message naming the fix, not after an hour of evaluating other
checkpoints. Adapters are evaluated without merging: the runner hands base and adapter to lm-eval separately.

Trainers write ``medbench_provenance.json`` next to every checkpoint (role: base / sft / grpo, parent, data,
recipe, steps); it is read here and carried into run.json so reports order checkpoints by lineage.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from medbench.harness.run.spec import CheckpointSpec
from medbench.tasks.errors import MedbenchError
from medbench.tasks.provenance import PROVENANCE_FILE, ROLES, ProvenanceError, parse_provenance

ADAPTER_CONFIG = "adapter_config.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: How long resolving a hub checkpoint waits for the hub before it says it cannot be reached.
HUB_TIMEOUT_S = 10.0


class CheckpointError(MedbenchError):
    """A checkpoint cannot be used as given; the message names the checkpoint, the problem and the fix."""


@dataclass
class ResolvedCheckpoint:
    """A checkpoint ready to load: what lm-eval gets as ``pretrained`` / ``peft``, and what run.json records."""

    name: str
    kind: Literal["hub", "local", "adapter"]
    model: str  # hub id or local directory of the (base) model
    adapter: str | None = None  # local directory or hub id of a PEFT adapter, loaded on top of `model`
    revision: str | None = None
    tokenizer: str | None = None  # where the tokenizer is read from (the adapter's own if it saved one)
    adapter_rank: int | None = None
    provenance: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    content_hash: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # weights file -> sha256
    declared_role: str | None = None  # the spec's ``role`` for this checkpoint, if it gave one

    @property
    def role_source(self) -> str | None:
        """Where :attr:`role` comes from: ``spec`` (the user said so), ``provenance`` (the trainer's record), or
        ``name`` (a checkpoint named base, sft or grpo); ``None`` when nothing gives one."""
        if self.declared_role:
            return "spec"
        if (self.provenance or {}).get("role"):
            return "provenance"
        if self.name in ROLES:
            return "name"
        return None

    @property
    def role(self) -> str | None:
        """The lineage role (base / sft / grpo): stated in the spec, else from provenance, else the name when
        the checkpoint is called base, sft or grpo (``--checkpoint base=Qwen/...``: a hub base has no
        provenance file). The runner adds one more rule across checkpoints: a role-less checkpoint that is
        another's provenance parent is the base (:func:`~medbench.harness.run.rundir.checkpoint_roles`)."""
        source = self.role_source
        if source == "spec":
            return self.declared_role
        if source == "provenance":
            return str((self.provenance or {})["role"])
        return self.name if source == "name" else None

    def to_meta(self) -> dict[str, Any]:
        """The checkpoint's entry in run.json."""
        d = asdict(self)
        d.pop("declared_role")
        d["role"] = self.role
        d["role_source"] = self.role_source
        d["parent"] = (self.provenance or {}).get("parent")
        return d


def _is_offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}


def _looks_like_path(source: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else (./x, /x, ~/x, a/b/c) is meant as a local path, and
    so is an ``org/name`` whose first part is a local folder (``out/grpo_adapter`` next to ``out/``): nobody
    means a hub organisation that happens to share a name with a folder in the working directory."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if source.startswith((".", "/", "~")) or os.sep in source.replace("/", "", 1) or "\\" in source:
        return True
    if "/" in source and Path(source.split("/", 1)[0]).is_dir():
        return True
    try:
        validate_repo_id(source)
    except HFValidationError:
        return True
    return False


def _hub_files(name: str, repo_id: str, revision: str | None) -> set[str] | None:
    """The files of a hub repository (online), or ``None`` offline. Raises CheckpointError if it is missing."""
    from huggingface_hub import try_to_load_from_cache

    if _is_offline():
        for probe in ("config.json", ADAPTER_CONFIG):
            hit = try_to_load_from_cache(repo_id, probe, revision=revision)
            if isinstance(hit, str):
                return None
        raise CheckpointError(
            f"checkpoint {name!r}: {repo_id!r} is neither a local directory nor in the local Hugging Face "
            f"cache, and HF_HUB_OFFLINE is set. Download it first (`hf download {repo_id}`), unset "
            f"HF_HUB_OFFLINE, or give a local path (./path/to/model)."
        )
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        # the token, if any, comes from the environment; a short timeout: resolution must fail in seconds
        info = HfApi().model_info(repo_id, revision=revision, timeout=HUB_TIMEOUT_S)
    except GatedRepoError as e:
        raise CheckpointError(
            f"checkpoint {name!r}: {repo_id!r} is a gated repository: accept its licence on the hub and set "
            f"HF_TOKEN in the environment"
        ) from e
    except RevisionNotFoundError as e:
        raise CheckpointError(f"checkpoint {name!r}: {repo_id!r} has no revision {revision!r}") from e
    except RepositoryNotFoundError as e:
        raise CheckpointError(
            f"checkpoint {name!r}: {repo_id!r} does not exist on the Hugging Face hub (or is private: set "
            f"HF_TOKEN); for a local directory give a path such as ./{repo_id}"
        ) from e
    except Exception as e:  # network trouble (no connection, DNS, timeout, a proxy)
        # From the cache the loader can still work offline; if the repository is not there, loading would only
        # retry the hub for minutes and then fail: say so now, before anything loads.
        if any(isinstance(try_to_load_from_cache(repo_id, probe, revision=revision), str)
               for probe in ("config.json", ADAPTER_CONFIG)):
            return None
        raise CheckpointError(
            f"checkpoint {name!r}: {repo_id!r} is not a local directory (from {Path.cwd()}) and the Hugging Face "
            f"hub cannot be reached to find it ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else e}), "
            f"nor is it in the local cache. For a local folder give its path (./{repo_id} or an absolute path); "
            f"for a hub model, connect or download it first (`hf download {repo_id}`)."
        ) from e
    return {s.rfilename for s in (info.siblings or [])}


def _read_json_file(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e.msg}, line {e.lineno}): {what}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object ({what})")
    return data


def read_provenance(directory: Path) -> dict[str, Any] | None:
    """The trainer's provenance record next to a checkpoint (schema-checked by the one reader,
    :func:`medbench.tasks.provenance.read_provenance`), as run.json records it; ``None`` if there is none."""
    path = directory / PROVENANCE_FILE
    if not path.is_file():
        return None
    return _provenance(path.read_text(encoding="utf-8"), str(path))


def _provenance(text: str, where: str) -> dict[str, Any]:
    try:
        return parse_provenance(text, where=where).to_dict()
    except ProvenanceError as e:
        raise CheckpointError(str(e)) from e


def _hub_provenance(repo_id: str, revision: str | None) -> dict[str, Any] | None:
    """A hub checkpoint's provenance file, through the same reader; ``None`` when it has none."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id, PROVENANCE_FILE, revision=revision)
    except Exception:  # noqa: BLE001 - an optional file: absent or unreachable means none
        return None
    return _provenance(Path(path).read_text(encoding="utf-8"), f"{PROVENANCE_FILE} of {repo_id}")


def _hub_json(repo_id: str, filename: str, revision: str | None) -> dict[str, Any] | None:
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id, filename, revision=revision)
    except Exception:  # noqa: BLE001 - absent or unreachable: the loader reports it when it matters
        return None
    return _read_json_file(Path(path), f"{filename} of {repo_id}")


def _locate_model(name: str, source: str, revision: str | None, role: str) -> tuple[str, Path | None]:
    """Return (``"local"``, dir) or (``"hub"``, None) for a model source, or raise with the fix."""
    path = Path(os.path.expanduser(source))
    if path.is_dir():
        return "local", path.resolve()
    if path.exists():
        raise CheckpointError(f"checkpoint {name!r}: {role} {source} is a file; expected a model directory")
    if _looks_like_path(source):
        raise CheckpointError(
            f"checkpoint {name!r}: {role} {source} does not exist (a local path: check the spelling, or "
            f"train/download it first; a hub model is written as org/name, e.g. Qwen/Qwen2.5-3B-Instruct)"
        )
    return "hub", None


def _has_tokenizer(directory: Path) -> bool:
    return (directory / "tokenizer_config.json").is_file()


def resolve_checkpoint(spec: CheckpointSpec, *, trust_remote_code: bool = False) -> ResolvedCheckpoint:
    """Find out what a checkpoint is and check that it can be loaded, without loading any weights."""
    resolved = _resolve(spec, trust_remote_code)
    resolved.declared_role = spec.role
    prov_role = (resolved.provenance or {}).get("role")
    if spec.role and prov_role and prov_role != spec.role:
        resolved.warnings.append(f"the spec says role {spec.role!r}, its provenance says {prov_role!r}; "
                                 f"using {spec.role!r}")
    return resolved


def _resolve(spec: CheckpointSpec, trust_remote_code: bool) -> ResolvedCheckpoint:
    name = spec.name
    if spec.adapter:
        return _resolve_adapter(name, spec.adapter, spec.base, spec.revision, trust_remote_code)
    source = str(spec.source)
    where, path = _locate_model(name, source, spec.revision, "source")
    if where == "local":
        assert path is not None
        if (path / ADAPTER_CONFIG).is_file():
            return _resolve_adapter(name, source, spec.base, spec.revision, trust_remote_code)
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"checkpoint {name!r}: {path} holds neither config.json (a full model) nor {ADAPTER_CONFIG} "
                f"(a LoRA adapter); point at the folder that the trainer saved"
            )
        return ResolvedCheckpoint(
            name=name, kind="local", model=str(path), tokenizer=str(path), revision=None,
            provenance=read_provenance(path),
        )
    files = _hub_files(name, source, spec.revision)
    is_adapter = ADAPTER_CONFIG in files if files is not None else isinstance(
        _cached(source, ADAPTER_CONFIG, spec.revision), str)
    if is_adapter:
        return _resolve_adapter(name, source, spec.base, spec.revision, trust_remote_code)
    if files is not None and "config.json" not in files:
        raise CheckpointError(f"checkpoint {name!r}: hub repository {source!r} has no config.json; "
                              f"is it a model repository?")
    return ResolvedCheckpoint(
        name=name, kind="hub", model=source, tokenizer=source, revision=spec.revision,
        provenance=_hub_provenance(source, spec.revision),
    )


def _cached(repo_id: str, filename: str, revision: str | None) -> Any:
    from huggingface_hub import try_to_load_from_cache

    return try_to_load_from_cache(repo_id, filename, revision=revision)


def _normalise_id(s: str) -> str:
    return s.rstrip("/").lower()


def _resolve_adapter(
    name: str, adapter: str, base: str | None, revision: str | None, trust_remote_code: bool
) -> ResolvedCheckpoint:
    where, path = _locate_model(name, adapter, revision, "adapter")
    if where == "local":
        assert path is not None
        cfg_path = path / ADAPTER_CONFIG
        if not cfg_path.is_file():
            raise CheckpointError(
                f"checkpoint {name!r}: {path} has no {ADAPTER_CONFIG}, so it is not a PEFT adapter; "
                f"for a full model write {name}={adapter} without a base"
            )
        adapter_cfg = _read_json_file(cfg_path, "the adapter's PEFT config")
        adapter_ref = str(path)
        provenance = read_provenance(path)
    else:
        files = _hub_files(name, adapter, revision)
        if files is not None and ADAPTER_CONFIG not in files:
            raise CheckpointError(f"checkpoint {name!r}: hub repository {adapter!r} is not a PEFT adapter "
                                  f"(no {ADAPTER_CONFIG})")
        adapter_cfg = _hub_json(adapter, ADAPTER_CONFIG, revision) or {}
        adapter_ref = adapter
        provenance = _hub_provenance(adapter, revision)

    recorded = adapter_cfg.get("base_model_name_or_path")
    warnings: list[str] = []
    if not base:
        if not recorded:
            raise CheckpointError(
                f"checkpoint {name!r}: adapter {adapter} does not record its base model "
                f"(base_model_name_or_path in {ADAPTER_CONFIG}); give it: {name}=BASE_MODEL+{adapter}"
            )
        base = str(recorded)
        try:
            base_where, base_path = _locate_model(name, base, None, "base model")
        except CheckpointError as e:
            raise CheckpointError(
                f"checkpoint {name!r}: adapter {adapter} was trained on {base!r} (its {ADAPTER_CONFIG}), "
                f"which is not available here. Give the base explicitly: {name}=BASE_MODEL+{adapter} "
                f"(a hub id or a local directory with the same architecture)"
            ) from e
    else:
        base_where, base_path = _locate_model(name, base, None, "base model")
        if recorded and _normalise_id(str(recorded)) != _normalise_id(base) and not (
            base_path is not None and Path(os.path.expanduser(str(recorded))).resolve() == base_path
        ):
            warnings.append(f"adapter {adapter} records base {recorded!r}; evaluated on {base!r} as asked "
                            f"(layer shapes match)")
    if base_where == "hub":
        files = _hub_files(name, base, None)
        if files is not None and "config.json" not in files:
            raise CheckpointError(f"checkpoint {name!r}: base {base!r} has no config.json on the hub")
        base_ref = base
    else:
        assert base_path is not None
        if (base_path / ADAPTER_CONFIG).is_file() and not (base_path / "config.json").is_file():
            raise CheckpointError(
                f"checkpoint {name!r}: base {base} is itself an adapter; give the full model it was trained on"
            )
        if not (base_path / "config.json").is_file():
            raise CheckpointError(f"checkpoint {name!r}: base {base_path} has no config.json; expected a "
                                  f"full model directory")
        base_ref = str(base_path)

    check_adapter_fits(name, adapter_ref, adapter_cfg, base_ref, trust_remote_code, recorded)
    tokenizer = adapter_ref if (where == "local" and path is not None and _has_tokenizer(path)) else base_ref
    rank = adapter_cfg.get("r")
    return ResolvedCheckpoint(
        name=name, kind="adapter", model=base_ref, adapter=adapter_ref, revision=revision,
        tokenizer=tokenizer, adapter_rank=int(rank) if isinstance(rank, int) else None,
        provenance=provenance, warnings=warnings,
    )


def _adapter_weight_shapes(adapter_ref: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of an adapter's weights, read from the file header (no tensors loaded)."""
    path = Path(adapter_ref)
    if not path.is_dir():
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(adapter_ref, "adapter_model.safetensors")).parent
        except Exception:  # noqa: BLE001 - no shapes to check here; PEFT checks them when loading
            return {}
    st = path / "adapter_model.safetensors"
    if st.is_file():
        from safetensors import safe_open

        with safe_open(str(st), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}  # noqa: SIM118 - safe_open is not a dict
    binf = path / "adapter_model.bin"
    if binf.is_file():
        import torch

        state = torch.load(binf, map_location="cpu", weights_only=True)
        return {k: tuple(v.shape) for k, v in state.items()}
    raise CheckpointError(f"adapter {adapter_ref} has {ADAPTER_CONFIG} but no adapter_model.safetensors "
                          f"or adapter_model.bin: the adapter was not saved completely")


def check_adapter_fits(
    name: str,
    adapter_ref: str,
    adapter_cfg: dict[str, Any],
    base_ref: str,
    trust_remote_code: bool = False,
    recorded_base: str | None = None,
) -> None:
    """Check every LoRA matrix against the base model's layer shapes, on the meta device (no weights loaded).

    PEFT itself would fail later with a size-mismatch traceback, or (for a missing module) silently evaluate
    the base model; this names the layer and the fix instead.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    shapes = _adapter_weight_shapes(adapter_ref)
    if not shapes:
        return
    try:
        config = AutoConfig.from_pretrained(base_ref, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except Exception as e:  # an architecture transformers can't build: leave the check to PEFT
        if "trust_remote_code" in str(e):
            raise CheckpointError(f"checkpoint {name!r}: base {base_ref} needs custom code; pass "
                                  f"--trust-remote-code if you trust it") from e
        return
    fix = (f"give the base the adapter was trained on: {name}={recorded_base}+{adapter_ref}" if recorded_base
           else f"give the base the adapter was trained on: {name}=BASE_MODEL+{adapter_ref}")
    trained_on = f" (trained on {recorded_base!r})" if recorded_base else ""
    for key, shape in sorted(shapes.items()):
        m = re.match(r"^base_model\.model\.(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$", key)
        if not m:
            continue
        module_path, which = m.group(1), m.group(2)
        try:
            module = model.get_submodule(module_path)
        except AttributeError:
            raise CheckpointError(
                f"checkpoint {name!r}: adapter {adapter_ref}{trained_on} does not fit base {base_ref}: the "
                f"adapter has weights for {module_path}, which the base model does not have; {fix}"
            ) from None
        in_f = getattr(module, "in_features", None)
        out_f = getattr(module, "out_features", None)
        if in_f is None or out_f is None:
            continue
        got = shape[1] if which == "A" else shape[0]
        want = in_f if which == "A" else out_f
        if got != want:
            raise CheckpointError(
                f"checkpoint {name!r}: adapter {adapter_ref}{trained_on} does not fit base {base_ref}: "
                f"{module_path} takes {in_f} -> {out_f} features in the base, but the adapter's lora_{which} "
                f"has shape {list(shape)}; {fix}"
            )


# -- content hashes ----------------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_weights(directory: Path, memo: dict[str, Any] | None = None) -> dict[str, str]:
    """sha256 of every weights file in a directory (not recursive), keyed by file name.

    Hub cache blobs are named by their sha256 already, so those are read from the name. ``memo`` maps
    ``"path|size|mtime_ns"`` to a digest so that a resumed run doesn't re-read gigabytes of weights.
    """
    out: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if not path.name.endswith(WEIGHT_SUFFIXES) or not path.is_file():
            continue
        real = Path(os.path.realpath(path))
        if _SHA256.match(real.name):
            out[path.name] = real.name
            continue
        st = real.stat()
        key = f"{real}|{st.st_size}|{st.st_mtime_ns}"
        if memo is not None and key in memo:
            out[path.name] = memo[key]
            continue
        digest = _sha256_file(real)
        if memo is not None:
            memo[key] = digest
        out[path.name] = digest
    return out


def _combine(files: dict[str, str]) -> str | None:
    if not files:
        return None
    h = hashlib.sha256()
    for fname, digest in sorted(files.items()):
        h.update(f"{fname}\0{digest}\n".encode())
    return h.hexdigest()


def _local_dir(ref: str, revision: str | None) -> Path | None:
    """The directory holding a model's files: the path itself, or the hub snapshot already in the cache."""
    p = Path(ref)
    if p.is_dir():
        return p
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref, revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001 - not in the local cache: no hash rather than no run
        return None


def compute_content_hash(ck: ResolvedCheckpoint, memo: dict[str, Any] | None = None) -> ResolvedCheckpoint:
    """Fill ``ck.content_hash`` / ``ck.files`` from the weights on disk (for a hub model: its cached snapshot,
    so call this after the model was loaded). An adapter's hash covers the adapter and its base."""
    files: dict[str, str] = {}
    base_dir = _local_dir(ck.model, ck.revision if ck.kind == "hub" else None)
    if base_dir is not None:
        prefix = "base/" if ck.adapter else ""
        files.update({prefix + k: v for k, v in hash_weights(base_dir, memo).items()})
    if ck.adapter:
        adapter_dir = _local_dir(ck.adapter, ck.revision)
        if adapter_dir is not None:
            files.update({"adapter/" + k: v for k, v in hash_weights(adapter_dir, memo).items()})
    ck.files = files
    ck.content_hash = _combine(files)
    return ck
