"""Data pipeline: discovery, the stable split, segments, skipping of short and corrupt clips, resampling."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from waveflow.config import ConfigError
from waveflow.train.config import DataConfig, load_run_config
from waveflow.train.data import (
    INT16_STEP,
    ClipDataset,
    EpochSampler,
    SegmentDataset,
    collate,
    list_files,
    read_audio,
    scan,
    split_of,
)

RATE = 22050


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """12 espeak-ng utterances in LJSpeech layout (made once per session, offline)."""
    make_corpus = pytest.importorskip("waveflow.corpus").make_corpus
    try:
        [folder] = make_corpus(tmp_path_factory.getbasetemp() / "waveflow_data_corpus", n_utterances=12,
                               progress=False)
    except Exception as e:  # noqa: BLE001 - a missing TTS engine is an environment problem
        pytest.skip(f"cannot make the offline voice corpus: {e}")
    return folder


def test_split_is_stable_and_proportional():
    ids = [f"LJ{i:03d}-{j:04d}" for i in range(50) for j in range(40)]
    splits = [split_of(i, 0.1, 0.05) for i in ids]
    assert splits == [split_of(i, 0.1, 0.05) for i in ids]  # deterministic (sha1, not hash())
    share = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
    assert share["val"] == pytest.approx(0.1, abs=0.02) and share["test"] == pytest.approx(0.05, abs=0.015)
    # Growing the val share only moves clips from train to val: test stays put, val only gains.
    grown = [split_of(i, 0.2, 0.05) for i in ids]
    assert all(g == "test" for s, g in zip(splits, grown) if s == "test")
    assert all(g == "val" for s, g in zip(splits, grown) if s == "val")
    assert split_of("a", 0.1, 0.05, salt="x") in ("train", "val", "test")


def test_ljspeech_folder_and_filelist_discovery(corpus, tmp_path):
    lj = list_files(corpus)
    assert len(lj) == 12 and all(p.is_file() for _, p in lj)
    files = list_files(corpus / "wavs", "auto")
    assert [i for i, _ in files] == sorted(i for i, _ in lj)
    listing = tmp_path / "lists" / "train.txt"
    listing.parent.mkdir()
    rel = [os.path.relpath(p, listing.parent) for _, p in lj[:3]]
    listing.write_text("# comment\n" + "".join(f"{r}|some text\n" for r in rel) + "\n")
    got = list_files(listing)
    assert [p.resolve() for _, p in got] == [p.resolve() for _, p in lj[:3]]
    with pytest.raises(ConfigError, match="no such file or folder"):
        list_files(tmp_path / "missing")


def test_scan_skips_short_clips_and_reports_corrupt_files_once(corpus, tmp_path, caplog):
    root = tmp_path / "data"
    shutil.copytree(corpus, root)
    (root / "wavs" / "BAD-0001.wav").write_bytes(b"not a wav at all" * 10)
    sf.write(str(root / "wavs" / "SHORT-0001.wav"), np.zeros(1000, np.float32) + 0.01, RATE, subtype="PCM_16")
    with open(root / "metadata.csv", "a") as f:
        f.write("BAD-0001|x|x\nSHORT-0001|y|y\n")
    cfg = DataConfig(root=str(root), val_fraction=0.2, test_fraction=0.1)
    with caplog.at_level(logging.WARNING, logger="waveflow"):
        corpus_ = scan(cfg, RATE, min_samples=4096)
    reports = [r.getMessage() for r in caplog.records if "BAD-0001.wav" in r.getMessage()]
    assert len(reports) == 1 and "unreadable" in reports[0]
    assert corpus_.skipped["unreadable"] == [str(root / "wavs" / "BAD-0001.wav")]
    assert corpus_.skipped["shorter than 4096 samples"] == ["SHORT-0001"]
    everything = [u.id for s in corpus_.splits.values() for u in s]
    assert "BAD-0001" not in everything and "SHORT-0001" not in everything and len(everything) == 12
    assert "2 skipped" not in corpus_.summary() and "1 skipped (unreadable)" in corpus_.summary()
    corpus_.write_lists(tmp_path / "split")
    assert sum(len((tmp_path / "split" / f"{s}.txt").read_text().splitlines()) for s in ("train", "val", "test")) == 12


def test_segments_are_exact_deterministic_and_never_padded(corpus):
    c = scan(DataConfig(root=str(corpus), val_fraction=0.0, test_fraction=0.0), RATE, 4096)
    ds = SegmentDataset(c.splits["train"], RATE, 4096, dequantize=False)
    a, b, other = ds[(3, 77)], ds[(3, 77)], ds[(3, 78)]
    assert a["audio"].shape == (4096,) and a["audio"].dtype == torch.float32
    assert torch.equal(a["audio"], b["audio"]) and a["id"] == b["id"]
    assert not torch.equal(a["audio"], other["audio"])  # another seed, another segment
    full, _ = sf.read(str(c.splits["train"][3].path), dtype="float32")
    start = next(i for i in range(len(full) - 4095) if np.array_equal(full[i : i + 4096], a["audio"].numpy()))
    assert start + 4096 <= len(full)  # a real stretch of the file, nothing padded
    batch = collate([ds[(i, i)] for i in range(4)])
    assert batch["audio"].shape == (4, 4096) and len(batch["ids"]) == 4


def test_dequantisation_noise_is_one_16bit_step(corpus):
    c = scan(DataConfig(root=str(corpus), val_fraction=0.0, test_fraction=0.0), RATE, 4096)
    clean = SegmentDataset(c.splits["train"], RATE, 4096, dequantize=False)[(0, 5)]["audio"]
    noisy = SegmentDataset(c.splits["train"], RATE, 4096, dequantize=True)[(0, 5)]["audio"]
    diff = (noisy - clean).abs()
    assert 0 < diff.max() <= INT16_STEP / 2 + 1e-9
    assert diff.mean() == pytest.approx(INT16_STEP / 4, rel=0.1)  # uniform on [-step/2, step/2]


def test_resampling_when_the_file_rate_differs(corpus, tmp_path):
    src = next(iter(sorted((corpus / "wavs").glob("*.wav"))))
    audio, rate = sf.read(str(src), dtype="float32")
    folder = tmp_path / "16k"
    folder.mkdir()
    import librosa

    sf.write(str(folder / "clip.wav"), librosa.resample(audio, orig_sr=rate, target_sr=16000), 16000, subtype="PCM_16")
    c = scan(DataConfig(root=str(folder), val_fraction=0.0, test_fraction=0.0), RATE, 2048)
    [utt] = c.splits["train"]
    assert utt.file_rate == 16000 and abs(utt.num_samples - len(audio)) <= 3
    seg = SegmentDataset([utt], RATE, 2048, False)[(0, 1)]["audio"]
    assert seg.shape == (2048,)
    whole = read_audio(utt, RATE)
    assert abs(len(whole) - len(audio)) <= 3
    # resampled speech correlates with the original
    n = min(len(whole), len(audio))
    assert np.corrcoef(whole[:n], audio[:n])[0, 1] > 0.9


def test_a_file_broken_after_the_scan_is_named_and_replaced(corpus, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(corpus, root)
    c = scan(DataConfig(root=str(root), val_fraction=0.0, test_fraction=0.0), RATE, 4096)
    victim = c.splits["train"][2]
    victim.path.write_bytes(b"RIFF garbage")  # header fine at scan time, broken when read
    ds = SegmentDataset(c.splits["train"], RATE, 4096, False)
    items = [ds[(2, seed)] for seed in range(3)]
    assert all(it["audio"].shape == (4096,) and it["id"] != victim.id for it in items)
    # The dataset names the file with each replacement; the trainer reports each name once and counts it
    # (tests/test_resume.py::test_bad_clips_are_named_skipped_and_counted).
    assert all(len(it["bad"]) == 1 and victim.path.name in it["bad"][0] for it in items)


def test_epoch_sampler_orders_and_seeds():
    s = EpochSampler(10, seed=3, repeat=2)
    first = list(s)
    assert len(first) == 20 and sorted(i for i, _ in first) == sorted(list(range(10)) * 2)
    assert list(s) == first  # same epoch, same order and item seeds
    s.set_epoch(1)
    second = list(s)
    assert [i for i, _ in second] != [i for i, _ in first]
    assert not {seed for _, seed in first} & {seed for _, seed in second}  # fresh segments every epoch


def test_validation_clips_are_centre_crops_or_whole(corpus):
    c = scan(DataConfig(root=str(corpus), val_fraction=0.0, test_fraction=0.0), RATE, 4096)
    crop = ClipDataset(c.splits["train"], RATE, 8192, 8)[0]["audio"]
    whole = ClipDataset(c.splits["train"], RATE, 0, 8)[0]["audio"]
    assert crop.shape == (8192,) and whole.shape[0] % 8 == 0
    off = (c.splits["train"][0].num_samples - 8192) // 2
    assert torch.equal(crop, whole[off : off + 8192])


def test_run_config_cross_checks_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"data.segment_length \(4100\) must be a multiple of model.n_group"):
        load_run_config(None, ["data.segment_length=4100"])
    with pytest.raises(ConfigError, match="model.hop_length .* must equal mel.hop_length"):
        load_run_config(None, ["model.hop_length=128"])
    with pytest.raises(ConfigError, match="unknown key data.segment"):
        load_run_config(None, ["data.segment=4096"])
    with pytest.raises(ConfigError, match="data.repeat: expected an integer"):
        load_run_config(None, ["data.repeat=1.5"])
    with pytest.raises(ConfigError, match="data.root is required"):
        scan(DataConfig(), RATE, 4096)


def test_numbers_in_exponent_notation(tmp_path):
    """YAML 1.1 reads ``5e-4`` (no dot) as a string; float keys accept it, on the command line and in files."""
    cfg = load_run_config(None, ["train.lr=5e-4", "train.sigma=1E0"])
    assert cfg.train.lr == 5e-4 and cfg.train.sigma == 1.0
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 3e-5\n")
    assert load_run_config(path, []).train.lr == 3e-5
    with pytest.raises(ConfigError, match="train.lr: expected a number, got str 'fast'"):
        load_run_config(None, ["train.lr=fast"])
