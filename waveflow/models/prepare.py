"""What a :class:`~waveflow.models.WaveGlow` needs to run inference: its reach (receptive field), its weights
with weight norm folded under stable names, and a folded copy on a device and dtype."""

from __future__ import annotations

import math
import re

import torch
from torch import nn
from torch.nn.utils import parametrize

from .config import WaveGlowConfig
from .waveglow import WaveGlow

UPSAMPLER_REACH = 3  # the transposed conv (kernel 4 hop, stride hop) makes sample t from frames t//hop-3..t//hop


def flow_reach_steps(config: WaveGlowConfig) -> int:
    """Latent time steps (columns of ``n_group`` samples) on each side that one output step depends on,
    through the WN stacks of all flows."""
    return config.n_flows * ((config.kernel_size - 1) // 2) * (2**config.n_layers - 1)


def receptive_field_frames(config: WaveGlowConfig) -> int:
    """Mel frames of context each side that make a chunk exact: the WN stacks' reach, the upsampler's and the
    spectral prior's (its lapped transform couples neighbouring frames)."""
    steps = flow_reach_steps(config)
    reach = math.ceil((steps + 1) * config.n_group / config.hop_length) + UPSAMPLER_REACH + 1
    return reach + config.prior_context_frames


def plain_state_dict(model: WaveGlow) -> dict[str, torch.Tensor]:
    """The model's weights with weight norm folded, on CPU, under stable names (``...start.weight``)."""
    out: dict[str, torch.Tensor] = {}
    pattern = re.compile(r"^(.*)\.parametrizations\.(\w+)\.original[01]$")
    for key, value in model.state_dict().items():
        m = pattern.match(key)
        if m:
            module = model.get_submodule(m.group(1))
            assert parametrize.is_parametrized(module, m.group(2))
            key, value = f"{m.group(1)}.{m.group(2)}", getattr(module, m.group(2))
        out[key] = value.detach().to("cpu", torch.float32).contiguous().clone()
    return out


def prepare_for_inference(model: WaveGlow, device: torch.device, dtype: torch.dtype) -> WaveGlow:
    """A folded, frozen copy of ``model`` on ``device`` in ``dtype`` (the caller's model is left as it was).

    The 1x1 convs keep float32 master weights: their inverses are computed in float64 from them and cast.
    """
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
