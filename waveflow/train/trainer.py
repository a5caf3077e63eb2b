"""Accelerate trainer: ``waveflow train --config FILE [key=value ...]``, the same under ``accelerate launch``.

Run folder::

    run_dir/config.yaml            resolved config (what actually ran)
    run_dir/split/{train,val,test}.txt   the hash split (id|path)
    run_dir/train.log, metrics.jsonl     log and one JSON line of scalars per logged step
    run_dir/logs/                  TensorBoard (Accelerate's tracker)
    run_dir/checkpoints/step_NNNNNN/     Accelerate state (model, optimizer, scheduler, scaler, RNG, EMA)
                                         + trainer_state.json (step, data position) + model.pt (exported)
    run_dir/model.pt               the latest exported model (own format, for inference)
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, gather_object
from tqdm import tqdm

from ..checkpoints import save_model
from ..config import ConfigError
from ..models import WaveGlow
from .build import FlowObjective, build_loaders, build_model, build_optimizer
from .config import RunConfig
from .data import scan
from .ema import EMA
from .logs import RunLog
from .state import (
    TrainingError,
    clean_partial,
    commit_state,
    find_resume_state,
    prune_states,
    read_trainer_state,
    state_name,
    tmp_state_dir,
    truncate_metrics,
)
from .utils import (
    NonFiniteGuard,
    Validator,
    fingerprint,
    hparams,
    lr_factor,
    nll_scalars,
)

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
        self._window: list[dict[str, float]] = []
        self.logs = RunLog(self.accelerator, self.run_dir)

    # ------------------------------------------------------------------ building
    def setup(self, prepare_only: bool = False) -> None:
        acc, cfg = self.accelerator, self.cfg
        self.logs.open()
        resume_from = self._find_resume_state()
        with acc.main_process_first():
            model = self._build_model(warm_start=resume_from is None)
            corpus = scan(cfg.data, cfg.mel.sample_rate, cfg.data.segment_length, cfg.data.val_segment_length or
                          cfg.mel.n_fft)
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
        if cfg.train.ema_decay > 0:
            self.ema = EMA(self.model, cfg.train.ema_decay)
            acc.register_for_checkpointing(self.ema)
        self.validator = Validator(self, corpus.splits["val"])
        if resume_from is not None:
            self._resume(resume_from)
        if acc.trackers == [] and cfg.train.tracker != "none":
            acc.init_trackers("waveflow", config=hparams(self.cfg))

    @property
    def model(self) -> WaveGlow:
        return self.accelerator.unwrap_model(self.objective).model

    def _build_model(self, warm_start: bool) -> WaveGlow:
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
        return find_resume_state(self.cfg.train.resume, self.run_dir, self.ckpt_dir)

    def _resume(self, state_dir: Path) -> None:
        self.accelerator.load_state(str(state_dir))
        state = read_trainer_state(state_dir)
        self.step, self.epoch, self.batches_in_epoch = state["step"], state["epoch"], state["batches_in_epoch"]
        self.guard.load_state_dict(state["guard"])
        self.last_state = state_dir.name
        if state.get("num_processes") != self.accelerator.num_processes:
            log.warning("resuming with %d processes, saved with %s: the data order continues only approximately",
                        self.accelerator.num_processes, state.get("num_processes"))
        if self.main:
            truncate_metrics(self.run_dir / "metrics.jsonl", self.step)
        log.info("resumed from %s: step %d, epoch %d, batch %d", state_dir, self.step, self.epoch,
                 self.batches_in_epoch)

    # ------------------------------------------------------------------ training
    def fit(self) -> dict[str, float]:
        """Train to ``train.max_steps``; returns the last logged scalars."""
        t, acc = self.cfg.train, self.accelerator
        bar = tqdm(total=t.max_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not (self.main and t.progress))
        scalars: dict[str, float] = {}
        if self.step == 0 and t.validate_every and self.val_dl is not None:
            self.validator.run()  # the untrained baseline, so the curve starts where training starts
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
                if self.step >= t.max_steps or self._out_of_time(started):
                    break
            else:
                self.epoch, self.batches_in_epoch = self.epoch + 1, 0
                continue
            if self.step < t.max_steps:  # left the loop on the time limit
                log.info("step %d: time limit of train.max_minutes=%g reached; run again to continue",
                         self.step, t.max_minutes)
                break
        bar.close()
        if self.last_state != state_name(self.step):
            self.save_checkpoint()
        return scalars

    def _out_of_time(self, started: float) -> bool:
        """``train.max_minutes`` spent (on any process: all processes stop at the same step)."""
        limit = self.cfg.train.max_minutes
        if not limit:
            return False
        over = torch.tensor(float(time.perf_counter() - started > 60 * limit), device=self.accelerator.device)
        return bool(self.accelerator.reduce(over, reduction="sum") > 0)

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
            logged = self.logs.log(self.step, scalars, self.guard.total, bar)
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
        """Accelerate state + trainer state + exported model into ``checkpoints/step_NNNNNN`` atomically."""
        acc = self.accelerator
        tmp = tmp_state_dir(self.ckpt_dir, self.step)
        acc.wait_for_everyone()
        if self.main:
            shutil.rmtree(tmp, ignore_errors=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        prints = gather_object([fingerprint(self.model)])
        if any(p != prints[0] for p in prints):  # every process sees the same list: all stop together
            raise TrainingError(f"data-parallel replicas diverged at step {self.step}: {prints}")
        final = self.ckpt_dir / state_name(self.step)
        if self.main:
            self.export(tmp / "model.pt")
            state = {"step": self.step, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch,
                     "guard": self.guard.state_dict(), "num_processes": acc.num_processes,
                     "replica_fingerprints": prints}
            commit_state(tmp, self.ckpt_dir, self.step, state)
            shutil.copyfile(final / "model.pt", self.run_dir / ".model.pt.tmp")
            (self.run_dir / ".model.pt.tmp").replace(self.run_dir / "model.pt")
            prune_states(self.ckpt_dir, self.cfg.train.keep_checkpoints)
            log.info("step %d: saved %s", self.step, final)
        acc.wait_for_everyone()
        self.last_state = final.name
        return final

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
    """Train (or only scan the data and write the split with ``prepare_only``); the CLI's entry point."""
    trainer = Trainer(cfg)
    try:
        trainer.setup(prepare_only=prepare_only)
        return {} if prepare_only else trainer.fit()
    finally:
        trainer.close()
