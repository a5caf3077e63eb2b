"""Fast fp16/bf16 inverse of WaveGlow: one conditioning GEMM, fused Triton kernels, CUDA graphs.

Usage::

    from waveflow.kernels import prepare_inverse
    fast = prepare_inverse(model, dtype=torch.float16)          # backend "auto": triton on CUDA fp16/bf16
    audio = fast(z, mel)                                         # == model.inverse(z, mel), (B, T)

Every Triton kernel (:mod:`.triton_ops`) has a pure-torch twin with the same signature (:mod:`.reference`);
the ``"torch"`` backend runs the same pipeline with the twins on any device and dtype. Triton is imported
only when the triton backend is chosen, so this package imports without it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable

import torch

from ..models import WaveGlow, prepare_for_inference
from . import reference
from .fast_inverse import FastInverse
from .numerics import bytes_per_sample, flops_per_sample, limits, snr_db
from .packing import ModelPack, pack_model, unsupported

BACKENDS = ("auto", "triton", "torch")
KERNELS = ("auto", "off", "torch", "triton")  # the Vocoder's choice: BACKENDS plus "off" (eager)


def triton_available() -> bool:
    """Triton importable (without importing it)."""
    return importlib.util.find_spec("triton") is not None


def triton_usable(device: torch.device) -> bool:
    """Triton kernels can run on ``device``: CUDA with Triton, or any device under ``TRITON_INTERPRET=1``
    (the interpreter runs them on CPU tensors; it must be set before :mod:`.triton_ops` is imported)."""
    if not triton_available():
        return False
    return device.type == "cuda" or os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_backend(backend: str, device: torch.device, dtype: torch.dtype) -> str:
    """``"auto"`` -> ``"triton"`` on CUDA in fp16/bf16 with Triton installed, else ``"torch"``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        cuda_half = device.type == "cuda" and dtype in (torch.float16, torch.bfloat16)
        return "triton" if cuda_half and triton_available() else "torch"
    if backend == "triton" and not triton_usable(device):
        why = "Triton is not installed" if not triton_available() else f"device {device} is not CUDA"
        raise RuntimeError(f"backend='triton' is not usable: {why} (set TRITON_INTERPRET=1 to run it on CPU)")
    return backend


def prepare_inverse(
    model: WaveGlow,
    dtype: torch.dtype = torch.float16,
    backend: str = "auto",
    *,
    conv: str = "conv1d",
    chunk: int | None = None,
    context: int | None = None,
    graphs: bool = False,
    compile: bool = False,
) -> FastInverse:
    """Pack ``model`` once for fast inference; returns ``FastInverse(z, mel) -> audio``.

    The returned callable computes the same function as ``model.inverse(z, mel)``: same latent layout
    (NVIDIA's: early outputs first), ``(B, n_group, n), (B, n_mels, F) -> (B, n_group * n)``, output in
    ``z``'s dtype, under ``torch.inference_mode``. Weights are snapshotted on the model's device: prepare
    again after changing them. Weight norm may be folded or not (``conv.weight`` is read through the
    parametrisation); the model is not modified, and its train/eval mode does not matter (nothing in the
    inverse depends on it).

    Args:
        model: a :class:`WaveGlow` on the device to run on.
        dtype: working dtype of weights and activations (float32, float16, bfloat16). The audio state and all
            kernel arithmetic are float32.
        backend: ``"triton"`` (fused kernels; CUDA, or CPU under ``TRITON_INTERPRET=1``), ``"torch"``
            (pure-torch twins, any device), ``"auto"`` (triton on CUDA fp16/bf16, else torch).
        conv: dilated-conv implementation, ``"conv1d"`` (cuDNN) or ``"shift"`` (k cuBLAS GEMMs).
        chunk, context: fixed-window processing of long inputs (see :class:`FastInverse`).
        graphs: CUDA-graph each window shape (CUDA only).
        compile: ``torch.compile`` the per-window core (torch backend only).
    """
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
    device = next(model.parameters()).device
    name = resolve_backend(backend, device, dtype)
    if compile and name != "torch":
        raise ValueError("compile=True applies to the torch backend; the triton backend is already fused")
    if name == "triton":
        from . import triton_ops as ops
    else:
        ops = reference
    pack = pack_model(model, dtype)
    return FastInverse(
        pack, ops, name, conv=conv, chunk=chunk, context=context, graphs=graphs, compile=compile
    )



def choose_inverse(
    model: WaveGlow, device: torch.device, dtype: torch.dtype, kernels: str = "auto"
) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None, str]:
    """The inverse a :class:`~waveflow.inference.Vocoder` runs, and its name for logs and benchmarks.

    The one place that decides: ``"off"`` -> ``(None, "eager")`` (the model's own ``inverse``);
    ``"torch"``/``"triton"`` -> :func:`prepare_inverse` with that backend (a ``ValueError`` saying why if it
    cannot run here); ``"auto"`` -> the fused Triton kernels where :func:`resolve_backend` picks them (CUDA,
    float16/bfloat16, Triton installed) and the model is supported (not NVIDIA ``glow_old``), else eager.
    Weights are packed from a float32 copy of ``model`` on ``device``.
    """
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {kernels!r}")
    if kernels == "auto":
        fused = unsupported(model) is None and resolve_backend("auto", device, dtype) == "triton"
        kernels = "triton" if fused else "off"
    if kernels == "off":
        return None, "eager"
    why = unsupported(model)
    if why:
        raise ValueError(f"kernels={kernels!r} cannot run here: {why}")
    try:
        fast = prepare_inverse(prepare_for_inference(model, device, torch.float32), dtype, kernels)
    except (RuntimeError, NotImplementedError) as e:  # Triton or CUDA missing, unsupported model
        raise ValueError(f"kernels={kernels!r} cannot run here: {e}") from None
    return fast, f"kernels-{kernels}"


__all__ = [
    "KERNELS",
    "FastInverse",
    "ModelPack",
    "bytes_per_sample",
    "choose_inverse",
    "flops_per_sample",
    "limits",
    "pack_model",
    "prepare_inverse",
    "resolve_backend",
    "snr_db",
    "triton_available",
    "triton_usable",
    "unsupported",
]
