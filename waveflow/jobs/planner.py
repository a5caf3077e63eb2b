"""Folder-in, mirrored-tree-out batch jobs: input discovery, per-file error capture, progress and summary.

A bad file never stops a batch: it is reported by name and reason, the others are processed, and the
summary says what happened. Existing outputs are skipped unless ``overwrite`` (so an interrupted run
resumes where it stopped); outputs are written by the caller through :func:`waveflow.audio.atomic_path`.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..audio import atomic_path
from ..errors import WaveflowError


class BatchError(WaveflowError, ValueError):
    """The batch cannot start (an input does not exist, nothing to do, output inside an input...)."""


@dataclass
class Item:
    """One input file and the path of its output relative to the output folder (without suffix change)."""

    source: Path
    relative: Path


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    base = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def discover(inputs: Iterable[str | Path], extensions: tuple[str, ...]) -> list[Item]:
    """Expand files, folders (recursive) and glob patterns into :class:`Item` s, sorted and de-duplicated.

    A folder's files keep their sub-folder structure in ``relative``; a single file is relative to its
    own folder; a glob's matches are relative to the pattern's first non-wildcard folder.

    Raises:
        BatchError: an input that is neither an existing file/folder nor a glob with matches.
    """
    items: dict[Path, Item] = {}
    exts = tuple(e.lower() for e in extensions)

    def add(path: Path, base: Path) -> None:
        resolved = path.resolve()
        if resolved not in items:
            items[resolved] = Item(path, path.relative_to(base) if base != path else Path(path.name))

    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and f.suffix.lower() in exts and not f.name.startswith("."):
                    add(f, path)
        elif path.is_file():
            add(path, path.parent)
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            files = [m for m in matches if m.is_file() and m.suffix.lower() in exts]
            if not files:
                raise BatchError(f"{text}: the pattern matches no {'/'.join(exts)} files")
            base = _glob_base(text)
            for f in files:
                add(f, base)
        else:
            raise BatchError(f"{text}: no such file or folder")
    return sorted(items.values(), key=lambda it: str(it.relative))


def check_output_dir(out_dir: Path, inputs: Iterable[str | Path]) -> None:
    """Refuse an output folder that is an input file, so nothing an input holds is overwritten."""
    out = out_dir.resolve()
    for raw in inputs:
        p = Path(str(raw))
        if p.is_file() and p.resolve() == out:
            raise BatchError(f"{out_dir}: the output folder is one of the input files")


@dataclass
class Failure:
    path: str
    reason: str


@dataclass
class Summary:
    """What a batch did. ``audio_seconds``/``wall_seconds`` give the real-time factor where it applies."""

    ok: int = 0
    skipped: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    warnings: list[Failure] = field(default_factory=list)

    @property
    def rtf(self) -> float | None:
        """Real-time factor: wall time / audio time (< 1 is faster than real time)."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds > 0 else None

    def fail(self, path: str | Path, reason: str) -> None:
        self.failed += 1
        self.failures.append(Failure(str(path), reason))

    def warn(self, path: str | Path, reason: str) -> None:
        self.warnings.append(Failure(str(path), reason))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rtf"] = self.rtf
        return d

    def report(self, stream=None, what: str = "files") -> None:
        stream = stream or sys.stderr
        for w in self.warnings:
            print(f"warning: {w.path}: {w.reason}", file=stream)
        for f in self.failures:
            print(f"failed: {f.path}: {f.reason}", file=stream)
        line = f"{self.ok} {what} written, {self.skipped} skipped (already done), {self.failed} failed"
        if self.audio_seconds > 0:
            line += f"; {self.audio_seconds:.1f} s of audio in {self.wall_seconds:.1f} s"
            line += f" (real-time factor {self.rtf:.3f})"
        print(line, file=stream)

    def write_json(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def run_per_file(
    items: list[Item],
    out_dir: Path,
    suffix: str,
    process: Callable[[Path, Path], float],
    overwrite: bool = False,
    desc: str = "processing",
    expected_errors: tuple[type[BaseException], ...] = (ValueError, OSError),
    progress: bool = True,
) -> Summary:
    """Run ``process(source, destination) -> audio seconds`` on each item; never stop on a bad file.

    Args:
        items: from :func:`discover`.
        out_dir: output root; each output is ``out_dir / relative`` with ``suffix``.
        suffix: output extension, e.g. ``.npy``.
        process: does the work and writes ``destination`` atomically; raises on a bad input.
        overwrite: redo items whose output exists (otherwise they are skipped).
        expected_errors: errors reported by their message alone; anything else is reported with its type.
    """
    summary = Summary()
    start = time.perf_counter()
    bar = tqdm(items, desc=desc, unit="file", disable=not progress or None, dynamic_ncols=True)
    for item in bar:
        dst = out_dir / item.relative.with_suffix(suffix)
        if dst.exists() and not overwrite:
            summary.skipped += 1
            continue
        try:
            summary.audio_seconds += process(item.source, dst)
            summary.ok += 1
        except expected_errors as e:
            summary.fail(item.source, _reason(e, item.source))
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
            summary.fail(item.source, f"unexpected {type(e).__name__}: {e}")
    summary.wall_seconds = time.perf_counter() - start
    return summary


def _reason(error: BaseException, path: Path) -> str:
    """The error's message without a leading ``path: `` (the report already names the file)."""
    text = str(error)
    for prefix in (f"{path}: ", f"{os.fspath(path)}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text
