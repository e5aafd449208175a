"""The training precision, a recorded choice (``--precision``): float32, as the report trained, or bf16
autocast, the default on a GPU for speed. Part of the run key and the run record."""

from __future__ import annotations

from cnmc_repro.errors import UserError

PRECISIONS = ("fp32", "bf16")


def default_precision(device: str) -> str:
    """bf16 autocast on a GPU (``cuda``, ``cuda:N``), float32 on a CPU."""
    return "bf16" if device.startswith("cuda") else "fp32"


def resolve_precision(name: str | None, device: str) -> str:
    """``--precision`` for ``device``: its default when not given; bf16 needs a GPU."""
    if name is None:
        return default_precision(device)
    if name not in PRECISIONS:
        raise UserError(f"unknown precision {name!r}; use bf16 or fp32")
    if name == "bf16" and not device.startswith("cuda"):
        raise UserError("--precision bf16 trains in bf16 autocast on a GPU only; use --precision fp32 on a CPU")
    return name
