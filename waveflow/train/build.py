"""What a training run is built from: the model (fresh, or warm-started from a checkpoint), the data loaders,
the optimizer, and :class:`FlowObjective`, the module Accelerate wraps."""

from __future__ import annotations

import dataclasses
import logging

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader

from ..checkpoints import load_checkpoint
from ..config import ConfigError, to_dict
from ..mel import MelConfig, MelSpectrogram
from ..models import VocoderModel
from ..models import build_model as build_fresh
from .config import RunConfig, TrainConfig
from .data import ClipDataset, EpochSampler, SegmentDataset, check_clips, collate
from .utils import ignore_stop_signals

log = logging.getLogger("waveflow.train")


class FlowObjective(nn.Module):
    """Audio batch -> :class:`~waveflow.models.waveglow.NLLOutput`. The module Accelerate wraps: DDP only
    synchronises gradients of what runs inside ``forward``, so the mel and the NLL are computed here."""

    def __init__(self, model: VocoderModel, mel_config: MelConfig, sigma: float):
        super().__init__()
        self.model = model
        self.mel = MelSpectrogram(mel_config)
        self.sigma = sigma

    def forward(self, audio: torch.Tensor):
        # Features in float32 whatever the autocast: the model is conditioned on exact Tacotron2 mels.
        with torch.no_grad(), torch.autocast(audio.device.type, enabled=False):
            mel = self.mel(audio.float())
        return self.model.nll(audio, mel, self.sigma)


def build_model(cfg: RunConfig, warm_start: bool) -> tuple[VocoderModel, RunConfig]:
    """A fresh model of ``cfg.model``, or ``cfg.train.init_from``'s (whose shape then replaces ``cfg.model``).

    Seeds everything first (``train.seed``), so the same config gives the same initial weights.
    """
    from accelerate.utils import set_seed

    set_seed(cfg.train.seed)
    if not cfg.train.init_from:
        return build_fresh(cfg.model), cfg
    ck = load_checkpoint(cfg.train.init_from, weight_norm=True, sample_rate=cfg.mel.sample_rate)
    if to_dict(ck.model.config) != to_dict(cfg.model):
        log.info("model shape taken from %s: %s", cfg.train.init_from, to_dict(ck.model.config))
    cfg = dataclasses.replace(cfg, model=ck.model.config)  # re-validates against mel/data
    if warm_start:
        log.info("warm start from %s (%s), fresh optimizer", cfg.train.init_from, ck.origin)
    return ck.model, cfg


def build_loaders(cfg: RunConfig, corpus, num_processes: int) -> tuple[EpochSampler, DataLoader, DataLoader | None]:
    """``(sampler, train loader, validation loader or None)``: random segments for training (an epoch sampler
    whose position is part of the training state), fixed centre crops (or whole clips) for validation."""
    t = cfg.train
    train = SegmentDataset(corpus.splits["train"], cfg.mel.sample_rate, cfg.data.segment_length, cfg.data.dequantize)
    sampler = EpochSampler(len(train), t.seed, cfg.data.repeat)
    if len(sampler) < t.batch_size * num_processes:
        raise ConfigError(
            f"data: {len(train)} training clips x repeat {cfg.data.repeat} do not fill one batch of "
            f"{t.batch_size} per process on {num_processes} processes; lower train.batch_size or raise data.repeat"
        )
    workers = cfg.data.num_workers
    train_dl = DataLoader(
        train, batch_sampler=BatchSampler(sampler, t.batch_size, drop_last=True), collate_fn=collate,
        num_workers=workers, persistent_workers=workers > 0, worker_init_fn=ignore_stop_signals if workers else None,
    )
    val_utts = corpus.splits["val"][: t.val_max_items or None]
    val_dl = None
    if t.validate_every and val_utts:
        val = ClipDataset(val_utts, cfg.mel.sample_rate, cfg.data.val_segment_length,
                          cfg.model.sample_multiple)
        val_dl = DataLoader(val, batch_size=t.batch_size if cfg.data.val_segment_length else 1,
                            collate_fn=collate, num_workers=min(workers, 1),
                            worker_init_fn=ignore_stop_signals if workers else None)
    elif t.validate_every:
        log.warning("no validation clips (raise data.val_fraction or give data.val_list): validation is off")
    return sampler, train_dl, val_dl


def build_optimizer(model: nn.Module, t: TrainConfig) -> torch.optim.Optimizer:
    """Adam (AdamW when ``train.weight_decay`` > 0), as NVIDIA trains WaveGlow."""
    cls = torch.optim.AdamW if t.weight_decay else torch.optim.Adam
    return cls(model.parameters(), lr=t.lr, betas=tuple(t.adam_betas), eps=t.adam_eps, weight_decay=t.weight_decay)


def drop_bad_validation_clips(corpus, sample_rate: int) -> list[tuple[str, str]]:
    """Read every validation clip once and leave out those that cannot be used (unreadable, NaN/inf or absurd
    samples), naming each in the log and in ``corpus.skipped``; returns ``[(path, reason)]``. Every process
    comes to the same list."""
    corpus.splits["val"], bad = check_clips(corpus.splits["val"], sample_rate)
    for path, reason in bad:
        log.warning("validation: skipping %s: %s", path, reason)
        corpus.skipped.setdefault("bad audio in the validation split", []).append(path)
    return bad
