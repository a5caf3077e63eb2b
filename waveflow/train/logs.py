"""What a training run tells: ``train.log`` and the console (without breaking the progress bar), one JSON line
of scalars per logged step in ``metrics.jsonl``, the tracker (TensorBoard), and which clips each process saw."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from accelerate.utils import gather_object

from .utils import TqdmHandler


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
