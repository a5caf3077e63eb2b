"""Inference-ready weights of a :class:`~waveflow.models.WaveGlow`, packed once for :class:`FastInverse`.

Folds done here, in float64 before the cast to the working dtype:

- the cond layers of ALL flows are stacked into one ``(n_flows * n_layers * 2C, n_mels * n_group)`` weight,
  so the conditioning of the whole inverse is one GEMM per call (or per chunk);
- each layer's cond-layer bias and in-layer bias are summed into one ``(2C,)`` vector that the gate kernel
  adds (the big GEMM and the dilated convs then run without a bias epilogue);
- the 1x1-conv inverse (``InvConv1x1.inverse_weight(float64)``) is kept in float32 and applied inside the
  coupling kernel, on the float32 audio state, so it costs no launch and no pass over memory.

Weight norm is read through ``conv.weight`` (the parametrisation computes ``g * v / ||v||``), so a model
with or without ``remove_weight_norm()`` gives the same pack, and the model itself is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models import WaveGlow
from ..models.prepare import flow_reach_steps


@dataclass
class FlowPack:
    """One flow step's weights. ``row0``: first row of this step's channels in the ``(B, G, n)`` state."""

    n_ch: int
    half: int
    row0: int
    w_start: torch.Tensor  # (C, half) float32
    b_start: torch.Tensor  # (C,) float32
    w_in: list[torch.Tensor]  # per layer (2C, C, k) working dtype
    w_taps: list[list[torch.Tensor]]  # per layer, per tap (2C, C) contiguous, working dtype
    dilations: list[int]
    b_gate: list[torch.Tensor]  # per layer (2C,) float32: cond bias + in-layer bias
    w_rs: list[torch.Tensor]  # per layer (2C or C, C) working dtype
    b_rs: list[torch.Tensor]  # per layer float32
    w_shift: torch.Tensor  # (n_ch - half, C) working dtype
    b_shift: torch.Tensor  # float32
    w_logs: torch.Tensor | None  # None for additive couplings
    b_logs: torch.Tensor | None
    w_inv: torch.Tensor  # (n_ch, n_ch) float32 (computed in float64)


@dataclass
class ModelPack:
    n_mels: int
    n_group: int
    hop: int
    n_layers: int
    n_channels: int
    kernel_size: int
    dtype: torch.dtype
    w_up: torch.Tensor  # ConvTranspose1d weight (n_mels, n_mels, 4 hop), working dtype
    b_up: torch.Tensor
    mel_shift: float  # added to the mel before the upsampler (WaveGlowConfig.mel_shift)
    w_cond: torch.Tensor  # (n_flows * n_layers * 2C, n_mels * n_group), working dtype; flow-major rows
    flows: list[FlowPack]
    reach: int = 0  # latent columns each side one output column depends on (the model's flow_reach_steps)
    prior: torch.nn.Module | None = None  # the model's SpectralPrior (colours the flow's output), if any

    @property
    def max_pad(self) -> int:
        return (self.kernel_size - 1) // 2 * 2 ** (self.n_layers - 1)

    def cond_row0(self, flow: int, layer: int) -> int:
        return (flow * self.n_layers + layer) * 2 * self.n_channels

    def receptive_field(self) -> int:
        """Time steps (columns) on each side that one output column depends on, through all flows."""
        return self.reach


def _w(conv: torch.nn.Module) -> torch.Tensor:
    return conv.weight.detach().double()


def _b(conv: torch.nn.Module) -> torch.Tensor:
    return conv.bias.detach().double()


def unsupported(model: WaveGlow) -> str | None:
    """Why the fused kernels cannot run ``model``, or ``None`` when they can."""
    kind = getattr(model.config, "type", None)
    if kind != "waveglow":
        return f"the fused kernels are WaveGlow-only (this is a {kind} model; it runs its own inverse)"
    if any(step.coupling.swap_halves for step in model.flows):
        return "the fused kernels do not support couplings that alternate halves (NVIDIA glow_old models)"
    return None


@torch.no_grad()
def pack_model(model: WaveGlow, dtype: torch.dtype) -> ModelPack:
    """Snapshot ``model``'s weights for the fast inverse (re-pack after changing the weights).

    Raises:
        NotImplementedError: for NVIDIA ``glow_old`` models (couplings that alternate halves); run those
            with ``model.inverse`` (the :class:`~waveflow.inference.Vocoder` does so by itself).
    """
    cfg = model.config
    reason = unsupported(model)
    if reason:
        raise NotImplementedError(f"{reason}; use the eager path (--kernels off)")
    C, L = cfg.n_channels, cfg.n_layers
    dev = next(model.parameters()).device
    f32 = {"dtype": torch.float32, "device": dev}
    wd = {"dtype": dtype, "device": dev}
    channels = cfg.flow_channels()
    flows, cond_ws = [], []
    for k, step in enumerate(model.flows):
        wn, n_ch = step.coupling.wn, channels[k]
        half = n_ch // 2
        cond_w = _w(wn.cond_layer).squeeze(-1)
        cond_b = _b(wn.cond_layer)
        cond_ws.append(cond_w)
        w_in, taps, dil, b_gate, w_rs, b_rs = [], [], [], [], [], []
        for i in range(L):
            conv = wn.in_layers[i]
            wi = _w(conv)
            w_in.append(wi.to(**wd).contiguous())
            taps.append([wi[:, :, j].to(**wd).contiguous() for j in range(wi.shape[-1])])
            dil.append(conv.dilation[0])
            b_gate.append((cond_b[2 * C * i : 2 * C * (i + 1)] + _b(conv)).to(**f32))
            w_rs.append(_w(wn.res_skip_layers[i]).squeeze(-1).to(**wd).contiguous())
            b_rs.append(_b(wn.res_skip_layers[i]).to(**f32))
        w_end, b_end = _w(wn.end).squeeze(-1), _b(wn.end)
        additive = step.coupling.additive
        n_b = n_ch - half
        flows.append(
            FlowPack(
                n_ch=n_ch,
                half=half,
                row0=cfg.n_group - n_ch,
                w_start=_w(wn.start).squeeze(-1).to(**f32).contiguous(),
                b_start=_b(wn.start).to(**f32),
                w_in=w_in,
                w_taps=taps,
                dilations=dil,
                b_gate=b_gate,
                w_rs=w_rs,
                b_rs=b_rs,
                w_shift=w_end[:n_b].to(**wd).contiguous(),
                b_shift=b_end[:n_b].to(**f32),
                w_logs=None if additive else w_end[n_b:].to(**wd).contiguous(),
                b_logs=None if additive else b_end[n_b:].to(**f32),
                w_inv=step.invconv.inverse_weight(torch.float64).to(**f32).contiguous(),
            )
        )
    return ModelPack(
        n_mels=cfg.n_mels,
        n_group=cfg.n_group,
        hop=cfg.hop_length,
        n_layers=L,
        n_channels=C,
        kernel_size=cfg.kernel_size,
        dtype=dtype,
        reach=flow_reach_steps(cfg),
        prior=model.prior,
        w_up=model.upsample.weight.detach().to(**wd),
        b_up=model.upsample.bias.detach().to(**wd),
        mel_shift=cfg.mel_shift,
        w_cond=torch.cat(cond_ws, 0).to(**wd).contiguous(),
        flows=flows,
    )
