"""WaveFlow (Ping, Peng, Zhao and Song, ICML 2020): a flow autoregressive over a squeezed height.

The audio is squeezed into ``h x w`` (column ``j`` holds samples ``j*h .. j*h + h - 1``: WaveGlow's fold with
``n_group = h``); each of ``n_flows`` steps is an affine transform autoregressive over the ``h`` rows and
parallel over the ``w`` columns (:class:`~waveflow.flows.rowflow.RowAffineFlow`), and the rows are reordered
between steps (reversed, or each half reversed). WaveGlow (``h`` groups, no autoregression) and WaveNet
(``h = T``) are its two extremes. The upsampler, ``mel_shift`` and the priors are WaveGlow's, so ``forward``,
``inverse``, ``infer``, ``nll`` and ``nll_profile`` have WaveGlow's shapes and meanings; the latent ``z (B, h,
T // h)`` holds the last step's rows in its row order, and each column of ``z`` is the same ``h`` samples the
column of the audio is.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..flows import build_prior, remove_weight_norm
from ..flows.rowflow import RowAffineFlow
from ..flows.wavenet2d import apply_weight_norm
from .prepare import UPSAMPLER_REACH
from .prepare import plain_state_dict as _plain_state_dict
from .waveflow_config import WaveFlowConfig
from .waveglow import NLLOutput, upsample_condition


class WaveFlow(nn.Module):
    """Flow-based vocoder. ``forward``: audio -> latent (training); ``inverse``/``infer``: latent -> audio."""

    def __init__(self, config: WaveFlowConfig | None = None):
        super().__init__()
        self.config = cfg = config or WaveFlowConfig()
        self.upsample = nn.ConvTranspose1d(cfg.n_mels, cfg.n_mels, 4 * cfg.hop_length, stride=cfg.hop_length)
        dilations = cfg.height_dilation_list()
        self.flows = nn.ModuleList(
            RowAffineFlow(cfg.n_mels, cfg.n_layers, cfg.n_channels, cfg.kernel_size, dilations)
            for _ in range(cfg.n_flows)
        )
        self.prior = build_prior(cfg.prior, cfg.prior_mel_config())
        # orders[k]: the original rows in flow k's input positions (orders[n_flows]: z's rows). Derived from
        # the config, so not saved; buffers, so they follow the model's device.
        perms = torch.tensor(cfg.permutations(), dtype=torch.long).reshape(cfg.n_flows, cfg.n_height)
        orders = [torch.arange(cfg.n_height)]
        for perm in perms:
            orders.append(orders[-1][perm])
        self.register_buffer("perms", perms, persistent=False)
        self.register_buffer("orders", torch.stack(orders), persistent=False)

    # ------------------------------------------------------------------ shapes
    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def prior_context_frames(self) -> int:
        """Mel frames the prior adds to the receptive field on each side (0 without a prior)."""
        return self.config.prior_context_frames

    @property
    def batches_padded(self) -> bool:
        """Items of different lengths may not share a padded batch: nothing masks the 2-D nets' padding."""
        return False

    def condition(self, mel: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Upsample and squeeze the mel like the audio: ``(B, n_mels, F) -> (B, n_mels, h, num_samples // h)``.

        The transposed conv gives ``(F + 3) * hop`` samples; the first ``num_samples`` are kept.
        """
        cfg = self.config
        if cfg.mel_shift:
            mel = mel + cfg.mel_shift
        up = upsample_condition(mel, self.upsample.weight, self.upsample.bias, cfg.hop_length, cfg.n_height,
                                num_samples)
        return up.reshape(up.shape[0], cfg.n_mels, cfg.n_height, -1)

    def _squeeze(self, audio: torch.Tensor) -> torch.Tensor:
        h = self.config.n_height
        if audio.dim() != 2:
            raise ValueError(f"audio must be (B, T), got shape {tuple(audio.shape)}")
        if audio.shape[1] % h:
            raise ValueError(f"audio length {audio.shape[1]} must be a multiple of n_height={h}")
        return audio.reshape(audio.shape[0], -1, h).transpose(1, 2)

    # ------------------------------------------------------------------ flow
    def flow(self, audio: torch.Tensor, mel: torch.Tensor, steps: list | None = None,
             whitened: list | None = None):
        """Audio to latent with the log-determinant parts of the flow steps.

        Args:
            audio: ``(B, T)`` in [-1, 1], ``T`` a multiple of ``n_height`` (of ``hop_length`` with a prior).
            mel: ``(B, n_mels, F)`` with ``(F + 3) * hop >= T``.
            steps: if a list is given, one ``(log_s (B,), logdet_w (B,))`` pair per flow step is appended
                (``logdet_w`` is 0: a row permutation has log-det 0).
            whitened: if a list is given, the flow's input ``(B, T)`` is appended (the audio whitened by the
                prior; the audio itself without a prior).

        Returns:
            ``(z (B, h, T // h), log_s (B,), logdet_w (B,))``, ``logdet_w`` zeros; not the prior's log-det.
        """
        return self._flow(audio, mel, steps, whitened)[:3]

    def _flow(self, audio, mel, steps=None, whitened=None, per_step=False):
        """:meth:`flow`, then the prior's log-det (``None`` without a prior). ``per_step``: the log-dets per
        column ``(B, T // h)``, the prior's per hop ``(B, T // hop)``."""
        x, logdet_p = self._squeeze(audio), None  # the shape checks come first
        if self.prior is not None:
            audio, logdet_p = self.prior(audio, mel, per_frame=True) if per_step else self.prior(audio, mel)
            x = self._squeeze(audio)
        if whitened is not None:
            whitened.append(audio)
        cond = self.condition(mel, audio.shape[1])
        log_s = 0.0
        for k, step in enumerate(self.flows):
            x, ld = step(x, cond.index_select(2, self.orders[k]), per_step=per_step)
            x = x.index_select(1, self.perms[k])
            log_s = log_s + ld
            if steps is not None:
                steps.append((ld, torch.zeros_like(ld)))
        return x, log_s, torch.zeros_like(log_s), logdet_p

    def forward(self, audio: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(audio (B, T), mel (B, n_mels, F)) -> (z (B, h, T // h), logdet (B,))``."""
        z, log_s, _, logdet_p = self._flow(audio, mel)
        return z, log_s if logdet_p is None else log_s + logdet_p

    def inverse(self, z: torch.Tensor, mel: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """Exact inverse of :meth:`forward`: ``(z (B, h, T // h), mel) -> audio (B, T)``.

        Each flow runs its ``h`` rows in order with per-layer row queues (one row of work per row); the mel's
        upsampling is done once for all flows and rows. ``known``: for a recursive prior (``source-filter``),
        the first audio samples already made (a stream's previous chunk); see :mod:`waveflow.flows.priors`.
        """
        return self._inverse(z, mel, known, reference=False)

    def inverse_reference(self, z: torch.Tensor, mel: torch.Tensor,
                          known: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`inverse` the plain way (every row runs each flow's whole net over all rows): slow, for tests."""
        return self._inverse(z, mel, known, reference=True)

    def _inverse(self, z, mel, known, reference):
        cfg = self.config
        if z.dim() != 3 or z.shape[1] != cfg.n_height:
            raise ValueError(f"z must be (B, {cfg.n_height}, T // {cfg.n_height}), got shape {tuple(z.shape)}")
        B, h, n = z.shape
        cond = self.condition(mel, n * h)
        x = z
        for k in reversed(range(cfg.n_flows)):
            x = x.index_select(1, torch.argsort(self.perms[k]))  # undo the permutation after flow k
            step = self.flows[k]
            if reference:
                x = step.inverse_reference(x, cond.index_select(2, self.orders[k]))
            else:
                x = step.inverse(x, cond, cond_rows=self.orders[k].tolist())
        audio = x.transpose(1, 2).reshape(B, -1)
        return audio if self.prior is None else self.prior.inverse(audio, mel, known=known)

    def infer(
        self, mel: torch.Tensor, sigma: float = 0.6, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Sample audio: ``(B, n_mels, F) -> (B, F * hop)`` from ``z ~ N(0, sigma^2)``.

        The noise is drawn in float32 (then cast), so the same generator state gives the same latent in
        every dtype. ``sigma=0`` gives the deterministic "bias" audio of the mel.
        """
        B, _, F = mel.shape
        h = self.config.n_height
        device = generator.device if generator is not None else mel.device
        noise = torch.randn(B, h, F * self.hop_length // h, generator=generator, device=device, dtype=torch.float32)
        return self.inverse((noise * sigma).to(device=mel.device, dtype=mel.dtype), mel)

    def nll(self, audio: torch.Tensor, mel: torch.Tensor, sigma: float = 1.0) -> NLLOutput:
        """Exact negative log-likelihood of ``audio`` under ``z ~ N(0, sigma^2 I)``, nats per sample.

        ``nll = (0.5 * sum(z^2) / sigma^2 + D log(sigma) + 0.5 D log(2 pi) - logdet) / D`` with ``D = T``,
        ``logdet`` including the prior's (reported apart as ``prior``); ``logdet_w`` is 0.
        """
        z, log_s, logdet_w, logdet_p = self._flow(audio, mel)
        D = audio.shape[1]
        work = torch.promote_types(z.dtype, torch.float32)  # half sums in float32; float64 stays float64
        z_term = 0.5 * z.to(work).pow(2).flatten(1).sum(1) / (sigma * sigma) / D
        s_term = -log_s.to(work) / D
        w_term = logdet_w.to(work)
        const = math.log(sigma) + 0.5 * math.log(2 * math.pi)
        p_term = None if logdet_p is None else -logdet_p.to(work) / D
        loss = z_term + s_term if p_term is None else z_term + s_term + p_term
        per_item = loss + const
        return NLLOutput(nll=per_item.mean(), nll_per_item=per_item, loss_nvidia=loss.mean(), z=z_term.mean(),
                         log_s=s_term.mean(), logdet_w=w_term.mean(), const=const,
                         prior=0.0 if p_term is None else p_term.mean())

    def nll_profile(self, audio: torch.Tensor, mel: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
        """The exact NLL frame by frame: ``(audio (B, T), mel) -> (B, T // hop)`` nats per sample of each
        hop-long block, ``T`` a multiple of ``hop``; their mean over frames is :meth:`nll`'s ``nll_per_item``."""
        hop, h = self.hop_length, self.config.n_height
        B, T = audio.shape
        if T % hop:
            raise ValueError(f"audio length {T} must be a multiple of hop_length={hop} for a per-frame NLL")
        z, log_s, _, logdet_p = self._flow(audio, mel, per_step=True)
        work = torch.promote_types(z.dtype, torch.float32)
        per_column = 0.5 * z.to(work).pow(2).sum(1) / (sigma * sigma) - log_s.to(work)
        per_frame = per_column.reshape(B, T // hop, hop // h).sum(-1)
        if logdet_p is not None:
            per_frame = per_frame - logdet_p.to(work)
        return per_frame / hop + math.log(sigma) + 0.5 * math.log(2 * math.pi)

    # ------------------------------------------------------------------ weight norm
    def remove_weight_norm(self) -> WaveFlow:
        """Fold weight norm into plain weights for inference (outputs unchanged up to rounding)."""
        remove_weight_norm(self)
        return self

    def apply_weight_norm(self) -> WaveFlow:
        """Re-apply weight norm (e.g. to fine-tune a folded model); outputs unchanged up to rounding."""
        apply_weight_norm(self)
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------- what inference needs (the seam's)
def flow_reach_steps(config: WaveFlowConfig, inverse: bool = True) -> int:
    """Columns (of ``h`` samples) on each side that one output column depends on, through all flows.

    Forward (audio -> z), each flow reads ``width_reach`` columns each side. The inverse is a recursion over
    the rows: row ``i`` is made from rows ``< i`` over ``width_reach`` columns each side, and those from theirs,
    so a flow's last row reaches ``h * width_reach`` columns (through its ``h - 1`` earlier rows and the mel).
    """
    per_flow = config.width_reach() * (config.n_height if inverse else 1)
    return config.n_flows * per_flow


def receptive_field_frames(config: WaveFlowConfig) -> int:
    """Mel frames of context each side that make a chunk of the inverse exact: the flows' reach (the inverse's,
    :func:`flow_reach_steps`: ``h`` times the forward's), the upsampler's and the prior's."""
    reach = math.ceil((flow_reach_steps(config) + 1) * config.n_height / config.hop_length) + UPSAMPLER_REACH + 1
    return reach + config.prior_context_frames


def plain_state_dict(model: WaveFlow) -> dict[str, torch.Tensor]:
    """The model's weights with weight norm folded, on CPU, under stable names (``...start.weight``)."""
    return _plain_state_dict(model)


def prepare_for_inference(model: WaveFlow, device: torch.device, dtype: torch.dtype) -> WaveFlow:
    """A folded, frozen copy of ``model`` on ``device`` in ``dtype`` (the caller's model is left as it was)."""
    with torch.inference_mode(False), torch.no_grad():  # parameters must not be inference tensors
        # A fresh model loaded with the folded weights, not copy.deepcopy (see models/prepare.py).
        fresh = WaveFlow(model.config).remove_weight_norm()
        fresh.load_state_dict(plain_state_dict(model))
        fresh.eval().requires_grad_(False).to(device=device, dtype=dtype)
    return fresh
