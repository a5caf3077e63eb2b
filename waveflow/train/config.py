"""Training settings: where the audio comes from (:class:`DataConfig`), how the run goes (:class:`TrainConfig`),
and the whole run (:class:`RunConfig`: features + model shape + data + training), read from YAML with overrides."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

from ..config import apply_overrides, find_config, from_dict, load_yaml, require, to_yaml
from ..mel import MelConfig
from ..models import ModelConfig, WaveGlowConfig


@dataclasses.dataclass
class DataConfig:
    """Where training audio comes from and how it is cut. See :mod:`waveflow.data`.

    Attributes:
        root: an LJSpeech folder (``metadata.csv`` + ``wavs/``), a folder of audio files (recursive), or a
            file list (one audio path per line, ``path|anything`` allowed; relative paths are relative to
            the list's folder). Required.
        format: ``auto`` detects the three cases above; or force ``ljspeech``/``folder``/``filelist``.
        val_list: optional file list of validation clips; then every clip of ``root`` is used for training
            and no hash split is made (Tacotron2-style ``train``/``val`` lists).
        exclude: optional file of clips to leave out of every split, one path (or id) a line: the
            ``exclude.txt`` of ``waveflow score`` (relative paths: to the current folder or the file's own).
        val_fraction: share of utterances put in the validation split (by a stable hash of the id).
        test_fraction: share put in the test split (never trained on; the recipe vocodes it).
        split_salt: mixed into the hash; change it to draw a different split.
        segment_length: random training segment in samples; a multiple of ``model.n_group`` (of ``hop_length``
            with the spectral prior). Clips
            shorter than this are skipped (counted and logged), never zero-padded into the likelihood.
        val_segment_length: validation crop in samples (centre of the clip); 0 = whole utterances.
        repeat: segments drawn from each utterance per epoch (for tiny corpora; 1 = NVIDIA's).
        dequantize: add uniform noise of one 16-bit step to training audio (turns the discrete 16-bit
            data into a proper density; the NLL then bounds the 16-bit bits per sample).
        num_workers: DataLoader worker processes per training process; at most :func:`max_workers` (each
            is a forked process with its own copy of the data pipeline: thousands exhaust memory).
    """

    root: str | None = None
    format: typing.Literal["auto", "ljspeech", "folder", "filelist"] = "auto"
    val_list: str | None = None
    exclude: str | None = None
    val_fraction: float = 0.02
    test_fraction: float = 0.02
    split_salt: str = "waveflow"
    segment_length: int = 16000
    val_segment_length: int = 0
    repeat: int = 1
    dequantize: bool = False
    num_workers: int = 2

    def __post_init__(self) -> None:
        require(0 <= self.val_fraction < 1, f"data.val_fraction must be in [0, 1), got {self.val_fraction}")
        require(0 <= self.test_fraction < 1, f"data.test_fraction must be in [0, 1), got {self.test_fraction}")
        require(
            self.val_fraction + self.test_fraction < 1,
            f"data.val_fraction + data.test_fraction must leave clips to train on, got "
            f"{self.val_fraction} + {self.test_fraction}",
        )
        require(self.segment_length > 0, f"data.segment_length must be positive, got {self.segment_length}")
        require(self.val_segment_length >= 0, f"data.val_segment_length must be >= 0, got {self.val_segment_length}")
        require(self.repeat >= 1, f"data.repeat must be >= 1, got {self.repeat}")
        require(self.num_workers >= 0, f"data.num_workers must be >= 0, got {self.num_workers}")
        require(self.num_workers <= max_workers(), f"data.num_workers must be at most {max_workers()} on this "
                f"machine ({WORKERS_PER_CPU} per usable CPU core, {MIN_WORKER_CAP} at least), got {self.num_workers:,}")


WORKERS_PER_CPU = 4
MIN_WORKER_CAP = 16


def max_workers() -> int:
    """The most DataLoader workers a run may ask for: :data:`WORKERS_PER_CPU` per usable CPU core, at least
    :data:`MIN_WORKER_CAP` (so a config written for a bigger machine still runs on a laptop)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(MIN_WORKER_CAP, WORKERS_PER_CPU * cores)


@dataclasses.dataclass
class TrainConfig:
    """How a run trains. See :mod:`waveflow.train`.

    Attributes:
        run_dir: output folder (checkpoints, TensorBoard logs, resolved config, split lists). Required.
        seed: seeds model initialisation, data order, segments and noise.
        max_steps: optimizer steps to train for.
        max_minutes: also stop (saving a state and the exported model) once this invocation has trained for
            this many minutes; 0 = no limit. Running again resumes, with a fresh budget.
        batch_size: clips per micro-batch per process (global batch = batch_size x processes x grad_accum_steps).
        grad_accum_steps: micro-batches accumulated per optimizer step.
        lr: Adam learning rate (peak, after warm-up).
        lr_schedule: ``constant`` (NVIDIA), or ``cosine`` decay to ``lr * lr_min_ratio`` at ``max_steps``.
        warmup_steps: linear warm-up from 0.
        lr_min_ratio: floor of the cosine schedule.
        adam_betas, adam_eps, weight_decay: Adam(W) settings (weight_decay 0 = plain Adam, as NVIDIA).
        max_grad_norm: clip the global gradient norm to this; 0 = no clipping (the norm is logged anyway).
        sigma: std of the Gaussian prior in the NLL (NVIDIA trains with 1.0).
        mixed_precision: ``no``, ``fp16`` (with dynamic loss scaling, GPU) or ``bf16`` (GPU or CPU).
        cpu: train on CPU even if a GPU is visible.
        log_every: steps between scalar logs (TensorBoard and the progress bar).
        validate_every: steps between validations (NLL on the validation split + vocoded clips); 0 = never.
        val_max_items: at most this many validation clips for the NLL (0 = all).
        val_audio_clips: validation clips vocoded (copy synthesis) and logged as audio and mel images.
        val_sigma: sigma of the vocoded clips.
        checkpoint_every: steps between Accelerate state folders ``checkpoints/step_NNNNNN``.
        keep_checkpoints: state folders kept (oldest removed first); the exported model is kept too.
        resume: ``auto`` continue from the latest state if there is one; ``latest`` the same but fail if
            there is none; ``never`` start fresh (refuses a run_dir that has states); or a state folder.
        init_from: warm start (fine-tuning) from any loadable model file (own or NVIDIA's) with a fresh
            optimizer; the model shape is taken from that file. Ignored when resuming.
        ema_decay: keep an exponential moving average of the weights (e.g. 0.9999) used for validation and
            export; 0 = off.
        max_nonfinite: stop after this many non-finite steps in a row (skipped steps, not applied).
        tracker: ``tensorboard`` (Accelerate's tracker, in ``run_dir/logs``) or ``none``.
        progress: show a progress bar (main process only).
    """

    run_dir: str | None = None
    seed: int = 1234
    max_steps: int = 100000
    max_minutes: float = 0.0
    batch_size: int = 12
    grad_accum_steps: int = 1
    lr: float = 1e-4
    lr_schedule: typing.Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    lr_min_ratio: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    max_grad_norm: float = 0.0
    sigma: float = 1.0
    mixed_precision: typing.Literal["no", "fp16", "bf16"] = "no"
    cpu: bool = False
    log_every: int = 10
    validate_every: int = 1000
    val_max_items: int = 64
    val_audio_clips: int = 3
    val_sigma: float = 0.6
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    resume: str = "auto"
    init_from: str | None = None
    ema_decay: float = 0.0
    max_nonfinite: int = 20
    tracker: typing.Literal["tensorboard", "none"] = "tensorboard"
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "grad_accum_steps", "log_every", "checkpoint_every",
                     "keep_checkpoints", "max_nonfinite"):
            require(getattr(self, name) > 0, f"train.{name} must be positive, got {getattr(self, name)}")
        for name in ("warmup_steps", "validate_every", "val_max_items", "val_audio_clips", "weight_decay",
                     "max_grad_norm", "max_minutes"):
            require(getattr(self, name) >= 0, f"train.{name} must be >= 0, got {getattr(self, name)}")
        require(self.lr > 0, f"train.lr must be positive, got {self.lr}")
        require(0 <= self.lr_min_ratio <= 1, f"train.lr_min_ratio must be in [0, 1], got {self.lr_min_ratio}")
        require(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
                f"train.adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        require(self.sigma > 0, f"train.sigma must be positive, got {self.sigma}")
        require(self.val_sigma >= 0, f"train.val_sigma must be >= 0, got {self.val_sigma}")
        require(0 <= self.ema_decay < 1, f"train.ema_decay must be in [0, 1), got {self.ema_decay}")
        require(bool(self.resume), "train.resume must be auto, latest, never or a state folder")


@dataclasses.dataclass
class RunConfig:
    """Everything a training run needs: features, model shape, data and training settings."""

    mel: MelConfig = dataclasses.field(default_factory=MelConfig)
    model: ModelConfig = dataclasses.field(default_factory=WaveGlowConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        m, d = self.model, self.data
        require(m.n_mels == self.mel.n_mels, f"model.n_mels ({m.n_mels}) must equal mel.n_mels ({self.mel.n_mels})")
        require(m.hop_length == self.mel.hop_length,
                f"model.hop_length ({m.hop_length}) must equal mel.hop_length ({self.mel.hop_length})")
        if m.prior != "none":  # a prior reads the features it is given with their own filterbank
            if m.prior_mel is None:
                self.model = m = dataclasses.replace(m, prior_mel=self.mel)
            require(m.prior_mel == self.mel, "model.prior_mel must equal the mel section (leave it out to use it)")
        k, what = m.sample_multiple, f"model.hop_length (the {m.prior} prior works in whole frames)" \
            if m.prior != "none" else "model.n_group"
        for name in ("segment_length", "val_segment_length"):
            value = getattr(d, name)
            require(value % k == 0, f"data.{name} ({value}) must be a multiple of {what} ({k})")
            require(value == 0 or value > self.mel.n_fft // 2,
                    f"data.{name} ({value}) must exceed mel.n_fft/2 ({self.mel.n_fft // 2}) for the mel's padding")

    def to_yaml(self) -> str:
        """The resolved config as YAML (what ``--print-config`` shows and the run folder keeps)."""
        return to_yaml(self)


def load_run_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML run config, apply ``key=value`` overrides, validate (unknown keys and bad types fail)."""
    data = load_yaml(find_config(path)) if path else {}
    return from_dict(RunConfig, apply_overrides(data, list(overrides)))
