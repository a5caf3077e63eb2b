"""Inference: :class:`Vocoder` (device, dtype, batches, chunks, streaming), its runtime choices, the denoiser."""

from .denoiser import Denoiser
from .runtime import DTYPES, NOISE_BLOCK, derive_seed, latent_noise, pick_device, resolve_dtype
from .vocoder import Vocoder

__all__ = ["DTYPES", "NOISE_BLOCK", "Denoiser", "Vocoder", "derive_seed", "latent_noise", "pick_device",
           "resolve_dtype"]
