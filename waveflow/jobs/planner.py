"""The one planner of the folder jobs (``mel``, ``vocode``, ``synth``): plan first, then work.

Planning (:func:`make_plan`) resolves every input to its output path once, before anything is loaded or
computed (a command makes the plan, then loads its model, then hands both to the job):

- the output folder is checked (:func:`~.outputs.check_output_dir`, its scratch area included) and, when it lies
  inside an input folder, left out of the inputs;
- two inputs that would write one output (``spk1/utt.npy`` and ``spk2/utt.npy`` given as two folders, or
  ``a.wav`` beside ``a.flac``) are refused up front, naming both; an output that would replace an input too;
- an output the file system cannot take (a name longer than it allows) or that would be written through a
  symbolic link inside the output folder is refused for that file alone, reported by name with the others done;
- the list is shared out (:mod:`.shard`), and outputs that exist are skipped unless ``overwrite`` (so an
  interrupted run resumes).

Working never stops on a bad file: it is reported by name and reason, the others are processed. Outputs go
through :class:`~.scratch.Scratch` (complete or absent, whatever kills the job); a full disk stops the job with
one message; Ctrl-C or SIGTERM stops it between files (:class:`~waveflow.train.utils.StopSignals`, the policy
training uses too); either way the summary says what was written, skipped, failed and not done, and how to
continue.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..train.utils import StopRequested, StopSignals
from .discover import BatchError, Found, Item, discover, kinds
from .outputs import DiskFull, check_output_dir, exists, name_limit, output_problem
from .scratch import Scratch
from .shard import Part
from .summary import Summary, merge

__all__ = ["BatchError", "Item", "Plan", "Summary", "check_output_dir", "discover", "file_seed", "make_plan",
           "run_per_file"]


@dataclass
class Plan:
    """A planned job: this part's windows of items (see :mod:`.shard`), each with its output path; ``refused``:
    the items whose output cannot be written, with the reason (they fail, the others are done)."""

    out_dir: Path
    suffix: str
    found: Found
    windows: list[list[Item]]
    part: Part
    overwrite: bool = False
    refused: dict[Item, str] = field(default_factory=dict)

    def dest(self, item: Item) -> Path:
        return self.out_dir / item.relative.with_suffix(self.suffix)

    def todo(self, window: list[Item]) -> list[Item]:
        return [it for it in window if it not in self.refused and (self.overwrite or not exists(self.dest(it)))]

    def summary(self) -> Summary:
        """A summary of this part before any work: the discovery notes, the refused outputs as failures, the
        finished outputs as skipped, and what is to do as ``left``."""
        summary = Summary(notes=self.found.notes(), shard=self.part.label)
        for item in (it for w in self.windows for it in w if it in self.refused):
            summary.fail(item.source, self.refused[item])
        summary.left = sum(len(self.todo(w)) for w in self.windows)
        summary.skipped = sum(map(len, self.windows)) - summary.left - summary.failed
        return summary


def make_plan(inputs: Iterable[str | Path], out_dir: str | Path, extensions: Iterable[str], suffix: str, *,
              overwrite: bool = False, part: Part | None = None, window: int | Callable[[int], int] = 1) -> Plan:
    """Discover the inputs, map them to outputs, check the output folder, collisions and output names, take
    this part.

    Args:
        extensions: input file types (lower case, with the dot).
        suffix: the outputs' extension, e.g. ``.wav``.
        window: files per window (or a function of the number of inputs giving it); see :mod:`.shard`.

    Raises:
        BatchError: bad output folder, missing input, nothing to do, or colliding outputs (before any work).
    """
    inputs = [str(i) for i in inputs]
    out = check_output_dir(out_dir, inputs)
    inside = any(Path(i).is_dir() and Path(i).resolve() in out.parents for i in inputs)
    found = discover(inputs, extensions, exclude=out if inside else None)
    if not found.items:
        left_out = "; ".join(found.notes())
        raise BatchError(f"no {kinds(tuple(extensions))} files in {', '.join(inputs)}" +
                         (f" ({left_out})" if left_out else ""))
    check_collisions(found.items, Path(out_dir), out, suffix, inputs)
    limit, links = name_limit(Path(out_dir)), {}
    refused = {}
    for item in found.items:
        problem = output_problem(Path(out_dir), item.relative.with_suffix(suffix), limit, links)
        if problem:
            refused[item] = problem
    size = window(len(found.items)) if callable(window) else window
    part = part or Part()
    return Plan(Path(out_dir), suffix, found, part.take(found.items, size), part, overwrite, refused)


def check_collisions(items: list[Item], out_dir: Path, resolved_out: Path, suffix: str, inputs: list[str]) -> None:
    """Refuse two inputs mapped to one output, and outputs that would replace an input file."""
    first: dict[str, Item] = {}
    clashes = []
    for item in items:
        key = item.relative.with_suffix(suffix).as_posix()
        if key in first:
            clashes.append(f"{first[key].source} and {item.source} -> {out_dir / key}")
        else:
            first[key] = item
    if clashes:
        more = f" (and {len(clashes) - 3} more)" if len(clashes) > 3 else ""
        hint = ("give their common parent folder instead (its tree is mirrored in the output), or one -o per "
                "folder" if sum(Path(i).is_dir() for i in inputs) > 1 else "rename one of each pair")
        raise BatchError(out_dir, f"{len(clashes)} output(s) would be written by two inputs: "
                                  f"{'; '.join(clashes[:3])}{more}; nothing was written. To keep them apart, {hint}")
    if any(resolved_out in Path(i).resolve().parents for i in inputs):  # inputs inside the output folder
        sources = {it.source.resolve() for it in items}
        for key, item in first.items():
            if (resolved_out / key) in sources:
                raise BatchError(item.source, f"its output {out_dir / key} would replace an input file; choose "
                                              "another -o")


def file_seed(seed: int, key: Path | str) -> int:
    """A file's 63-bit latent seed from the base seed and its relative path (``key``), from the path's bytes
    (``os.fsencode``), so any name the file system allows has one. For names that are valid UTF-8 it equals
    :func:`waveflow.inference.runtime.derive_seed` (``seed``, the name as text), as it always did."""
    name = os.fsencode(key.as_posix() if isinstance(key, Path) else key)
    digest = hashlib.blake2b(f"{seed}\0".encode() + name, digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


# ---------------------------------------------------------------------------------------------- working
JobInterrupted = StopRequested  # the name the jobs knew it by


def stop_signals() -> StopSignals:
    """The stop policy while a job works (see :class:`~waveflow.train.utils.StopSignals`): the first signal
    stops it where it is; the file under way is dropped, finished outputs stay."""
    return StopSignals(at_once=True)


def interrupted_by(error: KeyboardInterrupt) -> str:
    return error.signame if isinstance(error, StopRequested) else "SIGINT"


def run_per_file(
    plan: Plan,
    process: Callable[[Item, Path, Path], float],
    desc: str = "processing",
    expected_errors: tuple[type[BaseException], ...] = (ValueError, OSError),
    progress: bool = True,
    summary: Summary | None = None,
) -> Summary:
    """Run ``process(item, temporary output path, path to read) -> audio seconds`` on each planned file of this
    part.

    ``process`` reads the input from the path it is given (``item.source``, or a link to it with a name soundfile
    takes) and writes the output to the temporary path; that is moved onto the real output when complete.
    Never stops on a bad file; stops on a full disk, Ctrl-C or SIGTERM (see the module docstring).
    """
    summary = summary or plan.summary()
    start = time.perf_counter()
    todo = [it for w in plan.windows for it in plan.todo(w)]
    main = plan.part.launch is None or plan.part.launch.main
    bar = tqdm(todo, desc=desc, unit="file", disable=not (progress and main) or None, dynamic_ncols=True)
    with Scratch(plan.out_dir) as scratch, stop_signals():
        try:
            for item in bar:
                source = item.source
                try:
                    with scratch.output(plan.dest(item)) as tmp, scratch.readable(item.source) as source:
                        seconds = process(item, tmp, source)
                    summary.audio_seconds += seconds
                    summary.ok += 1
                except DiskFull as e:
                    summary.stopped = str(e)
                    break
                except expected_errors as e:
                    summary.fail(item.source, reason_of(e, item.source, read_as=source))
                except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
                    summary.fail(item.source, f"unexpected {type(e).__name__}: {e}")
                summary.left -= 1
        except KeyboardInterrupt as e:
            summary.interrupted = interrupted_by(e)
        finally:
            bar.close()
    summary.wall_seconds = time.perf_counter() - start
    return conclude(summary, plan)


def conclude(summary: Summary, plan: Plan) -> Summary:
    """Under a launch, every process gets the merged summary (only the main one reports it). An interrupted
    process does not wait for the others: it reports its own share."""
    launch = plan.part.launch
    if launch is None or launch.world == 1:
        return summary
    if summary.interrupted:
        summary.shard = f"process {launch.rank} of {launch.world}" + (f", shard {summary.shard}" if summary.shard else "")
        launch.close()
        return summary
    merged = merge(launch.gather(summary.to_dict()))
    merged.main = launch.main
    launch.close()
    return merged


def reason_of(error: BaseException, path: Path, read_as: Path | None = None) -> str:
    """The error's message without a leading ``path: `` (the report already names the file); ``read_as``, the
    link ``path`` was read through, is named as ``path``."""
    text = str(error) if read_as is None else str(error).replace(str(read_as), str(path))
    return text.removeprefix(f"{path}: ")
