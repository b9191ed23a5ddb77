"""Let TRL 1.15's SFTTrainer compute its loss on a CPU-only machine.

TRL 1.15's SFTTrainer always scores tokens through a fused LM head whose inner step is a Triton kernel
(``trl.kernels.ChunkedLogProbFunction``). A CPU-only torch install has no Triton, so TRL leaves
``trl.trainer.utils._ChunkedLogProbFunction`` as ``None`` and training fails with
``'NoneType' object has no attribute 'apply'``. This module supplies the same computation in plain torch
(it materialises the logits, which is what the kernel avoids; fine for the small models a CPU can train).

It is installed only when TRL left the slot empty, so on a GPU with Triton nothing changes.
"""

from __future__ import annotations

import torch


class TorchChunkedLogProb:
    """Plain-torch stand-in for ``trl.kernels.ChunkedLogProbFunction`` (same arguments, same five outputs)."""

    @staticmethod
    def apply(
        hidden: torch.Tensor,  # [N, H]
        weight: torch.Tensor,  # [V, H]
        bias: torch.Tensor | None,  # [V]
        targets: torch.Tensor,  # [N]
        temperature: float,
        chunk_size: int,
        final_logit_softcapping: float | None = None,
        logit_scale: float = 1.0,
        outputs: tuple[str, ...] = ("entropy", "log_sum_sq_probs", "mean_logits", "is_top1"),
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        z = hidden.float() @ weight.float().t()
        if bias is not None:
            z = z + bias.float()
        z = z * logit_scale
        if final_logit_softcapping is not None:
            z = final_logit_softcapping * torch.tanh(z / final_logit_softcapping)
        z = z / temperature
        log_z = torch.logsumexp(z, dim=-1)
        target_logit = z.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
        log_probs = target_logit - log_z
        probs = torch.softmax(z, dim=-1) if ("entropy" in outputs or "log_sum_sq_probs" in outputs) else None
        entropy = log_z - (probs * z).sum(-1) if "entropy" in outputs else None
        log_sum_sq = torch.log((probs * probs).sum(-1)) if "log_sum_sq_probs" in outputs else None
        mean_logits = z.mean(-1) if "mean_logits" in outputs else None
        is_top1 = (z.argmax(-1) == targets) if "is_top1" in outputs else None
        return log_probs, entropy, log_sum_sq, mean_logits, is_top1


def ensure_trl_loss_without_triton() -> bool:
    """Install the plain-torch scorer where TRL found no Triton. Returns whether it was installed."""
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:
        return False
    if getattr(trl_utils, "_ChunkedLogProbFunction", object()) is None:
        trl_utils._ChunkedLogProbFunction = TorchChunkedLogProb
        return True
    return False
