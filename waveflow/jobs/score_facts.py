"""Plain signal facts about one clip, for ``waveflow score``: what a QA tool must know before any model.

Everything here is numpy/scipy on the file's own samples at the file's own rate (quantisation and clipping
are properties of the stored samples; resampling would hide them). Nothing is judged here: the facts are
numbers, and :mod:`.score_judge` compares them with the rest of the corpus.

Analysis frames are about 23 ms (a power of two of samples), hop half of that. Levels are in dB: ``dBFS``
against full scale, "re speech" against the median level of the clip's active (non-silent) frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.ndimage import maximum_filter1d

from ..audio import AudioError

SILENCE_BELOW_LOUD_DB = 40.0  # a frame this far below the clip's loud frames (95th percentile) is silence
SILENCE_FLOOR_DBFS = -70.0  # ... and any frame below this level
FLAT = 0.25  # spectral flatness (300 Hz to 0.9 Nyquist) of noise-like frames: white noise ~0.56, vowels ~0.01
BURST_LEVEL_DB = -6.0  # a burst frame is flat *and* at least this loud re the clip's speech level
HUM_BASES = (50.0, 60.0)
CLICK_LEVEL = 10 ** (-30 / 20)  # a click reaches at least this share of the clip's peak (-30 dB)
_PCM_SCALE = {"PCM_S8": 7, "PCM_U8": 7, "PCM_16": 15, "PCM_24": 23, "PCM_32": 31}


@dataclass
class Clip:
    """One file's audio, mixed down: ``audio`` float64 ``(T,)`` at ``rate``; ``scale``: the exponent ``k``
    of the integer grid ``2**-k`` its samples lie on when known (PCM files, floats on a 16-bit grid)."""

    audio: np.ndarray
    rate: int
    channels: int
    subtype: str
    scale: int | None


@dataclass
class Facts:
    """What :func:`signal_facts` found: plain numbers (``values``) and events in seconds."""

    values: dict = field(default_factory=dict)
    clicks: list[float] = field(default_factory=list)
    bursts: list[list[float]] = field(default_factory=list)
    longest_silence: list[float] | None = None


def read_clip(path: str | Path) -> Clip:
    """Read ``path`` whole as float64, mixed down to mono.

    Raises:
        AudioError: unreadable, empty, non-finite or absurd audio, naming the reason.
    """
    try:
        info = sf.info(str(path))
        data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(path, f"not a readable audio file ({e})") from None
    if data.ndim != 2 or data.shape[0] == 0 or data.shape[1] == 0:
        raise AudioError(path, "the file contains no audio samples")
    if not np.isfinite(data).all():
        raise AudioError(path, "the audio contains NaN or infinite samples")
    scale = _PCM_SCALE.get(info.subtype)
    first = data[:, 0]
    if scale is None and info.subtype in ("FLOAT", "DOUBLE") and np.all(first * 32768 == np.round(first * 32768)):
        scale = 15  # floats that are 16-bit samples
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return Clip(np.ascontiguousarray(audio), int(rate), int(data.shape[1]), str(info.subtype),
                scale if data.shape[1] == 1 else None)


def db(power, floor: float = 1e-20):
    return 10.0 * np.log10(np.maximum(power, floor))


def signal_facts(clip: Clip) -> Facts:
    """Peak, clipping, DC, levels, silence, start/end levels, bursts, clicks, bandwidth and energy above 4 and
    8 kHz, hum, quantisation: see the module docstring."""
    x, rate = clip.audio, clip.rate
    facts = Facts()
    v = facts.values
    v["peak"] = float(np.abs(x).max())
    v["dc"] = float(x.mean())
    v["clipped_samples"], v["clipped_runs"] = clipping(x)
    v.update(sample_rate=rate, channels=clip.channels, seconds=len(x) / rate)
    spec, energy, hop = frame_spectra(x, rate)
    loud = float(np.percentile(energy, 95))
    silent = (energy < loud - SILENCE_BELOW_LOUD_DB) | (energy < SILENCE_FLOOR_DBFS)
    active = energy[~silent]
    speech = float(np.median(active)) if active.size else loud
    v["level_dbfs"] = speech
    v["silence_fraction"] = float(silent.mean())
    v["longest_silence_s"], facts.longest_silence = _longest_run(silent, hop, rate)
    v["start_db"], v["end_db"] = (_edge_level(x[:len(x) // 2], rate) - speech,
                                  _edge_level(x[len(x) // 2:][::-1], rate) - speech)
    quiet = np.convolve(energy, np.ones(5) / 5, mode="valid") if len(energy) > 5 else energy
    v["floor_db"] = float(quiet.min() - speech)  # the quietest ~60 ms: silence, or what fills it (hum, noise)
    facts.bursts = bursts(spec, energy - speech, silent, hop, rate)
    facts.clicks = clicks(x, rate)
    v["clicks"] = len(facts.clicks)
    v.update(bandwidth(spec[~silent] if (~silent).sum() >= 3 else spec, rate))
    v.update(hum(x, rate))
    v.update(quantisation(x, clip.scale))
    return facts


def _edge_level(x: np.ndarray, rate: int, seconds: float = 0.03) -> float:
    """The loudest 10 ms (mean square, dBFS, less its mean) of the first ``seconds`` of ``x``."""
    chunk = max(1, int(0.01 * rate))
    head = x[: max(chunk, int(seconds * rate)) // chunk * chunk]
    if head.size < chunk:  # a clip shorter than 20 ms (it fails later for being too short to score)
        return -200.0
    pieces = head.reshape(-1, chunk)
    return float(db((pieces - pieces.mean(1, keepdims=True)).var(1).max()))


def clipping(x: np.ndarray, min_run: int = 3) -> tuple[int, int]:
    """``(samples, runs)`` in runs of at least ``min_run`` consecutive samples at the clip's peak (within 0.1 %):
    the flat tops of a clipped (or clipped, then scaled) waveform."""
    peak = np.abs(x).max()
    if peak <= 0:
        return 0, 0
    at = np.abs(x) >= peak * 0.999
    lengths = _runs(at)
    lengths = lengths[lengths >= min_run]
    return int(lengths.sum()), int(lengths.size)


def _runs(mask: np.ndarray) -> np.ndarray:
    """Lengths of the runs of True in ``mask``."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)


def _longest_run(mask: np.ndarray, hop: int, rate: int) -> tuple[float, list[float] | None]:
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    if not starts.size:
        return 0.0, None
    i = int(np.argmax(ends - starts))
    return float((ends[i] - starts[i]) * hop / rate), [float(starts[i] * hop / rate), float(ends[i] * hop / rate)]


def frame_spectra(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``(power spectra (frames, bins), frame level in dBFS, hop)``: Hann frames of ~23 ms, hop half of it,
    each less its mean."""
    n = 1 << max(6, round(math.log2(0.023 * rate)))
    hop = n // 2
    pad = np.pad(x, (0, max(0, n - len(x))))
    count = 1 + (len(pad) - n) // hop
    frames = np.lib.stride_tricks.sliding_window_view(pad, n)[::hop][:count]
    frames = frames - frames.mean(1, keepdims=True)  # an offset is a fact of its own, not a level
    window = np.hanning(n)
    spec = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
    level = db(spec.sum(1) * 2 / (window**2).sum() / n)  # the frame's mean square, in dBFS
    return spec, level, hop


def bursts(spec: np.ndarray, level_re_speech: np.ndarray, silent: np.ndarray, hop: int, rate: int,
           min_s: float = 0.05) -> list[list[float]]:
    """``[[start_s, end_s], ...]`` of runs (gaps of one frame bridged) of at least ``min_s`` of frames that are
    noise-like (flat spectrum) and loud (at least :data:`BURST_LEVEL_DB` re the clip's speech level). Speech
    noise (fricatives) is flat too, but quieter than the voiced sounds around it."""
    freqs = np.fft.rfftfreq(2 * (spec.shape[1] - 1), 1 / rate)
    band = spec[:, (freqs > 300) & (freqs < 0.45 * rate)] + 1e-20
    flatness = np.exp(np.log(band).mean(1)) / band.mean(1)
    hit = (flatness > FLAT) & (level_re_speech > BURST_LEVEL_DB) & ~silent
    hit[1:-1] |= hit[:-2] & hit[2:]  # bridge one-frame gaps
    out, edges = [], np.diff(np.r_[0, hit.astype(np.int8), 0])
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        if (end - start) * hop / rate >= min_s:
            out.append([round(start * hop / rate, 3), round((end * hop + hop) / rate, 3)])
    return out


def clicks(x: np.ndarray, rate: int, raw: float = 4.5, step: float = 3.5) -> list[float]:
    """Times (s) of clicks: 2-ms blocks whose peak stands above the audio 4-12 ms before and after it, both
    in amplitude (``raw`` times the larger side's peak) and in sample-to-sample step (``step`` times). The
    larger side is the reference, so an onset out of silence is no click, and periodic pulses (a buzzy voice)
    are not either: their neighbours are pulses too. A click is also within 30 dB of the clip's peak."""
    block = max(8, int(0.002 * rate))
    if len(x) // block < 16:
        return []
    level, by_level = _standing_out(np.abs(x - np.median(x)), block)
    _, by_step = _standing_out(np.abs(np.diff(x, prepend=x[:1])), block)
    audible = level >= CLICK_LEVEL * max(float(level.max()), 1e-9)
    times: list[float] = []
    for i in np.flatnonzero((by_level >= raw) & (by_step >= step) & audible):
        t = (i * block + int(np.argmax(np.abs(x[i * block:(i + 1) * block])))) / rate
        if not times or t - times[-1] > 0.01:  # one time per click
            times.append(round(t, 3))
    return times


def _standing_out(signal: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray]:
    """``(peak of each block, that peak over the larger of the peaks 2-6 blocks before and after it)``."""
    n = len(signal) // block
    peaks = signal[: n * block].reshape(n, block).max(1)
    near = maximum_filter1d(peaks, 5)  # blocks i-2..i+2
    side = np.maximum(np.r_[np.zeros(4), near[:-4]], np.r_[near[4:], np.zeros(4)])  # i-6..i-2, i+2..i+6
    return peaks, peaks / np.maximum(side, 16 * 2**-15)


def bandwidth(spec: np.ndarray, rate: int, drop_db: float = 60.0) -> dict:
    """``bandwidth_hz``: the highest frequency whose long-term level is within ``drop_db`` of the loudest
    (smoothed over ~200 Hz); ``above_4k_db``/``above_8k_db``: the energy above 4 and 8 kHz re all of it."""
    freqs = np.fft.rfftfreq(2 * (spec.shape[1] - 1), 1 / rate)
    mean = spec.mean(0)
    width = max(1, round(200 / (freqs[1] - freqs[0])))
    smooth = np.convolve(mean, np.ones(width) / width, mode="same")
    level = db(smooth)
    above = np.flatnonzero(level >= level.max() - drop_db)
    total = mean.sum() + 1e-30
    return {"bandwidth_hz": float(freqs[above[-1]]) if above.size else 0.0,
            "above_4k_db": float(db(mean[freqs >= 4000].sum() / total)),
            "above_8k_db": float(db(mean[freqs >= 8000].sum() / total))}


def hum(x: np.ndarray, rate: int) -> dict:
    """Mains hum: a line at 50 or 60 Hz standing above its neighbourhood in the whole clip and in each half
    (steady, as hum is; its harmonics would meet a voice's pitch). ``hum_hz`` (0 when none), ``hum_line_db`` (line over its
    neighbourhood), ``hum_db`` (the line's level re the clip's mean square)."""
    best = {"hum_hz": 0.0, "hum_line_db": 0.0, "hum_db": -200.0}
    if len(x) < rate // 2:
        return best
    halves = [x, x[: len(x) // 2], x[len(x) // 2:]]
    spectra = []
    for part in halves:
        part = part - part.mean()
        spectra.append((np.abs(np.fft.rfft(part * np.hanning(len(part)))) ** 2, np.fft.rfftfreq(len(part), 1 / rate)))
    power = float(np.mean(x**2)) + 1e-30
    for base in HUM_BASES:
        lines = [_line(s, f, base) for s, f in spectra]
        ratio = min(r for r, _ in lines)
        if ratio > best["hum_line_db"]:
            best = {"hum_hz": base, "hum_line_db": float(ratio), "hum_db": float(db(lines[0][1] / power, 1e-20))}
    return best


def _line(spec: np.ndarray, freqs: np.ndarray, f0: float) -> tuple[float, float]:
    """``(dB of the line at f0 over the median of 5-25 Hz around it, the line's mean-square share)``."""
    df = freqs[1] - freqs[0]
    at = np.abs(freqs - f0) <= max(1.0, 1.5 * df)
    around = (np.abs(freqs - f0) >= max(5.0, 4 * df)) & (np.abs(freqs - f0) <= 25.0)
    if not at.any() or around.sum() < 4:
        return 0.0, 0.0
    line = spec[at].max()
    window = np.hanning(2 * (len(spec) - 1))
    share = spec[at].sum() * 2 / ((window**2).sum() * len(window))
    return float(db(line / (np.median(spec[around]) + 1e-30))), float(share)


def quantisation(x: np.ndarray, scale: int | None) -> dict:
    """``bits``: the effective sample resolution (the coarsest power-of-two grid 99.9 % of the stored samples
    lie on, 1 + its exponent; None for compressed or mixed-down files); ``distinct_values``: how many sample
    values the clip uses; ``distinct_bits``: log2 of that (a coarse quantisation after a gain lowers it too)."""
    distinct = int(np.unique(x).size)
    out = {"distinct_values": distinct, "distinct_bits": float(math.log2(max(distinct, 1))), "bits": None}
    if scale is not None:
        ints = np.round(x * 2.0**scale).astype(np.int64)
        ints = ints[ints != 0]
        bits = scale + 1
        if ints.size:
            for shift in range(scale, 0, -1):
                if np.mean(ints % (1 << shift) == 0) >= 0.999:
                    bits = scale + 1 - shift
                    break
        out["bits"] = bits
    return out
