"""Pieces of the trainer that do not need the Accelerator: schedule, NaN guard, stop signals, validation,
logging, pictures.

State folders (checkpoints that survive a kill at any moment) are in :mod:`waveflow.train.state`."""

from __future__ import annotations

import json
import logging
import math
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..config import to_dict
from .config import TrainConfig
from .state import TrainingError

if TYPE_CHECKING:
    from typing_extensions import Self


# ---------------------------------------------------------------------------------------------- schedule
def lr_factor(cfg: TrainConfig):
    """``step -> lr multiplier`` for LambdaLR: linear warm-up, then constant or cosine to ``lr_min_ratio``."""

    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        span = max(1, cfg.max_steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


# ---------------------------------------------------------------------------------------------- guard
class NonFiniteGuard:
    """Counts skipped non-finite steps; raises :class:`TrainingError` after ``limit`` in a row."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_a_row = 0
        self.total = 0

    def ok(self) -> None:
        self.in_a_row = 0

    def hit(self, step: int, what: str, last_state: str | None) -> None:
        self.in_a_row += 1
        self.total += 1
        if self.in_a_row >= self.limit:
            where = f"the last good state is {last_state}" if last_state else "no state was saved yet"
            raise TrainingError(
                f"training diverged: {self.in_a_row} non-finite steps in a row (last at step {step + 1}: "
                f"{what}); stopping. {where.capitalize()}. Lower train.lr, set train.max_grad_norm, or check "
                "the data; then resume."
            )

    def state_dict(self) -> dict:
        return {"in_a_row": self.in_a_row, "total": self.total}

    def load_state_dict(self, state: dict) -> None:
        self.in_a_row, self.total = int(state["in_a_row"]), int(state["total"])


# ---------------------------------------------------------------------------------------------- signals
class StopRequested(KeyboardInterrupt):
    """The first SIGINT or SIGTERM under ``StopSignals(at_once=True)``, raised where the work is."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


class StopSignals:
    """The one stop policy of waveflow's long runs (training, and the folder jobs of :mod:`waveflow.jobs`).

    The first SIGINT (Ctrl-C) or SIGTERM (a cluster scheduler's notice) asks for a clean stop: training
    (``at_once=False``) records it in :attr:`received` and saves a state after the step under way, ending as
    ``train.max_minutes`` would; a folder job (``at_once=True``) gets :class:`StopRequested` raised where it is,
    drops the file under way (its temporary goes; finished outputs stay) and reports what is left. While it
    stops, a Ctrl-C stops at once (``KeyboardInterrupt``: the user means now), and a SIGTERM is ignored (a
    launcher passes Ctrl-C on to its workers that way) so the clean-up finishes. A context; outside the main
    thread (where Python delivers no signals) it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, at_once: bool = False) -> None:
        self.at_once = at_once
        self.received: str | None = None
        self._before: dict = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            self._before = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._before.items():
            signal.signal(s, handler)
        self._before = {}

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received:
            if name == "SIGINT":  # Ctrl-C while stopping: the user means now
                raise KeyboardInterrupt
            return  # e.g. the SIGTERM a launcher sends its workers after Ctrl-C: the clean-up goes on
        self.received = name
        if self.at_once:
            raise StopRequested(name)
        logging.getLogger("waveflow.train").warning(
            "%s: saving a state after this step, then stopping (Ctrl-C again stops at once)", name)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers leave SIGINT/SIGTERM to the trainer (a worker dying of Ctrl-C
    would break the loader before the trainer could save); they end with it."""
    for s in StopSignals.SIGNALS:
        signal.signal(s, signal.SIG_IGN)


# ---------------------------------------------------------------------------------------------- pictures
def mel_image(mel: torch.Tensor | np.ndarray, floor: float = -11.5) -> np.ndarray:
    """A log-mel ``(n_mels, F)`` as an RGB image ``(3, n_mels, F)`` in [0, 1], low bands at the bottom.

    Uses a small built-in colour map (dark blue -> yellow) so training needs no plotting library.
    """
    m = mel.detach().float().cpu().numpy() if isinstance(mel, torch.Tensor) else np.asarray(mel, np.float32)
    top = max(float(m.max()), floor + 1e-3)
    x = np.clip((m - floor) / (top - floor), 0.0, 1.0)[::-1]
    stops = np.array([[0.05, 0.03, 0.25], [0.45, 0.10, 0.55], [0.90, 0.35, 0.25], [1.0, 0.95, 0.35]])
    pos = x * (len(stops) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = (pos - lo)[..., None]
    rgb = stops[lo] * (1 - frac) + stops[lo + 1] * frac
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)


def fingerprint(model: nn.Module) -> list[float]:
    """A few float64 sums of all parameters: equal across data-parallel replicas that are in sync."""
    total = torch.zeros(3, dtype=torch.float64)
    for i, p in enumerate(model.parameters()):
        v = p.detach().double().cpu()
        total += torch.stack([v.sum(), v.abs().sum(), (v * (1 + i % 7)).sum()])
    return total.tolist()


# ---------------------------------------------------------------------------------------------- validation
class Validator:
    """Validation of a :class:`~waveflow.train.Trainer`: NLL over the validation split (every process takes a
    share), and on the main process a few clips vocoded at ``val_sigma`` (copy synthesis), logged to
    TensorBoard as audio and mel images. Uses the EMA weights when there are some."""

    MAX_CLIP_SECONDS = 4.0

    def __init__(self, trainer, val_utterances):
        from .data import ClipDataset

        cfg = trainer.cfg
        self.trainer = trainer
        n_clips = cfg.train.val_audio_clips
        self.clips = ClipDataset(val_utterances[:n_clips], cfg.mel.sample_rate, 0, cfg.mel.hop_length)
        self.logged_references = False

    def run(self) -> dict[str, float]:
        tr = self.trainer
        acc = tr.accelerator
        tr.objective.eval()
        swap = tr.ema.swapped_in(tr.model) if tr.ema is not None else _nothing()
        with swap, torch.no_grad():
            nll = self._nll()
            scalars = {"val/nll": nll, "val/bits_per_sample": nll / math.log(2) + 15.0,
                       "val/skipped_clips": float(tr.val_skipped)}
            acc.log(scalars, step=tr.step)
            if acc.is_main_process:
                with open(tr.run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps({"step": tr.step, **scalars}) + "\n")
                self._vocode_clips()
        tr.objective.train()
        acc.wait_for_everyone()
        import logging

        logging.getLogger("waveflow.train").info(
            "step %d: validation NLL %.4f nats/sample (%.3f bits per 16-bit sample)",
            tr.step, nll, scalars["val/bits_per_sample"])
        return scalars

    def _nll(self) -> float:
        tr = self.trainer
        values = [tr.accelerator.gather_for_metrics(tr.objective(b["audio"]).nll_per_item.float()) for b in tr.val_dl]
        return float(torch.cat(values).mean())

    def _vocode_clips(self) -> None:
        tr = self.trainer
        acc, cfg = tr.accelerator, tr.cfg
        writer = acc.get_tracker("tensorboard", unwrap=True) if cfg.train.tracker == "tensorboard" else None
        if writer is None or not len(self.clips):
            return
        from ..mel import MelSpectrogram

        mel_fn = MelSpectrogram(cfg.mel).to(acc.device)
        rate = cfg.mel.sample_rate
        for i in range(len(self.clips)):
            item = self.clips[i]
            max_len = int(self.MAX_CLIP_SECONDS * rate) // cfg.mel.hop_length * cfg.mel.hop_length
            audio = item["audio"][:max_len].to(acc.device)[None]
            mel = mel_fn(audio)
            gen = torch.Generator(device=acc.device).manual_seed(cfg.train.seed + i)
            wav = tr.model.infer(mel, sigma=cfg.train.val_sigma, generator=gen).float().clamp(-1, 1)
            tag = f"val_{i}_{item['id'].replace('/', '_')}"
            writer.add_audio(f"{tag}/vocoded", wav[0].cpu(), tr.step, sample_rate=rate)
            writer.add_image(f"{tag}/mel_vocoded", mel_image(mel_fn(wav)[0]), tr.step)
            if not self.logged_references:
                writer.add_audio(f"{tag}/original", audio[0].cpu(), tr.step, sample_rate=rate)
                writer.add_image(f"{tag}/mel_original", mel_image(mel[0]), tr.step)
        self.logged_references = True
        writer.flush()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# ---------------------------------------------------------------------------------------------- logging
class TqdmHandler(logging.StreamHandler):
    """Log lines that do not break the progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001 - logging must never stop training
            self.handleError(record)


def nll_scalars(out, samples: int) -> dict[str, float]:
    parts = torch.stack([out.nll, out.bits_per_sample, out.loss_nvidia, out.z, out.log_s, out.logdet_w]).detach()
    names = ("loss/nll", "loss/bits_per_sample", "loss/nvidia", "nll/z", "nll/log_s", "nll/logdet_w")
    return {**dict(zip(names, parts.double().tolist())), "_samples": float(samples)}


def hparams(cfg) -> dict[str, Any]:
    flat = {}
    for section, values in to_dict(cfg).items():
        for k, v in values.items():
            flat[f"{section}.{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
    return flat
