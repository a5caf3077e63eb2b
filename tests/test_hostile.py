"""Untrusted files never hurt (issue 12).

A corpus of hostile and malformed files, built here (``tests/hostile_files.py``): code-carrying pickles in both
serialisation formats and hand-written opcodes (GLOBAL, STACK_GLOBAL, INST, copyreg tricks), cycles, deep
nesting, wrong types, missing keys, zero and huge dimensions, stride-0 views, zip bombs, huge declared storages,
NaN weights. Through every way in (``load_model``, ``waveflow info``/``import``/``vocode --checkpoint``, mel
reading for ``waveflow vocode``, the demo's upload check and a running demo): no code runs, no traceback, a
non-zero exit and a message naming the file, and the memory a load takes stays within a small multiple of the
file's size (measured in child processes: the peak resident size after a warm-up, against the peak after the
hostile load).
"""

from __future__ import annotations

import copyreg
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import hostile_files as hf
import numpy as np
import pytest
import torch

from waveflow import MelConfig, WaveGlow, WaveGlowConfig, load_model, save_model
from waveflow.checkpoints import CheckpointError
from waveflow.inference.outputs import NonFiniteAudioError
from waveflow.inference.vocoder import Vocoder
from waveflow.mel_io import MelTooLongError, read_mel

pytestmark = [pytest.mark.usefixtures("torch_single_thread"), pytest.mark.timeout(300)]

MIB = 1 << 20
FIXED_BYTES = 48 * MIB  # allowance over the warm baseline, whatever the file: interpreter and allocator noise
PER_BYTE = 4  # ... plus this many bytes per byte of the file


def bound(path: Path) -> int:
    return PER_BYTE * path.stat().st_size + FIXED_BYTES


# ------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def marker(tmp_path_factory) -> Path:
    """The file every code-carrying payload creates if anything ever runs it."""
    path = tmp_path_factory.mktemp("marker") / "pwned"
    yield path
    assert not path.exists(), "a hostile file ran code"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, marker) -> dict[str, tuple[Path, str]]:
    return hf.checkpoint_corpus(tmp_path_factory.mktemp("hostile") / "checkpoints", marker)


@pytest.fixture(scope="module")
def mels(tmp_path_factory, marker) -> dict[str, tuple[Path, str]]:
    return hf.mel_corpus(tmp_path_factory.mktemp("hostile") / "mels", marker)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> dict[str, Path]:
    """A voice of 80 mels (hop 64), one whose audio overflows to inf, a folder with one good mel; and a tiny voice
    of 8 mels with a folder of one mel for it (the warm-up of the memory measurements: small, so that the
    baseline is low)."""
    root = tmp_path_factory.mktemp("good")
    tiny = WaveGlowConfig(n_mels=8, n_flows=2, n_group=4, n_early_size=0, n_layers=1, n_channels=4, hop_length=16)
    tiny_voice = save_model(WaveGlow(tiny), root / "tiny.pt", MelConfig(n_mels=8, hop_length=16))
    (root / "mels8").mkdir()
    np.save(root / "mels8" / "m.npy", np.full((8, 12), -5.0, np.float32))
    cfg = WaveGlowConfig(n_mels=80, n_flows=2, n_group=4, n_early_size=0, n_layers=1, n_channels=4, hop_length=64)
    mel_cfg = MelConfig(n_mels=80, hop_length=64)
    torch.manual_seed(0)
    model = WaveGlow(cfg)
    voice = save_model(model, root / "voice.pt", mel_cfg)
    with torch.no_grad():  # finite weights whose log-scales overflow exp(): the audio is inf/NaN
        for flow in model.flows:
            flow.coupling.wn.end.bias.fill_(-1e4)
    overflow = save_model(model, root / "overflow.pt", mel_cfg)
    mel_dir = root / "mels"
    mel_dir.mkdir()
    np.save(mel_dir / "good.npy", np.full((80, 12), -5.0, np.float32))
    return {"voice": voice, "overflow": overflow, "mels": mel_dir, "tiny": tiny_voice, "mels8": root / "mels8"}


# ------------------------------------------------------------------------------------------- child processes
CHILD = r"""
import contextlib, io, json, resource, sys, warnings
warnings.simplefilter("ignore")
route, warm, out_dir = sys.argv[1:4]
paths = json.loads(sys.stdin.read())

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

def cli(args):
    from waveflow.cli.main import main
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(args)
        return {"rc": rc, "stderr": err.getvalue()}
    except BaseException as e:
        return {"rc": None, "stderr": err.getvalue(), "uncaught": f"{type(e).__name__}: {e}"}

def run(path, n):
    if route == "load_model":
        from waveflow import load_model
        load_model(path)
    elif route == "cli":
        return [cli(["info", path]), cli(["import", path, f"{out_dir}/imported{n}.pt"]),
                cli(["vocode", warm_mels, "-o", f"{out_dir}/out{n}", "--checkpoint", path, "--no-progress"])]
    elif route == "read_mel":
        from waveflow.mel_io import read_mel
        read_mel(path, 80)
    elif route == "upload":
        from waveflow.app.inputs import read_mel_upload
        read_mel_upload(path, 80, "ln", 2000)

warm, warm_mels = warm.split("|")
warm_result = run(warm, "warm")  # everything imported and used once
base = peak()
results = []
for n, path in enumerate(paths):
    result = {"path": path}
    try:
        result["cli"] = run(path, n)
        result["error"] = None
    except BaseException as e:
        from waveflow.errors import WaveflowError
        result.update(error=type(e).__name__, ours=isinstance(e, WaveflowError), message=str(e))
    result["peak"] = peak() - base
    results.append(result)
print(json.dumps({"warm": warm_result, "base": base, "results": results}))
"""


def run_child(route: str, paths: list[Path], warm: Path, warm_mels: Path, out_dir: Path) -> list[dict]:
    """Run ``route`` on each path in one child process; per path: the error and the peak memory above a warm
    baseline (the peak is monotonic: a path's figure covers it and every earlier one)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", CHILD, route, f"{warm}|{warm_mels}", str(out_dir)],
                          input=json.dumps([str(p) for p in paths]), capture_output=True, text=True, timeout=240,
                          cwd=out_dir, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    if route == "cli":
        assert [r["rc"] for r in report["warm"]] == [0, 0, 0], report["warm"]
    print(f"{route}: warm baseline {report['base'] / MIB:.0f} MiB")
    return report["results"]


def assert_refused(result: dict, path: Path, pattern: str) -> str:
    """An error of ours naming the file, matching ``pattern``, never torch's advice to load unsafely."""
    assert result["error"] is not None, f"{path.name} was accepted"
    assert result["ours"], f"{path.name}: {result['error']}: {result['message']}"
    message = result["message"]
    assert str(path) in message and re.search(pattern, message), message
    assert "weights_only=False" not in message and "Traceback" not in message
    return message


def peak_report(results: list[dict]) -> str:
    worst = max(results, key=lambda r: r["peak"])
    return f"worst peak {worst['peak'] / MIB:.1f} MiB above baseline ({Path(worst['path']).name})"


# ------------------------------------------------------------------------------------------- the corpus itself
def test_hand_written_pickles_would_run_code(tmp_path):
    """The corpus is dangerous: unpickled plainly, every hand-written carrier runs its command."""
    marker = tmp_path / "ran"
    copyreg.add_extension("os", "system", 0xF0)
    try:
        for name, raw in hf.raw_pickles(marker).items():
            if name in ("memo_bomb", "copyreg"):  # an 8 GB allocation; a harmless object
                continue
            pickle.loads(raw)
            assert marker.exists(), name
            marker.unlink()
    finally:
        copyreg.remove_extension("os", "system", 0xF0)


# ------------------------------------------------------------------------------------------- checkpoints
def test_load_model_refuses_every_hostile_checkpoint_in_bounded_memory(corpus, good, tmp_path):
    names = list(corpus)
    results = run_child("load_model", [corpus[n][0] for n in names], good["tiny"], good["mels8"], tmp_path)
    for name, result in zip(names, results):
        path, pattern = corpus[name]
        assert_refused(result, path, pattern)
        assert result["peak"] <= bound(path), (name, result["peak"], bound(path))
    print(peak_report(results))


def test_cli_info_import_vocode_refuse_every_hostile_checkpoint(corpus, good, tmp_path):
    names = list(corpus)
    results = run_child("cli", [corpus[n][0] for n in names], good["tiny"], good["mels8"], tmp_path)
    for name, result in zip(names, results):
        path, pattern = corpus[name]
        for command, run in zip(("info", "import", "vocode"), result["cli"]):
            assert "uncaught" not in run, (name, command, run)
            err = run["stderr"]
            assert run["rc"] == 1 and err.startswith("error: "), (name, command, err)
            assert str(path) in err and re.search(pattern, err), (name, command, err)
            assert "Traceback" not in err and "weights_only=False" not in err
        assert result["peak"] <= bound(path), (name, result["peak"], bound(path))
    assert not list(tmp_path.glob("imported[0-9]*.pt")) and not list(tmp_path.glob("out[0-9]*/**/*.wav"))
    print(peak_report(results))


def run_measured(args: list[str], cwd: Path) -> tuple[int, str, int]:
    """``(exit code, stderr, peak resident bytes)`` of a command, its peak read with ``wait4``."""
    err_path = cwd / f"stderr-{len(list(cwd.glob('stderr-*')))}.txt"
    with open(err_path, "w") as err, open(os.devnull, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, err_path.read_text(), usage.ru_maxrss * 1024


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> int:
    """Peak resident bytes of a process that imports waveflow's command line and touches torch."""
    code = "import waveflow.cli.main, torch; torch.zeros(1)"
    return run_measured([sys.executable, "-c", code], tmp_path_factory.mktemp("baseline"))[2]


@pytest.mark.parametrize("name, command", [
    ("zip_bomb", "info"), ("config_1024_channels", "import"), ("raw_memo_bomb", "vocode"),
])
def test_waveflow_command_in_a_fresh_process(corpus, good, baseline, tmp_path, name, command):
    """``python -m waveflow``: exit 1, one line naming the file, no traceback; peak memory of the whole process
    within the bound over a process that only imports waveflow's command line."""
    path, pattern = corpus[name]
    args = {"info": ["info", str(path)], "import": ["import", str(path), str(tmp_path / "out.pt")],
            "vocode": ["vocode", str(good["mels"]), "-o", str(tmp_path / "out"), "--checkpoint", str(path),
                       "--no-progress"]}[command]
    rc, err, peak = run_measured([sys.executable, "-m", "waveflow", *args], tmp_path)
    assert rc == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert str(path) in err and re.search(pattern, err), err
    assert peak - baseline <= bound(path), (peak - baseline) / MIB
    print(f"{name}: {command} peaked {(peak - baseline) / MIB:.1f} MiB above `import waveflow` "
          f"({baseline / MIB:.0f} MiB)")


def test_a_config_beyond_the_caps_names_its_field():
    with pytest.raises(ValueError, match=r"model\.n_channels must be at most 4,096, got 1,000,000"):
        WaveGlowConfig(n_channels=1_000_000)
    with pytest.raises(ValueError, match=r"model\.prior_mel\.n_fft must be at most"):
        WaveGlowConfig(prior="spectral", prior_mel=MelConfig(n_fft=10**8, win_length=1024))
    WaveGlowConfig(n_channels=512, n_flows=24, n_layers=16, n_group=16)  # beyond published WaveGlows: fine


def test_the_weight_count_matches_the_model():
    """own.py refuses a config describing more weights than its file holds; its count must be exact."""
    from waveflow.models import plain_state_dict

    for cfg in (WaveGlowConfig(n_mels=8, n_flows=5, n_early_every=2, n_layers=3, n_channels=8, hop_length=64),
                WaveGlowConfig(n_mels=8, n_flows=3, n_group=4, n_early_size=0, n_layers=1, n_channels=6,
                               kernel_size=5, hop_length=64, coupling="additive"),
                WaveGlowConfig(n_mels=16, n_flows=4, n_layers=2, n_channels=8, hop_length=128, prior="spectral")):
        assert cfg.weight_count() == sum(t.numel() for t in plain_state_dict(WaveGlow(cfg)).values())


# ------------------------------------------------------------------------------------------- NaN audio
def test_vocoder_refuses_non_finite_audio(good):
    vocoder = Vocoder(good["overflow"])
    with pytest.raises(NonFiniteAudioError, match="NaN or infinite"):
        vocoder.vocode(np.full((80, 10), -5.0, np.float32))
    with pytest.raises(NonFiniteAudioError, match="mel 1 of 2"):
        vocoder.vocode([np.full((80, 10), -5.0, np.float32)] * 2)
    assert torch.isfinite(Vocoder(good["voice"]).vocode(np.full((80, 10), -5.0, np.float32))).all()


# ------------------------------------------------------------------------------------------- mels and uploads
@pytest.mark.parametrize("route", ["read_mel", "upload"])
def test_hostile_mels_are_refused_in_bounded_memory(mels, good, tmp_path, route):
    names = list(mels)
    results = run_child(route, [mels[n][0] for n in names], good["mels"] / "good.npy", good["mels"], tmp_path)
    for name, result in zip(names, results):
        path, pattern = mels[name]
        message = result["message"]
        assert result["error"] == ("UserInputError" if route == "upload" else "MelFileError"), (name, result)
        assert (path.name if route == "upload" else str(path)) in message and re.search(pattern, message), message
        assert "weights_only=False" not in message
        assert result["peak"] <= bound(path), (name, result["peak"], bound(path))
    print(peak_report(results))


def test_mel_length_and_upload_size_are_checked_before_reading(tmp_path):
    """A 3.2 GB (sparse, honest) mel: refused from its header, by frames or by size, without reading it."""
    from waveflow.app.inputs import UserInputError, read_mel_upload

    big = hf.sparse_npy(tmp_path / "long.npy", (80, 10**7))
    with pytest.raises(MelTooLongError) as e:
        read_mel(big, 80, max_frames=2000)
    assert e.value.frames == 10**7
    with pytest.raises(UserInputError, match=r"long\.npy is 3200\.0 MB"):
        read_mel_upload(big, 80, "ln", 2000)
    np.save(tmp_path / "long2.npy", np.full((80, 2001), -5.0, np.float32))
    with pytest.raises(UserInputError, match="has 2001 frames; this demo accepts at most 2000"):
        read_mel_upload(tmp_path / "long2.npy", 80, "ln", 2000)


@pytest.mark.parametrize("dtype, fortran", [(">f4", False), (">f8", True), ("<f2", False), ("<f8", True)])
def test_non_native_npy_mels_are_converted(tmp_path, dtype, fortran):
    mel = (np.random.default_rng(0).standard_normal((80, 7)) - 5).astype(dtype)
    np.save(tmp_path / "m.npy", np.asfortranarray(mel) if fortran else mel)
    got, _ = read_mel(tmp_path / "m.npy", 80)
    assert got.dtype == torch.float32 and got.shape == (80, 7)
    np.testing.assert_allclose(got.numpy(), mel.astype(np.float32), rtol=0, atol=0)


def test_vocode_reports_each_hostile_mel_and_nan_audio(mels, good, tmp_path):
    """``waveflow vocode``: every hostile mel fails with its reason; the good mel fails too, because this voice
    makes inf/NaN audio, instead of being written as a file of -32768s. The hostile files cost no more memory
    than a run on the good mel alone."""
    folder, alone = tmp_path / "in", tmp_path / "alone"
    folder.mkdir()
    alone.mkdir()
    for name, (path, _) in mels.items():
        os.link(path, folder / path.name)
    for where in (folder, alone):
        os.link(good["mels"] / "good.npy", where / "good.npy")

    def vocode(src: Path, out: str):
        return run_measured([sys.executable, "-m", "waveflow", "vocode", str(src), "-o", str(tmp_path / out),
                             "--checkpoint", str(good["overflow"]), "--no-progress"], tmp_path)

    _, _, reference = vocode(alone, "out-alone")
    rc, err, peak = vocode(folder, "out")
    assert rc == 1 and "Traceback" not in err, err
    for name, (path, pattern) in mels.items():
        line = next((x for x in err.splitlines() if path.name in x), "")
        assert re.search(pattern, line), (name, line, err)
    assert re.search(r"good\.npy.*NaN or infinite", err), err
    assert not list(tmp_path.glob("out*/**/*.wav"))
    largest = max(p.stat().st_size for p, _ in mels.values())
    assert peak - reference <= PER_BYTE * largest + 16 * MIB, (peak - reference) / MIB
    print(f"vocode of {len(mels)} hostile mels and a good one peaked {(peak - reference) / MIB:+.1f} MiB against "
          f"the good one alone ({reference / MIB:.0f} MiB)")


@pytest.mark.slow
def test_demo_keeps_serving_after_hostile_uploads_in_bounded_memory(mels, good, tmp_path):
    """A running demo: each hostile mel is refused with its reason, the next good request works, and the
    server's peak memory (VmHWM) grows by far less than the smallest bomb would take (256 MiB, the zip bomb).

    Good requests alone grow the peak too (measured: 3-16 MiB over this test's 6 requests, 48 MiB over 16,
    mostly as new worker threads get their own malloc arenas), so the server runs with two arenas, warms up on
    three good requests, and the bound is an eighth of the zip bomb."""
    pytest.importorskip("gradio")
    gradio_client = pytest.importorskip("gradio_client")
    from demo_server import DemoServer

    voices = tmp_path / "voices"
    voices.mkdir()
    os.link(good["voice"], voices / "voice.pt")
    server = DemoServer(["--voices", str(voices), "--max-seconds", "3"], tmp_path / "sandbox",
                        env={"MALLOC_ARENA_MAX": "2"})
    with server as url:
        client = gradio_client.Client(url, verbose=False, analytics_enabled=False,
                                      download_files=str(tmp_path / "downloads"))

        def vocode(path):
            return client.predict([gradio_client.handle_file(str(path))], "voice", "natural log (Tacotron2, NVIDIA)",
                                  0.6, 0.0, 0, api_name="/vocode_mel")

        good_mel = tmp_path / "good.npy"
        np.save(good_mel, np.full((80, 40), -5.0, np.float32))
        for _ in range(3):
            vocode(good_mel)
        before = _vm_hwm(server.proc.pid)
        for name in ("stride0", "zip_bomb", "pickle_GLOBAL", "pickle_p4", "meta"):
            path, pattern = mels[name]
            with pytest.raises(gradio_client.exceptions.AppError) as error:
                vocode(path)
            assert re.search(pattern, str(error.value)) and path.name in str(error.value), str(error.value)
        audio, *_ = vocode(good_mel)
        assert Path(audio).is_file()
        grown = _vm_hwm(server.proc.pid) - before
        assert grown <= 32 * MIB, grown / MIB
        print(f"demo peak grew {grown / MIB:.1f} MiB over {before / MIB:.0f} MiB")


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


# ------------------------------------------------------------------------------------------- in-process extras
def test_refusals_never_suggest_the_unsafe_option(corpus):
    for name in ("reduce_p4_zip", "zip_STACK_GLOBAL", "exec_zip", "raw_INST"):
        path, pattern = corpus[name]
        with pytest.raises(CheckpointError, match=pattern) as e:
            load_model(path)
        assert "refused for safety" in str(e.value) and "weights_only" not in str(e.value)


# ------------------------------------------------------------------------------------------- honest files still load
def test_honest_files_the_guards_must_not_refuse(good, tmp_path):
    """A GPU-saved legacy file (``torch.cuda.FloatStorage``, as NVIDIA's published ones) and a checkpoint
    re-zipped with compression load as before."""
    from waveflow.checkpoints.unpickler import safe_load

    record = hf.Record("0", np.arange(6, dtype="<f4").tobytes(), dtype="cuda.FloatStorage")
    legacy = hf.torch_legacy(tmp_path / "gpu.pt", {"w": hf.View(record, (2, 3), (3, 1))})
    assert torch.equal(safe_load(legacy)["w"], torch.arange(6.0).reshape(2, 3))

    import zipfile

    rezipped = tmp_path / "rezipped.pt"
    with zipfile.ZipFile(good["tiny"]) as src, zipfile.ZipFile(rezipped, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    assert rezipped.stat().st_size < good["tiny"].stat().st_size
    original, copy = load_model(good["tiny"]), load_model(rezipped)
    assert all(torch.equal(a, b) for a, b in zip(original.state_dict().values(), copy.state_dict().values()))
