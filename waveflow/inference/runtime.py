"""What the :class:`~waveflow.inference.Vocoder` runs on: device and dtype choice, and seeded latents that do
not depend on how an utterance is cut into batches or chunks."""

from __future__ import annotations

import hashlib

import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
NOISE_BLOCK = 4096  # latent time steps (of n_group samples) per independently seeded noise block


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
