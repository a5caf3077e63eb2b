"""Inference with a prior (``spectral``, ``source-filter``) keeps the Vocoder's guarantees: batched == alone,
chunked == unchunked, streamed == whole, the receptive field bounds a frame's influence (backwards only for the
source-filter prior's recursive synthesis), half precision stays close, and the fused pipeline (torch twins)
equals the eager inverse. References: the model's own ``inverse`` on the whole input. The mels are of a
voice-like signal, so the source-filter prior's pitch predictor is on."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import randomize_ends, voiced

from waveflow import MelSpectrogram, Vocoder, WaveGlow, WaveGlowConfig
from waveflow.models import receptive_field_frames

HOP = 256


def random_mel(frames: int, seed: int = 0) -> torch.Tensor:
    """The log-mel ``(80, frames)`` of a voice-like signal gliding between two random pitches."""
    gen = torch.Generator().manual_seed(seed)
    f0 = tuple(float(f) for f in 90 + 150 * torch.rand(2, generator=gen))
    audio = torch.from_numpy(voiced(max(frames, 4) * HOP, 22050, f0, seed)).float()
    return MelSpectrogram()(audio)[:, :frames]


def snr_db(ref: torch.Tensor, other: torch.Tensor) -> float:
    return 10 * math.log10(float(ref.pow(2).sum() / (other - ref).pow(2).sum()))


@pytest.fixture(scope="module", params=["spectral", "source-filter"])
def model(request) -> WaveGlow:
    torch.manual_seed(0)
    cfg = WaveGlowConfig(n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=2, n_channels=16,
                         prior=request.param)
    model = randomize_ends(WaveGlow(cfg), std=0.1, seed=0).eval()
    if request.param == "source-filter":
        with torch.no_grad():
            model.prior.pitch.net[-1].weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(1))
        assert (model.prior.pitch.taps(random_mel(60, 1)[None]).strength > 0.5).float().mean() > 0.5
    return model


@pytest.fixture(scope="module")
def vocoder(model) -> Vocoder:
    return Vocoder(model, chunk_frames=10**6)


def test_vocoder_equals_the_models_inverse(model, vocoder):
    mel = random_mel(20, 1)
    out = vocoder.vocode(mel, seed=3, sigma=0.8)
    z = vocoder._latent(3, 0, 20)[None] * 0.8
    with torch.no_grad():
        ref = model.inverse(z, mel[None])[0]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)


def test_batched_equals_alone(vocoder):
    lengths = [23, 40, 5, 23, 1]
    mels = [random_mel(n, seed=i) for i, n in enumerate(lengths)]
    seeds = [11, 12, 13, 14, 15]
    for mel, seed, out in zip(mels, seeds, vocoder.vocode(mels, seed=seeds)):
        torch.testing.assert_close(out, vocoder.vocode(mel, seed=seed), atol=1e-5, rtol=0)


def test_receptive_field_includes_the_prior(model):
    rf, f0 = receptive_field_frames(model.config), 30
    plain = receptive_field_frames(WaveGlowConfig(**{**model.config.__dict__, "prior": "none", "prior_mel": None}))
    assert rf == plain + type(model.prior).context_frames
    v = Vocoder(model, chunk_frames=10**6)
    mel = random_mel(60, 2)
    bumped = mel.clone()
    bumped[:, f0] += 3.0
    idx = torch.nonzero((v.vocode(bumped, seed=0) - v.vocode(mel, seed=0)).abs() > 1e-6).flatten()
    assert idx.numel() > 0
    assert idx.min() >= (f0 - rf) * HOP
    if not model.prior.recursive:  # a recursive synthesis carries the change on, decaying
        assert idx.max() < (f0 + rf + 1) * HOP


@pytest.mark.parametrize("chunk", [7, 16])
def test_chunked_and_streamed_equal_unchunked(model, vocoder, chunk):
    mel = random_mel(90, seed=4)
    whole = vocoder.vocode(mel, seed=9)
    chunked = Vocoder(model, chunk_frames=chunk).vocode(mel, seed=9)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)
    pieces = list(vocoder.stream(iter(mel.split(13, dim=1)), chunk_frames=chunk, seed=9))
    torch.testing.assert_close(torch.cat(pieces), whole, atol=1e-5, rtol=0)


def test_half_precision_snr(model, vocoder):
    """Same latent in bfloat16/float16 vs float32 (the prior itself computes in float32)."""
    mel = random_mel(40, seed=6)
    ref = vocoder.vocode(mel, seed=3)
    assert snr_db(ref, Vocoder(model, dtype="bfloat16").vocode(mel, seed=3)) > 35
    assert snr_db(ref, Vocoder(model, dtype="float16").vocode(mel, seed=3)) > 50


def test_fused_pipeline_colours_like_the_eager_inverse(model, vocoder):
    fused = Vocoder(model, chunk_frames=10**6, kernels="torch")
    mels = [random_mel(9, 0), random_mel(20, 1)]
    for got, want in zip(fused.vocode(mels, seed=[1, 2]), vocoder.vocode(mels, seed=[1, 2])):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_denoiser_runs_on_a_prior_model(model):
    out = Vocoder(model, denoiser_strength=0.05).vocode(random_mel(30, 7), seed=1)
    assert torch.isfinite(out).all() and out.abs().max() > 0
