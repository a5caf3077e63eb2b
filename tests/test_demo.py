"""The Gradio demo over real HTTP: `waveflow demo` in a subprocess, every tab driven with gradio_client.

One server for the module (start-up, with example clips spoken by espeak-ng, takes ~10-20 s): two tiny random
voices, a 3 s upload limit. Checks output types, lengths and sample rates; that bad uploads come back as the
demo's own messages and the next good request still works; that the server binds only 127.0.0.1, has
analytics off, and writes nothing outside its temporary folder (its HOME, working folder and TMPDIR are
checked after it stops). Also: the app's own entry point (`python -m waveflow.app`) takes the same options,
its options and launcher import without Gradio, and a missing Gradio is reported with the install command.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from demo_server import DemoServer, make_voice, speechlike

from waveflow import MelConfig, MelSpectrogram

pytestmark = pytest.mark.timeout(300)

RATE = 22050
HOP = 256
MAX_SECONDS = 3


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-inputs")
    voices = root / "voices"
    voices.mkdir()
    make_voice(voices / "a.pt", seed=0, name="Tiny A")
    make_voice(voices / "b.pt", seed=1)
    f = {"voices": voices}
    # a stereo 16 kHz clip: the demo must mix down and resample
    f["clip"] = root / "clip-16k-stereo.wav"
    sf.write(f["clip"], speechlike(1.0, 16000, channels=2), 16000)
    mono = speechlike(0.8, RATE)
    mel = MelSpectrogram(MelConfig())(torch.from_numpy(mono)).numpy()
    f["mel"] = root / "utt.npy"
    np.save(f["mel"], mel)
    f["mel_pt"] = root / "utt.pt"
    torch.save(torch.from_numpy(mel[:, :40].copy()), f["mel_pt"])
    # bad inputs
    f["text_wav"] = root / "notes.wav"
    f["text_wav"].write_text("this is not audio\n")
    f["truncated_wav"] = root / "truncated.wav"
    good = root / "good.wav"
    sf.write(good, mono, RATE)
    f["truncated_wav"].write_bytes(good.read_bytes()[:30])
    f["long_wav"] = root / "long.wav"
    sf.write(f["long_wav"], speechlike(MAX_SECONDS + 1.0, 8000), 8000)
    f["short_wav"] = root / "click.wav"
    sf.write(f["short_wav"], speechlike(0.01, RATE), RATE)
    f["mel_79"] = root / "bins79.npy"
    np.save(f["mel_79"], mel[:79])
    f["mel_nan"] = root / "nan.npy"
    bad = mel.copy()
    bad[3, 5] = np.nan
    np.save(f["mel_nan"], bad)
    f["mel_text"] = root / "fake.npy"
    f["mel_text"].write_text("0.1 0.2 0.3\n")
    f["mel_pickle"] = root / "evil.pt"
    torch.save({"not": "a tensor"}, f["mel_pickle"])
    return f


@pytest.fixture(scope="module")
def server(files, tmp_path_factory):
    sandbox = tmp_path_factory.mktemp("demo-sandbox")
    demo = DemoServer(["--voices", str(files["voices"]), "--max-seconds", str(MAX_SECONDS)], sandbox)
    with demo as url:
        yield demo, url
    # after a SIGTERM the demo has closed and deleted its temporary folder: nothing is left anywhere
    assert demo.proc.returncode == 0, demo.log()
    leftovers = [p for folder in (demo.home, demo.cwd, demo.tmp) for p in folder.rglob("*")]
    assert leftovers == [], f"the demo left files behind: {leftovers[:10]}"


@pytest.fixture(scope="module")
def client(server, tmp_path_factory):
    _, url = server
    return gradio_client.Client(url, verbose=False, analytics_enabled=False,
                                download_files=str(tmp_path_factory.mktemp("downloads")))


def _wav(path) -> tuple[int, int, int]:
    info = sf.info(str(path))
    return info.samplerate, info.frames, info.channels


def _vocode_mel(client, path, voice="Tiny A"):
    return client.predict([gradio_client.handle_file(str(path))], voice, "natural log (Tacotron2, NVIDIA)",
                          0.6, 0.0, 0, api_name="/vocode_mel")


def test_api_has_the_four_tabs(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert {"/vocode_mel", "/copy_synthesis", "/compare_voices", "/inside_flow"} <= set(endpoints)


def test_vocode_mel(client, files):
    frames = np.load(files["mel"]).shape[1]
    audio, wavs, plot, stats = _vocode_mel(client, files["mel"])
    assert _wav(audio) == (RATE, frames * HOP, 1)
    assert len(wavs) == 1 and _wav(wavs[0]) == (RATE, frames * HOP, 1)
    assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/png;base64,")
    assert "Tiny A" in stats and "real-time factor" in stats


def test_vocode_several_mels_of_both_formats(client, files):
    handles = [gradio_client.handle_file(str(files["mel"])), gradio_client.handle_file(str(files["mel_pt"]))]
    _, wavs, _, stats = client.predict(handles, "b", "natural log (Tacotron2, NVIDIA)", 0.0, 0.05, 3,
                                           api_name="/vocode_mel")
    assert [_wav(w)[1] for w in wavs] == [np.load(files["mel"]).shape[1] * HOP, 40 * HOP]
    assert "utt.npy" in stats and "utt.pt" in stats


def test_copy_synthesis_mixes_down_and_resamples(client, files):
    original, vocoded, plot, metrics, stats = client.predict(
        gradio_client.handle_file(str(files["clip"])), "Tiny A", 0.6, 0.0, 0, api_name="/copy_synthesis")
    assert _wav(original) == (RATE, RATE, 1)  # 1 s of 16 kHz stereo -> 1 s of 22.05 kHz mono
    assert _wav(vocoded) == (RATE, RATE, 1)
    assert plot["type"] == "matplotlib"
    names = [row[0] for row in metrics["data"]]
    assert "log-mel distance (L1)" in names and "mel-cepstral distortion (dB)" in names
    assert all(np.isfinite(float(row[1])) for row in metrics["data"])
    assert "stereo" in stats and "resampled to 22050 Hz" in stats


def test_compare_voices_side_by_side(client, files):
    *players, plot, table = client.predict(gradio_client.handle_file(str(files["clip"])), ["Tiny A", "b"], 0.6, 0,
                                           api_name="/compare_voices")
    assert len(players) == 4
    shown = [p["value"] for p in players if p.get("visible")]
    assert len(shown) == 2 and all(_wav(p) == (RATE, RATE, 1) for p in shown)
    assert [p["label"] for p in players[:2]] == ["1. Tiny A", "2. b"]
    assert all(p.get("visible") is False and p.get("value") is None for p in players[2:])
    assert [row[0] for row in table["data"]] == ["1. Tiny A", "2. b"]
    assert plot["type"] == "matplotlib"


def test_inside_the_flow(client, files):
    summary, latent, steps, *rest = client.predict(gradio_client.handle_file(str(files["clip"])), "Tiny A", 0,
                                                   api_name="/inside_flow")
    *samples, samples_plot = rest
    assert "bits per 16-bit sample" in summary and "Latent z" in summary
    assert latent["type"] == steps["type"] == samples_plot["type"] == "matplotlib"
    # the samples are the vocoded mel of the clip at 4 sigmas: (T // hop + 1) * hop samples each
    assert len(samples) == 4
    assert all(_wav(s) == (RATE, (RATE // HOP + 1) * HOP, 1) for s in samples)
    silent = sf.read(samples[0])[0]
    noisy = sf.read(samples[-1])[0]
    assert np.std(noisy) > np.std(silent)  # sigma 1 carries more noise than sigma 0


BAD_CLIPS = [
    ("text_wav", "not readable audio"),
    ("truncated_wav", "not readable audio"),
    ("long_wav", f"at most {MAX_SECONDS} s"),
    ("short_wav", "too short"),
]
BAD_MELS = [
    ("mel_79", "wrong number of mel bins"),
    ("mel_nan", "NaN"),
    ("mel_text", "not a NumPy .npy array"),
    ("mel_pickle", "not a tensor"),
    ("clip", "Invalid file type"),  # refused by Gradio itself (file_types), before our handler
]


@pytest.mark.parametrize("name, message", BAD_CLIPS)
def test_bad_clip_is_refused_with_its_reason_and_the_server_keeps_serving(client, files, name, message):
    for api, extra in (("/copy_synthesis", ("Tiny A", 0.6, 0.0, 0)), ("/inside_flow", ("Tiny A", 0))):
        with pytest.raises(gradio_client.exceptions.AppError) as error:
            client.predict(gradio_client.handle_file(str(files[name])), *extra, api_name=api)
        assert message in str(error.value) and files[name].name in str(error.value)
    audio, *_ = _vocode_mel(client, files["mel"])  # the next good request works
    assert _wav(audio)[0] == RATE


@pytest.mark.parametrize("name, message", BAD_MELS)
def test_bad_mel_is_refused_with_its_reason_and_the_server_keeps_serving(client, files, name, message):
    with pytest.raises(gradio_client.exceptions.AppError) as error:
        _vocode_mel(client, files[name])
    assert message in str(error.value), str(error.value)
    audio, *_ = _vocode_mel(client, files["mel"])
    assert _wav(audio)[0] == RATE


def test_rejected_upload_leaves_no_traceback_in_the_log(server, client, files):
    """A wrong file type (a wav where mels go) is refused by Gradio before any handler runs: the user gets the
    reason, and the server's log gets no traceback (a user's mistake is not a server error)."""
    demo, _ = server
    start = len(demo.log())
    for _ in range(2):
        with pytest.raises(gradio_client.exceptions.AppError, match="Invalid file type"):
            _vocode_mel(client, files["clip"])
    audio, *_ = _vocode_mel(client, files["mel"])  # answered after the refusals were handled (and logged)
    assert _wav(audio)[0] == RATE
    new = demo.log()[start:]
    assert "Traceback" not in new and "gradio.exceptions.Error" not in new, new


def test_missing_input_and_unknown_voice(client, files):
    with pytest.raises(gradio_client.exceptions.AppError, match="upload or record a clip"):
        client.predict(None, "Tiny A", 0.6, 0.0, 0, api_name="/copy_synthesis")
    with pytest.raises(gradio_client.exceptions.AppError, match="Tick at least one voice"):
        client.predict(gradio_client.handle_file(str(files["clip"])), [], 0.6, 0, api_name="/compare_voices")


def test_binds_localhost_only_with_analytics_off(server, client):
    demo, _ = server
    config = client.config
    assert config["analytics_enabled"] is False and config["enable_queue"] is True
    with socket.socket() as s:  # another loopback address reaches only servers bound to all interfaces
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.2", demo.port)) != 0


def _options(command: list[str]) -> set[str]:
    proc = subprocess.run([sys.executable, *command, "--help"], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(re.findall(r"--[a-z][a-z-]+", proc.stdout))


def test_app_entry_point_takes_the_options_of_waveflow_demo():
    options = _options(["-m", "waveflow.app"])
    assert {"--voices", "--checkpoint", "--host", "--port", "--max-seconds", "--concurrency"} <= options
    assert options == _options(["-m", "waveflow", "demo"])


def test_options_and_launcher_import_without_gradio():
    code = ("import sys, waveflow.app, waveflow.app.args, waveflow.app.server; "
            "print(sorted({'gradio', 'matplotlib'} & set(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_missing_gradio_says_how_to_install_it(monkeypatch, capsys):
    import importlib.util

    from waveflow.app import DemoUnavailable
    from waveflow.app.args import get_parser
    from waveflow.app.server import main, run
    from waveflow.errors import WaveflowError

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else find_spec(name, *a))
    with pytest.raises(DemoUnavailable, match=re.escape('pip install "waveflow[demo]"')) as error:
        run(get_parser().parse_args(["--checkpoint", "voice.pt"]))
    assert isinstance(error.value, WaveflowError)
    assert main(["--checkpoint", "voice.pt"]) == 1
    assert "the demo needs gradio" in capsys.readouterr().err


def test_one_bad_mel_among_several_is_skipped_and_named(client, files):
    """A NaN mel in a multi-file upload: the good one is vocoded, the bad one named in the stats."""
    audio, wavs, _, stats = client.predict(
        [gradio_client.handle_file(str(files["mel"])), gradio_client.handle_file(str(files["mel_nan"]))],
        "Tiny A", "natural log (Tacotron2, NVIDIA)", 0.6, 0.0, 0, api_name="/vocode_mel")
    assert len(wavs) == 1 and _wav(audio)[0] == RATE
    assert "skipped" in stats and "nan.npy" in stats and "NaN" in stats, stats
