"""What each tab does. Every handler takes plain values (paths, numbers, names), returns plain values and
figures, and turns every failure into a :class:`gradio.Error` with a message for the user, so one bad upload
never takes the server down for anyone else."""

from __future__ import annotations

import functools
import logging
import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from ..audio import count_clipped, resample, save_audio
from ..errors import WaveflowError
from . import plots
from .args import DEFAULT_MAX_SECONDS
from .inputs import MEL_SCALES, Clip, UserInputError, check_length, display_name, read_clip, read_mel_upload
from .metrics_view import metrics_rows
from .voices import VoiceBank

log = logging.getLogger("waveflow.demo")

MAX_COMPARE = 4  # voices side by side in "Compare voices"
MAX_MEL_FILES = 16  # mel files vocoded by one request (each is also capped in size and frames)
FLOW_SIGMAS = (0.0, 0.3, 0.6, 1.0)  # samples of the same mel in "Inside the flow"
FLOW_SECONDS = 6.0  # "Inside the flow" looks at the first seconds of a clip (the flow runs twice)
PRIOR_SIGMA = 1.0  # the NLL is reported under the prior WaveGlow is trained with (NVIDIA: sigma = 1)


@dataclass
class Settings:
    """Server-side limits and folders, fixed at start-up."""

    outputs: Path  # where result wavs are written (inside the demo's temporary folder)
    max_seconds: float = DEFAULT_MAX_SECONDS


def user_errors(fn):
    """Run a handler; show known problems as they are, anything else as a short error, and keep serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserInputError as e:
            log.info("refused input in %s: %s", fn.__name__, e)
            raise gr.Error(str(e), title="Cannot use this input", print_exception=False) from None
        except WaveflowError as e:  # said for the user as is, e.g. a voice that made NaN audio
            log.warning("request failed in %s: %s", fn.__name__, e)
            raise gr.Error(str(e), title="Cannot vocode this", print_exception=False) from None
        except torch.OutOfMemoryError:
            raise gr.Error("Out of memory for this input: try a shorter clip.", title="Too large",
                           print_exception=False) from None
        except Exception as e:
            log.exception("request failed in %s", fn.__name__)
            raise gr.Error(
                f"Something went wrong ({type(e).__name__}: {e}). The demo is still running: try another input.",
                title="Error",
            ) from None

    return wrapper


class Handlers:
    """The four tabs' functions, bound to a voice bank and the server's settings."""

    def __init__(self, bank: VoiceBank, settings: Settings):
        self.bank = bank
        self.settings = settings

    # ------------------------------------------------------------------ helpers
    def _out_dir(self) -> Path:
        folder = self.settings.outputs / uuid.uuid4().hex[:12]
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _write(self, folder: Path, name: str, audio: torch.Tensor | np.ndarray, sample_rate: int) -> str:
        path = folder / name
        save_audio(path, audio, sample_rate)
        return str(path)

    def _vocoder(self, voice: str | None):
        try:
            return self.bank.get(voice)
        except (WaveflowError, ValueError) as e:  # an unknown voice, or a checkpoint that does not load
            raise UserInputError(str(e)) from None

    def _clip_at(self, clip: Clip, vocoder) -> np.ndarray:
        audio = resample(clip.audio, clip.sample_rate, vocoder.sample_rate)
        check_length(clip, audio.shape[0], vocoder.mel_config.n_fft // 2 + 1)
        return audio

    def _figure_args(self, vocoder) -> dict:
        c = vocoder.mel_config
        return {"sample_rate": c.sample_rate, "hop_length": c.hop_length, "fmin": c.fmin, "fmax": c.fmax,
                "floor": c.log_floor}

    # ------------------------------------------------------------------ tab 1: vocode a mel
    @user_errors
    def vocode_mel(self, files, voice: str, scale: str, sigma: float, denoise: float, seed: float):
        """Mel file(s) -> (first audio, all wavs, mel picture, stats markdown)."""
        if not files:
            raise UserInputError("No mel file yet: upload one or more .npy / .pt mels (or click an example).")
        files = files if isinstance(files, list) else [files]
        if len(files) > MAX_MEL_FILES:
            raise UserInputError(f"Upload at most {MAX_MEL_FILES} mel files at once (you gave {len(files)}).")
        vocoder = self._vocoder(voice)
        scale_key = MEL_SCALES.get(scale, "ln")
        max_frames = int(self.settings.max_seconds * vocoder.sample_rate / vocoder.hop_length) + 1
        mels, rows, paths, skipped = [], [], [], []
        for f in files:  # one bad file among several is reported, and the others are vocoded
            try:
                mel, notes = read_mel_upload(f, vocoder.n_mels, scale_key, max_frames)
            except (UserInputError, WaveflowError) as e:
                if len(files) == 1:
                    raise
                skipped.append(f"{display_name(f)}: {e}")
                continue
            for note in notes:
                gr.Warning(note)
            mels.append((display_name(f), mel))
        folder = self._out_dir()
        for name, mel in mels:
            start = time.perf_counter()
            try:
                audio = vocoder.vocode(mel, sigma=float(sigma), seed=int(seed), denoiser_strength=float(denoise))
            except WaveflowError as e:  # e.g. non-finite audio from a broken voice: say which upload
                if len(files) == 1:
                    raise WaveflowError(name, e.reason) from None
                skipped.append(f"{name}: {e.reason}")
                continue
            elapsed = time.perf_counter() - start
            audio = audio.cpu()
            seconds = audio.shape[0] / vocoder.sample_rate
            clipped = count_clipped(audio)
            paths.append(self._write(folder, _unique(f"{Path(name).stem}.wav", paths), audio, vocoder.sample_rate))
            rows.append(f"| {name} | {seconds:.2f} s | {elapsed:.2f} s | {elapsed / seconds:.2f} | "
                        + (f"{100 * clipped / audio.shape[0]:.1f} % |" if clipped else "none |"))
        for reason in skipped:
            gr.Warning(f"skipped {reason}")
        if not paths:
            raise UserInputError("None of the mel files could be vocoded: " + "; ".join(skipped))
        mels = [(n, m) for n, m in mels if any(r.startswith(f"| {n} |") for r in rows)]
        figure = plots.mel_figure([(f"input mel: {n}", m.numpy()) for n, m in mels[:4]], **self._figure_args(vocoder))
        stats = (
            f"**{voice}** at {vocoder.sample_rate} Hz, sigma {float(sigma):g}, denoiser {float(denoise):g}, "
            f"seed {int(seed)}.\n\n"
            "| mel file | audio | took | real-time factor | clipped samples |\n|---|---|---|---|---|\n"
            + "\n".join(rows)
            + "".join(f"\n\n**skipped** {r}" for r in skipped)
            + "\n\n<small>Real-time factor = time taken / audio duration: below 1 is faster than real time. "
            "Clipped samples exceed full scale and are cut when written as 16-bit audio.</small>"
        )
        return paths[0], paths, figure, stats

    # ------------------------------------------------------------------ tab 2: copy synthesis
    @user_errors
    def copy_synthesis(self, audio_path, voice: str, sigma: float, denoise: float, seed: float):
        """Clip -> (original at the model's rate, vocoded, spectrograms, metrics table, stats markdown)."""
        clip = read_clip(audio_path, self.settings.max_seconds)
        vocoder = self._vocoder(voice)
        original = self._clip_at(clip, vocoder)
        start = time.perf_counter()
        vocoded = vocoder.copy_synthesis(
            original, vocoder.sample_rate, sigma=float(sigma), seed=int(seed), denoiser_strength=float(denoise)
        ).cpu()
        elapsed = time.perf_counter() - start
        folder = self._out_dir()
        stem = Path(clip.name).stem
        sr = vocoder.sample_rate
        original_path = self._write(folder, f"{stem}-original.wav", original, sr)
        vocoded_path = self._write(folder, f"{stem}-vocoded.wav", vocoded, sr)
        mel_in = vocoder.mel(original, sr).cpu().numpy()
        mel_out = vocoder.mel(vocoded, sr).cpu().numpy()
        figure = plots.mel_figure(
            [("original (as the vocoder hears it)", mel_in), (f"vocoded by {voice}", mel_out)], **self._figure_args(vocoder)
        )
        rows = metrics_rows(original, vocoded.numpy(), vocoder.mel_config)
        seconds = vocoded.shape[0] / sr
        converted = [] if clip.channels == 1 else ["mixed down to mono"]
        if clip.sample_rate != sr:
            converted.append(f"resampled to {sr} Hz")
        stats = (
            f"{clip.describe()}" + (f" ({', '.join(converted)})" if converted else "") + f", vocoded by **{voice}** "
            f"in {elapsed:.2f} s (real-time factor {elapsed / seconds:.2f})."
        )
        return original_path, vocoded_path, figure, rows, stats

    # ------------------------------------------------------------------ tab 3: compare voices
    @user_errors
    def compare_voices(self, audio_path, voices: list[str] | None, sigma: float, seed: float):
        """Clip through up to MAX_COMPARE voices -> (audio x MAX_COMPARE, spectrograms, table)."""
        clip = read_clip(audio_path, self.settings.max_seconds)
        voices = list(voices or [])
        if not voices:
            raise UserInputError("Tick at least one voice to compare.")
        if len(voices) > MAX_COMPARE:
            raise UserInputError(f"Pick at most {MAX_COMPARE} voices at once (you ticked {len(voices)}).")
        folder = self._out_dir()
        players, mels, table = [], [], []
        for i, voice in enumerate(voices):
            vocoder = self._vocoder(voice)
            original = self._clip_at(clip, vocoder)
            sr = vocoder.sample_rate
            if i == 0:
                mels.append(("original", vocoder.mel(original, sr).cpu().numpy()))
            start = time.perf_counter()
            out = vocoder.copy_synthesis(original, sr, sigma=float(sigma), seed=int(seed)).cpu()
            elapsed = time.perf_counter() - start
            path = self._write(folder, f"voice{i + 1}-{_slug(voice)}.wav", out, sr)
            players.append(gr.Audio(value=path, label=f"{i + 1}. {voice}", visible=True))
            mels.append((f"{i + 1}. {voice}", vocoder.mel(out, sr).cpu().numpy()))
            metrics = {row[0]: row[1] for row in metrics_rows(original, out.numpy(), vocoder.mel_config, perceptual=False)}
            seconds = out.shape[0] / sr
            table.append([
                f"{i + 1}. {voice}", sr, f"{sum(p.numel() for p in vocoder.model.parameters()) / 1e6:.2f} M",
                round(elapsed / seconds, 3), metrics.get("log-mel distance (L1)", ""),
                metrics.get("mel-cepstral distortion (dB)", ""),
            ])
        players += [gr.Audio(value=None, visible=False)] * (MAX_COMPARE - len(players))
        vocoder = self._vocoder(voices[0])
        figure = plots.mel_figure(mels, **self._figure_args(vocoder))
        return (*players, figure, table)

    # ------------------------------------------------------------------ tab 4: inside the flow
    @user_errors
    def inside_flow(self, audio_path, voice: str, seed: float):
        """Clip -> (NLL markdown, latent figure, per-step figure, samples x len(FLOW_SIGMAS), samples figure)."""
        clip = read_clip(audio_path, self.settings.max_seconds)
        vocoder = self._vocoder(voice)
        audio = self._clip_at(clip, vocoder)
        sr, g = vocoder.sample_rate, vocoder.config.sample_multiple
        keep = min(audio.shape[0], int(FLOW_SECONDS * sr))
        audio = audio[: keep - keep % g]
        check_length(clip, audio.shape[0], vocoder.mel_config.n_fft // 2 + 1)
        x = torch.from_numpy(np.ascontiguousarray(audio)).to(vocoder.device)
        mel = vocoder.mel(x, sr)
        steps: list = []
        whitened: list = []
        with torch.inference_mode():
            xb, mb = x[None].to(vocoder.dtype), mel[None].to(vocoder.dtype)
            z, _, _ = vocoder.model.flow(xb, mb, steps=steps, whitened=whitened)
            out = vocoder.model.nll(xb, mb, sigma=PRIOR_SIGMA)
        T = audio.shape[0]
        coupling = [-float(s) / T / math.log(2) for s, _ in steps]
        invconv = [-float(w) / T / math.log(2) for _, w in steps]
        gaussian = (float(out.z) + out.const) / math.log(2)
        nll_bits = float(out.nll) / math.log(2)
        zf = z.float().cpu().numpy()
        prior = vocoder.model.prior
        latent_fig = plots.latent_figure(zf, audio, whitened[0].float().cpu().numpy() if prior is not None else None)
        prior_bits = float(out.prior) / math.log(2) if prior is not None else None
        pitch, predictor_bits = _pitch_view(prior, xb, mb)
        steps_fig = plots.flow_steps_figure(coupling, invconv, gaussian, nll_bits, prior_bits, predictor_bits)
        folder = self._out_dir()
        samples, sample_mels = [], [("original", mel.cpu().numpy())]
        for s in FLOW_SIGMAS:
            wav = vocoder.vocode(mel, sigma=s, seed=int(seed)).cpu()
            samples.append(self._write(folder, f"sigma-{s:g}.wav", wav, sr))
            sample_mels.append((f"sample at sigma = {s:g}", vocoder.mel(wav, sr).cpu().numpy()))
        samples_fig = plots.mel_figure(sample_mels, **self._figure_args(vocoder), pitch=pitch)
        summary = (
            f"**NLL of this clip: {float(out.bits_per_sample):.2f} bits per 16-bit sample** "
            f"({float(out.nll):.3f} nats per sample, prior sigma {PRIOR_SIGMA:g}; first {T / sr:.1f} s of "
            f"{clip.name}). Raw 16-bit PCM takes 16 bits per sample: below 16, the flow would code this clip "
            f"losslessly in fewer bits. The bars below add up to {nll_bits:+.2f} bits (the density on [-1, 1]); "
            f"adding 15 bits for the 16-bit grid gives the number above.\n\n"
            f"Latent z: mean {zf.mean():+.3f}, standard deviation {zf.std():.3f} "
            f"(a perfect flow gives 0 and 1 here)."
        )
        if predictor_bits is not None:
            summary += (f"\n\nThe **pitch predictor** (source-filter prior; its pitch track is drawn over the "
                        f"original's spectrogram below) saves {predictor_bits:.2f} bits per sample beside the "
                        f"spectral whitening alone.")
        return (summary, latent_fig, steps_fig, *samples, samples_fig)


def _pitch_view(prior, audio: torch.Tensor, mel: torch.Tensor) -> tuple[np.ndarray | None, float | None]:
    """For a prior with a pitch predictor: its F0 track (Hz, NaN where it predicts weakly) and the bits per
    sample it saves; ``(None, None)`` otherwise."""
    if not hasattr(prior, "predictor_gain"):
        return None, None
    with torch.inference_mode():
        taps = prior.pitch.taps(mel.float())
        f0 = torch.where(taps.strength > 0.5, taps.pitch.f0, torch.nan)[0].cpu().numpy()
        gain = float(prior.predictor_gain(audio.float(), mel.float())[0]) / math.log(2)
    return f0, gain


def _unique(name: str, taken: list[str]) -> str:
    """``name``, or ``stem-2.wav``, ``stem-3.wav``... if a file of that name was already written."""
    names = {Path(p).name for p in taken}
    stem, n = Path(name).stem, 2
    while name in names:
        name, n = f"{stem}-{n}.wav", n + 1
    return name


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")[:40] or "voice"
