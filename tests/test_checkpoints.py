"""Checkpoints: own-format round trips; NVIDIA / glow_old / DeepLearningExamples import without NVIDIA's code;
refusal of pickles that would run code; the ``waveflow info`` / ``waveflow import`` commands.

NVIDIA's files are made here: stand-ins of NVIDIA's classes (``tests/nvidia_standins.py``, written out as
modules ``glow``, ``glow_old``, ``dle_model`` in ``tmp_path``) are built, given random non-trivial weights,
pickled whole with ``torch.save`` in both serialisation formats, and then removed from ``sys.modules`` and
``sys.path`` before waveflow loads the file. The imported model must reproduce the stand-in's own ``forward``
and ``infer`` (computed by NVIDIA's code structure, not waveflow's).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import nvidia_standins
import pytest
import torch
import torch.nn.backends.thnn
from conftest import randomize_ends
from torch.nn.utils import parametrize

from waveflow import MelConfig, WaveGlow, WaveGlowConfig, load_model, save_model
from waveflow.checkpoints import CheckpointError, load_checkpoint
from waveflow.cli import main as cli_main

TINY = WaveGlowConfig(
    n_mels=8, n_flows=5, n_group=8, n_early_every=2, n_early_size=2, n_layers=3, n_channels=8, hop_length=256
)
WN_CONFIG = {"n_layers": 3, "n_channels": 8, "kernel_size": 3}
# Constructor kwargs of the stand-ins, per NVIDIA module (glow_old hard-codes early exits every 4 flows).
NV_KWARGS = {
    "glow": {"n_mel_channels": 8, "n_flows": 5, "n_group": 8, "n_early_every": 2, "n_early_size": 2},
    "glow_old": {"n_mel_channels": 8, "n_flows": 6, "n_group": 8, "n_early_every": 4, "n_early_size": 2},
    "dle_model": {"n_mel_channels": 8, "n_flows": 5, "n_group": 8, "n_early_every": 2, "n_early_size": 2},
}
FORMATS = {"zip": {}, "legacy": {"_use_new_zipfile_serialization": False}}
STANDIN_MODULES = ("glow", "glow_old", "dle_model")

pytestmark = pytest.mark.usefixtures("torch_single_thread")  # tiny models: threading costs more than it gives


# ------------------------------------------------------------------------------------------- helpers
def build_tiny(cfg: WaveGlowConfig = TINY, seed: int = 0) -> WaveGlow:
    torch.manual_seed(seed)
    return randomize_ends(WaveGlow(cfg), std=0.1, seed=seed).eval()


def tiny_inputs(cfg: WaveGlowConfig, batch=2, frames=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    audio = torch.rand(batch, frames * cfg.hop_length, generator=gen) * 1.6 - 0.8
    mel = torch.randn(batch, cfg.n_mels, frames, generator=gen) - 4
    return audio, mel


def assert_same_function(a: WaveGlow, b: WaveGlow, atol=1e-5):
    """forward z/logdet and inverse audio of two models agree."""
    audio, mel = tiny_inputs(a.config)
    with torch.no_grad():
        za, lda = a(audio, mel)
        zb, ldb = b(audio, mel)
        wa = a.infer(mel, 0.7, generator=torch.Generator().manual_seed(1))
        wb = b.infer(mel, 0.7, generator=torch.Generator().manual_seed(1))
    assert (za - zb).abs().max() <= atol
    assert (lda - ldb).abs().max() <= atol * max(1.0, float(lda.abs().max()))
    assert (wa - wb).abs().max() <= atol * max(1.0, float(wa.abs().max()))


class _OldTorchBackend:
    """Pickles like ``torch.nn.backends.thnn.THNNFunctionBackend``: PyTorch <= 1.4 stored it in every
    module's ``_backend``, so NVIDIA's published 2018-2019 checkpoints all contain this reference."""

    def __reduce__(self):
        return (torch.nn.backends.thnn._get_thnn_function_backend, ())


@torch.no_grad()
def randomize_nvidia(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial weights for a stand-in: random end convs, weight-norm gains that differ from ||v||,
    non-orthogonal 1x1 convs."""
    gen = torch.Generator().manual_seed(seed)
    for name, module in model.named_modules():
        if name.endswith(".end"):
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.1)
            module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
        if hasattr(module, "weight_g"):
            module.weight_g.mul_(0.5 + torch.rand(module.weight_g.shape, generator=gen))
        if name.startswith("convinv.") and name.endswith(".conv"):
            c = module.weight.shape[0]
            w = module.weight[:, :, 0] * torch.exp(torch.rand(c, generator=gen) - 0.5)
            module.weight.copy_((w + 0.1 * torch.randn(c, c, generator=gen))[..., None])


def make_nvidia(tmp_path: Path, module: str, fmt: str = "zip", old_torch: bool = False, seed: int = 0, tamper=None):
    """Build a stand-in NVIDIA model from ``module`` and ``torch.save`` it like NVIDIA's train.py
    (``tamper(model)``, if given, runs just before saving).

    Returns ``(model, path)``; NVIDIA's modules are gone from ``sys.modules``/``sys.path`` on return
    (the returned model still runs: its methods keep their module globals).
    """
    src = tmp_path / "nvidia_code"
    src.mkdir(exist_ok=True)
    (src / "glow.py").write_text(nvidia_standins.GLOW)
    (src / "glow_old.py").write_text(nvidia_standins.GLOW_OLD)
    (src / "dle_model.py").write_text(nvidia_standins.DLE_MODEL)
    sys.path.insert(0, str(src))
    path = tmp_path / f"{module}_{fmt}{'_old_torch' if old_torch else ''}.pt"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.nn.utils.weight_norm is deprecated
            mod = importlib.import_module(module)
            torch.manual_seed(seed)
            model = mod.WaveGlow(**NV_KWARGS[module], WN_config=dict(WN_CONFIG)).eval()
        randomize_nvidia(model, seed)
        if old_torch:
            for m in model.modules():
                m._backend = _OldTorchBackend()
        if tamper is not None:
            tamper(model)
        if module == "dle_model":
            state = {"module." + k: v for k, v in model.state_dict().items()}
            config = {**NV_KWARGS[module], "WN_config": dict(WN_CONFIG)}
            torch.save({"state_dict": state, "config": config}, path, **FORMATS[fmt])
        else:
            torch.save({"model": model, "iteration": 10}, path, **FORMATS[fmt])
    finally:
        sys.path.remove(str(src))
        for name in STANDIN_MODULES:
            sys.modules.pop(name, None)
    assert importlib.util.find_spec("glow") is None, "NVIDIA's code must not be importable while loading"
    assert zipfile.is_zipfile(path) == (fmt == "zip")
    return model, path


def nvidia_latent(model, batch: int, n: int, sigma: float, seed: int) -> torch.Tensor:
    """The noise NVIDIA's ``infer`` draws after ``torch.manual_seed(seed)`` (remaining channels first, then
    each early exit from the last flow down), laid out as waveflow's z: early outputs oldest first, then the
    remaining channels."""
    torch.manual_seed(seed)
    remaining = torch.randn(batch, model.n_remaining_channels, n)
    early = {}
    for k in reversed(range(model.n_flows)):
        exits = k % 4 == 0 if type(model).__module__ == "glow_old" else k % model.n_early_every == 0
        if exits and k > 0:
            early[k] = torch.randn(batch, model.n_early_size, n)
    return sigma * torch.cat([early[k] for k in sorted(early)] + [remaining], 1)


def compare_with_nvidia(nv_model, ours: WaveGlow, module: str, frames: int = 4) -> None:
    gen = torch.Generator().manual_seed(5)
    spect = torch.randn(2, 8, frames, generator=gen) - 4
    audio = torch.rand(2, frames * 256, generator=gen) * 1.6 - 0.8
    with torch.no_grad():
        if module != "glow_old":  # glow_old.py's forward is `return None`
            z_nv, log_s_list, log_det_w_list = nv_model((spect, audio))
            z, logdet = ours(audio, spect)
            assert (z - z_nv).abs().max() < 1e-5
            total = sum(ls.sum() for ls in log_s_list) + sum(log_det_w_list)
            assert float(total) == pytest.approx(float(logdet.sum()), rel=1e-5, abs=1e-3)
            assert abs(float(total)) > 1.0  # non-trivial: random ends and non-orthogonal 1x1 convs
            for b in range(2):  # per item: NVIDIA sums over the batch, so run it on one item at a time
                _, ls_b, ldw_b = nv_model((spect[b : b + 1], audio[b : b + 1]))
                item = sum(ls.sum() for ls in ls_b) + sum(ldw_b)
                assert float(item) == pytest.approx(float(logdet[b]), rel=1e-5, abs=1e-3)
        sigma = 0.7
        torch.manual_seed(11)
        wav_nv = nv_model.infer(spect, sigma=sigma)
        z = nvidia_latent(nv_model, 2, frames * 256 // 8, sigma, seed=11)
        wav = ours.inverse(z, spect)
        assert wav.shape == wav_nv.shape == (2, frames * 256)
        scale = max(1.0, float(wav_nv.abs().max()))
        assert (wav - wav_nv).abs().max() < 1e-4 * scale
        # sigma = 0: NVIDIA's deterministic audio equals waveflow's infer(sigma=0).
        wav0_nv = nv_model.infer(spect, sigma=0.0)
        wav0 = ours.infer(spect, sigma=0.0)
        assert (wav0 - wav0_nv).abs().max() < 1e-4 * max(1.0, float(wav0_nv.abs().max()))


# ------------------------------------------------------------------------------------------- own format
@pytest.mark.parametrize("weight_norm", [True, False])
def test_own_format_round_trip(tmp_path, weight_norm):
    cfg = dataclasses.replace(TINY, n_group=4, n_flows=3, n_early_size=0, coupling="affine", kernel_size=5)
    model = build_tiny(cfg)
    mel_cfg = MelConfig.for_sample_rate(24000, n_mels=8, hop_length=256)
    out = save_model(model, tmp_path / "sub" / "voice.pt", mel_config=mel_cfg, meta={"name": "Tiny", "step": 7})
    assert out == tmp_path / "sub" / "voice.pt"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["voice.pt"]  # no temp files left

    payload = torch.load(out, weights_only=True)  # plain types and tensors only
    assert payload["format"] == "waveflow" and isinstance(payload["version"], int)
    assert payload["model_config"] == dataclasses.asdict(cfg)
    assert payload["mel_config"] == dataclasses.asdict(mel_cfg)
    assert not any("parametrizations" in k for k in payload["state_dict"])  # stable, folded names
    assert all(v.dtype == torch.float32 for v in payload["state_dict"].values())

    ck = load_checkpoint(out, weight_norm=weight_norm)
    assert ck.model.config == cfg
    assert ck.mel_config == mel_cfg
    assert ck.meta["name"] == "Tiny" and ck.meta["step"] == 7 and ck.origin == "waveflow"
    convs = [m.start for m in ck.model.modules() if hasattr(m, "start")]
    assert convs and all(parametrize.is_parametrized(c, "weight") == weight_norm for c in convs)
    assert_same_function(model, ck.model, atol=1e-6)
    assert_same_function(model, load_model(out), atol=1e-6)


def test_own_format_round_trip_of_folded_model_and_overwrite(tmp_path):
    model = build_tiny().remove_weight_norm()
    path = tmp_path / "m.pt"
    save_model(model, path)
    other = build_tiny(seed=3)
    save_model(other, path)  # replaces atomically
    assert_same_function(other, load_model(path), atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


def test_save_refuses_mismatched_mel_and_leaves_nothing(tmp_path):
    with pytest.raises(CheckpointError, match="does not match the model"):
        save_model(build_tiny(), tmp_path / "m.pt", mel_config=MelConfig(hop_length=200, n_mels=8))
    assert list(tmp_path.iterdir()) == []


def test_newer_version_and_bad_weights_are_refused(tmp_path):
    model = build_tiny()
    path = save_model(model, tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "version": 999}, tmp_path / "new.pt")
    with pytest.raises(CheckpointError, match="newer"):
        load_model(tmp_path / "new.pt")
    state = dict(payload["state_dict"])
    state.pop("upsample.bias")
    torch.save({**payload, "state_dict": state}, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(tmp_path / "broken.pt")


# ------------------------------------------------------------------------------------------- NVIDIA import
@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("module", ["glow", "glow_old", "dle_model"])
def test_nvidia_import_matches_nvidia_code(tmp_path, module, fmt):
    nv_model, path = make_nvidia(tmp_path, module, fmt)
    ck = load_checkpoint(path)
    assert "glow" not in sys.modules and "glow_old" not in sys.modules
    cfg = ck.model.config
    expected_origin = {"glow": "nvidia/waveglow", "glow_old": "glow_old", "dle_model": "DeepLearningExamples"}
    assert expected_origin[module] in ck.origin
    assert (cfg.n_mels, cfg.n_group, cfg.n_layers, cfg.n_channels, cfg.kernel_size, cfg.hop_length) == (
        8, 8, 3, 8, 3, 256,
    )
    assert (cfg.n_flows, cfg.n_early_every, cfg.n_early_size) == (
        NV_KWARGS[module]["n_flows"], NV_KWARGS[module]["n_early_every"], NV_KWARGS[module]["n_early_size"],
    )
    assert ck.mel_config == MelConfig(n_mels=8)  # NVIDIA's features at 22050 Hz
    assert cfg.alternate_halves == (module == "glow_old")
    compare_with_nvidia(nv_model, ck.model.eval(), module)
    # The inference form (weight norm folded) gives the same numbers.
    compare_with_nvidia(nv_model, load_model(path, weight_norm=False).eval(), module)
    # And so does the model after a round trip through waveflow's own format.
    own = save_model(ck.model, tmp_path / "own.pt", ck.mel_config, ck.meta)
    compare_with_nvidia(nv_model, load_model(own).eval(), module)


@pytest.mark.parametrize("module", ["glow", "glow_old"])
def test_nvidia_import_of_pytorch_1x_era_pickle(tmp_path, module):
    """Published NVIDIA checkpoints (2018-2019) are legacy-format pickles whose modules carry PyTorch 1.x's
    ``_backend`` reference; they must load too."""
    nv_model, path = make_nvidia(tmp_path, module, "legacy", old_torch=True)
    compare_with_nvidia(nv_model, load_model(path).eval(), module)


def test_nvidia_import_without_nvidia_code_in_a_fresh_process(tmp_path):
    """A fresh interpreter, which never saw NVIDIA's modules, imports the file (nothing cached in-process)."""
    _, path = make_nvidia(tmp_path, "glow", "legacy")
    code = (
        "import sys, waveflow; m = waveflow.load_model(sys.argv[1]); "
        "assert 'glow' not in sys.modules; print(m.config.n_flows, m.num_parameters())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "5"


def test_dle_fp16_state_dict_imports(tmp_path):
    """DLE also published fp16 checkpoints: half-precision weights import as float32 models."""
    nv_model, path = make_nvidia(tmp_path, "dle_model", "zip")
    payload = torch.load(path, weights_only=True)
    half = {k: v.half() for k, v in payload["state_dict"].items()}
    torch.save({"state_dict": half, "config": payload["config"]}, tmp_path / "fp16.pt")
    ours = load_model(tmp_path / "fp16.pt").eval()
    assert all(p.dtype == torch.float32 for p in ours.parameters())
    nv_model.half().float()  # the reference gets the same rounded weights
    compare_with_nvidia(nv_model, ours, "dle_model")


# ------------------------------------------------------------------------------------------- refusals
class _SystemCall:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _SubprocessCall:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.call, (["touch", str(self.marker)],))


class _Exec:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize(
    "kind, pattern",
    [
        ("os.system", r"'(os|posix)\.system'"),
        ("subprocess", r"'(subprocess|commands)\.call'"),
        ("exec", r"'(builtins\.)?exec'"),
    ],
)
def test_malicious_pickle_is_refused_without_running(tmp_path, fmt, kind, pattern):
    marker = tmp_path / "pwned"
    payload = {
        "os.system": _SystemCall(f"touch {marker}"),
        "subprocess": _SubprocessCall(marker),
        "exec": _Exec(marker),
    }[kind]
    path = tmp_path / "evil.pt"
    torch.save({"model": payload, "iteration": 1}, path, **FORMATS[fmt])
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_model(path)
    assert "refused" in str(err.value) and str(path) in str(err.value)
    assert not marker.exists(), "the pickle's code ran"


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_malicious_pickle_inside_an_nvidia_model_is_refused(tmp_path, fmt):
    """A real-looking NVIDIA file with one forbidden object tucked into a module's attributes."""
    marker = tmp_path / "pwned"

    def tamper(model):
        model.WN[0].start.payload = _SystemCall(f"touch {marker}")

    _, path = make_nvidia(tmp_path, "glow", fmt, tamper=tamper)
    with pytest.raises(CheckpointError, match=r"(os|posix)\.system"):
        load_model(path)
    assert not marker.exists()


def test_unknown_class_from_nvidia_module_is_refused(tmp_path):
    src = tmp_path / "code"
    src.mkdir()
    (src / "glow.py").write_text("import torch\nclass Denoiser(torch.nn.Module):\n    pass\n")
    sys.path.insert(0, str(src))
    try:
        obj = importlib.import_module("glow").Denoiser()
        torch.save({"model": obj}, tmp_path / "d.pt")
    finally:
        sys.path.remove(str(src))
        sys.modules.pop("glow", None)
    with pytest.raises(CheckpointError, match=r"glow\.Denoiser"):
        load_model(tmp_path / "d.pt")


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_corrupt_files_give_clear_errors(tmp_path, fmt):
    _, good = make_nvidia(tmp_path, "glow", fmt)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint") as err:
        load_model(truncated)
    assert str(truncated) in str(err.value)


def test_text_empty_missing_and_unrelated_files(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("this is not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_model(text)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_model(empty)
    with pytest.raises(CheckpointError, match="file not found"):
        load_model(tmp_path / "missing.pt")
    torch.save({"optimizer": {"lr": 1e-4}, "step": 3}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a waveflow or WaveGlow checkpoint"):
        load_model(tmp_path / "other.pt")
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="no WaveGlow weights"):
        load_model(tmp_path / "sd.pt")


# ------------------------------------------------------------------------------------------- CLI
def test_cli_info_and_import(tmp_path, capsys):
    nv_model, src = make_nvidia(tmp_path, "glow", "legacy")
    assert cli_main(["info", str(src)]) == 0
    text = capsys.readouterr().out
    assert "nvidia/waveglow" in text and "22050 Hz" in text and "n_flows=5" in text

    assert cli_main(["info", str(src), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["origin"] == "nvidia/waveglow" and info["sample_rate"] == 22050
    assert info["model"]["n_flows"] == 5 and info["model"]["n_mels"] == 8
    assert info["parameters"] == load_model(src, weight_norm=False).num_parameters()

    dst = tmp_path / "voices" / "nv.pt"
    assert cli_main(["import", str(src), str(dst), "--name", "NV tiny"]) == 0
    assert "imported" in capsys.readouterr().out
    payload = torch.load(dst, weights_only=True)
    assert payload["format"] == "waveflow" and payload["meta"]["name"] == "NV tiny"
    assert payload["meta"]["origin"] == "nvidia/waveglow"
    compare_with_nvidia(nv_model, load_model(dst).eval(), "glow")

    before = dst.read_bytes()
    assert cli_main(["import", str(src), str(dst)]) == 1
    err = capsys.readouterr().err
    assert "already exists" in err and "--overwrite" in err
    assert dst.read_bytes() == before
    assert cli_main(["import", str(src), str(dst), "--overwrite", "--sample-rate", "16000"]) == 0
    capsys.readouterr()
    assert load_checkpoint(dst).mel_config.sample_rate == 16000

    assert cli_main(["info", str(dst)]) == 0
    assert "glow_legacy" in capsys.readouterr().out  # re-imported without --name: the source file name


def test_cli_info_reports_refusal(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": _SystemCall(f"touch {tmp_path / 'pwned'}")}, path)
    assert cli_main(["info", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "system" in err and "Traceback" not in err
    assert not (tmp_path / "pwned").exists()
