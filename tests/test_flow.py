"""The WaveGlow flow: exact invertibility, log-determinant, NLL, sampling, NVIDIA's latent layout, weight norm.

Independent references: brute-force Jacobians (``torch.autograd.functional.jacobian``, float64), the analytic
Gaussian NLL in numpy, NVIDIA's loss formula written out here, and a forward pass written here line by line
after NVIDIA's ``glow.py`` (unfold/permute, ``F.conv1d`` with the module weights), not the code under test.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import randomize_ends
from torch.nn.utils import parametrize

from waveflow import MelConfig, MelSpectrogram, WaveGlow, WaveGlowConfig
from waveflow.config import ConfigError
from waveflow.flows import WN, AffineCoupling, InvConv1x1

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # tiny models: threading costs more than it gives

# Small shapes: hop 32 keeps T short; every config uses n_mels 8.
BASE = WaveGlowConfig(
    n_mels=8, n_flows=4, n_group=8, n_early_every=2, n_early_size=2, n_layers=3, n_channels=8, hop_length=32
)
CONFIGS = {
    "early-outputs": BASE,
    "no-early-outputs": dataclasses.replace(BASE, n_early_size=0),
    "group4": dataclasses.replace(BASE, n_group=4, n_early_size=2),
    "group16": dataclasses.replace(BASE, n_group=16, n_early_size=4),
    "one-layer": dataclasses.replace(BASE, n_layers=1),
    "additive": dataclasses.replace(BASE, coupling="additive"),
    "kernel5-5layers": dataclasses.replace(BASE, kernel_size=5, n_layers=5),
    "early-every3": dataclasses.replace(BASE, n_flows=7, n_early_every=3),
    "alternate-halves": dataclasses.replace(BASE, n_flows=5, alternate_halves=True),  # glow_old layout
    "mel-shift": dataclasses.replace(BASE, mel_shift=6.0),
}


@torch.no_grad()
def randomize_invconvs(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Make every 1x1 conv weight a random, well-conditioned, NON-orthogonal matrix (log|det W| != 0).

    The orthogonal initialisation has log|det W| = 0, which hides a missing or mis-scaled 1x1-conv term.
    """
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, InvConv1x1):
            c = m.channels
            q, _ = torch.linalg.qr(torch.randn(c, c, generator=gen, dtype=torch.float64))
            scales = torch.exp(torch.rand(c, generator=gen, dtype=torch.float64) - 0.5)
            w = q * scales + 0.1 * torch.randn(c, c, generator=gen, dtype=torch.float64)
            m.weight.copy_(w.to(m.weight.dtype))
    return model


def build(cfg: WaveGlowConfig, dtype=torch.float64, seed: int = 0, ends_std: float = 0.2) -> WaveGlow:
    torch.manual_seed(seed)
    model = WaveGlow(cfg)
    randomize_ends(model, std=ends_std, seed=seed)
    randomize_invconvs(model, seed=seed + 1)
    return model.to(dtype).eval()


def inputs(cfg: WaveGlowConfig, batch=2, frames=6, dtype=torch.float64, seed=0):
    """Audio ``(B, frames*hop)`` in [-0.9, 0.9] and a mel ``(B, n_mels, frames)`` (random, seeded)."""
    gen = torch.Generator().manual_seed(seed)
    audio = (torch.rand(batch, frames * cfg.hop_length, generator=gen, dtype=torch.float64) * 1.8 - 0.9).to(dtype)
    mel = (torch.randn(batch, cfg.n_mels, frames, generator=gen, dtype=torch.float64) - 4).to(dtype)
    return audio, mel


def nvidia_reference_forward(model: WaveGlow, spect: torch.Tensor, audio: torch.Tensor):
    """NVIDIA glow.py ``WaveGlow.forward`` + ``WN.forward``, written after NVIDIA's code, using only the
    weights of ``model`` (conv weights read through ``.weight``, so weight norm is applied). Returns NVIDIA's
    ``(z, log_s_list, log_det_W_list)``."""
    cfg = model.config
    n_group, n_early_every, n_early_size = cfg.n_group, cfg.n_early_every, cfg.n_early_size

    def wn_forward(wn, audio, spect):
        n_channels = cfg.n_channels
        audio = F.conv1d(audio, wn.start.weight, wn.start.bias)
        output = torch.zeros_like(audio)
        spect = F.conv1d(spect, wn.cond_layer.weight, wn.cond_layer.bias)
        for i in range(cfg.n_layers):
            dilation = 2**i
            padding = int((cfg.kernel_size * dilation - dilation) / 2)
            layer = wn.in_layers[i]
            in_act = F.conv1d(audio, layer.weight, layer.bias, dilation=dilation, padding=padding)
            spect_offset = i * 2 * n_channels
            in_act = in_act + spect[:, spect_offset : spect_offset + 2 * n_channels, :]
            acts = torch.tanh(in_act[:, :n_channels, :]) * torch.sigmoid(in_act[:, n_channels:, :])
            rs = wn.res_skip_layers[i]
            res_skip_acts = F.conv1d(acts, rs.weight, rs.bias)
            if i < cfg.n_layers - 1:
                audio = audio + res_skip_acts[:, :n_channels, :]
                output = output + res_skip_acts[:, n_channels:, :]
            else:
                output = output + res_skip_acts
        return F.conv1d(output, wn.end.weight, wn.end.bias)

    spect = model.upsample(spect)
    assert spect.size(2) >= audio.size(1)
    if spect.size(2) > audio.size(1):
        spect = spect[:, :, : audio.size(1)]
    spect = spect.unfold(2, n_group, n_group).permute(0, 2, 1, 3)
    spect = spect.contiguous().view(spect.size(0), spect.size(1), -1).permute(0, 2, 1)
    audio = audio.unfold(1, n_group, n_group).permute(0, 2, 1)
    output_audio, log_s_list, log_det_W_list = [], [], []
    for k in range(cfg.n_flows):
        if k % n_early_every == 0 and k > 0:
            output_audio.append(audio[:, :n_early_size, :])
            audio = audio[:, n_early_size:, :]
        batch_size, _group_size, n_of_groups = audio.size()
        W = model.flows[k].invconv.weight
        log_det_W_list.append(batch_size * n_of_groups * torch.slogdet(W)[1])
        audio = F.conv1d(audio, W[..., None])
        n_half = int(audio.size(1) / 2)
        audio_0, audio_1 = audio[:, :n_half, :], audio[:, n_half:, :]
        output = wn_forward(model.flows[k].coupling.wn, audio_0, spect)
        log_s, b = output[:, n_half:, :], output[:, :n_half, :]
        audio_1 = torch.exp(log_s) * audio_1 + b
        log_s_list.append(log_s)
        audio = torch.cat([audio_0, audio_1], 1)
    output_audio.append(audio)
    return torch.cat(output_audio, 1), log_s_list, log_det_W_list


# ------------------------------------------------------------------------------------------- invertibility
@pytest.mark.parametrize("name", list(CONFIGS))
def test_inverse_of_forward_float64(name):
    cfg = CONFIGS[name]
    model = build(cfg)
    audio, mel = inputs(cfg)
    with torch.no_grad():
        z, logdet = model(audio, mel)
        assert z.shape == (2, cfg.n_group, audio.shape[1] // cfg.n_group) and logdet.shape == (2,)
        # Non-trivial map: the ends are random, so z is far from the (rotated) audio.
        if cfg.coupling == "affine":
            assert logdet.abs().min() > 1.0
        back = model.inverse(z, mel)
        assert (back - audio).abs().max() < 1e-10
        # And the other way round, from a Gaussian latent.
        z2 = torch.randn(z.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        z_again, _ = model(model.inverse(z2, mel), mel)
        assert (z_again - z2).abs().max() < 1e-10


@pytest.mark.parametrize(
    "name", ["early-outputs", "no-early-outputs", "group4", "group16", "additive", "alternate-halves"]
)
def test_inverse_of_forward_float32(name):
    cfg = CONFIGS[name]
    model = build(cfg, dtype=torch.float32)
    audio, mel = inputs(cfg, dtype=torch.float32)
    with torch.no_grad():
        z, _ = model(audio, mel)
        assert z.dtype == torch.float32
        assert (model.inverse(z, mel) - audio).abs().max() < 1e-4


def test_inverse_with_real_mels(tiny_config, speech_22k):
    """80-mel tiny model, real speech and its real log-mel, float64."""
    model = build(tiny_config, ends_std=0.05)
    audio = torch.from_numpy(np.array(speech_22k[: 256 * 16])).double()[None]
    mel = MelSpectrogram(MelConfig())(audio)
    with torch.no_grad():
        z, _ = model(audio, mel)
        assert (model.inverse(z, mel) - audio).abs().max() < 1e-10


# ------------------------------------------------------------------------------------------- log-determinant
def brute_force_logdets(fn, x: torch.Tensor) -> list[float]:
    """``log|det J|`` of ``fn`` per batch item, from the full float64 Jacobian of the flattened map.

    Also checks that batch items do not interact (the off-diagonal blocks are zero)."""
    B, n = x.shape[0], x[0].numel()
    jac = torch.autograd.functional.jacobian(lambda flat: fn(flat.view_as(x)).reshape(-1), x.reshape(-1))
    assert jac.shape == (B * n, B * n)
    out = []
    for b in range(B):
        block = jac[b * n : (b + 1) * n, b * n : (b + 1) * n]
        off = jac[b * n : (b + 1) * n].clone()
        off[:, b * n : (b + 1) * n] = 0
        assert off.abs().max() == 0, "batch items must not interact"
        sign, logabsdet = torch.linalg.slogdet(block)
        assert sign != 0
        out.append(float(logabsdet))
    return out


@pytest.mark.parametrize(
    "cfg",
    [
        dataclasses.replace(BASE, n_mels=4, hop_length=16, n_channels=8, n_layers=2),
        dataclasses.replace(BASE, n_mels=4, hop_length=16, n_group=4, n_flows=5, n_early_every=3, n_layers=3),
        dataclasses.replace(BASE, n_mels=4, hop_length=16, n_early_size=0, kernel_size=5, n_layers=2),
        dataclasses.replace(BASE, n_mels=4, hop_length=16, coupling="additive", n_layers=2),
        dataclasses.replace(BASE, n_mels=4, hop_length=16, n_layers=2, alternate_halves=True),
    ],
    ids=["early-outputs", "group4-odd-flows", "no-early-kernel5", "additive", "alternate-halves"],
)
def test_logdet_equals_brute_force_jacobian(cfg):
    model = build(cfg, ends_std=0.3)
    audio, mel = inputs(cfg, batch=2, frames=4)  # T = 64 samples per item
    with torch.no_grad():
        _, logdet = model(audio, mel)
    expected = brute_force_logdets(lambda a: model(a, mel)[0], audio)
    for b in range(2):
        assert abs(float(logdet[b]) - expected[b]) < 1e-8, (float(logdet[b]), expected[b])
    if cfg.coupling == "affine":
        assert abs(expected[0] - expected[1]) > 1e-3, "items should have different log-dets (input-dependent)"


def test_invconv_logdet_and_inverse_brute_force():
    torch.manual_seed(0)
    conv = InvConv1x1(6).double()
    randomize_invconvs(conv)
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    y, logdet = conv(x)
    assert logdet.shape == (2,)
    expected = brute_force_logdets(lambda v: conv(v)[0], x)
    assert abs(expected[0]) > 0.1, "test weight must not be volume preserving"
    for b in range(2):
        assert abs(float(logdet[b].detach()) - expected[b]) < 1e-10
    with torch.no_grad():
        assert (conv.inverse(y) - x).abs().max() < 1e-12
    # Float32: the inverse weight is computed in float64 and cast.
    conv32 = InvConv1x1(6)
    randomize_invconvs(conv32)
    with torch.no_grad():
        x32 = x.float()
        assert (conv32.inverse(conv32(x32)[0]) - x32).abs().max() < 1e-5


def test_invconv_init_is_rotation():
    for c in (2, 4, 6, 8, 16):
        w = InvConv1x1(c).weight.double()
        torch.testing.assert_close(w @ w.T, torch.eye(c, dtype=torch.float64), atol=1e-6, rtol=0)
        assert torch.det(w) > 0


@pytest.mark.parametrize("additive", [False, True])
def test_affine_coupling_logdet_and_inverse_brute_force(additive):
    torch.manual_seed(0)
    coupling = AffineCoupling(6, 5, n_layers=3, n_wn_channels=8, kernel_size=3, additive=additive).double()
    randomize_ends(coupling, std=0.3)
    x = torch.randn(2, 6, 7, dtype=torch.float64)
    cond = torch.randn(2, 5, 7, dtype=torch.float64)
    y, logdet = coupling(x, cond)
    torch.testing.assert_close(y[:, :3], x[:, :3], atol=0, rtol=0)  # the conditioning half passes unchanged
    assert (y[:, 3:] - x[:, 3:]).abs().max() > 0.01
    expected = brute_force_logdets(lambda v: coupling(v, cond)[0], x)
    for b in range(2):
        assert abs(float(logdet[b].detach()) - expected[b]) < 1e-10
    if additive:
        assert logdet.abs().max() == 0
    else:
        assert abs(expected[0]) > 0.1
    with torch.no_grad():
        assert (coupling.inverse(y, cond) - x).abs().max() < 1e-12


# ------------------------------------------------------------------------------------------- NLL
@pytest.mark.parametrize("sigma", [1.0, 0.7])
def test_identity_flow_nll_is_gaussian(sigma):
    cfg = BASE
    torch.manual_seed(0)
    model = WaveGlow(cfg).double()  # zero end convs: every coupling is the identity
    with torch.no_grad():
        for step in model.flows:
            step.invconv.weight.copy_(torch.eye(step.invconv.channels))
    audio, mel = inputs(cfg, batch=3)
    with torch.no_grad():
        out = model.nll(audio, mel, sigma=sigma)
        z, logdet = model(audio, mel)
    a = audio.numpy()
    per_item = (0.5 * a**2 / sigma**2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)).mean(axis=1)
    np.testing.assert_allclose(out.nll_per_item.detach().numpy(), per_item, rtol=0, atol=1e-12)
    assert float(out.nll) == pytest.approx(per_item.mean(), abs=1e-12)
    # With the identity flow, z is the folded audio in NVIDIA's order: z[b, j, t] = audio[b, t * n_group + j].
    folded = a.reshape(3, -1, cfg.n_group).transpose(0, 2, 1)
    np.testing.assert_array_equal(z.numpy(), folded)
    assert logdet.abs().max() == 0


@pytest.mark.parametrize("name", ["early-outputs", "additive", "group16"])
@pytest.mark.parametrize("sigma", [1.0, 0.6])
def test_nll_agrees_with_forward(name, sigma):
    cfg = CONFIGS[name]
    model = build(cfg)
    audio, mel = inputs(cfg, batch=3)
    with torch.no_grad():
        out = model.nll(audio, mel, sigma=sigma)
        z, logdet = model(audio, mel)
    D = audio.shape[1]
    direct = (
        0.5 * z.pow(2).flatten(1).sum(1) / sigma**2 + D * math.log(sigma) + 0.5 * D * math.log(2 * math.pi) - logdet
    ) / D
    assert out.nll.dtype == torch.float64  # a float64 model gets an exact NLL
    np.testing.assert_allclose(out.nll_per_item.numpy(), direct.numpy(), rtol=1e-12, atol=1e-12)
    assert float(out.nll) == pytest.approx(float(direct.mean()), rel=1e-12, abs=1e-12)
    assert float(out.nll) == pytest.approx(float(out.z + out.log_s + out.logdet_w) + out.const, abs=1e-12)
    assert out.const == pytest.approx(math.log(sigma) + 0.5 * math.log(2 * math.pi))
    assert float(out.bits_per_sample) == pytest.approx(float(out.nll) / math.log(2) + 15, rel=1e-12)


@pytest.mark.parametrize("sigma", [1.0, 0.6])
def test_loss_nvidia_is_nvidias_formula(sigma):
    cfg = CONFIGS["early-outputs"]
    model = build(cfg)
    audio, mel = inputs(cfg, batch=3)
    with torch.no_grad():
        out = model.nll(audio, mel, sigma=sigma)
        z, log_s_list, log_det_W_list = nvidia_reference_forward(model, mel, audio)
    # NVIDIA glow.py WaveGlowLoss.forward:
    log_s_total = sum(torch.sum(log_s) for log_s in log_s_list)
    log_det_W_total = sum(log_det_W_list)
    loss = torch.sum(z * z) / (2 * sigma * sigma) - log_s_total - log_det_W_total
    loss = loss / (z.size(0) * z.size(1) * z.size(2))
    assert float(out.loss_nvidia) == pytest.approx(float(loss), rel=1e-12, abs=1e-12)
    assert float(out.nll - out.loss_nvidia) == pytest.approx(math.log(sigma) + 0.5 * math.log(2 * math.pi), abs=1e-12)


def test_nll_float32_and_backward_gives_finite_gradients(tiny_config):
    model = build(tiny_config, dtype=torch.float32, ends_std=0.05).train()
    audio, mel = inputs(tiny_config, batch=2, frames=4, dtype=torch.float32)
    out = model.nll(audio, mel)
    assert out.nll.dtype == torch.float32 and out.nll.shape == () and out.nll_per_item.shape == (2,)
    out.nll.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["flows.0.coupling.wn.end.weight"].abs().max() > 0
    assert grads["upsample.weight"].abs().max() > 0  # the mel conditions the flow


# ------------------------------------------------------------------------------------------- latent layout
@pytest.mark.parametrize("name", ["early-outputs", "group16", "early-every3", "no-early-outputs"])
def test_latent_layout_is_nvidias(name):
    cfg = CONFIGS[name]
    model = build(cfg)
    audio, mel = inputs(cfg, batch=2)
    with torch.no_grad():
        z, log_s, logdet_w = model.flow(audio, mel)
        z_ref, log_s_list, log_det_W_list = nvidia_reference_forward(model, mel, audio)
    assert (z - z_ref).abs().max() < 1e-12
    # NVIDIA's totals are over the batch; ours are per item.
    assert float(log_s.sum()) == pytest.approx(float(sum(ls.sum() for ls in log_s_list)), abs=1e-9)
    assert float(logdet_w.sum()) == pytest.approx(float(sum(log_det_W_list)), abs=1e-9)


# ------------------------------------------------------------------------------------------- infer
@pytest.mark.parametrize("frames", [1, 5, 8])
def test_infer_length_is_frames_times_hop(frames):
    cfg = CONFIGS["early-outputs"]
    model = build(cfg, dtype=torch.float32)
    mel = inputs(cfg, batch=2, frames=frames, dtype=torch.float32)[1]
    with torch.no_grad():
        wav = model.infer(mel, sigma=0.6)
    assert wav.shape == (2, frames * cfg.hop_length) and wav.dtype == torch.float32


def test_infer_seeded_reproducible_and_seeds_differ():
    cfg = CONFIGS["early-outputs"]
    model = build(cfg, dtype=torch.float32)
    mel = inputs(cfg, batch=2, frames=6, dtype=torch.float32)[1]
    with torch.no_grad():
        a = model.infer(mel, 0.6, generator=torch.Generator().manual_seed(7))
        b = model.infer(mel, 0.6, generator=torch.Generator().manual_seed(7))
        c = model.infer(mel, 0.6, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3
    assert (a[0] - a[1]).abs().max() > 1e-3  # items get different noise


def test_infer_sigma_zero_is_inverse_of_zeros():
    cfg = CONFIGS["early-outputs"]
    model = build(cfg)
    mel = inputs(cfg, batch=2, frames=6)[1]
    n = 6 * cfg.hop_length // cfg.n_group
    with torch.no_grad():
        a = model.infer(mel, sigma=0.0, generator=torch.Generator().manual_seed(1))
        b = model.infer(mel, sigma=0.0, generator=torch.Generator().manual_seed(2))
        bias = model.inverse(torch.zeros(2, cfg.n_group, n, dtype=torch.float64), mel)
    assert torch.equal(a, b)
    assert (a - bias).abs().max() < 1e-12
    assert a.abs().max() > 1e-3  # the random end biases make the "bias audio" non-zero


def test_infer_samples_the_documented_gaussian():
    """forward(infer(mel, sigma)) must be N(0, sigma^2) noise: mean ~0, std ~sigma, in every channel."""
    cfg = CONFIGS["early-outputs"]
    model = build(cfg)
    mel = inputs(cfg, batch=4, frames=40)[1]
    sigma = 0.8
    with torch.no_grad():
        wav = model.infer(mel, sigma=sigma, generator=torch.Generator().manual_seed(0))
        z, _ = model(wav, mel)
    n = z[:, 0].numel()  # 4 * 160 per channel
    assert abs(float(z.mean())) < 4 * sigma / math.sqrt(z.numel())
    per_channel_std = z.transpose(0, 1).reshape(cfg.n_group, -1).std(1)
    assert ((per_channel_std / sigma - 1).abs() < 5 / math.sqrt(2 * n)).all(), per_channel_std


# ------------------------------------------------------------------------------------------- weight norm
def wn_convs(model: WaveGlow):
    for wn in (m for m in model.modules() if isinstance(m, WN)):
        yield from (wn.start, wn.cond_layer, *wn.in_layers, *wn.res_skip_layers)


def test_weight_norm_is_the_parametrization_and_folding_keeps_outputs(tiny_config):
    model = build(tiny_config, dtype=torch.float32, ends_std=0.05)
    audio, mel = inputs(tiny_config, batch=2, frames=6, dtype=torch.float32)
    convs = list(wn_convs(model))
    assert len(convs) == tiny_config.n_flows * (2 + 2 * tiny_config.n_layers)
    for conv in convs:
        assert parametrize.is_parametrized(conv, "weight")
        (p,) = conv.parametrizations.weight
        assert type(p).__module__ == "torch.nn.utils.parametrizations"  # not the deprecated hook
        g, v = conv.parametrizations.weight.original0, conv.parametrizations.weight.original1
        expected = g * v / v.flatten(1).norm(dim=1).view(-1, 1, 1)
        torch.testing.assert_close(conv.weight, expected)
    assert not any(parametrize.is_parametrized(wn.end) for wn in model.modules() if isinstance(wn, WN))
    # Make g differ from ||v|| so folding has something to fold.
    with torch.no_grad():
        for conv in convs:
            conv.parametrizations.weight.original0.mul_(1.3)
        z, logdet = model(audio, mel)
        wav = model.infer(mel, 0.6, generator=torch.Generator().manual_seed(0))
    n_params = model.num_parameters()
    model.remove_weight_norm()
    assert not any(parametrize.is_parametrized(conv) for conv in wn_convs(model))
    assert model.num_parameters() < n_params  # the g vectors are gone
    with torch.no_grad():
        z2, logdet2 = model(audio, mel)
        wav2 = model.infer(mel, 0.6, generator=torch.Generator().manual_seed(0))
    assert (z2 - z).abs().max() < 1e-5
    assert (wav2 - wav).abs().max() < 1e-5
    assert (logdet2 - logdet).abs().max() < 1e-5 * logdet.abs().max()
    # Re-applying weight norm (to fine-tune) keeps the function.
    model.apply_weight_norm()
    assert all(parametrize.is_parametrized(conv, "weight") for conv in wn_convs(model))
    assert model.num_parameters() == n_params
    with torch.no_grad():
        z3, _ = model(audio, mel)
        wav3 = model.infer(mel, 0.6, generator=torch.Generator().manual_seed(0))
    assert (z3 - z).abs().max() < 1e-5
    assert (wav3 - wav).abs().max() < 1e-5


# ------------------------------------------------------------------------------------------- default shape
def test_default_config_is_nvidias_published_model():
    cfg = WaveGlowConfig()
    assert cfg.flow_channels() == [8, 8, 8, 8, 6, 6, 6, 6, 4, 4, 4, 4]
    torch.manual_seed(0)
    model = WaveGlow(cfg)
    assert round(model.num_parameters() / 1e6, 1) == 87.9
    assert len(model.flows) == 12
    assert [step.invconv.weight.shape[0] for step in model.flows] == cfg.flow_channels()
    assert model.upsample.kernel_size == (1024,) and model.upsample.stride == (256,)
    wn = model.flows[0].coupling.wn
    assert wn.cond_layer.weight.shape == (2 * 256 * 8, 80 * 8, 1)
    assert wn.in_layers[7].dilation == (128,) and wn.in_layers[0].weight.shape == (512, 256, 3)
    assert wn.res_skip_layers[6].weight.shape[0] == 512 and wn.res_skip_layers[7].weight.shape[0] == 256
    # One short pass through the real-size model (2 frames).
    audio = torch.rand(1, 512) - 0.5
    mel = torch.randn(1, 80, 2) - 5
    with torch.no_grad():
        z, logdet = model(audio, mel)
        assert z.shape == (1, 8, 64) and logdet.shape == (1,)
        assert model.infer(mel).shape == (1, 512)


# ------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "changes, key",
    [
        ({"kernel_size": 4}, "kernel_size"),
        ({"n_group": 7, "hop_length": 7 * 32}, "n_group"),
        ({"n_early_size": 3}, "n_early_size"),
        ({"n_early_size": 4}, "n_early_size"),  # 8 - 2 * 4 = 0 channels would be left for the last flows
        ({"hop_length": 100}, "hop_length"),
        ({"n_flows": 0}, "n_flows"),
    ],
)
def test_config_validation_names_the_key(changes, key):
    with pytest.raises(ConfigError, match=key):
        WaveGlowConfig(**{**dataclasses.asdict(WaveGlowConfig()), **changes})


def test_wrong_shapes_are_clear_value_errors():
    cfg = CONFIGS["early-outputs"]
    model = build(cfg)
    audio, mel = inputs(cfg, batch=1, frames=4)
    with pytest.raises(ValueError, match="multiple of n_group=8"):
        model(audio[:, :-3], mel)
    with pytest.raises(ValueError, match=r"mel must be \(B, 8, frames\)"):
        model(audio, mel[:, :5])
    with pytest.raises(ValueError, match=r"mel must be"):
        model(audio, mel[0])
    with pytest.raises(ValueError, match="fewer than"):
        model(torch.zeros(1, 8 * cfg.hop_length, dtype=torch.float64), mel)  # 4 frames cover 7 hops
    with pytest.raises(ValueError, match=r"audio must be \(B, T\)"):
        model(audio[0], mel)
    with pytest.raises(ValueError, match=r"z must be \(B, 8"):
        model.inverse(torch.zeros(1, 6, 16, dtype=torch.float64), mel)


def test_alternate_halves_swaps_the_roles_of_the_halves_in_odd_flows():
    """glow_old layout: flow 1 conditions on its second half and transforms the first; flow 0 as usual."""
    cfg = CONFIGS["alternate-halves"]
    model = build(cfg)
    x = torch.randn(2, 8, 24, dtype=torch.float64)
    cond = torch.randn(2, cfg.n_mels * cfg.n_group, 24, dtype=torch.float64)
    with torch.no_grad():
        y0, _ = model.flows[0].coupling(x, cond)
        y1, _ = model.flows[1].coupling(x, cond)
    assert torch.equal(y0[:, :4], x[:, :4]) and (y0[:, 4:] - x[:, 4:]).abs().max() > 1e-3
    assert torch.equal(y1[:, 4:], x[:, 4:]) and (y1[:, :4] - x[:, :4]).abs().max() > 1e-3


def test_mel_shift_is_added_before_the_upsampler():
    """``mel_shift`` conditions on ``mel + shift``: the same model without the shift, fed shifted mels, agrees."""
    torch.manual_seed(0)
    shifted = randomize_ends(WaveGlow(dataclasses.replace(BASE, mel_shift=6.0)), std=0.1)
    plain = WaveGlow(BASE)
    plain.load_state_dict(shifted.state_dict())
    audio = torch.rand(2, 16 * BASE.hop_length) * 0.2 - 0.1
    mel = torch.randn(2, BASE.n_mels, 17) - 6.0
    with torch.no_grad():
        z, logdet = shifted(audio, mel)
        z0, logdet0 = plain(audio, mel + 6.0)
        torch.testing.assert_close(z, z0, atol=0, rtol=0)
        torch.testing.assert_close(logdet, logdet0, atol=0, rtol=0)
        assert (plain(audio, mel)[0] - z).abs().max() > 1e-3  # the shift matters
