"""The one planner of the folder jobs (``mel``, ``vocode``, ``synth``): plan first, then work.

Planning resolves every input to its output path before anything is computed:

- the output folder is checked (:func:`~.outputs.check_output_dir`) and, when it lies inside an input folder,
  left out of the inputs;
- two inputs that would write one output (``spk1/utt.npy`` and ``spk2/utt.npy`` given as two folders, or
  ``a.wav`` beside ``a.flac``) are refused up front, naming both; an output that would replace an input too;
- the list is shared out (:mod:`.shard`), and outputs that exist are skipped unless ``overwrite`` (so an
  interrupted run resumes).

Working never stops on a bad file: it is reported by name and reason, the others are processed. Outputs go
through :class:`~.outputs.Scratch` (complete or absent, whatever kills the job); a full disk stops the job with
one message; Ctrl-C or SIGTERM stops it between files; either way the summary says what was written, skipped,
failed and not done, and how to continue.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .discover import BatchError, Found, Item, discover, kinds
from .outputs import DiskFull, Scratch, check_output_dir
from .shard import Part
from .summary import Summary, merge

__all__ = ["BatchError", "Item", "Plan", "Summary", "check_output_dir", "discover", "make_plan", "run_per_file"]


@dataclass
class Plan:
    """A planned job: this part's windows of items (see :mod:`.shard`), each with its output path."""

    out_dir: Path
    suffix: str
    found: Found
    windows: list[list[Item]]
    part: Part
    overwrite: bool = False

    def dest(self, item: Item) -> Path:
        return self.out_dir / item.relative.with_suffix(self.suffix)

    def todo(self, window: list[Item]) -> list[Item]:
        return [it for it in window if self.overwrite or not self.dest(it).exists()]

    def summary(self) -> Summary:
        """An empty summary of this part, with the discovery notes."""
        return Summary(notes=self.found.notes(), shard=self.part.label)


def make_plan(inputs: Iterable[str | Path], out_dir: str | Path, extensions: Iterable[str], suffix: str, *,
              overwrite: bool = False, part: Part | None = None, window: int | Callable[[int], int] = 1) -> Plan:
    """Discover the inputs, map them to outputs, check the output folder and collisions, take this part.

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
    size = window(len(found.items)) if callable(window) else window
    part = part or Part()
    return Plan(Path(out_dir), suffix, found, part.take(found.items, size), part, overwrite)


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


# ---------------------------------------------------------------------------------------------- working
class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM (e.g. from a cluster scheduler): the job stops cleanly between files."""

    def __init__(self, signame: str):
        super().__init__(signame)
        self.signame = signame


def interrupted_by(error: KeyboardInterrupt) -> str:
    return error.signame if isinstance(error, JobInterrupted) else "SIGINT"


@contextmanager
def sigterm_stops_cleanly() -> Iterator[None]:
    """While a job works, SIGINT and SIGTERM stop it cleanly (between files, with a summary). Once it is
    stopping, a SIGTERM (a launcher passing Ctrl-C on to its workers) is ignored so the clean-up finishes; a
    second Ctrl-C interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = []

    def stop(signum, frame):
        name = signal.Signals(signum).name
        if not stopping:
            stopping.append(name)
            raise JobInterrupted(name)
        if name == "SIGINT":
            raise KeyboardInterrupt

    before = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def run_per_file(
    plan: Plan,
    process: Callable[[Item, Path], float],
    desc: str = "processing",
    expected_errors: tuple[type[BaseException], ...] = (ValueError, OSError),
    progress: bool = True,
    summary: Summary | None = None,
) -> Summary:
    """Run ``process(item, temporary output path) -> audio seconds`` on each planned file of this part.

    ``process`` writes the output to the path it is given; it is moved onto the real output when complete.
    Never stops on a bad file; stops on a full disk, Ctrl-C or SIGTERM (see the module docstring).
    """
    summary = summary or plan.summary()
    start = time.perf_counter()
    items = [it for w in plan.windows for it in w]
    todo = [it for it in items if plan.overwrite or not plan.dest(it).exists()]
    summary.skipped += len(items) - len(todo)
    summary.left = len(todo)
    main = plan.part.launch is None or plan.part.launch.main
    bar = tqdm(todo, desc=desc, unit="file", disable=not (progress and main) or None, dynamic_ncols=True)
    with Scratch(plan.out_dir) as scratch, sigterm_stops_cleanly():
        try:
            for item in bar:
                try:
                    with scratch.output(plan.dest(item)) as tmp:
                        seconds = process(item, tmp)
                    summary.audio_seconds += seconds
                    summary.ok += 1
                except DiskFull as e:
                    summary.stopped = str(e)
                    break
                except expected_errors as e:
                    summary.fail(item.source, reason_of(e, item.source))
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


def reason_of(error: BaseException, path: Path) -> str:
    """The error's message without a leading ``path: `` (the report already names the file)."""
    return str(error).removeprefix(f"{path}: ")
