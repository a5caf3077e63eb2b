"""WaveFlow: an affine flow autoregressive over the rows of the squeezed audio (models/waveflow.py).

Independent references: brute-force float64 Jacobians of audio -> z (with every prior), the plain row-by-row
inverse (the whole net for every row) against the fast one (per-layer row queues), the Gaussian NLL written
out, perturbations of single rows and columns for the autoregression and the receptive field, and parameter
counts of the built model against the config's own count.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import voiced

from waveflow import MelConfig, MelSpectrogram, WaveFlow, WaveFlowConfig
from waveflow.config import ConfigError, from_dict, load_yaml
from waveflow.flows import SourceFilterPrior, SpectralPrior
from waveflow.flows.wavenet import randomize_ends
from waveflow.models.waveflow import (
    flow_reach_steps,
    plain_state_dict,
    prepare_for_inference,
    receptive_field_frames,
)
from waveflow.models.waveflow_config import default_height_dilations
from waveflow.train.config import DataConfig, TrainConfig

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# 8 kHz, hop 32: four-frame clips are 128 samples, small enough for full Jacobians. Kernel height 2 and
# dilations (1, 2): the row queues hold 2 and 3 rows.
TINY_MEL = MelConfig(sample_rate=8000, n_fft=128, hop_length=32, win_length=128, n_mels=8, fmax=4000.0)
TINY = WaveFlowConfig(n_mels=8, n_flows=4, n_height=8, n_layers=2, n_channels=8, kernel_size=(2, 3),
                      height_dilations=(1, 2), hop_length=32, mel_shift=6.0, prior_mel=TINY_MEL)
# Source-filter: 40 mels at hop 64 (17 bands below 1 kHz), so the pitch predictor is on for voiced audio.
SF_MEL = MelConfig(sample_rate=8000, n_fft=256, hop_length=64, win_length=256, n_mels=40, fmax=4000.0)
SF = dataclasses.replace(TINY, n_mels=40, hop_length=64, prior="source-filter", prior_mel=SF_MEL)
CONFIGS = {"none": TINY, "spectral": dataclasses.replace(TINY, prior="spectral"), "source-filter": SF}


@torch.no_grad()
def build(cfg=TINY, dtype=torch.float64, seed=0) -> WaveFlow:
    """Random end convs (every flow non-trivial), a random per-bin log-scale and pitch net: nothing is trivial."""
    torch.manual_seed(seed)
    model = randomize_ends(WaveFlow(cfg), std=0.2, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    spectral = model.prior.spectral if isinstance(model.prior, SourceFilterPrior) else model.prior
    if isinstance(spectral, SpectralPrior):
        spectral.log_scale.add_(0.3 * torch.randn(spectral.log_scale.shape, generator=gen))
    if isinstance(model.prior, SourceFilterPrior):
        last = model.prior.pitch.net[-1]
        last.weight.copy_(0.3 * torch.randn(last.weight.shape, generator=gen))
    return model.to(dtype).eval()


def inputs(cfg=TINY, batch=2, frames=4, seed=0):
    """Float64 audio ``(B, frames*hop)`` and a training-style mel ``(B, n_mels, frames + 1)``: voiced audio and
    its own mel for the source-filter prior, random ones otherwise."""
    T = frames * cfg.hop_length
    if cfg.prior == "source-filter":
        sr = cfg.prior_mel_config().sample_rate
        audio = torch.stack([torch.from_numpy(voiced(T, sr, (100.0 + 40 * b, 170.0 + 30 * b), seed + b))
                             for b in range(batch)])
        return audio, MelSpectrogram(cfg.prior_mel_config())(audio)
    gen = torch.Generator().manual_seed(seed)
    audio = torch.rand(batch, T, generator=gen, dtype=torch.float64) * 1.8 - 0.9
    return audio, torch.randn(batch, cfg.n_mels, frames + 1, generator=gen, dtype=torch.float64) * 2 - 4


def brute_force_logdets(fn, x: torch.Tensor) -> list[float]:
    """``log|det J|`` per item from the full float64 Jacobian of ``fn``; items must not interact."""
    B, n = x.shape[0], x[0].numel()
    jac = torch.autograd.functional.jacobian(lambda flat: fn(flat.view_as(x)).reshape(-1), x.reshape(-1),
                                             vectorize=True)
    out = []
    for b in range(B):
        rows = jac[b * n : (b + 1) * n]
        assert torch.count_nonzero(rows[:, : b * n]) == 0 and torch.count_nonzero(rows[:, (b + 1) * n :]) == 0
        out.append(float(torch.linalg.slogdet(rows[:, b * n : (b + 1) * n])[1]))
    return out


# ------------------------------------------------------------------------------------------- the density
@pytest.mark.parametrize("prior", list(CONFIGS))
def test_logdet_matches_brute_force_jacobian(prior):
    cfg = CONFIGS[prior]
    model = build(cfg)
    audio, mel = inputs(cfg)
    z, logdet = model(audio, mel)
    assert z.shape == (2, cfg.n_height, audio.shape[1] // cfg.n_height)
    if prior == "source-filter":
        assert (model.prior.pitch.taps(mel).strength > 0.5).float().mean() > 0.5  # the predictor is on
    expected = brute_force_logdets(lambda a: model(a, mel)[0], audio)
    assert abs(logdet[0].item()) > 1.0  # the flows are far from the identity
    torch.testing.assert_close(logdet, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-8)


@pytest.mark.parametrize("prior", list(CONFIGS))
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_inverse_is_exact(prior, dtype, tol):
    cfg = CONFIGS[prior]
    model = build(cfg, dtype)
    audio, mel = inputs(cfg)
    audio, mel = audio.to(dtype), mel.to(dtype)
    with torch.no_grad():
        back = model.inverse(model(audio, mel)[0], mel)
    assert back.dtype == dtype
    assert (back - audio).abs().max().item() < tol


@pytest.mark.parametrize("cfg", [TINY, dataclasses.replace(TINY, kernel_size=(3, 5), height_dilations=(2, 1),
                                                            n_height=4, permutation="reverse", n_flows=3)])
def test_fast_inverse_equals_the_plain_row_by_row_inverse(cfg):
    model = build(cfg)
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(3, cfg.n_height, 160 // cfg.n_height, generator=gen, dtype=torch.float64)
    mel = torch.randn(3, cfg.n_mels, 5, generator=gen, dtype=torch.float64) - 4
    with torch.no_grad():
        fast, plain = model.inverse(z, mel), model.inverse_reference(z, mel)
    assert plain.abs().max() > 0.1
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-12)


@pytest.mark.parametrize("prior", ["none", "spectral"])
def test_nll_equals_a_direct_computation_and_its_profile_sums_to_it(prior):
    cfg, sigma = CONFIGS[prior], 0.7
    model = build(cfg)
    audio, mel = inputs(cfg)
    with torch.no_grad():
        out = model.nll(audio, mel, sigma=sigma)
        z, logdet = model(audio, mel)
        profile = model.nll_profile(audio, mel, sigma=sigma)
    D = audio.shape[1]
    direct = (0.5 * z.pow(2).sum((1, 2)) / sigma**2 + D * math.log(sigma) + 0.5 * D * math.log(2 * math.pi)
              - logdet) / D
    torch.testing.assert_close(out.nll_per_item, direct, rtol=0, atol=1e-12)
    torch.testing.assert_close(out.nll, direct.mean(), rtol=0, atol=1e-12)
    parts = out.z + out.log_s + out.logdet_w + out.prior + out.const
    torch.testing.assert_close(parts, out.nll, rtol=0, atol=1e-12)
    assert out.logdet_w == 0 and (out.prior != 0) == (prior != "none")
    assert profile.shape == (2, D // cfg.hop_length)
    torch.testing.assert_close(profile.mean(1), out.nll_per_item, rtol=0, atol=1e-12)


def test_flow_reports_each_step_and_the_whitened_input():
    cfg = CONFIGS["spectral"]
    model = build(cfg)
    audio, mel = inputs(cfg)
    steps, whitened = [], []
    with torch.no_grad():
        _, log_s, logdet_w = model.flow(audio, mel, steps=steps, whitened=whitened)
        e, _ = model.prior(audio, mel)
    assert len(steps) == cfg.n_flows and all(s.shape == (2,) and (w == 0).all() for s, w in steps)
    torch.testing.assert_close(sum(s for s, _ in steps), log_s)
    assert (logdet_w == 0).all() and torch.equal(whitened[0], e)


# ----------------------------------------------------------------------------------- the autoregression
@pytest.mark.parametrize("k", [0, 3])
def test_a_row_changes_no_earlier_row_of_its_flow(k):
    cfg = TINY
    step = build(cfg).flows[k]
    gen = torch.Generator().manual_seed(k)
    h, w = cfg.n_height, 24
    x = torch.randn(2, h, w, generator=gen, dtype=torch.float64)
    cond = torch.randn(2, cfg.n_mels, h, w, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        z, _ = step(x, cond)
        for i in range(h):
            moved = x.clone()
            moved[:, i, 12] += 0.5  # one sample: row i of column 12
            diff = (step(moved, cond)[0] - z).abs()
            assert torch.count_nonzero(diff[:, :i]) == 0, f"row {i} changed an earlier row"
            assert diff[:, i, 12].min() > 0
            if i + 1 < h:
                assert diff[:, i + 1].max() > 1e-6, f"row {i + 1} does not read row {i}"
            reach = cfg.width_reach()
            assert torch.count_nonzero(diff[..., : 12 - reach]) + torch.count_nonzero(diff[..., 12 + reach + 1 :]) == 0


def test_each_flow_sees_the_mel_of_its_own_rows():
    """Rows are reordered between flows (the paper's: reversed, then each half reversed) and the squeezed mel
    with them: row i of every flow's input is an original row p[i] of the audio, and row i of its conditioning
    the mel at those same samples."""
    cfg, h = TINY, TINY.n_height
    model = WaveFlow(cfg).double()  # zero end convs: every flow hands its rows on as they are
    audio, mel = inputs(cfg)
    seen = []
    for step in model.flows:
        step.register_forward_pre_hook(lambda module, args: seen.append(args[:2]))
    with torch.no_grad():
        z, _ = model(audio, mel)
        squeezed = audio.reshape(2, -1, h).transpose(1, 2)
        cond = model.condition(mel, audio.shape[1])
    orders = []
    for x, c in seen:
        p = [int((squeezed[0] == x[0, i]).all(-1).nonzero()) for i in range(h)]
        assert torch.equal(x, squeezed[:, p]) and torch.equal(c, cond[:, :, p])
        orders.append(p)
    rows = list(range(h))
    assert orders == [rows, rows[::-1], rows, rows[3::-1] + rows[:3:-1]]
    assert torch.equal(z, squeezed)  # the fourth reordering brings the rows back to the audio's order


def test_the_inverse_reaches_h_times_further_than_the_forward():
    """A latent column moves the audio up to ``flow_reach_steps`` columns away (the recursion over the rows),
    not just the forward's ``n_flows * width_reach``, and never further."""
    cfg = WaveFlowConfig(n_mels=8, n_flows=2, n_height=4, n_layers=2, n_channels=8, hop_length=32)
    model = build(cfg)
    gen = torch.Generator().manual_seed(5)
    n, c = 100, 50
    z = torch.randn(1, cfg.n_height, n, generator=gen, dtype=torch.float64)
    mel = torch.randn(1, cfg.n_mels, n * 4 // 32 + 1, generator=gen, dtype=torch.float64) - 4
    moved = z.clone()
    moved[..., c] += 1.0
    with torch.no_grad():
        diff = (model.inverse(moved, mel) - model.inverse(z, mel)).abs().reshape(n, cfg.n_height).amax(1)
    reach, forward = flow_reach_steps(cfg), flow_reach_steps(cfg, inverse=False)
    assert (reach, forward) == (24, 6)
    assert diff[: c - reach].max() == 0 and diff[c + reach + 1 :].max() == 0
    assert diff[c + forward + 1 :].max() > 0 and diff[: c - forward].max() > 0
    assert receptive_field_frames(cfg) * cfg.hop_length >= (reach + 1) * cfg.n_height


# --------------------------------------------------------------------------------- weights and configs
@pytest.mark.parametrize("cfg", [TINY, CONFIGS["spectral"], SF, WaveFlowConfig(), WaveFlowConfig(n_channels=128),
                                 dataclasses.replace(TINY, kernel_size=(1, 5), permutation="reverse")])
def test_weight_count_is_the_folded_parameter_count(cfg):
    model = WaveFlow(cfg)
    folded = sum(v.numel() for v in plain_state_dict(model).values())
    assert cfg.weight_count() == folded
    assert not any("parametrizations" in key for key in plain_state_dict(model))
    assert model.num_parameters() > folded  # the weight-norm magnitudes


def test_the_paper_shapes():
    """WaveFlow-64 and -128 have the paper's 5.91 M and 22.25 M parameters in their flows."""
    upsampler = 80 * 80 * 1024 + 80
    assert WaveFlowConfig().weight_count() - upsampler == pytest.approx(5.91e6, rel=0.01)
    assert WaveFlowConfig(n_channels=128).weight_count() - upsampler == pytest.approx(22.25e6, rel=0.01)
    assert default_height_dilations(16, 8, 3) == (1,) * 8
    assert default_height_dilations(32, 8, 3) == (1, 2, 4, 1, 2, 4, 1, 2)
    assert default_height_dilations(64, 8, 3) == (1, 2, 4, 8, 16, 1, 2, 4)
    assert WaveFlowConfig(n_flows=4, n_height=4).permutations() == [[3, 2, 1, 0]] * 2 + [[1, 0, 3, 2]] * 2
    assert WaveFlowConfig().n_group == 16


def test_weight_norm_fold_and_unfold_leave_the_outputs_unchanged():
    model = build(CONFIGS["spectral"])
    audio, mel = inputs(CONFIGS["spectral"])
    with torch.no_grad():
        z0, ld0 = model(audio, mel)
        x0 = model.inverse(z0, mel)
        for change in (model.remove_weight_norm, model.apply_weight_norm):
            change()
            z, ld = model(audio, mel)
            torch.testing.assert_close(z, z0, rtol=0, atol=1e-12)
            torch.testing.assert_close(ld, ld0, rtol=0, atol=1e-10)
            torch.testing.assert_close(model.inverse(z0, mel), x0, rtol=0, atol=1e-12)


def test_prepare_for_inference_is_a_folded_copy():
    model = build(TINY, torch.float32)
    _, mel = inputs(TINY)
    mel = mel.float()
    fast = prepare_for_inference(model, torch.device("cpu"), torch.float32)
    assert not any("parametrizations" in key for key in fast.state_dict())
    assert any("parametrizations" in key for key in model.state_dict())  # the caller's model as it was
    with torch.no_grad():
        a = model.infer(mel, sigma=0.8, generator=torch.Generator().manual_seed(1))
        b = fast.infer(mel, sigma=0.8, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, mel.shape[-1] * TINY.hop_length)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["waveflow-tiny", "waveflow-64", "waveflow-128"])
def test_bundled_configs_are_valid_run_configs(name):
    data = load_yaml(Path(str(importlib.resources.files("waveflow.configs").joinpath(f"{name}.yaml"))))
    assert next(iter(data["model"])) == "type" and data["model"]["type"] == "waveflow"
    model = from_dict(WaveFlowConfig, data["model"], "model")
    mel = from_dict(MelConfig, data["mel"], "mel")
    data_cfg = from_dict(DataConfig, data["data"], "data")
    from_dict(TrainConfig, data["train"], "train")
    assert (mel.n_mels, mel.hop_length) == (model.n_mels, model.hop_length)
    assert data_cfg.segment_length % model.sample_multiple == 0


@pytest.mark.parametrize("change, message", [
    ({"n_height": 6, "hop_length": 256}, "multiple of n_height"),
    ({"n_height": 3, "hop_length": 255}, "even n_height"),
    ({"kernel_size": (3, 4)}, "width must be odd"),
    ({"kernel_size": (3, 3, 3)}, "kernel_size must be [height, width]"),
    ({"height_dilations": (1, 2)}, "one value per layer"),
    ({"n_layers": 40}, "n_layers must be at most"),
    ({"prior_mel": MelConfig(n_mels=40)}, "prior_mel must have"),
])
def test_bad_configs_are_refused_naming_the_key(change, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        WaveFlowConfig(**change)
    with pytest.raises(ConfigError, match="model.type"):
        from_dict(WaveFlowConfig, {"type": "waveglow"}, "model")


def test_the_speed_benchmark_runs(tmp_path, monkeypatch):
    """scripts/bench_waveflow.py (not imported by the package, so nothing else would catch its rot)."""
    scripts = Path(__file__).resolve().parent.parent / "scripts"
    monkeypatch.syspath_prepend(str(scripts))
    spec = importlib.util.spec_from_file_location("bench_waveflow", scripts / "bench_waveflow.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    assert bench.main(["--config", "waveflow-tiny", "--seconds", "0.05", "--reference-seconds", "0.03",
                       "--repeats", "1", "--warmup", "0", "--threads", "1", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert {"figure", "config", "device", "device_name", "dtype", "torch", "waveflow"} <= set(record)
    (row,) = record["results"]
    assert row["waveflow_khz"] > 0 and row["waveflow_over_waveglow"] == row["waveflow_khz"] / row["waveglow_khz"]
    assert record["models"]["waveglow"]["type"] == "waveglow"
    target = WaveFlowConfig().weight_count()  # waveflow-64's: NVIDIA's layout at 38 WN channels matches it
    assert bench.matching_waveglow(target, 80, 256, None).weight_count() == pytest.approx(target, rel=0.02)
    assert record["reference_inverse"]["speedup"] > 0
