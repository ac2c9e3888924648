"""How a trial runs, not what it computes: its precision, memory layout and attention kernel.

This module holds the type (a base type: the configuration carries it, so it imports
nothing of the project); :mod:`mixerlab.execution_choice` chooses one per configuration.

The fastest way to run a configuration depends on the configuration and on the machine.
Measured on a 2-core AMD EPYC (AVX512-BF16), one thread, batch 128, a training step of the
quick study's models: bf16 autocast trains the token-mixing MLP at patch 4 2.0x faster than
fp32 and slows PyTorch's fused attention kernel 2.6x, while the same attention written as
three batched matmuls ("plain") gains 1.5x from bf16; channels_last speeds the conv mixer
1.5x and slows the MLP (`benchmarks/execution.py` prints the table). So no single setting is
right, and :func:`~mixerlab.execution_choice.choose` times each candidate of a configuration and keeps the fastest.

Precision is not free: bf16 is a candidate only for a mixer whose registry entry says bf16
autocast reached fp32's test accuracy (``MixerInfo.bf16``, cleared by the paired benchmark
``benchmarks/precision.py``); every other configuration (reference architectures too) stays
fp32. A record with no ``precision`` column ran :func:`legacy`: what every trial ran before
executions were chosen (fp32 on CPU, bf16 autocast on CUDA), and re-running it runs that.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:  # config.py imports this module, so torch is imported where it is used
    import torch

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class Execution(BaseModel):
    """One way to run a trial. ``how``: ``measured`` (the fastest candidate), ``pinned`` (the
    spec fixed every choice) or ``legacy`` (as before executions were chosen)."""

    model_config = _FROZEN
    precision: Literal["fp32", "bf16"] = "fp32"
    channels_last: bool = True
    attention_kernel: Literal["fused", "plain"] = "fused"
    how: Literal["measured", "pinned", "legacy"] = "legacy"

    @property
    def label(self) -> str:
        """E.g. ``bf16 nchw plain`` (the kernel only where it differs from the default)."""
        parts = [self.precision, "channels_last" if self.channels_last else "nchw"]
        return " ".join(parts + ([self.attention_kernel] if self.attention_kernel != "fused" else []))

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    def autocast(self, device: torch.device):
        """The context a forward pass runs in: bf16 autocast, or nothing (fp32)."""
        if self.precision == "bf16":
            import torch

            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` set to this way: its attention kernel and memory layout. The kernel is set
        only on modules that declare it a choice (a class attribute ``KERNELS`` naming the
        kernels they implement, as models/mixers/attention.py does); no other attribute that
        happens to be called ``kernel`` is touched."""
        import torch

        for module in model.modules():
            if self.attention_kernel in getattr(type(module), "KERNELS", ()):
                module.kernel = self.attention_kernel
        return model.to(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def record(self) -> dict:
        """The record's columns: what ran, and how it was chosen."""
        return {"precision": self.precision, "channels_last": self.channels_last,
                "attention_kernel": self.attention_kernel, "execution": self.how}


class ExecutionPins(BaseModel):
    """A spec's ``execution:`` section: ``auto`` (measure) or a fixed value, per choice."""

    model_config = ConfigDict(extra="forbid")
    # Training precision: 'auto' measures fp32 and bf16 autocast per configuration and keeps the
    # faster (bf16 only for mixers whose bf16 accuracy was shown equal to fp32's).
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # Tensor layout: 'auto' measures NHWC (channels_last) and NCHW per configuration.
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"
    # Attention: torch's fused scaled_dot_product_attention or the plain matmul-softmax form.
    attention_kernel: Literal["auto", "fused", "plain"] = "auto"

    @property
    def all_pinned(self) -> bool:
        return "auto" not in (self.precision, self.memory_format, self.attention_kernel)


def legacy(channels_last: bool, device: torch.device) -> Execution:
    """What a trial ran before executions were chosen: bf16 autocast on CUDA, else fp32."""
    return Execution(precision="bf16" if device.type == "cuda" else "fp32",
                     channels_last=channels_last, how="legacy")


def of_trial(train, device: torch.device) -> Execution:
    """The way a trial of recipe ``train`` (a TrainConfig) runs on ``device``: the sweep's
    choice (``train.execution``), else :func:`legacy`. Training and the dry run's estimate
    both ask here, so they cannot disagree."""
    return train.execution or legacy(train.channels_last, device)


def from_record(rec: dict) -> Execution | None:
    """The way a recorded trial ran; None for a record made before ways were chosen (it ran
    :func:`legacy`, which ``train`` runs for None)."""
    if rec.get("precision") is None:
        return None
    return Execution(precision=rec["precision"], channels_last=bool(rec["channels_last"]),
                     attention_kernel=rec.get("attention_kernel") or "fused",
                     how=rec.get("execution") or "measured")
