"""`waveflow quickstart` in its reduced form (a few training steps): it makes the offline corpus, trains,
writes real audio files, and ends with a demo that answers requests on the new voice."""

from __future__ import annotations

import importlib.util
import shutil
import sys

import pytest
import soundfile as sf

pytestmark = pytest.mark.timeout(420)

if not (shutil.which("flite") or shutil.which("espeak-ng")):
    pytest.skip("no offline TTS engine (apt-get install flite espeak-ng)", allow_module_level=True)
pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from demo_server import DemoServer


def test_reduced_quickstart_makes_audio_and_a_reachable_demo(tmp_path):
    out = tmp_path / "qs"
    command = [sys.executable, "-m", "waveflow", "quickstart", "-o", str(out), "--steps", "3", "--utterances", "10",
               "--test-clips", "2", "--no-progress"]
    server = DemoServer([], tmp_path / "sandbox", timeout=360, command=command)
    with server as url:
        log = server.log()
        assert "[1/4] corpus" in log and "[2/4] train" in log and "[3/4] vocode" in log and "[4/4] demo" in log
        [run_dir] = [p for p in out.iterdir() if p.name.startswith("tiny-")]
        assert (run_dir / "model.pt").is_file()
        vocoded = sorted(p for p in (out / "vocoded").glob("*.wav") if not p.stem.endswith("-original"))
        mels = sorted((out / "test-mels").glob("*.npy"))
        assert len(vocoded) == 2 and len(mels) == 2
        for wav in vocoded:
            info = sf.info(str(wav))
            assert info.samplerate == 22050 and info.frames > 22050 // 2
            assert (wav.parent / f"{wav.stem}-original.wav").is_file()
        # The source-filter prior: after 3 steps the voice already speaks the words (intelligible, not noise)
        # and is voiced where the original is (pyin's voicing decisions on both, an independent reference).
        from waveflow.metrics import f0_metrics, pitch

        refs_syns = []
        for wav in vocoded:
            ref, _ = sf.read(str(wav.parent / f"{wav.stem}-original.wav"), dtype="float32")
            syn, _ = sf.read(str(wav), dtype="float32")
            n = min(len(ref), len(syn))
            refs_syns.append((ref[:n], syn[:n]))
        vuv = [f0_metrics(pitch(ref, 22050), pitch(syn, 22050))["vuv_f1"] for ref, syn in refs_syns]
        assert sum(vuv) / len(vuv) > 0.6, vuv
        if importlib.util.find_spec("pystoi"):
            from waveflow.metrics import stoi

            scores = [stoi(ref, syn, 22050) for ref, syn in refs_syns]
            assert sum(scores) / len(scores) > 0.7, scores

        client = gradio_client.Client(url, verbose=False, analytics_enabled=False,
                                      download_files=str(tmp_path / "downloads"))
        voice = run_dir.name  # the trainer names the exported voice after its run folder
        audio, _, _, stats = client.predict([gradio_client.handle_file(str(mels[0]))], voice,
                                                "natural log (Tacotron2, NVIDIA)", 0.6, 0.0, 0, api_name="/vocode_mel")
        assert sf.info(audio).samplerate == 22050 and voice in stats
    assert server.proc.returncode == 0, server.log()
