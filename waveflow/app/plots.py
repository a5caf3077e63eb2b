"""Matplotlib figures for the demo: spectrograms, the latent against a Gaussian, per-step log-determinants.

Every function returns a :class:`matplotlib.figure.Figure` built with the object API (no pyplot state), so
figures made by concurrent requests never draw into each other. The Agg backend is forced: the demo is a
server and must never try to open a window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

LN2 = math.log(2.0)
CMAP = "magma"
AUDIO_COLOR = "#9aa3ad"  # grey: the input, for reference
LATENT_COLOR = "#1f77b4"  # blue: what the flow made of it
WHITENED_COLOR = "#2ca02c"  # green: the audio whitened by the spectral prior (the flow's input)
GAUSS_COLOR = "#d62728"  # red: the target, N(0, 1)
COUPLING_COLOR = "#2a9d8f"
INVCONV_COLOR = "#e9c46a"

_STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "figure.dpi": 100,
}


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def _mel_hz_ticks(n_mels: int, fmin: float, fmax: float) -> tuple[list[float], list[str]]:
    """Positions (in mel bins) and labels (Hz) for a readable frequency axis on a mel spectrogram."""
    import librosa

    centres = librosa.mel_frequencies(n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False)
    positions, labels = [], []
    for hz in (0, 500, 1000, 2000, 4000, 8000, 16000):
        if centres[0] - 1.0 <= hz <= centres[-1] + 1.0:
            positions.append(float(np.interp(hz, centres, np.arange(n_mels))))
            labels.append(f"{hz / 1000:g}k" if hz >= 1000 else f"{hz}")
    return positions, labels


def _draw_pitch(ax, f0: np.ndarray, n_mels: int, frame_seconds: float, fmin: float, fmax: float) -> None:
    """F0 and its 2nd and 3rd harmonics as lines on a mel spectrogram's axes (mel-bin coordinates)."""
    import librosa

    centres = librosa.mel_frequencies(n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False)
    t = np.arange(len(f0)) * frame_seconds
    for k, style in ((1, "-"), (2, ":"), (3, ":")):
        ax.plot(t, np.interp(k * f0, centres, np.arange(n_mels), right=np.nan), style, color="white",
                linewidth=1.6 if k == 1 else 0.9, label="pitch (from the mel) and 2nd, 3rd harmonics" if k == 1 else None)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.6)


def mel_figure(
    mels: Sequence[tuple[str, np.ndarray]],
    sample_rate: int,
    hop_length: int,
    fmin: float = 0.0,
    fmax: float | None = 8000.0,
    floor: float = -11.5,
    pitch: np.ndarray | None = None,
) -> Figure:
    """Log-mel spectrograms stacked vertically on one colour scale (so they can be compared by eye).

    Args:
        mels: ``(title, mel (n_mels, F))`` pairs, natural-log magnitudes.
        sample_rate, hop_length: to label the time axis in seconds.
        fmin, fmax: the mel range, to label the frequency axis in Hz.
        floor: the silence level (``ln(clamp_min)``); the colour scale starts there.
        pitch: optional F0 in Hz per frame of the first mel (NaN where unvoiced), drawn over it with its
            first harmonics (the source-filter prior's pitch track).
    """
    fmax = fmax if fmax is not None else sample_rate / 2
    n = max(1, len(mels))
    top = max((float(np.nanmax(m)) for _, m in mels if m.size), default=0.0)
    vmax = max(top, floor + 1.0)
    fig = _figure(9.5, 0.9 + (2.0 if n <= 2 else 1.45 if n == 3 else 1.15) * n)
    with matplotlib.rc_context(_STYLE):
        axes = fig.subplots(n, 1, squeeze=False, sharex=True)[:, 0]
        image = None
        longest = max((m.shape[-1] for _, m in mels), default=1)
        for ax, (title, mel) in zip(axes, mels):
            n_mels, frames = mel.shape
            seconds = frames * hop_length / sample_rate
            image = ax.imshow(
                mel,
                origin="lower",
                aspect="auto",
                cmap=CMAP,
                vmin=floor,
                vmax=vmax,
                extent=(0.0, seconds, -0.5, n_mels - 0.5),
                interpolation="nearest",
            )
            ax.set_title(title, loc="left")
            ax.set_ylabel("frequency (Hz)")
            positions, labels = _mel_hz_ticks(n_mels, fmin, fmax)
            ax.set_yticks(positions, labels)
            ax.set_xlim(0.0, longest * hop_length / sample_rate)
        if pitch is not None and len(mels):
            _draw_pitch(axes[0], np.asarray(pitch, float), mels[0][1].shape[0], hop_length / sample_rate, fmin, fmax)
        axes[-1].set_xlabel("time (s)")
        if image is not None:
            bar = fig.colorbar(image, ax=list(axes), shrink=0.9, pad=0.01)
            bar.set_label("log magnitude (ln)")
    return fig


def latent_figure(z: np.ndarray, audio: np.ndarray, whitened: np.ndarray | None = None,
                  max_points: int = 200_000) -> Figure:
    """What the flow does to the samples: histogram and Q-Q plot of ``z`` and of the audio, against N(0, 1).

    The audio is scaled to unit variance so both can be drawn against the same Gaussian: speech is peaked
    and heavy-tailed; a well-trained flow turns it into something close to the red curve.

    Args:
        z: the latent, any shape (flattened).
        audio: the input waveform, any shape (flattened).
        whitened: for a model with the spectral prior, the audio whitened by it (the flow's input, not
            rescaled: the prior alone should bring it close to unit variance).
    """
    from scipy.stats import norm

    z = _subsample(np.asarray(z, dtype=np.float64).ravel(), max_points)
    a = np.asarray(audio, dtype=np.float64).ravel()
    a = _subsample(a / max(float(a.std()), 1e-12), max_points)
    e = None if whitened is None else _subsample(np.asarray(whitened, dtype=np.float64).ravel(), max_points)
    fig = _figure(10.5, 3.9)
    with matplotlib.rc_context(_STYLE):
        hist_ax, qq_ax = fig.subplots(1, 2)
        edges = np.linspace(-6, 6, 121)
        hist_ax.hist(a, bins=edges, density=True, histtype="stepfilled", color=AUDIO_COLOR, alpha=0.6,
                     label="audio samples (scaled to std 1)")
        if e is not None:
            hist_ax.hist(e, bins=edges, density=True, histtype="step", color=WHITENED_COLOR, linewidth=1.4,
                         label="whitened by the spectral prior")
        hist_ax.hist(z, bins=edges, density=True, histtype="step", color=LATENT_COLOR, linewidth=1.8,
                     label="latent z")
        grid = np.linspace(-6, 6, 400)
        hist_ax.plot(grid, norm.pdf(grid), color=GAUSS_COLOR, linewidth=1.4, linestyle="--",
                     label="standard Gaussian N(0, 1)")
        hist_ax.set_yscale("log")
        hist_ax.set_ylim(1e-4, 3.0)
        hist_ax.set_xlim(-6, 6)
        hist_ax.set_xlabel("value")
        hist_ax.set_ylabel("density (log scale)")
        hist_ax.set_title("Histogram: a Gaussian is a parabola here", loc="left")
        hist_ax.legend(loc="upper left", fontsize=8.5)

        theory = np.linspace(-4.0, 4.0, 161)
        probs = norm.cdf(theory)
        qq_ax.plot([-4.5, 4.5], [-4.5, 4.5], color=GAUSS_COLOR, linestyle="--", linewidth=1.2,
                   label="perfect N(0, 1)")
        qq_ax.plot(theory, np.quantile(a, probs), ".", color=AUDIO_COLOR, markersize=4, label="audio (scaled)")
        if e is not None:
            qq_ax.plot(theory, np.quantile(e, probs), ".", color=WHITENED_COLOR, markersize=4, label="whitened")
        qq_ax.plot(theory, np.quantile(z, probs), ".", color=LATENT_COLOR, markersize=4, label="latent z")
        qq_ax.set_xlim(-4.5, 4.5)
        qq_ax.set_ylim(-6, 6)
        qq_ax.set_xlabel("quantile of N(0, 1)")
        qq_ax.set_ylabel("quantile of the data")
        qq_ax.set_title("Q-Q plot: on the dashed line = Gaussian", loc="left")
        qq_ax.legend(loc="upper left", fontsize=9)
        for ax in (hist_ax, qq_ax):
            ax.grid(alpha=0.25)
    return fig


def _subsample(x: np.ndarray, max_points: int) -> np.ndarray:
    if x.size <= max_points:
        return x
    step = math.ceil(x.size / max_points)
    return x[::step]


def flow_steps_figure(
    coupling_bits: Sequence[float],
    invconv_bits: Sequence[float],
    gaussian_bits: float,
    total_bits: float,
    prior_bits: float | None = None,
    predictor_bits: float | None = None,
) -> Figure:
    """Each flow step's share of the NLL, and how the NLL adds up.

    All values are NLL contributions in bits per audio sample (negative log-determinants divided by the
    number of samples): a step that spreads the audio out (a large log-determinant) lowers the NLL.

    Args:
        coupling_bits: per step, ``-log_s / (T ln 2)`` of the affine coupling.
        invconv_bits: per step, ``-logdet_w / (T ln 2)`` of the 1x1 convolution.
        gaussian_bits: the prior's term ``(0.5 z^2 / sigma^2 + log sigma + 0.5 log 2 pi) / ln 2`` per sample.
        total_bits: the NLL in bits per sample (the sum of everything above).
        prior_bits: for a model with a prior, its ``-logdet / (T ln 2)`` (the mel's envelope explaining the
            audio's level before any flow step).
        predictor_bits: for the source-filter prior, the bits per sample its pitch predictor saves beside the
            whitening alone (drawn hatched, as a negative share; its log-det is 0, so it is not a term of the sum).
    """
    n = len(coupling_bits)
    # Float rounding leaves ~1e-8 where a term is exactly zero (e.g. orthogonal 1x1 convs at initialisation);
    # drawn on their own scale those would look like real effects.
    coupling_bits = [0.0 if abs(v) < 1e-6 else float(v) for v in coupling_bits]
    invconv_bits = [0.0 if abs(v) < 1e-6 else float(v) for v in invconv_bits]
    fig = _figure(10.5, 3.9)
    with matplotlib.rc_context(_STYLE):
        step_ax, sum_ax = fig.subplots(1, 2, width_ratios=(1.5, 1.0))
        x = np.arange(1, n + 1)
        width = 0.38
        step_ax.bar(x - width / 2, coupling_bits, width, color=COUPLING_COLOR, label="affine coupling  (−Σ log s)")
        step_ax.bar(x + width / 2, invconv_bits, width, color=INVCONV_COLOR, label="1×1 conv  (−log |det W|)")
        step_ax.axhline(0.0, color="black", linewidth=0.8)
        low, high = min(0.0, *coupling_bits, *invconv_bits), max(0.0, *coupling_bits, *invconv_bits)
        pad = max(0.05, 0.12 * (high - low))
        step_ax.set_ylim(low - pad, high + pad)
        step_ax.ticklabel_format(axis="y", style="plain", useOffset=False)
        step_ax.set_xticks(x)
        step_ax.set_xlabel("flow step (audio → noise)")
        step_ax.set_ylabel("bits per sample")
        step_ax.set_title("Each step's change to the NLL (below 0 = helps)", loc="left")
        step_ax.legend(fontsize=9, loc="best")
        step_ax.grid(axis="y", alpha=0.25)

        parts = [("prior (whitening)", prior_bits, WHITENED_COLOR)] if prior_bits is not None else []
        if predictor_bits is not None:
            parts.append(("pitch predictor's share", -predictor_bits, WHITENED_COLOR))
        parts += [
            ("Gaussian prior on z", gaussian_bits, GAUSS_COLOR),
            ("all couplings", float(np.sum(coupling_bits)), COUPLING_COLOR),
            ("all 1×1 convs", float(np.sum(invconv_bits)), INVCONV_COLOR),
            ("NLL (sum)", total_bits, "#264653"),
        ]
        labels = [p[0] for p in parts]
        values = [p[1] for p in parts]
        y = np.arange(len(parts))[::-1]
        bars = sum_ax.barh(y, values, color=[p[2] for p in parts])
        if predictor_bits is not None:
            bars[1].set_hatch("//")
            bars[1].set_alpha(0.6)
        sum_ax.axvline(0.0, color="black", linewidth=0.8)
        sum_ax.set_yticks(y, labels)
        sum_ax.set_xlabel("bits per sample")
        sum_ax.set_title("How the NLL adds up", loc="left")
        span = max(1e-9, max(abs(v) for v in values))
        for yy, v in zip(y, values):
            sum_ax.text(v + (0.02 * span if v >= 0 else -0.02 * span), yy, f"{v:+.2f}",
                        va="center", ha="left" if v >= 0 else "right", fontsize=9)
        sum_ax.set_xlim(min(0.0, min(values)) - 0.4 * span, max(0.0, max(values)) + 0.4 * span)
        sum_ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        sum_ax.grid(axis="x", alpha=0.25)
    return fig
