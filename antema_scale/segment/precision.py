"""Numeric precision of the network at inference: which autocast type runs where.

``precision="auto"`` (the default everywhere) runs the network under autocast in bfloat16
on a CUDA device that supports it (float16 on older GPUs) and in float32 on the CPU and
MPS, so that CPU results do not depend on the host's instruction set. ``"fp32"`` turns
autocast off on every device (e.g. to compare a GPU run with a CPU run pixel for pixel);
``"bf16"`` and ``"fp16"`` force autocast in that type on any device. ``"bf16"`` pays off on
CPUs with native bfloat16 (AVX512-BF16 or AMX: Intel Xeon since Cooper Lake and Sapphire
Rapids), see docs/MODEL_CARD.md, *Speed*, for what it buys and what it changes.

Torch is imported inside the functions, so that the pipeline's settings can validate a
``precision`` without importing it.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Accepted values of ``precision``.
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")


def check_precision(precision: str) -> None:
    """Raise ``ValueError`` unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def autocast_dtype(device: torch.device | str, precision: str = "auto") -> torch.dtype | None:
    """The type the network runs in on ``device``; ``None`` = plain float32 (no autocast).

    Parameters
    ----------
    device : torch.device or str
        Where the network runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``).
    precision : {"auto", "fp32", "bf16", "fp16"}
        See the module docstring.

    Returns
    -------
    torch.dtype or None

    Warns
    -----
    RuntimeWarning
        ``"bf16"`` on a CPU without native bfloat16: allowed (same results as on one
        with it) but emulated, slower than float32.

    Examples
    --------
    >>> autocast_dtype("cpu") is None
    True
    >>> autocast_dtype("cuda", "fp16")
    torch.float16
    """
    import torch

    check_precision(precision)
    device = torch.device(device)
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn(
            "precision='bf16' on a CPU without native bfloat16 (AVX512-BF16 or AMX) is "
            "emulated and slower than 'fp32'",
            RuntimeWarning,
            stacklevel=3,
        )
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(
    device: torch.device | str, precision: str = "auto"
) -> contextlib.AbstractContextManager[object]:
    """Context manager running the network in :func:`autocast_dtype` (or a no-op)."""
    import torch

    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)
