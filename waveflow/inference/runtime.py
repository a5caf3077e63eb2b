"""What the :class:`~waveflow.inference.Vocoder` runs on: device and dtype choice, the inference copy of a model,
its receptive field, and seeded latents that do not depend on how an utterance is cut into batches or chunks."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

import torch
from torch import nn

from .checkpoints import plain_state_dict
from .models import WaveGlow, WaveGlowConfig

KERNELS = ("auto", "off", "torch", "triton")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
NOISE_BLOCK = 4096  # latent time steps (of n_group samples) per independently seeded noise block
UPSAMPLER_REACH = 3  # the transposed conv (kernel 4 hop, stride hop) makes sample t from frames t//hop-3..t//hop


def receptive_field_frames(config: WaveGlowConfig) -> int:
    """Mel frames of context each side that make a chunk exact: the WN stack's reach plus the upsampler's."""
    steps = config.n_flows * ((config.kernel_size - 1) // 2) * (2**config.n_layers - 1)
    return math.ceil((steps + 1) * config.n_group / config.hop_length) + UPSAMPLER_REACH + 1


def derive_seed(seed: int, key: str) -> int:
    """A 63-bit seed from ``seed`` and a string (e.g. a file's relative path), stable across runs."""
    return int.from_bytes(hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest(), "big") >> 1


def latent_noise(seed: int, n_group: int, start: int, stop: int) -> torch.Tensor:
    """Standard normal latent ``(n_group, stop - start)`` float32 on the CPU for time steps ``[start, stop)``.

    Block ``k`` (steps ``k * NOISE_BLOCK ...``) is drawn from a generator seeded by ``(seed, k)``, so the
    latent of any stretch does not depend on how the utterance is cut into batches or chunks.
    """
    parts = []
    for block in range(start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK + 1):
        gen = torch.Generator().manual_seed(derive_seed(seed, f"block{block}"))
        noise = torch.randn(n_group, NOISE_BLOCK, generator=gen)
        lo = max(start - block * NOISE_BLOCK, 0)
        parts.append(noise[:, lo : min(stop - block * NOISE_BLOCK, NOISE_BLOCK)])
    return torch.cat(parts, 1) if parts else torch.zeros(n_group, 0)


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA if available, then MPS, else CPU; anything else is passed to ``torch.device``."""
    if str(device) != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """``"float32"|"float16"|"bfloat16"`` -> torch dtype; a clear error if the device cannot run it."""
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).replace("torch.", "")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    dt = DTYPES[dtype]
    if dt != torch.float32:
        try:  # probe the ops WaveGlow needs rather than trusting a table of devices
            x = torch.zeros(1, 4, 16, device=device, dtype=dt)
            nn.functional.conv_transpose1d(x, torch.zeros(4, 4, 8, device=device, dtype=dt), stride=4)
            torch.tanh(nn.functional.conv1d(x, torch.zeros(4, 4, 3, device=device, dtype=dt), padding=2, dilation=2))
        except (RuntimeError, NotImplementedError, TypeError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{dtype} is not supported on {device} by PyTorch {torch.__version__} ({first}); "
                             "use --dtype float32 (or bfloat16)") from None
    return dt


def prepare_model(model: WaveGlow, device: torch.device, dtype: torch.dtype) -> WaveGlow:
    """A copy of ``model`` ready for inference (the caller's model is left as it was)."""
    with torch.inference_mode(False), torch.no_grad():  # parameters must not be inference tensors
        # A fresh model loaded with the folded weights, not copy.deepcopy: a deep copy shares the dynamic
        # ParametrizedConv1d classes with the original, and folding the copy's weight norm breaks the original.
        weights = plain_state_dict(model)
        model = WaveGlow(model.config).remove_weight_norm()
        model.load_state_dict(weights)
        model.eval().requires_grad_(False).to(device=device, dtype=torch.float32)
        convs = [step.invconv for step in model.flows]
        masters = [conv.weight.detach().clone() for conv in convs]
        model.to(dtype)
        for conv, w in zip(convs, masters):
            conv.weight = nn.Parameter(w, requires_grad=False)  # float32 master: the inverse is float64 of it
            conv.inverse_weight(dtype)
    return model


def fast_inverse(
    model: WaveGlow, device: torch.device, dtype: torch.dtype, kernels: str = "auto"
) -> tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None, str]:
    """The inverse a :class:`~waveflow.inference.Vocoder` runs, and its name for logs and benchmarks.

    ``kernels``: ``"off"`` -> ``(None, "eager")`` (the model's own ``inverse``); ``"torch"``/``"triton"`` ->
    :func:`waveflow.kernels.prepare_inverse` with that backend (a ``ValueError`` saying why if it cannot run
    here);
    ``"auto"`` -> the fused Triton kernels on CUDA in float16/bfloat16 when Triton is installed and the
    model is supported (not NVIDIA ``glow_old``), else eager. Weights are packed from a float32 copy.
    """
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {', '.join(KERNELS)}, got {kernels!r}")
    from . import kernels as fused

    if kernels == "off" or (kernels == "auto" and not (
        fused.unsupported(model) is None and device.type == "cuda" and dtype != torch.float32
        and fused.triton_available()
    )):
        return None, "eager"
    backend = "triton" if kernels == "auto" else kernels
    try:
        fast = fused.prepare_inverse(prepare_model(model, device, torch.float32), dtype, backend)
    except (RuntimeError, NotImplementedError) as e:  # Triton or CUDA missing, unsupported model
        raise ValueError(f"kernels={kernels!r} cannot run here: {e}") from None
    return fast, f"kernels-{backend}"
