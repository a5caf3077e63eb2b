"""What a training run tells: ``train.log`` and the console (without breaking the progress bar), one JSON line
of scalars per logged step in ``metrics.jsonl``, the tracker (TensorBoard), which clips each process saw, and
the worst validation clips by bits per sample at each validation (:class:`ClipValidator`)."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from accelerate.utils import gather_object

from .utils import TqdmHandler, Validator

WORST_CLIPS = 5  # validation clips named at each validation, worst first


class RunLog:
    """The run's logs; only the main process writes (it speaks for all: scalars are averaged over processes)."""

    def __init__(self, accelerator, run_dir: Path):
        self.accelerator, self.run_dir = accelerator, run_dir
        self.main = accelerator.is_main_process
        self._handlers: list[logging.Handler] = []

    def open(self) -> None:
        logger = logging.getLogger("waveflow")
        if not self.main:
            logger.setLevel(logging.ERROR)  # one report per event: the main process speaks for all
            return
        logger.setLevel(logging.INFO)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        for handler in (logging.FileHandler(self.run_dir / "train.log"), TqdmHandler()):
            handler.setFormatter(fmt)
            logger.addHandler(handler)
            self._handlers.append(handler)

    def close(self) -> None:
        """Detach the log handlers (also after an error)."""
        for handler in self._handlers:
            logging.getLogger("waveflow").removeHandler(handler)
            handler.close()
        self._handlers.clear()

    def log(self, step: int, scalars: dict[str, float], skipped_total: int, bar, bad_new: list[str] = (),
            bad_seen: set[str] | None = None) -> dict[str, float]:
        """Average ``scalars`` over processes, send them to the tracker and ``metrics.jsonl``; returns them.

        ``bad_new``: training clips this process skipped since the last log (each process named its own; the
        main process names the others' here); ``bad_seen`` (the main process's set of all of them) gives
        ``data/skipped_clips``, the number of bad training clips met so far.
        """
        acc = self.accelerator
        names = sorted(scalars)
        values = torch.tensor([scalars[n] for n in names] + [len(bad_new)], dtype=torch.float64, device=acc.device)
        mean = acc.reduce(values, reduction="mean") if acc.num_processes > 1 else values
        out = dict(zip(names, mean.tolist()))
        if acc.num_processes > 1 and mean[-1] > 0:  # the same decision everywhere: all join the gather
            others = [entry for part in gather_object([list(bad_new)]) for entry in part]
            if self.main and bad_seen is not None:
                for entry in sorted(set(others) - bad_seen):
                    bad_seen.add(entry)
                    logging.getLogger("waveflow.train").warning("skipping a bad training clip: %s", entry)
        out["other/samples_per_s"] = scalars["other/samples_per_s"]  # already global
        out["other/skipped_total"] = float(skipped_total)
        out["data/skipped_clips"] = float(len(bad_seen or ()))
        acc.log(out, step=step)
        if self.main:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": step, **out}) + "\n")
            bar.set_postfix(nll=f"{out['loss/nll']:.4f}", bps=f"{out['loss/bits_per_sample']:.3f}", refresh=False)
        return out

    def record_shards(self, ids: list[str]) -> None:
        """Which clips each process saw in the first step: a cheap check that data parallelism shards."""
        shards = gather_object([list(ids)])
        if self.main:
            (self.run_dir / "data_shards.json").write_text(json.dumps(
                {f"process_{i}": s for i, s in enumerate(shards)}, indent=2) + "\n")


class ClipValidator(Validator):
    """The validation of :class:`~waveflow.train.utils.Validator` that also names the :data:`WORST_CLIPS` worst
    validation clips by bits per sample (the log, TensorBoard text ``val/worst_clips`` and a ``val/worst_clips``
    list in ``metrics.jsonl``), so drift towards bad data shows while training (``waveflow score`` finds such
    clips in a whole corpus)."""

    def _nll(self) -> float:
        tr = self.trainer
        acc = tr.accelerator
        values, ids = [], []
        for batch in tr.val_dl:
            values.append(acc.gather_for_metrics(tr.objective(batch["audio"]).nll_per_item.float()))
            ids += acc.gather_for_metrics(list(batch["ids"]), use_gather_object=True)
        nll = torch.cat(values)
        if acc.is_main_process and len(ids) == len(nll):
            self.log_worst(ids, (nll / math.log(2) + 15.0).tolist())
        return float(nll.mean())

    def log_worst(self, ids: list[str], bits: list[float]) -> list[dict]:
        tr = self.trainer
        worst = sorted(zip(bits, ids), reverse=True)[:WORST_CLIPS]
        rows = [{"id": i, "bits_per_sample": round(b, 4)} for b, i in worst]
        with open(tr.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": tr.step, "val/worst_clips": rows}) + "\n")
        if tr.cfg.train.tracker == "tensorboard":
            writer = tr.accelerator.get_tracker("tensorboard", unwrap=True)
            table = "| clip | bits per sample |\n|---|---|\n" + "".join(f"| {r['id']} | {r['bits_per_sample']:.3f} |\n"
                                                                     for r in rows)
            writer.add_text("val/worst_clips", table, tr.step)
        logging.getLogger("waveflow.train").info("step %d: worst validation clips: %s", tr.step, ", ".join(
            f"{r['id']} ({r['bits_per_sample']:.2f} bits)" for r in rows))
        return rows
