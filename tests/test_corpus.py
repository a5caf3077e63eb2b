"""Tests for waveflow.corpus: the offline LJSpeech-layout corpus maker driven by Debian's TTS engines.

Tests that synthesise need the engine executables (``espeak-ng``, ``flite``, ``festival``) and are skipped
where they are missing; the rest (sentences, ids, error messages, CLI) run everywhere. Engine failures and
missing engines are simulated with a PATH holding fake executables, so those run everywhere too.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from waveflow.corpus import (
    SENTENCES,
    VOICES,
    CorpusError,
    check_engines,
    main,
    make_corpus,
    normalize_text,
    number_to_words,
    runner,
    select_sentences,
    sentences,
    utterance_id,
)

REPO = Path(__file__).resolve().parent.parent

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (apt)")
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="needs flite (apt)")
needs_festival = pytest.mark.skipif(shutil.which("festival") is None, reason="needs festival (apt)")

MIXED_VOICES = ("espeak-en-us", "flite-slt")
N_MIXED = 3


def read_metadata(folder: Path) -> list[list[str]]:
    """Rows of an LJSpeech metadata.csv, each split on "|"."""
    return [line.split("|") for line in (folder / "metadata.csv").read_text(encoding="utf-8").splitlines()]


def fake_executable(bin_dir: Path, name: str, script: str) -> None:
    """Write an executable shell script ``bin_dir/name`` (a stand-in engine on a test PATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def set_old_mtimes(folder: Path) -> dict[str, int]:
    """Backdate every wav's mtime, so a rewrite is visible whatever the file system's time resolution."""
    old = 1_000_000_000
    for wav in (folder / "wavs").glob("*.wav"):
        os.utime(wav, (old, old))
    return {wav.name: wav.stat().st_mtime_ns for wav in (folder / "wavs").glob("*.wav")}


def mtimes(folder: Path) -> dict[str, int]:
    return {wav.name: wav.stat().st_mtime_ns for wav in (folder / "wavs").glob("*.wav")}


@pytest.fixture(scope="module")
def mixed_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mixed corpus of two voices (two engines), made once for the module."""
    if shutil.which("espeak-ng") is None or shutil.which("flite") is None:
        pytest.skip("needs espeak-ng and flite (apt)")
    out = tmp_path_factory.mktemp("mixed")
    folders = make_corpus(out, voices=MIXED_VOICES, n_utterances=N_MIXED, seed=0, progress=False)
    assert folders == [out]
    return out


# ---------------------------------------------------------------------------------------------------------
# Text and ids (no engines needed)
# ---------------------------------------------------------------------------------------------------------


def test_sentences_are_many_varied_and_clean() -> None:
    assert len(SENTENCES) >= 300
    assert len(set(SENTENCES)) == len(SENTENCES)
    lengths = [len(s.split()) for s in SENTENCES]
    assert min(lengths) >= 3 and max(lengths) <= 25
    assert len(set(lengths)) >= 15, "lengths should vary"
    assert all("|" not in s and not re.search(r"\d", s) for s in SENTENCES)
    assert all(s == s.strip() and s[-1] in ".?!" for s in SENTENCES)
    assert sum(s.endswith("?") for s in SENTENCES) >= 30
    assert sum(s.endswith("!") for s in SENTENCES) >= 5
    assert sum(bool(re.search(r"\b(hundred|thousand|twenty|forty|fifty)\b", s)) for s in SENTENCES) >= 30


def test_sentences_are_stable() -> None:
    # The order is part of the API (it decides which sentence an id gets): pin a few entries.
    assert SENTENCES[0] == "The quick brown fox jumps over the lazy dog."
    assert sentences._generate_sentences(3) == sentences._generate_sentences(3)
    assert SENTENCES[len(sentences._WRITTEN)] == sentences._generate_sentences(1)[0]


def test_sentence_bank_is_package_data_read_with_importlib_resources(monkeypatch: pytest.MonkeyPatch) -> None:
    real_files = sentences.files
    packages: list[str] = []

    def spy(package: str):
        packages.append(package)
        return real_files(package)

    monkeypatch.setattr(sentences, "files", spy)
    bank = sentences._load_bank()
    assert packages and set(packages) == {"waveflow.corpus"}
    assert bank.written == sentences._WRITTEN and len(bank.written) == 160
    assert sentences._build_sentences(bank) == SENTENCES and len(SENTENCES) == 440


def test_select_sentences_is_deterministic_and_extends() -> None:
    a = select_sentences("flite-slt", 10, seed=0)
    assert a == select_sentences("flite-slt", 10, seed=0)
    assert len(a) == 10 and len(set(a)) == 10 and set(a) <= set(SENTENCES)
    assert select_sentences("flite-slt", 4, seed=0) == a[:4], "more utterances must extend, not reshuffle"
    assert select_sentences("flite-slt", 10, seed=1) != a
    assert select_sentences("espeak-en-us", 10, seed=0) != a, "voices should speak different sentences"
    many = select_sentences("flite-slt", len(SENTENCES) + 5, seed=0)
    assert set(many[: len(SENTENCES)]) == set(SENTENCES), "no repeats before every sentence is used"


def test_number_words_and_normalization() -> None:
    assert number_to_words(0) == "zero"
    assert number_to_words(42) == "forty-two"
    assert number_to_words(312) == "three hundred and twelve"
    assert number_to_words(45006) == "forty-five thousand and six"
    assert number_to_words(2500) == "two thousand five hundred"
    with pytest.raises(ValueError):
        number_to_words(-1)
    assert normalize_text("Dr. Evans met Mr. and Mrs. Chen.") == "Doctor Evans met Mister and Missus Chen."
    assert normalize_text("Do you know the way to St. Andrews?") == "Do you know the way to Saint Andrews?"
    assert normalize_text("Room 12  is  on the left.") == "Room twelve is on the left."


def test_utterance_ids() -> None:
    assert utterance_id("flite-slt", 0) == "FLITE-SLT-0001"
    assert utterance_id("espeak-en-us-f", 41, n=100) == "ESPEAK-EN-US-F-0042"
    assert utterance_id("flite-slt", 0, n=12345) == "FLITE-SLT-00001"


def test_voice_table_names_engines_and_packages() -> None:
    for name in ("espeak-en-us", "espeak-en-gb", "espeak-en-us-f", "espeak-en-gb-m", "flite-kal", "flite-awb",
                 "flite-rms", "flite-slt", "festival-kal", "festival-slt"):  # fmt: skip
        assert name in VOICES
    for name, spec in VOICES.items():
        assert name.startswith(spec.engine.split("-")[0] + "-")
        assert spec.executable in {"espeak-ng", "flite", "festival"}
        assert spec.package and spec.engine_package
    assert VOICES["festival-slt"].package == "festvox-us-slt-hts"
    assert VOICES["festival-kal"].package == "festvox-kallpc16k"


# ---------------------------------------------------------------------------------------------------------
# Missing engines, engine failures, bad arguments (fake PATHs: no engines needed)
# ---------------------------------------------------------------------------------------------------------


def test_missing_engine_names_the_apt_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # nothing on PATH
    with pytest.raises(CorpusError, match=r"apt-get install espeak-ng") as info:
        check_engines(["espeak-en-us"])
    assert "espeak-en-us" in str(info.value)
    with pytest.raises(CorpusError, match=r"apt-get install flite"):
        check_engines(["flite-slt"])
    with pytest.raises(CorpusError, match=r"apt-get install festival festvox-us-slt-hts"):
        check_engines(["festival-slt"])
    # make_corpus checks before writing anything.
    with pytest.raises(CorpusError, match=r"apt-get install espeak-ng"):
        make_corpus(tmp_path / "out", voices=["espeak-en-us"], n_utterances=1, progress=False)
    assert not (tmp_path / "out" / "metadata.csv").exists()


def test_missing_voice_names_the_voice_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A festival that knows only the kal voice: the slt voice package is missing.
    fake_executable(tmp_path / "bin", "festival", "echo '(kal_diphone)'\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    check_engines(["festival-kal"])
    with pytest.raises(CorpusError, match=r"cmu_us_slt_arctic_hts.*apt-get install festvox-us-slt-hts"):
        check_engines(["festival-slt"])


def test_engine_failure_names_voice_and_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An espeak-ng that passes the voice probe (-q) but fails to synthesise.
    fake_executable(
        tmp_path / "bin",
        "espeak-ng",
        'case "$1" in -q) exit 0;; esac\necho "boom: cannot open audio device" >&2\nexit 3\n',
    )
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(CorpusError, match=r"espeak-en-gb.*status 3.*boom: cannot open audio device"):
        make_corpus(tmp_path / "out", voices=["espeak-en-gb"], n_utterances=2, progress=False)
    assert not list((tmp_path / "out" / "wavs").glob("*.wav"))
    assert not (tmp_path / "out" / "metadata.csv").exists()


def test_bad_arguments_raise_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="unknown voice 'nope'.*espeak-en-us"):
        check_engines(["nope"])
    with pytest.raises(CorpusError, match="layout"):
        make_corpus(tmp_path, voices=["espeak-en-us"], layout="flat", progress=False)
    with pytest.raises(CorpusError, match="n_utterances"):
        make_corpus(tmp_path, voices=["espeak-en-us"], n_utterances=0, progress=False)
    with pytest.raises(CorpusError, match="sample_rate"):
        make_corpus(tmp_path, voices=["espeak-en-us"], sample_rate=100, progress=False)
    with pytest.raises(CorpusError, match="no voices"):
        make_corpus(tmp_path, voices=[], progress=False)


# ---------------------------------------------------------------------------------------------------------
# Real synthesis
# ---------------------------------------------------------------------------------------------------------


def test_mixed_layout_and_metadata(mixed_corpus: Path) -> None:
    assert sorted(p.name for p in mixed_corpus.iterdir()) == ["metadata.csv", "wavs"]
    rows = read_metadata(mixed_corpus)
    assert len(rows) == len(MIXED_VOICES) * N_MIXED
    assert all(len(row) == 3 for row in rows)
    ids = [row[0] for row in rows]
    assert len(set(ids)) == len(ids)
    assert ids == [utterance_id(v, i) for v in MIXED_VOICES for i in range(N_MIXED)]
    assert ids[0] == "ESPEAK-EN-US-0001" and ids[-1] == "FLITE-SLT-0003"
    # Metadata rows and wav files match one to one; no temporary files are left behind.
    assert sorted(p.name for p in (mixed_corpus / "wavs").iterdir()) == sorted(f"{i}.wav" for i in ids)
    for voice in MIXED_VOICES:
        texts = [row[1] for row in rows if row[0].startswith(voice.upper() + "-")]
        assert texts == select_sentences(voice, N_MIXED, seed=0)
    assert all(row[2] == normalize_text(row[1]) for row in rows)


def test_wavs_are_16bit_mono_speech(mixed_corpus: Path) -> None:
    for uid, text, _ in read_metadata(mixed_corpus):
        path = mixed_corpus / "wavs" / f"{uid}.wav"
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.format, info.subtype) == (22050, 1, "WAV", "PCM_16")
        audio, sr = sf.read(path, dtype="float32")
        duration = audio.size / sr
        words = len(text.split())
        # Speech runs at roughly 2 to 4 words a second; allow a wide band around that, plus the margins.
        assert 0.5 < duration, uid
        assert 0.12 * words < duration < 1.0 * words + 1.5, (uid, words, duration)
        assert np.sqrt(np.mean(audio**2)) > 0.01, f"{uid} is (nearly) silent"
        assert np.abs(audio).max() < 1.0
        # Speech is modulated: loud syllables and quiet gaps, unlike a tone or noise.
        frames = audio[: audio.size // 512 * 512].reshape(-1, 512)
        rms = np.sqrt(np.mean(frames**2, axis=1))
        assert rms.std() / rms.mean() > 0.3, f"{uid} has a flat envelope"
        # A little silence is kept at both ends (trimmed, not cut into the speech).
        edge = int(0.03 * sr)
        assert np.abs(audio[:edge]).max() < 0.05 and np.abs(audio[-edge:]).max() < 0.05, uid


@needs_espeak
def test_same_seed_same_corpus(tmp_path: Path) -> None:
    kwargs = {"voices": ["espeak-en-us"], "n_utterances": 3, "progress": False}
    make_corpus(tmp_path / "a", seed=7, **kwargs)
    make_corpus(tmp_path / "b", seed=7, **kwargs)
    make_corpus(tmp_path / "c", seed=8, **kwargs)
    meta = {name: (tmp_path / name / "metadata.csv").read_text() for name in "abc"}
    assert meta["a"] == meta["b"]
    assert meta["a"] != meta["c"]
    assert [r[0] for r in read_metadata(tmp_path / "a")] == [r[0] for r in read_metadata(tmp_path / "c")]


@needs_espeak
def test_rerun_skips_existing_and_overwrite_rewrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--out", str(tmp_path), "--voices", "espeak-en-us", "--n", "2", "--quiet"]
    assert main(args) == 0
    meta = (tmp_path / "metadata.csv").read_text()
    before = set_old_mtimes(tmp_path)
    assert len(before) == 2

    assert main(args) == 0
    assert mtimes(tmp_path) == before, "a re-run must keep finished wavs"
    assert (tmp_path / "metadata.csv").read_text() == meta

    # Growing --n keeps the existing wavs and adds the new ones.
    assert main([*args[:-3], "--n", "3", "--quiet"]) == 0
    after = mtimes(tmp_path)
    assert {k: after[k] for k in before} == before and len(after) == 3

    assert main([*args, "--overwrite"]) == 0
    rewritten = mtimes(tmp_path)
    assert all(rewritten[name] != before[name] for name in before), "--overwrite must rewrite every wav"
    assert "2 utterances" in capsys.readouterr().out


@needs_espeak
def test_rerun_with_another_seed_replaces_stale_wavs(tmp_path: Path) -> None:
    make_corpus(tmp_path, voices=["espeak-en-us"], n_utterances=2, seed=0, progress=False)
    before = set_old_mtimes(tmp_path)
    make_corpus(tmp_path, voices=["espeak-en-us"], n_utterances=2, seed=1, progress=False)
    after = mtimes(tmp_path)
    # Same ids, other texts: the old wavs speak the wrong sentences and must be synthesised again.
    assert [row[1] for row in read_metadata(tmp_path)] == select_sentences("espeak-en-us", 2, seed=1)
    assert all(after[name] != before[name] for name in before)


@needs_espeak
def test_interrupted_run_leaves_no_partial_wav_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = sf.write
    calls = {"n": 0}

    def failing_write(file, data, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second wav dies half-way through writing
            real_write(file, data[: data.size // 2], *args, **kwargs)
            raise KeyboardInterrupt
        return real_write(file, data, *args, **kwargs)

    monkeypatch.setattr(runner.sf, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        make_corpus(tmp_path, voices=["espeak-en-us"], n_utterances=3, progress=False, jobs=1)
    wavs = tmp_path / "wavs"
    # With one worker the run stops after the failure: the first wav is finished, the rest never start.
    assert [p.name for p in wavs.glob("*.wav")] == ["ESPEAK-EN-US-0001.wav"], "only finished wavs may exist"
    assert not [p for p in wavs.iterdir() if p.suffix != ".wav"], "no temporary files left behind"
    assert not (tmp_path / "metadata.csv").exists()

    monkeypatch.setattr(runner.sf, "write", real_write)
    first = mtimes(tmp_path)
    make_corpus(tmp_path, voices=["espeak-en-us"], n_utterances=3, progress=False)
    assert len(read_metadata(tmp_path)) == 3
    assert {k: v for k, v in mtimes(tmp_path).items() if k in first} == first
    assert all(sf.info(str(p)).frames > 0 for p in wavs.glob("*.wav"))


@needs_espeak
def test_per_voice_layout_and_sample_rate(tmp_path: Path) -> None:
    voices = ["espeak-en-us", "espeak-en-gb-f"]
    folders = make_corpus(
        tmp_path, voices=voices, n_utterances=2, sample_rate=16000, layout="per-voice", progress=False
    )
    assert folders == [tmp_path / v for v in voices]
    assert not (tmp_path / "metadata.csv").exists()
    for voice, folder in zip(voices, folders):
        rows = read_metadata(folder)
        assert [r[0] for r in rows] == [utterance_id(voice, i) for i in range(2)]
        assert sorted(p.stem for p in (folder / "wavs").iterdir()) == sorted(r[0] for r in rows)
        for uid, *_ in rows:
            info = sf.info(str(folder / "wavs" / f"{uid}.wav"))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")


@needs_festival
def test_festival_voice(tmp_path: Path) -> None:
    try:
        check_engines(["festival-kal"])
    except CorpusError as exc:
        pytest.skip(str(exc))
    make_corpus(tmp_path, voices=["festival-kal"], n_utterances=2, progress=False)
    for uid, text, _ in read_metadata(tmp_path):
        audio, sr = sf.read(tmp_path / "wavs" / f"{uid}.wav", dtype="float32")
        assert sr == 22050 and audio.ndim == 1
        assert audio.size / sr > 0.5 and np.sqrt(np.mean(audio**2)) > 0.01, (uid, text)


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def test_cli_help_teaches(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for needle in (
        "LJSpeech",
        "--out",
        "--voices",
        "--list-voices",
        "--layout",
        "examples:",
        "apt-get install",
    ):
        assert needle in out


def test_cli_list_voices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--list-voices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(VOICES)
    if shutil.which("flite"):
        assert next(line for line in lines if line.startswith("flite-slt ")).endswith(" ok")


def test_cli_errors_are_one_line_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path), "--voices", "nope", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unknown voice 'nope'") and "Traceback" not in err
    assert main(["--voices", "espeak-en-us"]) == 1
    assert capsys.readouterr().err.startswith("error: --out")
    assert main(["--out", str(tmp_path), "--n", "zero"]) == 1
    assert capsys.readouterr().err.startswith("error: argument --n")


@needs_flite
def test_script_wrapper_makes_a_corpus(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_voice_corpus.py"), "--out", str(tmp_path / "c"),
         "--voices", "flite-kal", "--n", "2", "--quiet"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "2 utterances" in proc.stdout
    assert [r[0] for r in read_metadata(tmp_path / "c")] == ["FLITE-KAL-0001", "FLITE-KAL-0002"]
