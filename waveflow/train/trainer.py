"""Accelerate trainer: ``waveflow train --config FILE [key=value ...]``, the same under ``accelerate launch``.

Run folder::

    run_dir/config.yaml            resolved config (what actually ran)
    run_dir/split/{train,val,test}.txt   the hash split (id|path)
    run_dir/train.log, metrics.jsonl     log and one JSON line of scalars per logged step
    run_dir/logs/                  TensorBoard (Accelerate's tracker)
    run_dir/checkpoints/step_NNNNNN/     Accelerate state (model, optimizer, scheduler, scaler, RNG), ema.pt
                                         + trainer_state.json (step, data position, config) + model.pt (exported)
    run_dir/model.pt               the latest exported model (own format, for inference)

A run stops cleanly (a state saved, as with ``train.max_minutes``) on SIGINT (Ctrl-C) or SIGTERM; running again
continues it exactly. See :mod:`.state` for what is checked before a state is resumed and :mod:`.resume` for the
settings that may change on resume.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration

from ..checkpoints import save_model
from ..config import ConfigError
from ..models import VocoderModel
from ..progress import progress_bar
from .build import FlowObjective, build_loaders, build_model, build_optimizer, drop_bad_validation_clips
from .checkpointing import EXPORT_TMP, check_changes, resume_trainer, save_trainer, saved_config
from .config import RunConfig
from .data import scan
from .ema import EMA
from .logs import ClipValidator, RunLog
from .state import StoppedBySignal, clean_partial, find_resume_state, state_name
from .utils import NonFiniteGuard, StopSignals, hparams, lr_factor, nll_scalars

log = logging.getLogger("waveflow.train")


class Trainer:
    """Builds everything from a :class:`RunConfig` and trains; see the module docstring for the run folder."""

    def __init__(self, cfg: RunConfig):
        if not cfg.train.run_dir:
            raise ConfigError("train.run_dir is required: the folder for checkpoints, logs and the exported model")
        self.cfg = cfg
        self.run_dir = Path(cfg.train.run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        t = cfg.train
        self.accelerator = Accelerator(
            mixed_precision=t.mixed_precision,
            gradient_accumulation_steps=t.grad_accum_steps,
            log_with=None if t.tracker == "none" else "tensorboard",
            project_config=ProjectConfiguration(project_dir=str(self.run_dir), logging_dir=str(self.run_dir / "logs")),
            cpu=t.cpu,
            # The schedule is a function of optimizer steps, whatever the number of processes.
            step_scheduler_with_optimizer=False,
        )
        self.main = self.accelerator.is_main_process
        self.step = self.epoch = self.batches_in_epoch = 0
        self.guard = NonFiniteGuard(t.max_nonfinite)
        self.ema: EMA | None = None
        self.last_state: str | None = None
        self.stopped_by: str | None = None  # the signal that stopped the last fit(), if any
        self.bad_clips: set[str] = set()  # training clips skipped for bad audio ("path: reason")
        self._bad_new: list[str] = []
        self.val_skipped = 0
        self._window: list[dict[str, float]] = []
        self.logs = RunLog(self.accelerator, self.run_dir)

    # ------------------------------------------------------------------ building
    def setup(self, prepare_only: bool = False) -> None:
        acc, cfg = self.accelerator, self.cfg
        self.logs.open()
        resume_from = self._find_resume_state()
        with acc.main_process_first():
            model = self._build_model(warm_start=resume_from is None)
            if resume_from is not None:  # before config.yaml is rewritten: it may be what the run was saved with
                check_changes(saved_config(resume_from, self.run_dir), self.cfg, resume_from)
            corpus = scan(cfg.data, cfg.mel.sample_rate, cfg.data.segment_length, cfg.data.val_segment_length or
                          cfg.mel.n_fft)
            self.val_skipped = len(drop_bad_validation_clips(corpus, cfg.mel.sample_rate))
            if self.main:
                self._write_run_files(corpus)
        log.info("%s (%s)", corpus.summary(), cfg.data.root)
        if prepare_only:
            return
        self.corpus = corpus
        self._build_loaders(corpus)
        objective = FlowObjective(model, cfg.mel, cfg.train.sigma)
        optimizer = build_optimizer(model, cfg.train)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg.train))
        self.objective, self.optimizer, self.train_dl, self.scheduler = acc.prepare(
            objective, optimizer, self.train_dl, scheduler
        )
        if self.val_dl is not None:
            self.val_dl = acc.prepare(self.val_dl)
        if cfg.train.ema_decay > 0:  # saved as ema.pt by save_checkpoint (not Accelerate's custom pickle)
            self.ema = EMA(self.model, cfg.train.ema_decay)
        self.validator = ClipValidator(self, corpus.splits["val"])
        if resume_from is not None:
            self._resume(resume_from)
        if acc.trackers == [] and cfg.train.tracker != "none":
            acc.init_trackers("waveflow", config=hparams(self.cfg))

    @property
    def model(self) -> VocoderModel:
        return self.accelerator.unwrap_model(self.objective).model

    def _build_model(self, warm_start: bool) -> VocoderModel:
        model, self.cfg = build_model(self.cfg, warm_start)
        return model

    def _build_loaders(self, corpus) -> None:
        self.sampler, self.train_dl, self.val_dl = build_loaders(self.cfg, corpus, self.accelerator.num_processes)

    def _write_run_files(self, corpus) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.yaml").write_text(self.cfg.to_yaml())
        corpus.write_lists(self.run_dir / "split")
        if corpus.skipped:
            (self.run_dir / "split" / "skipped.json").write_text(json.dumps(corpus.skipped, indent=2) + "\n")

    def close(self) -> None:
        """Flush and close the trackers (also after an error) and detach the log handlers."""
        self.accelerator.end_training()
        self.logs.close()

    # ------------------------------------------------------------------ resume
    def _find_resume_state(self) -> Path | None:
        if self.main:
            clean_partial(self.ckpt_dir)
            (self.run_dir / EXPORT_TMP).unlink(missing_ok=True)
        return find_resume_state(self.cfg.train.resume, self.run_dir, self.ckpt_dir)

    def _resume(self, state_dir: Path) -> None:
        resume_trainer(self, state_dir)

    # ------------------------------------------------------------------ training
    def fit(self) -> dict[str, float]:
        """Train to ``train.max_steps``; returns the last logged scalars."""
        t, acc = self.cfg.train, self.accelerator
        bar = progress_bar(total=t.max_steps, initial=self.step, desc="train", unit="step",
                           enabled=self.main and t.progress)  # whole lines, a few, when stderr is a log
        scalars: dict[str, float] = {}
        if self.step == 0 and t.validate_every and self.val_dl is not None:
            self.validator.run()  # the untrained baseline, so the curve starts where training starts
        self.stopped_by = None
        with StopSignals() as stop:  # Ctrl-C / SIGTERM: finish the step, save, stop (like max_minutes)
            tick = started = time.perf_counter()
            while self.step < t.max_steps:
                self.sampler.set_epoch(self.epoch)
                self.train_dl.set_epoch(self.epoch)
                loader = acc.skip_first_batches(self.train_dl, self.batches_in_epoch) if self.batches_in_epoch \
                    else self.train_dl
                for batch in loader:
                    self.batches_in_epoch += 1
                    if self.step == 0 and not self._window:
                        self.logs.record_shards(batch["ids"])
                    self._note_bad_clips(batch.get("bad", ()))
                    step_scalars = self.train_step(batch)
                    if step_scalars is None:
                        continue  # accumulating
                    now = time.perf_counter()
                    step_scalars["other/samples_per_s"] = step_scalars.pop("_samples") / max(now - tick, 1e-9)
                    tick = now
                    self.step += 1
                    bar.update(1)
                    scalars = self._after_step(step_scalars, bar) or scalars
                    tick = time.perf_counter()  # throughput of training alone, not of validation or saving
                    if self.step >= t.max_steps or self._should_stop(started, stop):
                        break
                else:
                    self.epoch, self.batches_in_epoch = self.epoch + 1, 0
                    continue
                if self.step < t.max_steps:  # left the loop on the time limit or a signal
                    self.stopped_by = stop.received
                    why = f"stopped by {stop.received}" if stop.received else \
                        f"time limit of train.max_minutes={t.max_minutes:g} reached"
                    log.info("step %d: %s; run again to continue", self.step, why)
                    break
            bar.close()
            if self.last_state != state_name(self.step):
                self.save_checkpoint()
        return scalars

    def _should_stop(self, started: float, stop: StopSignals) -> bool:
        """``train.max_minutes`` spent or a stop signal received, on any process (all stop at the same step)."""
        limit, acc = self.cfg.train.max_minutes, self.accelerator
        flags = [float(bool(limit) and time.perf_counter() - started > 60 * limit), float(stop.received is not None)]
        if acc.num_processes > 1:
            flags = acc.reduce(torch.tensor(flags, device=acc.device), reduction="sum").tolist()
            if flags[1] and not stop.received:
                stop.received = "a signal on another process"
        return any(flags)

    def _note_bad_clips(self, bad) -> None:
        """Training clips the data set skipped for this batch (unreadable, NaN/inf, absurd samples): named once
        (the main process names the others' at log steps), counted in the logs."""
        for entry in bad:
            if entry not in self.bad_clips:
                self.bad_clips.add(entry)
                self._bad_new.append(entry)
                log.warning("skipping a bad training clip: %s", entry)

    def batch_audio(self, batch: dict) -> torch.Tensor:
        """The ``(B, T)`` training audio of a batch (a hook: tests inject non-finite batches here)."""
        return batch["audio"]

    def train_step(self, batch: dict) -> dict[str, float] | None:
        """One micro-batch; at the end of an accumulation window, the optimizer step.

        Returns:
            ``None`` while accumulating, else the window's scalars (``loss/nll``, ``loss/bits_per_sample``,
            ``loss/nvidia``, ``nll/z``, ``nll/log_s``, ``nll/logdet_w``, ``other/grad_norm``, ``other/lr``,
            ``other/skipped``, plus ``_samples`` for the throughput).
        """
        acc = self.accelerator
        audio = self.batch_audio(batch)
        with acc.accumulate(self.objective):
            out = self.objective(audio)
            # Backward even through a non-finite loss: every process must join the gradient all-reduce;
            # the all-reduced gradient is then non-finite everywhere and all processes skip together.
            acc.backward(out.nll)
            self._window.append(nll_scalars(out, audio.numel() * acc.num_processes))
            if not acc.sync_gradients:
                return None
            return self._optimizer_step()

    def _optimizer_step(self) -> dict[str, float]:
        acc, t = self.accelerator, self.cfg.train
        grad_norm = float(acc.clip_grad_norm_(self.objective.parameters(), t.max_grad_norm or math.inf))
        finite = math.isfinite(grad_norm)
        skipped = 0.0
        if finite or acc.scaler is not None:
            self.optimizer.step()  # with fp16 the scaler skips non-finite steps itself and lowers the scale
        if not finite or acc.optimizer_step_was_skipped:
            skipped = 1.0
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        window, self._window = self._window, []
        scalars = {k: sum(w[k] for w in window) / len(window) for k in window[0] if k != "_samples"}
        scalars["_samples"] = sum(w["_samples"] for w in window)
        scalars.update({"other/grad_norm": grad_norm, "other/lr": self.scheduler.get_last_lr()[0],
                        "other/skipped": skipped})
        if not finite and acc.scaler is not None:
            # fp16: overflowing gradients are the loss scaler's business, a non-finite loss is ours. Agree on
            # it across processes (the condition above is the same everywhere, so all of them reduce).
            bad = torch.tensor(float(not math.isfinite(scalars["loss/nll"])), device=acc.device)
            finite = not float(acc.reduce(bad, reduction="sum"))
        if not finite:
            self.guard.hit(self.step, f"loss {scalars['loss/nll']:.4g}, grad norm {grad_norm}", self.last_state)
            log.warning("step %d: non-finite loss/gradient (loss %.4g, grad norm %s): update skipped (%d in a row)",
                        self.step + 1, scalars["loss/nll"], grad_norm, self.guard.in_a_row)
        elif not skipped:
            self.guard.ok()
            if self.ema is not None:
                self.ema.update(self.model)
        return scalars

    def _after_step(self, scalars: dict[str, float], bar) -> dict[str, float] | None:
        t = self.cfg.train
        logged = None
        if self.step % t.log_every == 0 or self.step == 1:
            logged = self.logs.log(self.step, scalars, self.guard.total, bar, self._bad_new, self.bad_clips)
            self._bad_new = []
        if t.validate_every and self.val_dl is not None and self.step % t.validate_every == 0:
            self.validator.run()
        if self.step % t.checkpoint_every == 0:
            if self.guard.in_a_row:  # keep the latest state a healthy one while steps are being skipped
                log.warning("step %d: not saving during a run of non-finite steps", self.step)
            else:
                self.save_checkpoint()
        return logged

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Accelerate state, EMA, trainer state and exported model into ``checkpoints/step_NNNNNN`` atomically."""
        return save_trainer(self)

    def export(self, path: Path) -> None:
        """The model (EMA weights if enabled) in waveflow's own format, for inference."""
        meta = {"name": self.run_dir.name, "origin": "waveflow-train", "step": self.step,
                "ema": self.ema is not None}
        if self.ema is not None:
            with self.ema.swapped_in(self.model):
                save_model(self.model, path, self.cfg.mel, meta)
        else:
            save_model(self.model, path, self.cfg.mel, meta)


def run(cfg: RunConfig, prepare_only: bool = False) -> dict[str, float]:
    """Train (or only scan the data and write the split with ``prepare_only``); the CLI's entry point.

    Raises:
        StoppedBySignal: SIGINT or SIGTERM stopped the run after saving a state (running again continues it).
    """
    trainer = Trainer(cfg)
    try:
        trainer.setup(prepare_only=prepare_only)
        scalars = {} if prepare_only else trainer.fit()
    finally:
        trainer.close()
    if trainer.stopped_by:
        raise StoppedBySignal(trainer.stopped_by, f"training stopped by {trainer.stopped_by} at step {trainer.step}; "
                                                  f"state {trainer.last_state} saved in {trainer.ckpt_dir}: run the "
                                                  "same command again to continue")
    return scalars
