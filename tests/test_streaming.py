"""Long mels in flat memory (issue 19, hole 5): ``waveflow vocode`` reads a long ``.npy`` mel a stretch at a
time and writes its audio block by block as it is made, so an hour-long mel takes no more memory than a 10-second
one; the audio is what vocoding the whole mel in memory gives (an independent path: ``Vocoder.vocode``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from test_hardening import HOP, MIB, N_MELS, RATE, mel, run_measured, voice  # noqa: F401 - the voice fixture

from waveflow.cli import main
from waveflow.inference import Vocoder
from waveflow.inference.runtime import derive_seed
from waveflow.mel_io import open_mel

pytestmark = [pytest.mark.usefixtures("torch_single_thread"), pytest.mark.timeout(600)]
LONG = 3000  # frames: three chunks of the vocoder's default 1024, and a remainder


def layouts(m: np.ndarray) -> dict[str, np.ndarray]:
    """The same mel in every layout and memory order a file may hold it in."""
    return {"mels-first": m, "mels-first-F": np.asfortranarray(m), "frames-first": np.ascontiguousarray(m.T),
            "frames-first-F": np.asfortranarray(m.T), "batch-of-one": m[None], "big-endian-f8": m.astype(">f8")}


def test_stretches_read_from_the_file_equal_numpy_s_reading(tmp_path):
    m = mel(LONG, 3)
    for name, array in layouts(m).items():
        np.save(tmp_path / f"{name}.npy", array)
        source = open_mel(tmp_path / f"{name}.npy", N_MELS)
        assert source.frames == LONG
        reference = np.load(tmp_path / f"{name}.npy").astype(np.float32)
        reference = reference[0] if reference.ndim == 3 else reference
        reference = reference.T if reference.shape[0] != N_MELS else reference
        for lo, hi in ((0, 1), (5, 1029), (LONG - 7, LONG)):
            np.testing.assert_array_equal(source.stretch(lo, hi).numpy(), reference[:, lo:hi], err_msg=name)
        np.testing.assert_array_equal(torch.cat(list(source.pieces(1000)), 1).numpy(), reference, err_msg=name)
    torch.save(torch.from_numpy(m), tmp_path / "m.pt")
    np.testing.assert_array_equal(open_mel(tmp_path / "m.pt", N_MELS).stretch(10, 20).numpy(), m[:, 10:20])


def test_long_mels_stream_into_their_outputs_as_vocoding_them_whole_does(tmp_path, voice, capsys):  # noqa: F811
    mels, out = tmp_path / "mels", tmp_path / "out"
    mels.mkdir()
    m = mel(LONG, 4)
    for name, array in layouts(m).items():
        np.save(mels / f"{name}.npy", array)
    torch.save(torch.from_numpy(m), mels / "torch.pt")
    np.save(mels / "short.npy", mel(40, 5))
    assert main(["vocode", str(mels), "-o", str(out), "--checkpoint", str(voice), "--no-progress", "--subtype",
                 "FLOAT"]) == 0
    assert "8 audio files written" in capsys.readouterr().err
    vocoder = Vocoder(voice)
    whole = vocoder.vocode(torch.from_numpy(m), seed=derive_seed(1234, "mels-first.npy")).numpy()
    for name in [*layouts(m), "torch"]:
        suffix = ".pt" if name == "torch" else ".npy"
        audio, rate = sf.read(str(out / f"{name}.wav"), dtype="float32")
        assert rate == RATE and audio.shape == (LONG * HOP,)
        reference = whole if name == "mels-first" else vocoder.vocode(torch.from_numpy(m), seed=derive_seed(
            1234, f"{name}{suffix}")).numpy()
        np.testing.assert_allclose(audio, reference, atol=1e-5, err_msg=name)

    # --rescale: the peak is known only at the end, so the blocks are scaled on a second pass.
    assert main(["vocode", str(mels / "mels-first.npy"), "-o", str(tmp_path / "rescaled"), "--checkpoint", str(voice),
                 "--no-progress", "--subtype", "FLOAT", "--rescale"]) == 0
    audio, _ = sf.read(str(tmp_path / "rescaled" / "mels-first.wav"), dtype="float32")
    peak = float(np.abs(whole).max())
    assert peak > 1 and "rescaled by" in capsys.readouterr().err
    np.testing.assert_allclose(audio, whole * (0.999 / peak), atol=1e-5)
    assert sorted(os.listdir(tmp_path / "rescaled")) == ["mels-first.wav"]  # no float temporary left


def test_a_bad_stretch_deep_in_a_long_mel_fails_it_before_any_audio(tmp_path, voice, capsys):  # noqa: F811
    mels = tmp_path / "mels"
    mels.mkdir()
    m = mel(LONG, 6)
    m[3, 2500] = np.nan
    np.save(mels / "nan.npy", m)
    np.save(mels / "ok.npy", mel(LONG, 7))
    assert main(["vocode", str(mels), "-o", str(tmp_path / "out"), "--checkpoint", str(voice), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert f"failed: {mels / 'nan.npy'}: contains NaN or infinite values (from frame 0; 1 in frames 0..3000)" in err, err
    assert sorted(os.listdir(tmp_path / "out")) == ["ok.wav"]


@pytest.mark.slow
def test_an_hour_long_mel_takes_the_memory_of_a_ten_second_one(tmp_path, voice):  # noqa: F811
    """Peak resident size of ``waveflow vocode`` on a 1-hour mel (8 kHz, 1.8M frames: 58 MB of mel, 115 MB of
    float audio in memory if read whole) within 50 MB of the same command on a 10-second mel."""
    import hostile_files as hf

    runs = {}
    for name, frames in (("ten_seconds", 10 * RATE // HOP), ("one_hour", 3600 * RATE // HOP)):
        folder = tmp_path / name
        folder.mkdir()
        hf.sparse_npy(folder / "m.npy", (N_MELS, frames))
        rc, err, peak = run_measured(["vocode", str(folder), "-o", str(tmp_path / f"out_{name}"), "--checkpoint",
                                      str(voice), "--no-progress", "--max-seconds", "0"], tmp_path,
                                     kill_above=4 << 30)
        assert rc == 0 and "1 audio files written" in err, err
        assert sf.info(str(tmp_path / f"out_{name}" / "m.wav")).frames == frames * HOP
        runs[name] = peak
    grown = runs["one_hour"] - runs["ten_seconds"]
    print(f"peak RSS: 10 s mel {runs['ten_seconds'] / MIB:.1f} MiB, 1 h mel {runs['one_hour'] / MIB:.1f} MiB "
          f"({grown / MIB:+.1f} MiB)")
    assert grown < 50 * 10**6, grown / MIB
