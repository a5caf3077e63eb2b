"""The spectral prior: circular MDCT, gains, and a WaveGlow with ``prior="spectral"``.

Independent references: the MDCT's cosine sum written out here, orthogonality checked on the full matrix
built from unit vectors, brute-force float64 Jacobians of audio -> z, the Gaussian NLL written out, and real
speech (espeak-ng) for the calibration, the bits per sample and STOI.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from conftest import randomize_ends

from waveflow import MelConfig, MelSpectrogram, WaveGlow, WaveGlowConfig
from waveflow.config import ConfigError, from_dict, to_dict
from waveflow.flows import InvConv1x1, SpectralPrior, imdct, mdct

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# 8 kHz, hop 32: four-frame clips are 128 samples, small enough for full Jacobians.
TINY_MEL = MelConfig(sample_rate=8000, n_fft=128, hop_length=32, win_length=128, n_mels=8, fmax=4000.0)
TINY = WaveGlowConfig(
    n_mels=8, n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=2, n_channels=16, hop_length=32,
    prior="spectral", prior_mel=TINY_MEL,
)
SPEECH = dataclasses.replace(TINY, n_mels=80, hop_length=256, prior_mel=None)  # Tacotron2's mels


def mdct_by_definition(x: np.ndarray, H: int) -> np.ndarray:
    """Interior frames of the classical MDCT, ``X[k, f] = sqrt(2/H) sum_n w[n] x[f*H - H/2 + n]
    cos(pi/H (n + 1/2 + H/2)(k + 1/2))`` for ``f = 1 .. T/H - 2`` (the frames with both neighbours)."""
    n, k = np.arange(2 * H), np.arange(H)
    w = np.sin(np.pi * (n + 0.5) / (2 * H))
    basis = np.sqrt(2 / H) * w * np.cos(np.pi / H * (n[None] + 0.5 + H / 2) * (k[:, None] + 0.5))
    frames = [x[f * H - H // 2 + n] for f in range(1, len(x) // H - 1)]
    return np.stack([basis @ fr for fr in frames], axis=1) if frames else np.zeros((H, 0))


@torch.no_grad()
def randomize(model: WaveGlow, seed: int = 0, ends_std: float = 0.2) -> WaveGlow:
    """Random end convs, non-orthogonal 1x1 convs and a random per-bin log-scale: nothing is trivial."""
    randomize_ends(model, std=ends_std, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, InvConv1x1):
            q, _ = torch.linalg.qr(torch.randn(m.channels, m.channels, generator=gen, dtype=torch.float64))
            m.weight.copy_(q * torch.exp(torch.rand(m.channels, generator=gen, dtype=torch.float64) - 0.5))
    log_scale = model.prior.log_scale
    log_scale.add_(0.3 * torch.randn(log_scale.shape, generator=gen, dtype=torch.float64))
    return model


def build(cfg=TINY, dtype=torch.float64, seed=0) -> WaveGlow:
    torch.manual_seed(seed)
    return randomize(WaveGlow(cfg), seed).to(dtype).eval()


def inputs(cfg=TINY, batch=2, frames=4, dtype=torch.float64, seed=0):
    """Audio ``(B, frames*hop)`` and a training-style mel ``(B, n_mels, frames + 1)`` (random, seeded)."""
    gen = torch.Generator().manual_seed(seed)
    audio = torch.rand(batch, frames * cfg.hop_length, generator=gen, dtype=torch.float64) * 1.8 - 0.9
    mel = torch.randn(batch, cfg.n_mels, frames + 1, generator=gen, dtype=torch.float64) * 2 - 4
    return audio.to(dtype), mel.to(dtype)


def brute_force_logdets(fn, x: torch.Tensor) -> list[float]:
    """``log|det J|`` per item from the full float64 Jacobian of ``fn``; items must not interact."""
    B, n = x.shape[0], x[0].numel()
    jac = torch.autograd.functional.jacobian(lambda flat: fn(flat.view_as(x)).reshape(-1), x.reshape(-1))
    out = []
    for b in range(B):
        rows = jac[b * n : (b + 1) * n]
        assert torch.count_nonzero(rows[:, : b * n]) == 0 and torch.count_nonzero(rows[:, (b + 1) * n :]) == 0
        sign, logabsdet = torch.linalg.slogdet(rows[:, b * n : (b + 1) * n])
        assert sign != 0
        out.append(float(logabsdet))
    return out


# ------------------------------------------------------------------------------------------- MDCT
@pytest.mark.parametrize("H, T", [(8, 8), (8, 16), (8, 40), (6, 30), (32, 128), (256, 1024)])
def test_mdct_is_an_orthogonal_square_matrix(H, T):
    eye = torch.eye(T, dtype=torch.float64)
    M = mdct(eye, H).reshape(T, T).T  # column i = T e_i, so M is the transform's matrix
    torch.testing.assert_close(M @ M.T, eye, atol=1e-10, rtol=0)
    torch.testing.assert_close(M.T @ M, eye, atol=1e-10, rtol=0)
    # imdct is the transpose, and both agree with the cosine sum written out.
    inv = imdct(eye.reshape(T, H, T // H), H)  # row j = imdct of the unit coefficient j
    torch.testing.assert_close(inv, M, atol=1e-10, rtol=0)  # imdct(unit j) = Tᵀ e_j = row j of T
    x = np.random.default_rng(0).standard_normal(T)
    ours = mdct(torch.from_numpy(x)[None], H)[0].numpy()
    np.testing.assert_allclose(ours[:, 1:-1], mdct_by_definition(x, H), atol=1e-10)


def test_mdct_hop_256_keeps_norm_and_inverts_in_float64_float32_and_half():
    x = torch.randn(3, 1024, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    c = mdct(x, 256)
    assert c.shape == (3, 256, 4)
    torch.testing.assert_close(c.flatten(1).norm(dim=1), x.norm(dim=1), atol=0, rtol=1e-12)
    assert (imdct(c, 256) - x).abs().max() < 1e-12
    x32 = x.float()
    assert (imdct(mdct(x32, 256), 256) - x32).abs().max() < 1e-5
    c16 = mdct(x.half(), 256)  # computed in float32, returned in half
    assert c16.dtype == torch.float16 and (c16.double() - c).abs().max() < 1e-2
    with pytest.raises(ValueError, match="multiple of it"):
        mdct(x[:, :1000], 256)


def test_mdct_frame_f_is_centred_between_mel_frames_f_and_f_plus_1():
    H, T = 32, 256
    for f in (0, 3, 7):
        x = torch.zeros(1, T, dtype=torch.float64)
        x[0, f * H + H // 2] = 1.0
        energy = mdct(x, H)[0].pow(2).sum(0)  # per frame
        assert energy[f] > 0.99, energy  # the window's centre; only a sliver in the neighbours


def test_nothing_wraps_round_the_clip():
    """The first frame does not see the clip's last samples (a circular transform would)."""
    H, T = 32, 256
    x = torch.randn(1, T, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[0, -H:] += 1.0
    diff = (mdct(y, H) - mdct(x, H))[0].abs().amax(0)
    assert diff[: T // H - 2].max() == 0 and diff[-1] > 0.1


# ------------------------------------------------------------------------------------------- gains
@pytest.mark.parametrize("frames_extra", [0, 1])  # inference mels (T // H frames) and training mels (+1)
def test_gains_are_floored_and_finite_for_silence_and_loud_mels(frames_extra):
    prior = SpectralPrior(MelConfig()).double()
    n, T = 6, 6 * 256
    gen = torch.Generator().manual_seed(0)
    silence = torch.full((1, 80, n + frames_extra), math.log(1e-5), dtype=torch.float64)
    loud = torch.randn(1, 80, n + frames_extra, generator=gen, dtype=torch.float64) * 3 + 2
    speechy = silence.clone()
    speechy[0, :20] = 1.0  # energy only below ~1.3 kHz: the rest leans on the relative floor
    for mel in (silence, loud, speechy):
        g = prior.gains(mel, T)
        assert g.shape == (1, 256, n) and torch.isfinite(g).all()
        assert (g >= prior.floor * (1 - 1e-12)).all()
        assert (g >= prior.relative_floor * g.amax(dim=1, keepdim=True) * (1 - 1e-12)).all()
    # Silence sits at the 16-bit noise floor, not below and not far above.
    assert prior.gains(silence, T).max() < 10 * prior.floor
    # The gains follow the mel: a louder band gives louder bins near its centre frequency.
    g = prior.gains(speechy, T)
    assert g[0, :15].min() > 100 * g[0, 100:].max()  # bins below 650 Hz, the 20th band's centre (735 Hz)


def test_frame_gains_take_the_mean_power_of_the_mel_frames_around_them():
    """Frame f lies between mel frames f and f + 1: its gain is their mean power; the last frame of an
    inference mel (one frame per hop) has only its own."""
    prior = SpectralPrior(MelConfig()).double()
    n = 5
    silent = math.log(1e-5)
    mel = torch.full((1, 80, n + 1), silent, dtype=torch.float64)
    mel[..., 2] = 0.0  # one loud mel frame
    g = prior.gains(mel, n * 256)
    loud = prior.gains(mel[..., 2:3], 256)[..., 0]  # gains of the loud frame alone
    torch.testing.assert_close(g[..., 1], loud / math.sqrt(2), atol=0, rtol=1e-6)  # frames 1 and 2
    torch.testing.assert_close(g[..., 2], loud / math.sqrt(2), atol=0, rtol=1e-6)  # frames 2 and 3
    assert g[..., 1].min() > 100 * g[..., 0].max()
    last = prior.gains(mel[..., :n], n * 256)  # inference: n frames
    torch.testing.assert_close(last[..., : n - 1], g[..., : n - 1], atol=0, rtol=1e-12)


def test_prior_context_is_two_frames_each_side():
    """x = colour(e): samples of block r depend on e in blocks r-2..r+2 and mel frames r-1 .. r+2."""
    prior = SpectralPrior(TINY_MEL).double()
    H, n = 32, 10
    gen = torch.Generator().manual_seed(0)
    e = torch.randn(1, n * H, generator=gen, dtype=torch.float64)
    mel = torch.randn(1, 8, n + 1, generator=gen, dtype=torch.float64) - 4
    x = prior.inverse(e, mel).reshape(n, H)
    r = 5
    e2 = e.clone()
    e2[0, r * H : (r + 1) * H] += 1.0
    changed = (prior.inverse(e2, mel).reshape(n, H) - x).abs().amax(1) > 1e-12
    assert changed.nonzero().flatten().tolist() == [r - 2, r - 1, r, r + 1, r + 2]
    mel2 = mel.clone()
    mel2[..., r] += 2.0
    changed = (prior.inverse(e, mel2).reshape(n, H) - x).abs().amax(1) > 1e-12
    assert changed.nonzero().flatten().tolist() == [r - 2, r - 1, r, r + 1]
    assert SpectralPrior.context_frames == 2 and WaveGlow(TINY).prior_context_frames == 2
    assert WaveGlow(dataclasses.replace(TINY, prior="none")).prior_context_frames == 0


# ------------------------------------------------------------------------------------------- the model
def test_prior_model_is_exactly_invertible_float64_and_float32():
    model = build()
    audio, mel = inputs()
    with torch.no_grad():
        z, logdet = model(audio, mel)
        assert z.shape == (2, 8, 16) and logdet.shape == (2,)
        assert (model.inverse(z, mel[..., :4]) - audio).abs().max() > 1e-3  # the mel frames matter ...
        assert (model.inverse(z, mel) - audio).abs().max() < 1e-10  # ... and the right ones invert exactly
        z2 = torch.randn(z.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        assert (model(model.inverse(z2, mel), mel)[0] - z2).abs().max() < 1e-10
    model32 = build(dtype=torch.float32)
    audio32, mel32 = inputs(dtype=torch.float32)
    with torch.no_grad():
        z32, logdet32 = model32(audio32, mel32)
        assert z32.dtype == torch.float32 and logdet32.dtype == torch.float32
        assert (model32.inverse(z32, mel32) - audio32).abs().max() < 1e-4


def test_prior_model_logdet_equals_brute_force_jacobian():
    model = build()
    audio, mel = inputs(frames=4)  # T = 128 per item
    with torch.no_grad():
        _, logdet = model(audio, mel)
        logdet_prior = model.prior(audio, mel)[1]
    expected = brute_force_logdets(lambda a: model(a, mel)[0], audio)
    for b in range(2):
        assert abs(float(logdet[b]) - expected[b]) < 1e-8, (float(logdet[b]), expected[b])
    expected_prior = brute_force_logdets(lambda a: model.prior(a, mel)[0], audio)
    for b in range(2):
        assert abs(float(logdet_prior[b]) - expected_prior[b]) < 1e-8
    assert abs(expected_prior[0] - expected_prior[1]) > 1.0  # mel-dependent


@pytest.mark.parametrize("sigma", [1.0, 0.6])
def test_prior_model_nll_is_the_direct_formula(sigma):
    model = build()
    audio, mel = inputs(batch=3)
    with torch.no_grad():
        out = model.nll(audio, mel, sigma=sigma)
        z, logdet = model(audio, mel)
        _, logdet_prior = model.prior(audio, mel)
    D = audio.shape[1]
    const = math.log(sigma) + 0.5 * math.log(2 * math.pi)
    direct = (0.5 * z.pow(2).flatten(1).sum(1) / sigma**2 + D * const - logdet) / D
    np.testing.assert_allclose(out.nll_per_item.numpy(), direct.numpy(), rtol=1e-12, atol=1e-12)
    assert float(out.prior) == pytest.approx(float(-logdet_prior.mean() / D), rel=1e-12)
    total = out.z + out.log_s + out.logdet_w + out.prior + out.const
    assert float(out.nll) == pytest.approx(float(total), abs=1e-12)
    assert float(out.loss_nvidia) == pytest.approx(float(out.nll) - out.const, abs=1e-12)


def test_prior_model_trains_in_float32_with_gradients_for_log_scale():
    model = build(dtype=torch.float32).train()
    audio, mel = inputs(dtype=torch.float32)
    out = model.nll(audio, mel)
    out.nll.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.prior.log_scale.grad.abs().max() > 0


def test_flow_can_show_the_whitened_audio():
    model = build()
    audio, mel = inputs()
    whitened, steps = [], []
    with torch.no_grad():
        _, log_s, logdet_w = model.flow(audio, mel, steps=steps, whitened=whitened)
        e, logdet_prior = model.prior(audio, mel)
        _, logdet = model(audio, mel)
    assert len(whitened) == 1 and torch.equal(whitened[0], e) and len(steps) == 4
    torch.testing.assert_close(log_s + logdet_w + logdet_prior, logdet, atol=1e-12, rtol=0)


# ------------------------------------------------------------------------------------------- config
def test_prior_none_adds_nothing_to_the_state_dict():
    none = WaveGlow(dataclasses.replace(TINY, prior="none", prior_mel=None))
    keys = list(none.state_dict())
    assert keys[:2] == ["upsample.weight", "upsample.bias"] and all(k.startswith("flows.") for k in keys[2:])
    assert none.prior is None and not list(none.buffers())
    spectral = WaveGlow(TINY)
    assert list(spectral.state_dict()) == [*keys, "prior.log_scale"]  # the gain matrix is derived, not saved
    missing = spectral.load_state_dict(none.state_dict(), strict=False).missing_keys
    assert missing == ["prior.log_scale"]


def test_prior_config_validates_and_round_trips():
    with pytest.raises(ConfigError, match="prior_mel"):
        dataclasses.replace(TINY, prior_mel=TINY_MEL.replace(hop_length=64))
    with pytest.raises(ConfigError, match="prior_mel"):
        dataclasses.replace(TINY, prior_mel=TINY_MEL.replace(n_mels=10))
    with pytest.raises(ConfigError, match="prior"):
        from_dict(WaveGlowConfig, {"prior": "cepstral"})
    assert from_dict(WaveGlowConfig, to_dict(TINY)) == TINY
    default = WaveGlowConfig(n_mels=8, hop_length=64, prior="spectral")
    assert default.prior_mel_config() == MelConfig(n_mels=8, hop_length=64)


# ------------------------------------------------------------------------------------------- real speech
@pytest.fixture(scope="module")
def speech(speech_22k):
    """Two seconds of espeak-ng speech, dequantised, and its Tacotron2 log-mel (float64)."""
    T = 86 * 256
    audio = torch.from_numpy(np.array(speech_22k[:T], dtype=np.float64))[None]
    audio = audio + (torch.rand(audio.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
                     - 0.5) * 2.0**-15
    return audio, MelSpectrogram(MelConfig())(audio)


def test_untrained_prior_whitens_real_speech(speech):
    audio, mel = speech
    torch.manual_seed(0)
    model = WaveGlow(SPEECH).double().eval()  # zero end convs: the flow is a rotation of the whitened audio
    whitened = []
    with torch.no_grad():
        model.flow(audio, mel, whitened=whitened)
        out = model.nll(audio, mel)
    e = whitened[0].reshape(-1, 256)
    energy = mel[0, :, : e.shape[0]].exp().sum(0)
    voiced = energy > 0.05 * energy.max()
    assert voiced.sum() > 20
    variance = float(e[voiced].pow(2).mean())
    assert 1 / 3 < variance < 3, variance
    bits = float(out.bits_per_sample)
    gaussian_bits = 0.5 * math.log2(2 * math.pi * math.e * float(audio.var())) + 15
    assert bits < gaussian_bits - 3, (bits, gaussian_bits)  # measured: ~8.3 against ~13.7


def test_untrained_prior_model_whispers_intelligibly(speech):
    """Envelope-coloured noise from an untrained model keeps speech intelligible (measured STOI 0.82-0.89)."""
    pystoi = pytest.importorskip("pystoi")
    audio, mel = speech
    torch.manual_seed(0)
    model = WaveGlow(SPEECH).eval()
    with torch.no_grad():
        wav = model.infer(mel.float(), sigma=1.0, generator=torch.Generator().manual_seed(0))
    T = audio.shape[1]
    score = pystoi.stoi(audio[0].numpy(), wav[0, :T].double().numpy(), 22050, extended=False)
    assert score >= 0.75, score
