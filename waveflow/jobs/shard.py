"""Sharing a folder job's planned file list: between the processes of one launch (``accelerate launch``,
``torchrun``, ``mpirun``) and between the tasks of a job array (``--shard K/N``).

The plan (every input and its output, sorted) is the same in every process, so no process needs to tell the
others what to do: the list is cut into windows of consecutive files and the windows are dealt round-robin,
window ``w`` to part ``w mod parts``. Each file lands in exactly one part. A file's batch (which files share
it) depends only on its window, never on how many parts there are, so outputs are the same, bit for bit, on
one process or many. Accelerate is imported only when the job really was started as several processes.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .discover import BatchError

# Environment variables in which launchers say how many processes they started (torchrun and accelerate
# launch: WORLD_SIZE; mpirun: the others).
WORLD_VARS = ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")
MAX_WINDOW = 128


def launched_processes() -> int:
    """How many processes the launcher started (1 when not launched), from the environment alone."""
    sizes = [int(os.environ[v]) for v in WORLD_VARS if os.environ.get(v, "").isdigit()]
    return max(sizes, default=1)


class Launch:
    """The processes sharing this job: this one alone, or those a launcher started (one Accelerate
    ``PartialState``: rank, device, and gathering each process's summary on every process)."""

    def __init__(self, device: str = "auto") -> None:
        self.rank, self.local_rank, self.world = 0, 0, launched_processes()
        self._state = None
        if self.world > 1:
            try:
                from accelerate import PartialState
            except ModuleNotFoundError:
                raise BatchError(f"this job was started as one of {self.world} processes, and sharing the work "
                                 "between them needs accelerate: pip install \"waveflow[train]\"") from None
            import torch

            # On CPU (asked for, or no GPU here) the processes talk over gloo; Accelerate only takes that road
            # when told, otherwise it sees one process.
            self._state = PartialState(cpu=str(device).startswith("cpu") or not torch.cuda.is_available())
            self.rank, self.local_rank = self._state.process_index, self._state.local_process_index
            self.world = self._state.num_processes

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, obj) -> list:
        """``[obj of process 0, obj of process 1, ...]`` on every process."""
        if self.world == 1:
            return [obj]
        from accelerate.utils import gather_object

        return gather_object([obj])

    def close(self) -> None:
        """End the process group (the job's talking is done)."""
        if self._state is not None:
            self._state.destroy_process_group()
            self._state = None

    def device(self, requested: str) -> str:
        """The device this process works on: under a launch, ``auto`` and ``cuda`` mean this process's own
        device (``cuda:<local rank>``), so processes do not pile onto one GPU."""
        if self._state is not None and requested in ("auto", "cuda"):
            own = str(self._state.device)
            if requested == "auto" or own.startswith("cuda"):
                return own
        return requested


@dataclass(frozen=True)
class Part:
    """Which share of the plan this process does: part ``index`` of ``count`` (see the module docstring)."""

    index: int = 0
    count: int = 1
    label: str | None = None  # "K/N" of --shard, for the summary
    launch: Launch | None = None

    def take(self, items: Sequence, window: int = 1) -> list[list]:
        """This part's windows of ``window`` consecutive items."""
        windows = [list(items[i : i + window]) for i in range(0, len(items), window)]
        return windows[self.index :: self.count]


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)``: shard K (counted from 0) of N."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise BatchError(f"--shard {text}: expected K/N with K from 0 to N-1 (e.g. 0/4, 1/4, 2/4, 3/4 for four "
                         "tasks; with a SLURM array --array=0-3: --shard $SLURM_ARRAY_TASK_ID/4)")
    return int(m.group(1)), int(m.group(2))


def make_part(shard: str | None = None, launch: Launch | None = None) -> Part:
    """This process's part: shard K/N (``--shard``), and within it this process's share of a launch."""
    k, n = parse_shard(shard) if shard else (0, 1)
    rank, world = (launch.rank, launch.world) if launch else (0, 1)
    return Part(k * world + rank, n * world, f"{k}/{n}" if shard else None, launch)


def batch_window(n_items: int) -> int:
    """Files batched together come from one window of this many consecutive planned files: small jobs still
    spread over processes, big ones batch well. It depends on the plan alone (not on the number of parts)."""
    return min(MAX_WINDOW, max(1, math.ceil(n_items / 16)))
