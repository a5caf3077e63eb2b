"""What the :class:`~waveflow.inference.Vocoder` runs on: device and dtype choice, and seeded latents that do
not depend on how an utterance is cut into batches or chunks."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import torch
from torch import nn

from ..errors import WaveflowError

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


class DeviceError(WaveflowError, ValueError):
    """The device asked for is not on this machine (or this PyTorch cannot use it)."""


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` that exists here, or a :class:`DeviceError` saying what does.

    Checked before anything is allocated, so ``--device cuda`` on a machine without a GPU is one clear error
    rather than a driver traceback from deep inside the first tensor that goes there.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise DeviceError(f"unknown device {str(device)!r} ({e}); use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = "this PyTorch was built without CUDA" if torch.version.cuda is None else \
                "no NVIDIA GPU or driver is visible"
            raise DeviceError(f"device {str(device)!r} asked for, but {why}; use --device auto or cpu "
                              f"(available: {', '.join(available_devices())})")
        if dev.index is not None and dev.index >= count:
            raise DeviceError(f"device {str(device)!r} asked for, but this machine has {count} CUDA device(s) "
                              f"(cuda:0 to cuda:{count - 1})")
    elif dev.type == "mps" and not _mps_available():
        raise DeviceError(f"device {str(device)!r} asked for, but Apple's MPS is not available here; use --device "
                          f"auto or cpu (available: {', '.join(available_devices())})")
    elif dev.type not in ("cpu", "cuda", "mps"):
        module = getattr(torch, dev.type, None)
        is_available = getattr(module, "is_available", None)
        if not callable(is_available) or not is_available():
            raise DeviceError(f"device {str(device)!r} is not available here (available: "
                              f"{', '.join(available_devices())})")
    return dev


def available_devices() -> list[str]:
    """What ``--device`` can name on this machine, best first (``auto`` picks the first)."""
    out = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return out + (["mps"] if _mps_available() else []) + ["cpu"]


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA if available, then MPS, else CPU; anything else is checked by :func:`check_device`."""
    if str(device) != "auto":
        return check_device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device) -> torch.dtype:
    """``"float32"|"float16"|"bfloat16"`` -> torch dtype, after checking that ``device`` exists
    (:class:`DeviceError` if not); a clear error naming the dtypes that do work if the device cannot run it."""
    device = check_device(device)
    if isinstance(dtype, torch.dtype):
        dtype = str(dtype).replace("torch.", "")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    problem = _dtype_problem(DTYPES[dtype], device)
    if problem:
        working = [name for name, dt in DTYPES.items() if name != dtype and not _dtype_problem(dt, device)]
        raise DeviceError(f"{dtype} is not supported on {device} by PyTorch {torch.__version__} ({problem}); "
                          f"use --dtype {' or '.join(working)}")
    return DTYPES[dtype]


def _dtype_problem(dt: torch.dtype, device: torch.device) -> str | None:
    """Why ``dt`` cannot run WaveGlow's ops on ``device`` (probed, not looked up in a table), or ``None``."""
    if dt == torch.float32:
        return None
    try:
        x = torch.zeros(1, 4, 16, device=device, dtype=dt)
        nn.functional.conv_transpose1d(x, torch.zeros(4, 4, 8, device=device, dtype=dt), stride=4)
        torch.tanh(nn.functional.conv1d(x, torch.zeros(4, 4, 3, device=device, dtype=dt), padding=2, dilation=2))
    except (RuntimeError, NotImplementedError, TypeError) as e:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return None


@contextmanager
def plain_cpu_convolutions(device: torch.device):
    """On CPU, without oneDNN: it builds its convolution kernels anew for every input length, seconds a clip
    (measured: 80 % of the time on clips of varying length; the starter voice scores at a real-time factor
    of 0.7 without it, 1.8 with it, on one core, and vocodes 6 mels of new lengths in 9 s instead of 29-31 s).
    Every file of a folder job, every demo upload and every chunk's remainder is a new length."""
    if device.type != "cpu" or not torch.backends.mkldnn.enabled:
        yield
        return
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = True
