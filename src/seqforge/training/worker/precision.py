"""The training precision a machine runs: `train.precision` resolved against the hardware it runs on.

`auto` is bf16 mixed precision (fp32 weights, optimizer state and loss; matrix products in bf16 under
`torch.autocast`) where the hardware computes bf16 natively: a GPU that supports it, or a CPU with AMX or
AVX512-BF16 (Intel since Sapphire Rapids / Cooper Lake, AMD since Zen 4). Elsewhere bf16 is emulated and
slower than fp32, so `auto` is fp32 there. `python -m bench.precision` measures the difference per family.
The choice is by hardware only: at tiny widths (the smoke profile's 32) the casts cost more than bf16 products
save, so such a profile sets `fp32` itself.
"""

from __future__ import annotations

import contextlib

import torch

LIGHTNING = {"fp32": "32-true", "bf16-mixed": "bf16-mixed", "16-mixed": "16-mixed"}  # ours -> Lightning's


def native_bf16(use_gpu: bool) -> bool:
    """Whether this machine's training device computes bf16 natively (the GPU with `use_gpu`, else the CPU)."""
    if use_gpu:
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")  # torch's own CPUID checks
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def resolved(setting: str, use_gpu: bool) -> str:
    """`train.precision` (auto | fp32 | bf16-mixed | 16-mixed) on this machine: fp32 or a mixed precision."""
    if setting != "auto":
        return setting
    return "bf16-mixed" if native_bf16(use_gpu) else "fp32"


def lightning_precision(setting: str, use_gpu: bool) -> str:
    """The Lightning `Trainer(precision=...)` of `train.precision` on this machine."""
    return LIGHTNING[resolved(setting, use_gpu)]


def autocast(setting: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager:
    """The autocast a training step of `train.precision` runs under on `device` (Lightning's, for code that
    steps outside a Trainer: the planner's probe, the benches)."""
    device_type = torch.device(device).type
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(resolved(setting, device_type == "cuda"))
    return torch.autocast(device_type, dtype=dtype) if dtype else contextlib.nullcontext()
