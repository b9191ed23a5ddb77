"""Two backends, one recipe: ``unsloth`` (a CUDA GPU with Unsloth installed) and ``trl`` (plain TRL + PEFT).

Both run the same config, data and rewards through TRL's trainers; they differ only in how the model is loaded,
how LoRA is attached and how the merged model is saved. Where a backend cannot honour a recipe value on this
machine (no CUDA: no 4-bit, no 8-bit AdamW), it uses the nearest thing, prints why and records the change as
an :class:`Adjustment` in the checkpoint's provenance, so a reader never mistakes a CPU run for the recipe.

Unsloth patches transformers and TRL when it is imported, so :func:`activate` imports it *before* anything
imports them; the CLI selects and activates the backend before it loads a config.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from medbench.tasks.errors import BackendError, did_you_mean

BackendName = Literal["unsloth", "trl"]
BACKENDS: tuple[BackendName, ...] = ("unsloth", "trl")


@dataclass(frozen=True)
class BackendChoice:
    """The backend that will run, what was asked for, and (when they differ) why."""

    name: BackendName
    requested: str
    cuda: bool
    message: str | None = None


@dataclass(frozen=True)
class Adjustment:
    """A recipe value this backend could not honour here, what it used instead and why."""

    field: str
    recipe_value: Any
    used_value: Any
    reason: str

    def describe(self) -> str:
        return f"{self.field}: {self.recipe_value!r} -> {self.used_value!r} ({self.reason})"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def is_installed(module: str) -> bool:
    """Whether a module can be imported, without importing it (Unsloth must not be imported by accident)."""
    return importlib.util.find_spec(module) is not None


def select_backend(requested: str | None = "auto", *, cuda: bool | None = None,
                   unsloth: bool | None = None) -> BackendChoice:
    """Pick the backend: ``unsloth`` on a CUDA GPU with Unsloth installed, else ``trl`` with a message saying why.

    ``cuda`` and ``unsloth`` default to what this machine has (tests pass them to check the messages).
    """
    requested = (requested or "auto").lower()
    if requested not in ("auto", *BACKENDS):
        raise BackendError(f"unknown backend {requested!r}{did_you_mean(requested, BACKENDS)}; choose one of: "
                           f"auto, unsloth, trl")
    has_cuda = cuda_available() if cuda is None else cuda
    has_unsloth = is_installed("unsloth") if unsloth is None else unsloth
    if requested == "trl":
        return BackendChoice("trl", requested, has_cuda)
    if has_cuda and has_unsloth:
        return BackendChoice("unsloth", requested, has_cuda)
    if not has_cuda:
        why = ("no CUDA GPU is visible (torch.cuda.is_available() is False), and Unsloth needs one. "
               "Using the `trl` backend (plain TRL + PEFT): full-precision weights instead of 4-bit and "
               "adamw_torch instead of adamw_8bit; both changes are recorded in the checkpoint's provenance.")
    else:
        why = ("Unsloth is not installed. Using the `trl` backend (plain TRL + PEFT, same recipe, slower and "
               "larger in memory). For the Unsloth backend: pip install 'medbench[unsloth]'.")
    return BackendChoice("trl", requested, has_cuda, message=why)


def activate(choice: BackendChoice) -> None:
    """Import Unsloth first when it is the backend, as Unsloth requires (it patches transformers and TRL)."""
    if choice.name != "unsloth":
        return
    late = [m for m in ("transformers", "trl", "peft") if m in sys.modules]
    if late:
        print(f"medbench: warning: {', '.join(late)} imported before Unsloth; Unsloth's patches may be partial",
              file=sys.stderr)
    os.environ.setdefault("UNSLOTH_DISABLE_STATISTICS", "1")
    import unsloth  # noqa: F401  (the import is the point: it patches transformers/TRL)


# ---------------------------------------------------------------------------------------------------------
# model + LoRA
# ---------------------------------------------------------------------------------------------------------


def resolve_model_name(name: str, output_dir: Path) -> str:
    """A hub id or a local directory, passed through. ``medbench-tiny`` (the tiny configs' default) is built by
    the command line, which owns medbench's tiny random-weight model (``medbench.harness.models.tiny``) and passes
    its folder; the recipes themselves never build a model."""
    from .config import TINY_MODEL

    if name == TINY_MODEL:
        raise BackendError(f"model.name {TINY_MODEL!r} names medbench's tiny random-weight model, which "
                           f"`medbench train` builds; from Python, build one and pass model.name=<its folder>")
    return name


def _bf16_supported() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def load_model(cfg, name: str, choice: BackendChoice, adjustments: list[Adjustment]):
    """Load the base model ``name`` (resolved by :func:`resolve_model_name`) and tokenizer, and attach LoRA as
    the config says. Returns (model, tokenizer)."""
    if choice.name == "unsloth":
        return _load_unsloth(cfg, name, adjustments)
    return _load_trl(cfg, name, choice, adjustments)


def _load_unsloth(cfg, name: str, adjustments: list[Adjustment]):
    m, lora = cfg.model, cfg.lora
    if m.adapter:
        raise BackendError("model.adapter (going on training an existing LoRA adapter) is implemented for the `trl` "
                           "backend only: run with --backend trl, or merge the adapter and train a new one")
    from unsloth import FastLanguageModel

    kwargs: dict[str, Any] = {"model_name": name, "max_seq_length": m.max_seq_length, "dtype": None,
                              "load_in_4bit": m.load_in_4bit}
    if m.dtype:
        import torch

        kwargs["dtype"] = getattr(torch, m.dtype)
    if m.fast_inference:
        if is_installed("vllm"):
            kwargs.update(fast_inference=True, max_lora_rank=lora.r,
                          gpu_memory_utilization=m.gpu_memory_utilization)
        else:
            adjustments.append(Adjustment("model.fast_inference", True, False,
                                          "vLLM is not installed: generation runs through transformers"))
    model, tokenizer = FastLanguageModel.from_pretrained(**kwargs)
    model = FastLanguageModel.get_peft_model(
        model,
        r=lora.r,
        target_modules=list(lora.target_modules),
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        bias=lora.bias,
        use_gradient_checkpointing=lora.gradient_checkpointing,
        random_state=lora.random_state,
        use_rslora=False,
        loftq_config=None,
    )
    return model, tokenizer


def _load_trl(cfg, name: str, choice: BackendChoice, adjustments: list[Adjustment]):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .cpu_compat import ensure_trl_loss_without_triton

    m, lora = cfg.model, cfg.lora
    if ensure_trl_loss_without_triton():
        adjustments.append(Adjustment("TRL loss kernel", "Triton fused LM head", "plain torch log-softmax",
                                      "Triton is not installed (CPU torch): same loss, computed with full logits"))
    kwargs: dict[str, Any] = {}
    four_bit = bool(m.load_in_4bit)
    if four_bit and not (choice.cuda and is_installed("bitsandbytes")):
        why = "no CUDA GPU" if not choice.cuda else "bitsandbytes is not installed"
        adjustments.append(Adjustment("model.load_in_4bit", True, False, f"{why}: full-precision weights"))
        four_bit = False
    if m.fast_inference and not (choice.cuda and is_installed("vllm")):
        why = "no CUDA GPU" if not choice.cuda else "vLLM is not installed"
        adjustments.append(Adjustment("model.fast_inference", True, False, f"{why}: transformers generate"))
    if m.dtype:
        dtype = getattr(torch, m.dtype)
    elif choice.cuda:
        dtype = torch.bfloat16 if _bf16_supported() else torch.float16
    else:
        dtype = torch.float32
    kwargs["dtype"] = dtype
    if four_bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": torch.cuda.current_device()}  # 4-bit weights are quantized on the GPU
    tokenizer = AutoTokenizer.from_pretrained(name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    use_gc = bool(lora.gradient_checkpointing)
    if four_bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=use_gc)
    elif use_gc:
        model.enable_input_require_grads()  # LoRA + checkpointing needs grads flowing into the first layer
    if m.adapter:
        return _continue_adapter(model, m.adapter, lora), tokenizer
    torch.manual_seed(lora.random_state)  # the LoRA A matrices are drawn here
    peft_config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, bias=lora.bias,
        target_modules=list(lora.target_modules), task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config), tokenizer


def _continue_adapter(model, adapter: str, lora):
    """The base with an existing LoRA adapter attached, trainable (``model.adapter``): GRPO going on from the SFT
    adapter, so that one adapter over the base holds both stages. The adapter must be the one the ``lora``
    section describes (same rank, alpha and target modules), or the config would misstate what was trained."""
    import json

    from peft import PeftModel

    cfg_path = Path(adapter) / "adapter_config.json"
    if not cfg_path.is_file():
        raise BackendError(f"model.adapter {adapter}: no adapter_config.json there; give the folder a recipe saved "
                           f"as `adapter/`")
    saved = json.loads(cfg_path.read_text(encoding="utf-8"))
    want = {"r": lora.r, "lora_alpha": lora.alpha, "target_modules": sorted(lora.target_modules)}
    got = {"r": saved.get("r"), "lora_alpha": saved.get("lora_alpha"),
           "target_modules": sorted(saved.get("target_modules") or [])}
    if got != want:
        raise BackendError(f"model.adapter {adapter} is {got}, but the config's lora section says {want}: make "
                           f"the lora section describe the adapter being continued")
    return PeftModel.from_pretrained(model, adapter, is_trainable=True)


# ---------------------------------------------------------------------------------------------------------
# training arguments
# ---------------------------------------------------------------------------------------------------------


def training_kwargs(cfg, choice: BackendChoice, adjustments: list[Adjustment]) -> dict[str, Any]:
    """The TRL config keyword arguments for this backend: the config's ``training`` section, with precision,
    optimizer and checkpointing set for this machine (each change recorded).

    ``disable_tqdm`` is always on: medbench's progress line (:mod:`medbench.trainers.progress`, installed by
    :func:`medbench.trainers.callback.callbacks_for`) replaces transformers' display, which would print every
    log dict; the logs themselves still go to ``trainer_state.json``."""
    kw = dict(cfg.training)
    kw["output_dir"] = str(cfg.output_dir)
    kw["disable_tqdm"] = True
    optim = kw.get("optim", "adamw_torch")
    if "8bit" in str(optim) and not (choice.cuda and is_installed("bitsandbytes")):
        why = "no CUDA GPU" if not choice.cuda else "bitsandbytes is not installed"
        adjustments.append(Adjustment("training.optim", optim, "adamw_torch",
                                      f"{why}: bitsandbytes' 8-bit AdamW needs CUDA"))
        kw["optim"] = "adamw_torch"
    if "bf16" not in kw and "fp16" not in kw:
        if choice.cuda:
            kw["bf16"] = _bf16_supported()
            kw["fp16"] = not kw["bf16"]
        else:
            kw["bf16"] = kw["fp16"] = False
    if not choice.cuda:
        kw.setdefault("dataloader_pin_memory", False)  # nothing to pin to without an accelerator
    if "gradient_checkpointing" not in kw and choice.name == "trl":
        # Unsloth applies its own checkpointing in get_peft_model (and reads it back from the model); on `trl`
        # the config's choice maps onto transformers' non-reentrant checkpointing (works with frozen weights).
        kw["gradient_checkpointing"] = bool(cfg.lora.gradient_checkpointing)
        if kw["gradient_checkpointing"]:
            kw.setdefault("gradient_checkpointing_kwargs", {"use_reentrant": False})
    if cfg.recipe == "grpo" and cfg.model.fast_inference and choice.cuda and is_installed("vllm"):
        kw.setdefault("use_vllm", True)
        if choice.name == "trl":
            # TRL's vLLM in this process (no server to start); its share of the GPU is the config's
            kw.setdefault("vllm_mode", "colocate")
            kw.setdefault("vllm_gpu_memory_utilization", cfg.model.gpu_memory_utilization)
            kw.setdefault("vllm_max_model_length", cfg.model.max_seq_length)
    return kw


# ---------------------------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------------------------


def save_outputs(model, tokenizer, cfg, choice: BackendChoice, base_name: str) -> dict[str, str]:
    """Save the adapter and tokenizer, then (as configured) the merged 16-bit model, a GGUF file and a hub push.

    Each later step is attempted on its own: a failed GGUF export or push is reported in the returned mapping
    (``"<what>_error"``) and loses nothing already saved.
    """
    out = cfg.output_dir
    saved: dict[str, str] = {}
    adapter_dir = out / "adapter"
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    saved["adapter"] = str(adapter_dir)

    o = cfg.output
    if o.save_merged_16bit:
        merged_dir = out / "merged_16bit"
        if choice.name == "unsloth":
            model.save_pretrained_merged(str(merged_dir), tokenizer, save_method="merged_16bit")
        else:
            _merge_with_peft(base_name, adapter_dir, merged_dir, choice)
            tokenizer.save_pretrained(merged_dir)
        saved["merged_16bit"] = str(merged_dir)

    if o.gguf_quantization:
        if choice.name != "unsloth":
            saved["gguf_error"] = "GGUF export is done by Unsloth: re-run with the unsloth backend on a GPU"
        else:
            try:
                gguf_dir = out / "gguf"
                model.save_pretrained_gguf(str(gguf_dir), tokenizer, quantization_method=o.gguf_quantization)
                saved["gguf"] = str(gguf_dir)
            except Exception as e:  # noqa: BLE001 - llama.cpp missing or offline: keep the other outputs
                saved["gguf_error"] = f"GGUF export failed ({type(e).__name__}: {e}); adapter and merged model kept"

    if o.push_to_hub:
        token = hub_token()
        try:
            if choice.name == "unsloth" and o.save_merged_16bit:
                model.push_to_hub_merged(o.push_to_hub, tokenizer, save_method="merged_16bit", token=token)
            else:
                from huggingface_hub import HfApi

                folder = saved.get("merged_16bit", saved["adapter"])
                HfApi(token=token).create_repo(o.push_to_hub, exist_ok=True)
                HfApi(token=token).upload_folder(repo_id=o.push_to_hub, folder_path=folder)
            saved["hub"] = o.push_to_hub
        except Exception as e:  # noqa: BLE001 - a failed push must not lose the local files
            saved["hub_error"] = f"push to {o.push_to_hub} failed ({type(e).__name__}: {e}); local files kept"
    return saved


def hub_token() -> str:
    """The hub token from the environment (never from a config file, never logged)."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if not token:
        raise BackendError("output.push_to_hub is set but no token is in the environment: export HF_TOKEN=... "
                           "(a write token), or set output.push_to_hub=null")
    return token


def _merge_with_peft(base_name: str, adapter_dir: Path, merged_dir: Path, choice: BackendChoice) -> None:
    """Merge the adapter into a 16-bit copy of the base (never into 4-bit weights, which would lose precision)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if (not choice.cuda or _bf16_supported()) else torch.float16
    base = AutoModelForCausalLM.from_pretrained(base_name, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(merged_dir)


def versions() -> dict[str, str]:
    """Versions of the libraries a checkpoint was trained with (recorded in its provenance)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("medbench", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes",
                "unsloth", "vllm"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out
