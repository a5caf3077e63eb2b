"""The spectral prior: an exact, mel-conditioned whitening layer ``e = Tᵀ diag(1/g) T x`` (source-filter).

``T`` is a modulated lapped transform (the MDCT: sine window, hop ``H`` = the mel hop, frames of ``2H``),
square and exactly orthogonal, so the layer's log-determinant is just ``-Σ log g``. The gains ``g > 0`` are
the spectral envelope the log-mel describes, spread onto the transform's bins, floored, and corrected by a
learned per-bin scale. Sampling colours white noise back with ``Tᵀ diag(g) T``: an untrained prior model
already makes envelope-shaped noise (a whisper of the mel); the flow learns what the mel does not say.

The transform is computed as what it is, an orthogonal butterfly across every frame boundary (time-domain
aliasing cancellation) followed by an orthonormal DCT-IV of each block. At the clip's two ends there is no
neighbour to fold with, and the butterfly is left out: the transform stays square and orthogonal without
wrapping the clip's end onto its start, so every coefficient is local, and a chunk computed with two frames of
context equals the whole clip's output exactly (a circular transform would tie the first samples to the last).
"""

from __future__ import annotations

import functools
import math

import librosa
import numpy as np
import torch
from torch import nn

from ..mel import MelConfig, mel_filterbank


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half and float32 inputs, float64 for float64 (exact tests)."""
    return torch.promote_types(dtype, torch.float32)


@functools.lru_cache(maxsize=16)
def _tables(H: int, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(alpha, beta, dct4)``: the butterflies' sine-window weights ``(H/2,)`` and the orthonormal DCT-IV
    matrix ``(H, H)`` (symmetric, its own inverse), made in float64 and cast.

    Made outside inference mode, so a table first built while vocoding can still be used for training.
    """
    with torch.inference_mode(False):
        m = torch.arange(2 * H, dtype=torch.float64)
        window = torch.sin(math.pi * (m + 0.5) / (2 * H))  # Princen-Bradley: w[m]^2 + w[m + H]^2 = 1
        j = torch.arange(H // 2)
        n = torch.arange(H, dtype=torch.float64)
        dct4 = math.sqrt(2.0 / H) * torch.cos(math.pi / H * (n[:, None] + 0.5) * (n[None, :] + 0.5))
        return tuple(t.to(device=device, dtype=dtype) for t in (window[H // 2 - 1 - j], window[H // 2 + j], dct4))


@functools.lru_cache(maxsize=16)
def _dct2(H: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``C (H, H)``, ``c = C v``; made in float64 and cast (see :func:`_tables`)."""
    with torch.inference_mode(False):
        n = torch.arange(H, dtype=torch.float64)
        c = math.sqrt(2.0 / H) * torch.cos(math.pi / H * (n[None, :] + 0.5) * n[:, None])
        c[0] /= math.sqrt(2.0)
        return c.to(device=device, dtype=dtype)


def _check(H: int, T: int) -> None:
    if H % 2 or T % H or T == 0:
        raise ValueError(f"the lapped transform needs an even hop and a positive multiple of it: hop {H}, "
                         f"audio length {T}")


def mdct(x: torch.Tensor, H: int, even_start: bool = False) -> torch.Tensor:
    """Lapped transform ``(B, T) -> (B, H, T // H)``, exactly orthogonal (``T`` a multiple of ``H``).

    Frame ``f`` is block ``[f*H, f*H + H)`` with its basis reaching ``H/2`` into each neighbour (window
    ``2H``), so it sits between mel frames ``f`` and ``f + 1`` (centred STFT). Coefficient ``k`` is at
    ``(k + 1/2) * sr / (2H)`` Hz. Inside the clip it is the classical MDCT
    ``sqrt(2/H) * sum_m w_m x[f*H - H/2 + m] cos(pi/H (m + 1/2 + H/2)(k + 1/2))``; at the two ends the
    missing neighbour's half is left out. Computed in float32 at least; the result has ``x``'s dtype.

    ``even_start``: transform the first frame with a DCT-II instead of the DCT-IV. The first frame's block
    ends (in the DCT's input order) with the clip's first sample, where the DCT-IV's basis is odd-symmetric: a
    clip that does not start at zero (a training segment cut from running speech) then has a step there, and
    its splatter across the high band, where the mel's gains are 40-60 dB down, whitened to values that cost
    ~23,000 nats in that one frame against ~100 in the others (measured on a random 8192-sample crop). The
    DCT-II is even at both ends: no step, and the frame costs about what an interior one does.
    """
    B, T = x.shape
    _check(H, T)
    work, h = _work_dtype(x.dtype), H // 2
    alpha, beta, dct4 = _tables(H, work, str(x.device))
    blocks = x.to(work).reshape(B, T // H, H)
    left = blocks[..., h:].flip(-1)  # x[b - 1 - j] before each block's right boundary b
    right = blocks[..., :h]  # x[b + j] after each block's left boundary b
    # Across the boundary between blocks f and f + 1: (left[f], right[f+1]) -> (u[f, j], u[f+1, H-1-j]).
    head = torch.cat([-beta * left[:, :-1] - alpha * right[:, 1:], -left[:, -1:]], dim=1)
    tail = torch.cat([-right[:, :1], alpha * left[:, :-1] - beta * right[:, 1:]], dim=1)
    folded = torch.cat([head, tail.flip(-1)], dim=-1)
    coeffs = folded @ dct4
    if even_start:
        coeffs = torch.cat([folded[:, :1] @ _dct2(H, work, str(x.device)).T, coeffs[:, 1:]], 1)
    return coeffs.transpose(1, 2).to(x.dtype)


def imdct(c: torch.Tensor, H: int, even_start: bool = False) -> torch.Tensor:
    """Inverse (= transpose) of :func:`mdct`: ``(B, H, n_frames) -> (B, n_frames * H)``."""
    B, _, n = c.shape
    _check(H, n * H)
    work, h = _work_dtype(c.dtype), H // 2
    alpha, beta, dct4 = _tables(H, work, str(c.device))
    coeffs = c.to(work).transpose(1, 2)
    folded = coeffs @ dct4
    if even_start:
        folded = torch.cat([coeffs[:, :1] @ _dct2(H, work, str(c.device)), folded[:, 1:]], 1)
    head, tail = folded[..., :h], folded[..., h:].flip(-1)
    left = torch.cat([-beta * head[:, :-1] + alpha * tail[:, 1:], -head[:, -1:]], dim=1)
    right = torch.cat([-tail[:, :1], -alpha * head[:, :-1] - beta * tail[:, 1:]], dim=1)
    return torch.cat([right, left.flip(-1)], dim=-1).reshape(B, n * H).to(c.dtype)


def spreading_matrix(config: MelConfig, hop: int) -> np.ndarray:
    """``(hop, n_mels)`` non-negative map from mel magnitudes to MDCT-coefficient standard deviations.

    Band ``m``'s flat STFT-magnitude level is ``mel_m / sum_k W[m, k]``; bin levels interpolate linearly
    between band centres (the pseudo-inverse of the filterbank goes negative or near zero between bands),
    holding the lowest band's level below its centre and the top band's above its centre, up to Nyquist
    (above ``fmax`` the mel says nothing). White noise of variance ``s**2`` has
    ``E|X|**2 = s**2 * sum(w**2)`` with the STFT window ``w``, and variance ``s**2`` per coefficient of an
    orthonormal transform: divide by ``sqrt(sum(w**2))``.
    """
    sr = config.sample_rate
    fb = mel_filterbank(config)
    area = fb.sum(axis=1)
    fmax = sr / 2 if config.fmax is None else config.fmax
    centres = librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=fmax, htk=False)[1:-1]
    bands = np.flatnonzero(area > 1e-6 * area.max())  # an empty filter (tiny n_fft) measures nothing
    bin_hz = (np.arange(hop) + 0.5) * sr / (2 * hop)
    pos = np.interp(bin_hz, centres[bands], np.arange(len(bands), dtype=float))  # held beyond the ends
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(bands) - 1)
    frac = pos - lo
    spread = np.zeros((hop, config.n_mels))
    rows = np.arange(hop)
    spread[rows, bands[lo]] += 1 - frac
    spread[rows, bands[hi]] += frac
    n = np.arange(config.win_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / config.win_length)  # periodic Hann, as in MelSpectrogram
    return spread / np.maximum(area, 1e-300)[None, :] / math.sqrt(float((window**2).sum()))


class SpectralPrior(nn.Module):
    """Exact whitening ``e = imdct(mdct(x) / g)`` with gains ``g (B, H, T // H)`` from the log-mel.

    ``forward(x, logmel) -> (e, logdet)``, ``logdet = -Σ log g`` per item; ``inverse(e, logmel) -> x``.
    Computed in float32 at least (half inputs are cast up and results back), with autocast off.

    Attributes:
        context_frames: mel frames of context one output sample needs on each side. Samples of block ``r``
            lie in frames ``r - 1 .. r + 1`` of the transform (the butterflies reach half a block across
            each boundary); those read ``e`` over ``[r*H - 3H/2, r*H + 5H/2)`` and the gains of mel frames
            ``r - 1 .. r + 2``: 2 frames covers it. Nothing wraps round the clip.
        log_scale: ``(H,)`` learned per-bin log-gain correction (exact: it is part of ``g``).
    """

    context_frames = 2
    recursive = False  # the inverse needs no state carried from a stream's previous chunk
    floor = 2.0**-15 / math.sqrt(12.0)  # std of 16-bit dequantisation noise
    relative_floor = 1e-3  # of the frame's loudest gain: envelope dips and bins above fmax whiten sanely
    # Measured with log_scale 0 on dequantised espeak-ng speech (10 utterances, 7 voices, 22.05 kHz):
    # whitened variance 0.68-1.67, geometric mean 0.9 (8-10 bits/sample against 13.1-13.8 for a white
    # Gaussian). This init brings the mean to 1; training then moves each bin (most above fmax, where the
    # held top band is off by up to 6x, and below 700 Hz, where pitch harmonics stand out).
    log_scale_init = 0.5 * math.log(0.9)

    def __init__(self, mel_config: MelConfig, even_start: bool = False):
        super().__init__()
        self.mel_config = mel_config
        self.hop = mel_config.hop_length
        self.even_start = even_start  # see mdct(); off for ``spectral`` (its models were trained without)
        self.log_scale = nn.Parameter(torch.full((self.hop,), self.log_scale_init))
        spread = torch.from_numpy(spreading_matrix(mel_config, self.hop)).float()
        self.register_buffer("spread", spread, persistent=False)  # derived from the config, not saved

    @classmethod
    def weight_count(cls, mel_config: MelConfig) -> int:
        """Parameters: the per-bin log-scale."""
        return mel_config.hop_length

    def log_gains(self, logmel: torch.Tensor, num_samples: int) -> torch.Tensor:
        """``log g``: ``(B, n_mels, F) -> (B, H, num_samples // H)`` in float32 (float64 for float64 mels)."""
        H, n = self.hop, num_samples // self.hop
        if logmel.dim() != 3 or logmel.shape[1] != self.mel_config.n_mels:
            n_mels = self.mel_config.n_mels
            raise ValueError(f"mel must be (B, {n_mels}, frames), got shape {tuple(logmel.shape)}")
        F = logmel.shape[-1]
        if num_samples % H or not 0 < n <= F:
            raise ValueError(f"the spectral prior needs a multiple of hop {H} samples and a mel frame per "
                             f"hop: got {num_samples} samples for {F} frames")
        work = _work_dtype(logmel.dtype)
        with torch.autocast(logmel.device.type, enabled=False):
            spread = self.spread.to(device=logmel.device, dtype=work)
            mel = logmel.to(work)
            # Frame f lies between mel frames f and f + 1 (the last one, at inference, only has frame f):
            # their mean power. A mel of exactly n frames repeats its last frame.
            power = torch.matmul(spread, mel.exp()).square()
            following = power[..., 1 : n + 1] if F > n else torch.cat([power[..., 1:n], power[..., n - 1 : n]], -1)
            gains = (0.5 * (power[..., :n] + following)).sqrt()
            log_g = gains.log() + self.log_scale.to(work)[:, None]
            lowest = log_g.amax(dim=1, keepdim=True) + math.log(self.relative_floor)
            return torch.maximum(log_g, lowest.clamp(min=math.log(self.floor)))

    def gains(self, logmel: torch.Tensor, num_samples: int) -> torch.Tensor:
        """Per-coefficient standard deviations ``g > 0``: ``(B, n_mels, F) -> (B, H, num_samples // H)``."""
        return self.log_gains(logmel, num_samples).exp()

    def forward(self, x: torch.Tensor, logmel: torch.Tensor, offset: torch.Tensor | None = None,
                per_frame: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Whiten: ``(x (B, T), logmel (B, n_mels, F)) -> (e (B, T), logdet (B,))``, ``F >= T // H``.

        ``offset``: optional ``(B, 1 or H, T // H)`` added to ``log g`` after the floors (a component before
        this one that changes the signal's level, e.g. the pitch predictor). ``per_frame``: the log-det of each
        transform frame ``(B, T // H)`` (frame ``r`` holds block ``[r H, (r + 1) H)``). ``logdet`` is in
        float32 at least; ``e`` has ``x``'s dtype.
        """
        if x.dim() != 2:
            raise ValueError(f"audio must be (B, T), got shape {tuple(x.shape)}")
        log_g = self._offset(self.log_gains(logmel, x.shape[1]), offset)
        H, even = self.hop, self.even_start
        e = imdct(mdct(x.to(log_g.dtype), H, even) * torch.exp(-log_g), H, even)
        return e.to(x.dtype), -log_g.sum(1) if per_frame else -log_g.flatten(1).sum(1)

    def inverse(self, e: torch.Tensor, logmel: torch.Tensor, offset: torch.Tensor | None = None,
                known: torch.Tensor | None = None) -> torch.Tensor:
        """Colour: ``(e (B, T), logmel) -> x (B, T)``, the exact inverse of :meth:`forward`. ``known`` (the
        protocol's stream state) is unused: the colouring is local, not recursive."""
        log_g = self._offset(self.log_gains(logmel, e.shape[1]), offset)
        H, even = self.hop, self.even_start
        return imdct(mdct(e.to(log_g.dtype), H, even) * log_g.exp(), H, even).to(e.dtype)

    @staticmethod
    def _offset(log_g: torch.Tensor, offset: torch.Tensor | None) -> torch.Tensor:
        return log_g if offset is None else log_g + offset.to(log_g.dtype)
