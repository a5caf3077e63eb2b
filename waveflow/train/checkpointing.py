"""Saving and resuming a run: the state folder a save writes, which settings may change on resume (and making
them take effect), and an exported model that is never older than the state it came from.

Settings that only steer the run from here on (learning rate and its schedule, when to stop, how often to
log, validate and save, the tracker, gradient clipping, data loader workers, where the corpus now lives) take
effect when given on resume. Settings the saved state depends on (model, features, data split and segments,
batch shape, seed, optimizer constants, precision, EMA) cannot change: resuming with a different one is refused,
listing each, rather than silently ignored or half applied.
"""

from __future__ import annotations

import filecmp
import logging
import shutil
from pathlib import Path
from typing import Any

from ..audio import atomic_path
from ..config import ConfigError, from_dict, load_yaml, plain, to_dict
from .state import (
    TrainingError,
    commit_state,
    prune_states,
    read_trainer_state,
    state_name,
    tmp_state_dir,
    truncate_metrics,
)
from .utils import fingerprint, lr_factor

log = logging.getLogger("waveflow.train")

CHANGEABLE = frozenset({
    "train.lr", "train.lr_schedule", "train.warmup_steps", "train.lr_min_ratio", "train.max_steps",
    "train.max_minutes", "train.log_every", "train.validate_every", "train.val_max_items", "train.val_audio_clips",
    "train.val_sigma", "train.checkpoint_every", "train.keep_checkpoints", "train.resume", "train.init_from",
    "train.max_nonfinite", "train.tracker", "train.progress", "train.max_grad_norm", "train.run_dir", "train.cpu",
    "data.num_workers", "data.root",
})
EXPORT_TMP = ".model.pt.tmp"


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}`` (nested configs too)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_changes(saved: dict | None, cfg) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, new value)}`` for every setting that differs from the saved run's."""
    if not saved:
        return {}
    old, new = flat(plain(_with_defaults(saved, type(cfg)))), flat(plain(to_dict(cfg)))
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def _with_defaults(saved: dict, cls) -> dict:
    """The saved config with the defaults of settings it predates filled in (a run saved before ``model.type``
    existed is a WaveGlow run, not one whose type changed); as saved if this waveflow cannot read it."""
    try:
        return to_dict(from_dict(cls, saved))
    except (ConfigError, TypeError, ValueError):
        return saved


def check_changes(saved: dict | None, cfg, state_dir: Path) -> dict[str, tuple[Any, Any]]:
    """The changed settings (logged); :class:`TrainingError` listing those that cannot change on resume."""
    changes = config_changes(saved, cfg)
    fixed = {k: v for k, v in changes.items() if k not in CHANGEABLE}
    if fixed:
        listing = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in fixed.items())
        raise TrainingError(
            f"{state_dir}: these settings cannot change when resuming (the saved state depends on them): {listing}. "
            "Give the saved values, or start a new run in another train.run_dir (train.init_from=RUN_DIR/model.pt "
            "starts it from this run's weights). What may change on resume: " + ", ".join(sorted(CHANGEABLE)))
    for k, (a, b) in changes.items():
        if k not in ("train.resume", "train.run_dir"):
            log.info("resuming with %s = %r (was %r)", k, b, a)
    return changes


def apply_schedule(optimizer, scheduler, train_cfg) -> None:
    """Make ``train.lr`` and its schedule the config's (a loaded scheduler state brings back the saved ``lr``).

    With unchanged settings this recomputes exactly the learning rate the saved state holds.
    """
    inner = getattr(scheduler, "scheduler", scheduler)  # Accelerate wraps it
    factor = lr_factor(train_cfg)(inner.last_epoch)
    inner.base_lrs = [train_cfg.lr for _ in inner.base_lrs]
    for group in optimizer.param_groups:
        group["initial_lr"] = train_cfg.lr
        group["lr"] = train_cfg.lr * factor
    inner._last_lr = [group["lr"] for group in optimizer.param_groups]


def refresh_export(state_dir: Path, run_dir: Path) -> bool:
    """Make ``run_dir/model.pt`` the export of ``state_dir`` if it is missing or differs (an export that a kill
    interrupted); returns whether it was copied."""
    source, exported = state_dir / "model.pt", run_dir / "model.pt"
    (run_dir / EXPORT_TMP).unlink(missing_ok=True)
    if not source.is_file() or (exported.is_file() and filecmp.cmp(source, exported, shallow=False)):
        return False
    with atomic_path(exported) as tmp:
        shutil.copyfile(source, tmp)
    log.info("%s was not the export of %s (an interrupted export?): copied it again", exported, state_dir.name)
    return True


def saved_config(state_dir: Path, run_dir: Path) -> dict | None:
    """The config the state was saved with (older states: the run's config.yaml, if still there)."""
    saved = read_trainer_state(state_dir).get("config")
    if saved is None and (run_dir / "config.yaml").is_file():
        saved = load_yaml(run_dir / "config.yaml")
    return saved


def resume_trainer(trainer, state_dir: Path) -> None:
    """Load a verified state into a set-up :class:`~waveflow.train.trainer.Trainer`: Accelerate's part, the EMA
    (weights-only), the step and data position; then the config's learning rate and a fresh export."""
    acc, cfg = trainer.accelerator, trainer.cfg
    try:
        acc.load_state(str(state_dir))
        if trainer.ema is not None:
            trainer.ema.load(state_dir)
    except (ValueError, RuntimeError, OSError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainingError(state_dir, f"cannot resume from this state ({first})") from None
    apply_schedule(trainer.optimizer, trainer.scheduler, cfg.train)  # a new train.lr takes effect
    state = read_trainer_state(state_dir)
    trainer.step, trainer.epoch, trainer.batches_in_epoch = state["step"], state["epoch"], state["batches_in_epoch"]
    trainer.guard.load_state_dict(state["guard"])
    trainer.bad_clips = set(state.get("bad_clips", []))
    trainer.last_state = state_dir.name
    if state.get("num_processes") != acc.num_processes:
        log.warning("resuming with %d processes, saved with %s: the data order continues only approximately",
                    acc.num_processes, state.get("num_processes"))
    if trainer.main:
        truncate_metrics(trainer.run_dir / "metrics.jsonl", trainer.step)
        refresh_export(state_dir, trainer.run_dir)
    log.info("resumed from %s: step %d, epoch %d, batch %d", state_dir, trainer.step, trainer.epoch,
             trainer.batches_in_epoch)
    if trainer.step >= cfg.train.max_steps:
        log.info("already at step %d, train.max_steps=%d: nothing to train (raise train.max_steps to go on)",
                 trainer.step, cfg.train.max_steps)


def save_trainer(trainer) -> Path:
    """Accelerate state (every process), then on the main process the exported model, ``ema.pt`` and
    ``trainer_state.json`` (step, data position, guard, config) into ``checkpoints/step_NNNNNN``, committed in one
    rename; then ``run_dir/model.pt`` (a kill while it is copied is repaired on resume)."""
    from accelerate.utils import gather_object

    acc, step = trainer.accelerator, trainer.step
    tmp = tmp_state_dir(trainer.ckpt_dir, step)
    acc.wait_for_everyone()
    if trainer.main:
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    prints = gather_object([fingerprint(trainer.model)])
    if any(p != prints[0] for p in prints):  # every process sees the same list: all stop together
        raise TrainingError(f"data-parallel replicas diverged at step {step}: {prints}")
    final = trainer.ckpt_dir / state_name(step)
    if trainer.main:
        trainer.export(tmp / "model.pt")
        if trainer.ema is not None:
            trainer.ema.save(tmp)
        state = {"step": step, "epoch": trainer.epoch, "batches_in_epoch": trainer.batches_in_epoch,
                 "guard": trainer.guard.state_dict(), "num_processes": acc.num_processes,
                 "replica_fingerprints": prints, "bad_clips": sorted(trainer.bad_clips),
                 "config": plain(to_dict(trainer.cfg))}
        commit_state(tmp, trainer.ckpt_dir, step, state)
        shutil.copyfile(final / "model.pt", trainer.run_dir / EXPORT_TMP)
        (trainer.run_dir / EXPORT_TMP).replace(trainer.run_dir / "model.pt")
        prune_states(trainer.ckpt_dir, trainer.cfg.train.keep_checkpoints)
        log.info("step %d: saved %s", step, final)
    acc.wait_for_everyone()
    trainer.last_state = final.name
    return final
