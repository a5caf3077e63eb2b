"""What keeps a :class:`~waveflow.inference.Vocoder`'s outputs honest: padding masks that make a padded batch
equal its items made alone, and the check that no NaN or infinite sample is ever written."""

from __future__ import annotations

import torch

from ..errors import WaveflowError
from ..flows import WN


class NonFiniteAudioError(WaveflowError, RuntimeError):
    """The model made NaN or infinite samples (broken weights, or a mel it cannot take): nothing to write."""


def check_finite(audio: torch.Tensor, what: str) -> torch.Tensor:
    bad = int((~torch.isfinite(audio)).sum())
    if bad:
        raise NonFiniteAudioError(f"{what}: the model made {bad} NaN or infinite samples out of {audio.numel()} "
                                  "(its weights or this mel are broken); no audio written")
    return audio


class PaddingMask:
    """Forward hooks zeroing each WN's residual stream past each item's end (see the Vocoder's docstring)."""

    def __init__(self, model: torch.nn.Module):
        self.mask: torch.Tensor | None = None
        for wn in (m for m in model.modules() if isinstance(m, WN)):
            for layer in (wn.start, *wn.res_skip_layers):
                layer.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        return None if self.mask is None else output * self.mask
