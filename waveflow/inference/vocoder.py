"""Inference-ready vocoder models: :class:`Vocoder` (any model family, device and dtype; batches, long inputs,
streaming, denoiser).

Three guarantees, and how they are kept:

* **Same seed, same audio, whatever the batch.** Each item's latent comes from its own seed, drawn on the CPU
  in fixed blocks of :data:`NOISE_BLOCK` time steps (so any stretch of it can be drawn on its own, on any
  device). Items of a batch are padded to the longest; forward hooks zero the WN activations past each
  item's end, which is what the "same" zero padding of the convolutions does when the item is alone, and
  the upsampler only looks back (sample ``t`` reads frames ``t // hop - 3 .. t // hop``). Padding therefore
  never reaches the real samples: batched equals alone up to float rounding.
* **Long inputs in bounded memory.** Mels longer than ``chunk_frames`` are made in chunks, each computed with
  ``context_frames`` of mel and latent on both sides. The default context is the model's whole receptive
  field (:func:`receptive_field_frames`), so chunked output equals unchunked output up to float rounding;
  neighbouring chunks overlap by ``crossfade`` samples mixed linearly (which only matters with a shorter
  context). :meth:`Vocoder.stream` yields the chunks as they are ready, from a mel or from mel pieces.
* **Prepared once.** Weight norm folded, eval mode, weights in the working dtype, 1x1-conv inverses computed
  in float64 from float32 master weights and cached in the working dtype; every entry point runs under
  ``torch.inference_mode``.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..audio import resample
from ..checkpoints import LoadedCheckpoint, load_checkpoint
from ..kernels import choose_inverse
from ..mel import MelConfig, MelSpectrogram
from ..models import VocoderModel, prepare_for_inference, receptive_field_frames
from .denoiser import Denoiser
from .outputs import PaddingMask, check_finite
from .runtime import latent_noise, plain_cpu_convolutions, resolve_dtype

MelLike = torch.Tensor | np.ndarray
DEFAULT_SIGMA = 0.6  # NVIDIA's choice for speech, for models that recommend none
DEFAULT_CHUNK_FRAMES = 1024  # 12 s at 22.05 kHz: long inputs are made in chunks this long (flat memory)


class Vocoder:
    """A vocoder model (WaveGlow, WaveFlow) prepared for inference.

    Args:
        model: a checkpoint path (any format :func:`~waveflow.checkpoints.load_checkpoint` reads), a
            :class:`LoadedCheckpoint` or a model (:class:`~waveflow.WaveGlow`, :class:`~waveflow.WaveFlow`;
            copied, not modified).
        device: torch device. dtype: ``float32``, ``float16`` or ``bfloat16``.
        sigma: latent standard deviation; default: the model file's recommendation (``meta["sigma"]``: 1.0
            for the starter voice, whose spectral prior is calibrated for unit variance), else 0.6 (NVIDIA's).
        seed: default seed of the latent; ``None`` draws a fresh one per call.
        denoiser_strength: default bias removal (0 = off; NVIDIA suggests 0.01 to 0.1).
        mel_config: features of a bare model (Tacotron2's with its hop/n_mels by default).
        chunk_frames: mels longer than this are made in chunks of this many frames (default: 1024, or twice
            the context where that is longer: a WaveFlow's inverse reaches ``n_height`` times further than its
            forward, 2045 frames each side for waveflow-64, so shorter chunks would be mostly context).
        context_frames: frames computed and dropped each side of a chunk (default: the receptive field).
        crossfade: samples over which neighbouring chunks are mixed (default: one hop).
        denoiser_mode: constant mel of the bias estimate, ``floor`` or ``zeros`` (see :mod:`waveflow.denoiser`).
        kernels: ``"auto"`` (fused Triton kernels on CUDA in float16/bfloat16, the model's own inverse
            otherwise), ``"off"``, ``"torch"`` (the kernels' pure-torch twins, any device) or ``"triton"``
            (see :mod:`waveflow.kernels`). :attr:`backend` says which one runs.
        inverse: optional replacement of ``model.inverse`` with the same semantics, ``(z (B, n_group, n),
            mel (B, n_mels, F)) -> (B, n_group * n)`` in ``z``'s dtype (overrides ``kernels``).

    A fused or plugged-in inverse cannot see the padding masks, so mels of different lengths are then run
    one length at a time. A Vocoder may be shared between threads (calls into the model are serialised).
    """

    def __init__(self, model: str | Path | LoadedCheckpoint | VocoderModel, *, device: str | torch.device = "cpu",
                 dtype: str | torch.dtype = "float32", sigma: float | None = None, seed: int | None = 0,
                 denoiser_strength: float = 0.0, mel_config: MelConfig | None = None, chunk_frames: int | None = None,
                 context_frames: int | None = None, crossfade: int | None = None, denoiser_mode: str = "floor",
                 kernels: str = "auto", inverse: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        if isinstance(model, (str, Path)):
            model = load_checkpoint(model, weight_norm=False)
        recommended: dict = {}
        if isinstance(model, LoadedCheckpoint):
            mel_config = mel_config or model.mel_config
            recommended = {k: v for k, v in model.meta.items() if k == "sigma" and isinstance(v, (int, float))}
            model = model.model
        cfg = model.config
        self.mel_config = mel_config or MelConfig(hop_length=cfg.hop_length, n_mels=cfg.n_mels)
        self.device = torch.device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if inverse is None:
            inverse, self.backend = choose_inverse(model, self.device, self.dtype, kernels)
        else:
            self.backend = "custom"
        self.model = prepare_for_inference(model, self.device, self.dtype)
        self.config, self.hop_length, self.n_mels = cfg, cfg.hop_length, cfg.n_mels
        self.sigma = float(sigma if sigma is not None else recommended.get("sigma", DEFAULT_SIGMA))
        self.seed, self.denoiser_strength = seed, denoiser_strength
        self.context_frames = receptive_field_frames(cfg) if context_frames is None else context_frames
        if chunk_frames is None:
            chunk_frames = max(DEFAULT_CHUNK_FRAMES, 2 * self.context_frames)
        self.crossfade = cfg.hop_length if crossfade is None else crossfade
        if chunk_frames < 1 or self.context_frames < 0 or not 0 <= self.crossfade <= chunk_frames * cfg.hop_length:
            raise ValueError("need chunk_frames >= 1, context_frames >= 0, 0 <= crossfade <= chunk samples")
        self.crossfade -= self.crossfade % 2
        self.chunk_frames, self.denoiser_mode = chunk_frames, denoiser_mode
        self._mask = PaddingMask(self.model)
        self._lock = threading.RLock()  # the padding mask is shared state of the model's hooks
        self._inverse = inverse
        self._denoiser: Denoiser | None = None
        self._mel_fn: MelSpectrogram | None = None

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    # ------------------------------------------------------------------ core
    def _mel_tensor(self, mel: MelLike) -> torch.Tensor:
        mel = torch.as_tensor(mel)
        if mel.dim() != 2 or mel.shape[0] != self.n_mels or mel.shape[1] < 1:
            raise ValueError(f"mel must be ({self.n_mels}, frames) with frames >= 1, got shape {tuple(mel.shape)}")
        return mel

    def _infer(self, mels: Sequence[torch.Tensor], latents: Sequence[torch.Tensor], sigma: float,
               known: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Padded batch of ``(n_mels, F_i)`` mels and ``(n_group, F_i * hop / n_group)`` standard-normal latents
        -> ``[(F_i * hop,)]`` float32 on the device. ``known``: one item's first samples already made (a stream
        chunk of a model with a recursive prior; see :mod:`waveflow.flows.priors`)."""
        frames = [m.shape[1] for m in mels]
        # One batch per length where padding masks cannot keep items apart: a custom or fused inverse has no
        # masks, a prior's lapped transform treats each item's last frame as the clip's end (a padded item's
        # is not), and a model may not offer masks at all (``batches_padded``).
        padded_ok = self._inverse is None and getattr(self.model, "batches_padded", False)
        if not padded_ok and len(set(frames)) > 1:
            out: list[torch.Tensor | None] = [None] * len(mels)
            for n in set(frames):
                idx = [i for i, f in enumerate(frames) if f == n]
                for i, audio in zip(idx, self._infer([mels[i] for i in idx], [latents[i] for i in idx], sigma)):
                    out[i] = audio
            return out
        longest, g = max(frames), self.config.n_group
        mel = torch.full((len(mels), self.n_mels, longest), self.mel_config.log_floor, device=self.device, dtype=self.dtype)
        z = torch.zeros(len(mels), g, longest * self.hop_length // g, device=self.device, dtype=self.dtype)
        for i, (m, lat) in enumerate(zip(mels, latents)):
            mel[i, :, : frames[i]] = m.to(self.device, self.dtype)
            z[i, :, : lat.shape[1]] = (lat.to(self.device) * sigma).to(self.dtype)
        with self._lock, plain_cpu_convolutions(self.device):
            if len(set(frames)) > 1:
                steps = torch.arange(z.shape[2], device=self.device)
                ends = torch.tensor(frames, device=self.device) * (self.hop_length // g)
                self._mask.mask = (steps[None, :] < ends[:, None]).to(self.dtype)[:, None, :]
            try:
                inverse = self._inverse or self.model.inverse
                if known is None:
                    audio = inverse(z, mel)
                else:
                    audio = inverse(z, mel, known=known[None].to(self.device, self.dtype))
            finally:
                self._mask.mask = None
        return [audio[i, : f * self.hop_length].float() for i, f in enumerate(frames)]

    def _latent(self, seed: int, start_frame: int, stop_frame: int) -> torch.Tensor:
        per_frame = self.hop_length // self.config.n_group
        return latent_noise(seed, self.config.n_group, start_frame * per_frame, stop_frame * per_frame)

    def _seeds(self, seed: int | Sequence[int] | None, n: int) -> list[int]:
        seed = self.seed if seed is None else seed
        if seed is None:
            seed = secrets.randbits(63)
        seeds = [int(seed)] * n if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
        if len(seeds) != n:
            raise ValueError(f"got {len(seeds)} seeds for {n} mels")
        return seeds

    def denoise(self, audio: torch.Tensor, strength: float | None = None) -> torch.Tensor:
        """Remove the model's bias (see :class:`~waveflow.denoiser.Denoiser`); ``(T,)``/``(B, T)`` float32."""
        strength = self.denoiser_strength if strength is None else strength
        if strength <= 0:
            return audio
        if self._denoiser is None:
            with torch.inference_mode():
                bias_mel = Denoiser.bias_mel(self.n_mels, self.mel_config.log_floor, self.denoiser_mode)[0]
                bias = self._infer([bias_mel], [self._latent(0, 0, bias_mel.shape[1])], sigma=0.0)[0]
            c = self.mel_config
            self._denoiser = Denoiser(bias, c.n_fft, c.hop_length, c.win_length)
        return self._denoiser(audio, strength)

    # ------------------------------------------------------------------ public
    @torch.inference_mode()
    def vocode(self, mel: MelLike | Sequence[MelLike], *, sigma: float | None = None,
               seed: int | Sequence[int] | None = None, denoiser_strength: float | None = None):
        """Mel(s) to audio: float32 on the vocoder's device, exactly ``F * hop`` samples per mel.

        Args:
            mel: natural-log mel ``(n_mels, F)`` -> ``(F * hop,)``; ``(B, n_mels, F)`` -> ``(B, F * hop)``;
                a list of ``(n_mels, F_i)`` -> list of ``(F_i * hop,)`` (one padded batch; outputs equal
                vocoding each alone with its seed). Mels longer than ``chunk_frames`` are made in chunks.
            sigma, denoiser_strength: override the vocoder's defaults.
            seed: one seed for every item, or one per item (default: the vocoder's).
        """
        sigma = self.sigma if sigma is None else sigma
        if isinstance(mel, (torch.Tensor, np.ndarray)) and mel.ndim in (2, 3):
            items = list(torch.as_tensor(mel)) if mel.ndim == 3 else [mel]
        else:
            items = list(mel)
        items = [self._mel_tensor(m) for m in items]
        seeds = self._seeds(seed, len(items))
        out: list[torch.Tensor | None] = [None] * len(items)
        short = [i for i, m in enumerate(items) if m.shape[1] <= self.chunk_frames]
        if short:
            latents = [self._latent(seeds[i], 0, items[i].shape[1]) for i in short]
            for i, audio in zip(short, self._infer([items[i] for i in short], latents, sigma)):
                out[i] = self.denoise(audio, denoiser_strength)
        for i, m in enumerate(items):
            if out[i] is None:
                out[i] = torch.cat(list(self.stream(m, sigma=sigma, seed=seeds[i], denoiser_strength=denoiser_strength)))
            check_finite(out[i], f"mel {i + 1} of {len(items)}" if len(items) > 1 else "this mel")
        if isinstance(mel, (torch.Tensor, np.ndarray)) and mel.ndim in (2, 3):
            return out[0] if mel.ndim == 2 else torch.stack(out)
        return out

    @torch.inference_mode()
    def stream(self, mel: MelLike | Iterable[MelLike], *, chunk_frames: int | None = None, sigma: float | None = None,
               seed: int | None = None, denoiser_strength: float | None = None) -> Iterator[torch.Tensor]:
        """Yield the audio of a mel in consecutive pieces as they are ready (for real-time servers).

        Args:
            mel: a whole ``(n_mels, F)`` mel, or an iterable of ``(n_mels, f_k)`` pieces arriving over time
                (e.g. from an acoustic model); a chunk is made once ``context_frames`` beyond it have arrived.
            chunk_frames: frames per chunk (default: the vocoder's ``chunk_frames``).

        Yields:
            float32 pieces on the device; concatenated they are ``F * hop`` samples, equal to :meth:`vocode`
            of the whole mel with the same seed (up to float rounding with the default context).
        """
        n, sigma = chunk_frames or self.chunk_frames, self.sigma if sigma is None else sigma
        seed = self._seeds(seed, 1)[0]
        strength = self.denoiser_strength if denoiser_strength is None else denoiser_strength
        hop, half = self.hop_length, self.crossfade // 2
        # frames computed beyond a chunk: the model's context, the crossfade's reach, the denoiser STFT's reach
        pad = self.context_frames + math.ceil(half / hop) + (math.ceil(self.mel_config.n_fft / hop) if strength > 0 else 0)
        pieces = [mel] if isinstance(mel, (torch.Tensor, np.ndarray)) else mel
        buf, buf_start, received, start, tail = torch.zeros(self.n_mels, 0), 0, 0, 0, None
        fade = torch.linspace(0.0, 1.0, self.crossfade + 2, device=self.device)[1:-1]
        # A recursive prior's synthesis continues from the samples made before each chunk (exact, not
        # recomputed from a context): the model's audio over [stop - pad, stop) is carried to the next chunk.
        recursive = getattr(self.model.prior, "recursive", False)
        history = None

        def chunk(stop: int, last: bool):
            nonlocal history
            lo_f, hi_f = max(0, start - pad), stop if last else stop + pad
            window = buf[:, lo_f - buf_start : hi_f - buf_start]
            known = history[-(start - lo_f) * hop :] if recursive and start > lo_f else None
            audio = self._infer([window], [self._latent(seed, lo_f, hi_f)], sigma, known=known)[0]
            if recursive:
                history = audio[(max(0, stop - pad) - lo_f) * hop : (stop - lo_f) * hop]
            audio = self.denoise(check_finite(audio, f"frames {lo_f}..{hi_f} of this mel"), strength)
            lo = (start - lo_f) * hop - (half if start > 0 else 0)
            return audio[lo : (stop - lo_f) * hop + (0 if last else half)]

        def emit(audio: torch.Tensor, last: bool):
            nonlocal tail
            if tail is not None:
                audio = audio.clone()
                audio[: tail.numel()] = tail * fade.flip(0) + audio[: tail.numel()] * fade
            if last or self.crossfade == 0:
                tail = None
                return audio
            tail = audio[-self.crossfade :]
            return audio[: -self.crossfade]

        for piece in pieces:
            piece = self._mel_tensor(piece).float()
            buf, received = torch.cat([buf, piece], 1), received + piece.shape[1]
            while received >= start + n + pad:
                yield emit(chunk(start + n, last=False), last=False)
                start += n
                keep = max(0, start - pad) - buf_start  # frames no later chunk needs
                buf, buf_start = buf[:, keep:], buf_start + keep
        if received == 0:
            raise ValueError("stream got no mel frames")
        while start < received:  # the rest; a remainder shorter than the context joins the last chunk
            stop = start + n if received - start > n + pad else received
            last = stop == received
            yield emit(chunk(stop, last), last)
            start = stop

    def _resampled(self, audio: MelLike, sample_rate: int | None) -> torch.Tensor:
        audio = np.asarray(audio.cpu() if isinstance(audio, torch.Tensor) else audio, dtype=np.float32).reshape(-1)
        audio = resample(audio, sample_rate or self.sample_rate, self.sample_rate)
        return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(self.device)

    @torch.inference_mode()
    def mel(self, audio: MelLike, sample_rate: int | None = None) -> torch.Tensor:
        """The model's log-mel ``(n_mels, T // hop + 1)`` of ``(T,)`` audio (resampled to the model's rate)."""
        if self._mel_fn is None:
            self._mel_fn = MelSpectrogram(self.mel_config).to(self.device)
        return self._mel_fn(self._resampled(audio, sample_rate))

    @torch.inference_mode()
    def copy_synthesis(self, audio: MelLike, sample_rate: int | None = None, **vocode_kwargs) -> torch.Tensor:
        """Audio ``(T,)`` at ``sample_rate`` -> mel -> vocoded audio ``(T',)`` at the model's rate, where ``T'``
        is the input's length at that rate. ``vocode_kwargs``: ``sigma``, ``seed``, ``denoiser_strength``."""
        audio = self._resampled(audio, sample_rate)
        return self.vocode(self.mel(audio), **vocode_kwargs)[: audio.shape[0]]
