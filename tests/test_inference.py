"""Vocoder: batching, chunking, streaming, precision, denoiser (issue 4). CPU only, tiny models.

Thresholds were measured on CPU (torch 2.14, tiny model below) and are stated where they are used.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import randomize_ends
from torch.utils._python_dispatch import TorchDispatchMode

from waveflow import WaveGlow, WaveGlowConfig, save_model
from waveflow.inference import (
    NOISE_BLOCK,
    Vocoder,
    latent_noise,
    resolve_dtype,
)
from waveflow.models import receptive_field_frames

HOP = 256


def tiny_model(seed: int = 0, n_layers: int = 2) -> WaveGlow:
    torch.manual_seed(seed)
    cfg = WaveGlowConfig(n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=n_layers, n_channels=16)
    return randomize_ends(WaveGlow(cfg), std=0.1, seed=seed)


def random_mel(frames: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(80, frames, generator=gen) * 1.5 - 6.0


@pytest.fixture(scope="module")
def model() -> WaveGlow:
    return tiny_model()


@pytest.fixture(scope="module")
def vocoder(model) -> Vocoder:
    return Vocoder(model, chunk_frames=10**6)


def snr_db(ref: torch.Tensor, other: torch.Tensor) -> float:
    return 10 * math.log10(float(ref.pow(2).sum() / (other - ref).pow(2).sum()))


# ---------------------------------------------------------------------------------------------- basics
def test_output_lengths_and_shapes(vocoder):
    assert vocoder.vocode(random_mel(13)).shape == (13 * HOP,)
    assert vocoder.vocode(torch.stack([random_mel(9, 1), random_mel(9, 2)])).shape == (2, 9 * HOP)
    outs = vocoder.vocode([random_mel(1), random_mel(7).numpy()])
    assert [o.shape[0] for o in outs] == [HOP, 7 * HOP]
    assert all(o.dtype == torch.float32 for o in outs)
    with pytest.raises(ValueError, match=r"\(80, frames\)"):
        vocoder.vocode(torch.zeros(40, 10))


def test_matches_the_models_own_inverse(model, vocoder):
    """Independent path: the original (weight-normed, float32) model's inverse on the same latent."""
    mel = random_mel(21)
    z = latent_noise(5, 8, 0, 21 * HOP // 8) * 0.6
    with torch.no_grad():
        expected = model.inverse(z[None], mel[None])[0]
    got = vocoder.vocode(mel, seed=5, sigma=0.6)
    # measured max |diff| ~ 5e-7 (weight norm folded vs unfolded)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_vocoder_leaves_the_callers_model_alone(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    Vocoder(model)
    Vocoder(model)  # a second copy must still work (deep copies of parametrised modules would break it)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_from_checkpoint_path(tmp_path, model, vocoder):
    path = save_model(model, tmp_path / "m.pt")
    mel = random_mel(10)
    torch.testing.assert_close(Vocoder(path).vocode(mel, seed=3), vocoder.vocode(mel, seed=3), atol=1e-6, rtol=0)


def test_seeds(vocoder):
    mel = random_mel(6)
    assert torch.equal(vocoder.vocode(mel, seed=1), vocoder.vocode(mel, seed=1))
    assert not torch.equal(vocoder.vocode(mel, seed=1), vocoder.vocode(mel, seed=2))
    free = Vocoder(tiny_model(), seed=None)
    assert not torch.equal(free.vocode(mel), free.vocode(mel))


def test_latent_noise_does_not_depend_on_the_cut():
    whole = latent_noise(7, 8, 0, 3 * NOISE_BLOCK)
    assert whole.shape == (8, 3 * NOISE_BLOCK)
    torch.testing.assert_close(latent_noise(7, 8, NOISE_BLOCK - 5, 2 * NOISE_BLOCK + 9),
                               whole[:, NOISE_BLOCK - 5 : 2 * NOISE_BLOCK + 9], rtol=0, atol=0)
    assert abs(float(whole.std()) - 1) < 0.02


# ---------------------------------------------------------------------------------------------- batching
def test_batched_equals_alone(vocoder):
    """Items of different lengths in one padded batch: each equals vocoding it alone with its seed."""
    lengths = [23, 60, 41, 5, 1, 59]
    mels = [random_mel(n, seed=i) for i, n in enumerate(lengths)]
    seeds = [11, 12, 13, 14, 15, 16]
    batched = vocoder.vocode(mels, seed=seeds)
    for mel, seed, out in zip(mels, seeds, batched):
        alone = vocoder.vocode(mel, seed=seed)
        assert out.shape == alone.shape == (mel.shape[1] * HOP,)
        # measured max |diff| <= 7e-7 on outputs of peak ~3 (float32 rounding of different conv shapes)
        torch.testing.assert_close(out, alone, atol=1e-5, rtol=0)


def test_receptive_field_bounds_the_influence_of_a_frame(model):
    """Perturb one mel frame and one latent step; the output changes only within receptive_field_frames."""
    v = Vocoder(model, chunk_frames=10**6)
    rf, frames, f0 = receptive_field_frames(model.config), 60, 30
    mel = random_mel(frames)
    base = v.vocode(mel, seed=0)
    bumped = mel.clone()
    bumped[:, f0] += 3.0
    changed = (v.vocode(bumped, seed=0) - base).abs() > 1e-6
    idx = torch.nonzero(changed).flatten()
    assert idx.numel() > 0
    assert idx.min() >= (f0 - rf) * HOP and idx.max() < (f0 + rf + 1) * HOP
    # The bound is not loose: the effect reaches past the frame's own upsampler span (f0 .. f0 + 4).
    assert idx.max() >= (f0 + 4) * HOP


# ---------------------------------------------------------------------------------------------- long inputs
@pytest.mark.parametrize("chunk", [7, 16, 119])
def test_chunked_equals_unchunked(model, vocoder, chunk):
    mel = random_mel(120, seed=4)
    whole = vocoder.vocode(mel, seed=9)
    chunked = Vocoder(model, chunk_frames=chunk).vocode(mel, seed=9)
    assert chunked.shape == whole.shape
    # Seam error with the default context (the full receptive field): measured max |diff| <= 1e-6 on a
    # signal of peak ~3, i.e. float rounding; the crossfade mixes two equal signals.
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


def test_short_context_seam_error(model, vocoder):
    """With a context shorter than the receptive field the chunks differ at the seams; the crossfade keeps
    it small. Measured on this model (receptive field 5 frames), context 2: SNR ~58 dB (chunks of 16)."""
    mel = random_mel(120, seed=4)
    whole = vocoder.vocode(mel, seed=9)
    short = Vocoder(model, chunk_frames=16, context_frames=2).vocode(mel, seed=9)
    assert snr_db(whole, short) > 45


def test_stream_from_pieces_equals_whole(vocoder):
    mel = random_mel(150, seed=5)
    whole = vocoder.vocode(mel, seed=2)
    pieces = list(vocoder.stream(iter(mel.split(23, dim=1)), chunk_frames=20, seed=2))
    assert len(pieces) > 3
    torch.testing.assert_close(torch.cat(pieces), whole, atol=1e-5, rtol=0)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces (a device-independent measure of peak memory)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


def largest_tensor(fn) -> int:
    with LargestTensor() as probe:
        fn()
    return probe.largest


def test_memory_stays_flat_as_input_grows(model):
    """Streaming 4x more frames allocates no larger tensor; unchunked synthesis grows with the input."""
    v = Vocoder(model, chunk_frames=8)

    def drain(frames):
        return lambda: [None for _ in v.stream(random_mel(frames), seed=0)]

    short, long = largest_tensor(drain(40)), largest_tensor(drain(160))
    assert long <= short
    grows = Vocoder(model, chunk_frames=10**6)
    assert largest_tensor(lambda: grows.vocode(random_mel(160))) > 3 * largest_tensor(lambda: grows.vocode(random_mel(40)))


# ---------------------------------------------------------------------------------------------- precision
def test_half_precision_snr(model, vocoder):
    """Same latent in bfloat16/float16 vs float32. Measured on CPU with this model: bf16 ~44-47 dB,
    fp16 ~62 dB (both run on CPU with torch 2.14, more slowly than float32)."""
    mel = random_mel(40, seed=6)
    ref = vocoder.vocode(mel, seed=3)
    bf16 = Vocoder(model, dtype="bfloat16").vocode(mel, seed=3)
    assert bf16.dtype == torch.float32 and snr_db(ref, bf16) > 35
    fp16 = Vocoder(model, dtype=torch.float16).vocode(mel, seed=3)
    assert snr_db(ref, fp16) > 50


def test_unsupported_dtype_is_a_clear_error(monkeypatch):
    with pytest.raises(ValueError, match="dtype must be one of"):
        resolve_dtype("float64", torch.device("cpu"))

    def refuse(*args, **kwargs):
        raise RuntimeError('"slow_conv_transpose" not implemented for \'Half\'')

    monkeypatch.setattr(torch.nn.functional, "conv_transpose1d", refuse)
    with pytest.raises(ValueError, match=r"float16 is not supported on cpu.*--dtype float32"):
        resolve_dtype("float16", torch.device("cpu"))


# ---------------------------------------------------------------------------------------------- denoiser
def tone_model() -> WaveGlow:
    """Identity couplings except a constant shift in the last inverse step: its sigma-0 output repeats every
    n_group = 8 samples, a 'bias tone' at 22050 / 8 = 2756 Hz (and harmonics) under any mel."""
    model = WaveGlow(WaveGlowConfig(n_flows=2, n_early_every=4, n_layers=2, n_channels=8))
    with torch.no_grad():
        model.flows[0].coupling.wn.end.bias[:4] = torch.tensor([0.2, -0.15, 0.1, -0.05])
    return model


def band_energy(audio: torch.Tensor, bins: list[int]) -> tuple[float, float]:
    spec = torch.stft(audio, 1024, 256, window=torch.hann_window(1024), return_complex=True).abs().pow(2).sum(1)
    mask = torch.zeros(spec.shape[0], dtype=torch.bool)
    for b in bins:
        mask[max(0, b - 2) : b + 3] = True
    return float(spec[mask].sum()), float(spec[~mask].sum())


def test_denoiser_removes_the_bias_tone():
    v = Vocoder(tone_model(), sigma=0.05)
    mel = random_mel(100, seed=8)
    noisy = v.vocode(mel, seed=1)
    clean = v.vocode(mel, seed=1, denoiser_strength=1.0)
    tone_bins = [0, 128, 256, 384, 512]  # multiples of 2756 Hz (n_fft 1024 at 22050 Hz), DC to Nyquist
    tone_before, rest_before = band_energy(noisy, tone_bins)
    tone_after, rest_after = band_energy(clean, tone_bins)
    assert tone_before / 25 > 20 * rest_before / 488  # per bin, the tone towers over the noise (x80) before
    # measured: the tone loses 21.7 dB, the rest of the spectrum 0.01 dB
    assert 10 * math.log10(tone_before / tone_after) > 15
    assert 10 * math.log10(rest_before / rest_after) < 0.5
    assert clean.shape == noisy.shape


def test_denoiser_mode_zeros_and_chunks(model):
    mel = random_mel(70, seed=2)
    whole = Vocoder(model, denoiser_strength=0.1, denoiser_mode="zeros").vocode(mel, seed=4)
    chunked = Vocoder(model, denoiser_strength=0.1, denoiser_mode="zeros", chunk_frames=30).vocode(mel, seed=4)
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- copy synthesis
def test_copy_synthesis_any_rate(vocoder):
    t = np.arange(16000) / 16000.0
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out = vocoder.copy_synthesis(audio, 16000, seed=0)
    assert out.shape == (22050,)
    same_rate = vocoder.copy_synthesis(audio[:5000], None)
    assert same_rate.shape == (5000,)


def test_custom_inverse_backend_keeps_batched_equal_to_alone(model, vocoder):
    """A plugged-in inverse (e.g. fused kernels) sees no padding masks: one call per distinct length."""
    calls = []

    def inverse(z, mel):
        calls.append(tuple(z.shape))
        return vocoder.model.inverse(z, mel)

    plugged = Vocoder(model, chunk_frames=10**6, inverse=inverse)
    mels = [random_mel(9, 0), random_mel(20, 1), random_mel(9, 2)]
    outs = plugged.vocode(mels, seed=[1, 2, 3])
    assert sorted(calls) == [(1, 8, 20 * HOP // 8), (2, 8, 9 * HOP // 8)]
    for mel, seed, out in zip(mels, [1, 2, 3], outs):
        torch.testing.assert_close(out, vocoder.vocode(mel, seed=seed), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- kernel backends
def test_fused_kernel_twins_match_the_eager_inverse(model, vocoder):
    """``kernels="torch"`` runs the fused pipeline (one conditioning GEMM, packed weights) with the Triton
    kernels' pure-torch twins: same audio as the model's own inverse, batched or alone."""
    assert vocoder.backend == "eager"  # "auto" on CPU
    fused = Vocoder(model, chunk_frames=10**6, kernels="torch")
    assert fused.backend == "kernels-torch"
    mels = [random_mel(9, 0), random_mel(20, 1), random_mel(9, 2)]
    for got, want in zip(fused.vocode(mels, seed=[1, 2, 3]), vocoder.vocode(mels, seed=[1, 2, 3])):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    chunked = Vocoder(model, chunk_frames=7, kernels="torch").vocode(random_mel(30, 4), seed=5)
    torch.testing.assert_close(chunked, vocoder.vocode(random_mel(30, 4), seed=5), atol=1e-5, rtol=0)


def test_glow_old_models_run_eager_or_get_a_clear_error():
    torch.manual_seed(0)
    cfg = WaveGlowConfig(n_flows=4, n_early_every=2, n_layers=2, n_channels=16, alternate_halves=True)
    old = randomize_ends(WaveGlow(cfg), std=0.1)
    assert Vocoder(old, kernels="auto").backend == "eager"
    with pytest.raises(ValueError, match="alternate halves"):
        Vocoder(old, kernels="torch")
    with pytest.raises(ValueError, match="kernels='triton' cannot run here"):
        Vocoder(old, kernels="triton")  # no CUDA here (and the model is unsupported)
    with pytest.raises(ValueError, match="kernels must be one of"):
        Vocoder(old, kernels="fast")


def test_inverse_weight_of_inference_tensors(model):
    """A model built inside ``torch.inference_mode`` has inference-tensor weights (no version counter)."""
    with torch.inference_mode():
        conv = type(model.flows[0].invconv)(8)
        inv = conv.inverse_weight(torch.float32)
        torch.testing.assert_close(inv @ conv.weight, torch.eye(8), atol=1e-6, rtol=0)
        assert conv.inverse_weight(torch.float32) is inv  # cached
