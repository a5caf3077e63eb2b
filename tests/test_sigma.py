"""One sigma: the demo's sliders (and the defaults its API shows), the command line and the quickstart start
at the same value for a voice: the model's recommended sigma (``meta["sigma"]``), else the one fallback,
:data:`waveflow.inference.vocoder.DEFAULT_SIGMA`.

Three voices keep the test honest: the bundled starter (it recommends 1.0), a tiny voice recommending a value
nobody would hard-code (0.85), and one recommending nothing (the fallback).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from waveflow import WaveGlow, save_model
from waveflow.cli.common import default_of, make_vocoder
from waveflow.cli.main import get_parser
from waveflow.inference.vocoder import DEFAULT_SIGMA
from waveflow.jobs.quickstart import run_quickstart
from waveflow.train.config import load_run_config

pytestmark = pytest.mark.timeout(300)

ODD_SIGMA = 0.85


def tiny_voice(path: Path, meta: dict) -> Path:
    config = load_run_config("tiny")
    torch.manual_seed(0)
    save_model(WaveGlow(config.model), path, config.mel, meta=meta)
    return path


@pytest.fixture(scope="module")
def voices(tmp_path_factory) -> dict[str, tuple[Path, float]]:
    """name -> (checkpoint, the sigma it should be vocoded at by default)."""
    root = tmp_path_factory.mktemp("sigma-voices")
    return {
        "starter": (Path("starter"), 1.0),
        "recommends": (tiny_voice(root / "odd.pt", {"name": "odd", "sigma": ODD_SIGMA}), ODD_SIGMA),
        "silent": (tiny_voice(root / "silent.pt", {"name": "silent"}), DEFAULT_SIGMA),
    }


def cli_sigma(checkpoint: Path) -> float:
    """The sigma ``waveflow vocode`` (synth and eval share the options) uses without ``--sigma``."""
    args = get_parser().parse_args(["vocode", "in/", "-o", "out/", "--checkpoint", str(checkpoint), "--device", "cpu"])
    return make_vocoder(args).sigma


def demo_sigmas(checkpoints: list[Path], outputs: Path) -> tuple[list[float], dict[str, float]]:
    """The demo page's sigma sliders as built, and the sigma defaults its API advertises per endpoint."""
    gr = pytest.importorskip("gradio")
    from waveflow.app.examples import ExampleSet
    from waveflow.app.handlers import Handlers, Settings
    from waveflow.app.ui import build_app
    from waveflow.app.voices import VoiceBank, discover_voices

    bank = VoiceBank(discover_voices(None, checkpoints))
    app = build_app(Handlers(bank, Settings(outputs=outputs)), ExampleSet(), 3.0)
    sliders = [b.value for b in app.blocks.values() if isinstance(b, gr.Slider) and b.label.startswith("sigma")]
    api = {name.lstrip("/"): p["parameter_default"] for name, endpoint in app.get_api_info()["named_endpoints"].items()
           for p in endpoint["parameters"] if p["parameter_name"] == "sigma"}
    return sliders, api


@pytest.mark.parametrize("name", ["starter", "recommends", "silent"])
def test_demo_and_cli_start_at_the_same_sigma(voices, name, tmp_path):
    checkpoint, expected = voices[name]
    sliders, api = demo_sigmas([checkpoint], tmp_path)
    assert cli_sigma(checkpoint) == pytest.approx(expected)
    assert len(sliders) == 3 and sliders == pytest.approx([expected] * 3)  # vocode a mel, copy synthesis, compare
    assert set(api) == {"vocode_mel", "copy_synthesis", "compare_voices"}
    assert list(api.values()) == pytest.approx([expected] * 3)


def test_demo_sigma_follows_the_picked_voice(voices, tmp_path):
    """The page starts at the first voice's sigma; picking another voice moves the slider to that voice's."""
    gr = pytest.importorskip("gradio")
    from waveflow.app.examples import ExampleSet
    from waveflow.app.handlers import Handlers, Settings
    from waveflow.app.ui import build_app
    from waveflow.app.voices import VoiceBank, discover_voices

    bank = VoiceBank(discover_voices(None, [voices["recommends"][0], voices["silent"][0]]))
    app = build_app(Handlers(bank, Settings(outputs=tmp_path)), ExampleSet(), 3.0)
    follow = [f for f in app.fns.values() if len(f.inputs) == 1 and isinstance(f.inputs[0], gr.Dropdown)
              and len(f.outputs) == 1 and isinstance(f.outputs[0], gr.Slider)]
    assert len(follow) == 2  # the two tabs with one voice and a sigma: vocode a mel, copy synthesis
    for f in follow:
        assert f.outputs[0].value == pytest.approx(ODD_SIGMA)
        assert f.fn("silent") == pytest.approx(cli_sigma(voices["silent"][0])) == pytest.approx(DEFAULT_SIGMA)
        assert f.fn("odd") == pytest.approx(ODD_SIGMA)


def test_quickstart_and_command_line_leave_sigma_to_the_model():
    """No second default: the quickstart and every vocoding command pass None, which the Vocoder resolves."""
    assert default_of(run_quickstart, "sigma") is None
    for command in ("vocode", "synth"):
        assert get_parser().parse_args([command, "in/", "-o", "out/"]).sigma is None
    assert get_parser().parse_args(["eval", "in/"]).sigma is None
