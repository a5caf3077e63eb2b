"""Finding a folder job's inputs: files, folders (recursive) and globs, and an account of what was left out.

Folders are walked following symbolic links (each real folder once, so a link loop ends); hidden files and
folders (``.name``) are left out, and so is the job's own output folder when it lies inside an input folder
(``synth IN -o IN/out`` never takes its outputs for inputs). What is left out is reported: by name when it
looks like an input that cannot be used (a dangling symbolic link, an unreadable file or folder), as counts
otherwise (files of other types, hidden files, the output folder's files).
"""

from __future__ import annotations

import glob
import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from ..errors import WaveflowError

# soundfile format name -> the file extensions it is known by. RAW (no header: rate and sample format unknown)
# and MAT4/MAT5 (Matlab data files, rarely audio) are left out on purpose.
_FORMAT_EXTENSIONS = {
    "AIFF": (".aiff", ".aif", ".aifc"), "AU": (".au", ".snd"), "AVR": (".avr",), "CAF": (".caf",),
    "FLAC": (".flac",), "HTK": (".htk",), "SVX": (".svx", ".iff"), "MPC2K": (".mpc2k",), "MP3": (".mp3",),
    "OGG": (".ogg", ".oga", ".opus"), "PAF": (".paf",), "PVF": (".pvf",), "RF64": (".rf64",), "SD2": (".sd2",),
    "SDS": (".sds",), "IRCAM": (".sf", ".ircam"), "VOC": (".voc",), "W64": (".w64",), "WAV": (".wav", ".wave"),
    "NIST": (".nist", ".sph"), "WAVEX": (".wav",), "WVE": (".wve",), "XI": (".xi",),
}


def audio_extensions() -> tuple[str, ...]:
    """Every audio file extension the installed soundfile (libsndfile) reads, e.g. ``.wav``, ``.flac``, ``.oga``."""
    formats = sf.available_formats()
    return tuple(sorted({ext for name, exts in _FORMAT_EXTENSIONS.items() if name in formats for ext in exts}))


AUDIO_INPUTS = audio_extensions()


class BatchError(WaveflowError, ValueError):
    """The batch cannot start (an input does not exist, nothing to do, a bad output folder, colliding outputs)."""


@dataclass(frozen=True)
class Item:
    """One input file and its output path relative to the output folder (before the suffix changes)."""

    source: Path
    relative: Path


@dataclass
class Found:
    """What :func:`discover` found: the inputs, and what it left out (named, or counted by reason)."""

    items: list[Item]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: Counter = field(default_factory=Counter)

    def notes(self) -> list[str]:
        """One line per named skip, then one line with the counts."""
        lines = [f"skipped {path}: {reason}" for path, reason in self.skipped]
        if self.ignored:
            counts = ", ".join(f"{n} {reason}" for reason, n in sorted(self.ignored.items()))
            lines.append(f"left out of the inputs: {counts}")
        return lines


def kinds(extensions: Iterable[str]) -> str:
    """``.npy/.pt``, or ``audio`` for the long list of audio extensions (for messages)."""
    exts = tuple(extensions)
    return "audio" if len(exts) > 4 else "/".join(exts)


def _glob_base(pattern: str) -> Path:
    base = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be an input file, said as it is (a dangling link, a link to a device, a FIFO, ...), or
    ``None`` for a regular file (or a link to one). Reading a FIFO or a device would wait forever or never end."""
    try:
        target = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return f"dangling symbolic link (to {os.readlink(path)})"
        return None
    except OSError as e:
        return f"cannot look at it ({e.strerror})"
    if stat.S_ISREG(target.st_mode) or stat.S_ISDIR(target.st_mode):
        return None
    kind = next((what for test, what in _KINDS if test(target.st_mode)), "not a regular file")
    if os.path.islink(path):
        return f"a symbolic link to {kind} ({os.readlink(path)}), not a regular file"
    return f"{kind}, not a regular file"


class _Walk:
    """Collects items, de-duplicated by the real path of the file."""

    def __init__(self, extensions: Iterable[str], exclude: Path | None):
        self.exts = tuple(e.lower() for e in extensions)
        self.exclude = exclude
        self.items: dict[Path, Item] = {}
        self.found = Found([])

    def add(self, path: Path, base: Path) -> None:
        resolved = path.resolve()
        if resolved not in self.items:
            self.items[resolved] = Item(path, path.relative_to(base) if base != path else Path(path.name))

    def consider(self, path: Path, base: Path) -> None:
        """A file met while walking a folder or expanding a glob."""
        name = path.name
        if name.startswith("."):
            self.found.ignored["hidden files"] += 1
        elif path.suffix.lower() not in self.exts:
            self.found.ignored[f"{path.suffix.lower() or 'extensionless'} files"] += 1
        elif self.exclude is not None and _inside(path.resolve().parent, self.exclude):
            self.found.ignored["files in the output folder"] += 1
        elif why := not_a_file(path):
            self.found.skipped.append((str(path), why))
        elif not path.is_file():
            self.found.skipped.append((str(path), "a folder, not a file"))
        elif not os.access(path, os.R_OK):
            self.found.skipped.append((str(path), "not readable (permission denied)"))
        else:
            self.add(path, base)

    def folder(self, root: Path) -> None:
        seen: set[tuple[int, int]] = set()

        def unreadable(error: OSError) -> None:
            self.found.skipped.append((str(error.filename), f"folder not readable ({error.strerror})"))

        for current, dirs, files in os.walk(root, followlinks=True, onerror=unreadable):
            here = Path(current)
            st = here.stat()
            if (st.st_dev, st.st_ino) in seen:  # a link back up the tree: walk each real folder once
                dirs[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            keep = []
            for d in sorted(dirs):
                sub = here / d
                if d.startswith("."):
                    self.found.ignored["hidden folders"] += 1
                elif self.exclude is not None and sub.resolve() == self.exclude:
                    self.found.ignored["output folder (inside an input folder)"] += 1
                elif sub.is_symlink() and not sub.exists():
                    self.found.skipped.append((str(sub), f"dangling symbolic link (to {os.readlink(sub)})"))
                else:
                    keep.append(d)
            dirs[:] = keep
            for f in sorted(files):
                self.consider(here / f, root)


def discover(inputs: Iterable[str | Path], extensions: Iterable[str], exclude: str | Path | None = None) -> Found:
    """Expand files, folders (recursive) and glob patterns into :class:`Item` s, sorted and de-duplicated.

    A folder's files keep their sub-folder structure in ``relative``; a single file is relative to its own
    folder; a glob's matches are relative to the pattern's first non-wildcard folder. A file named on its own is
    taken whatever its extension.

    Args:
        extensions: lower-case extensions with the dot; a folder's other files are left out (counted).
        exclude: a folder (the output folder) whose files are never inputs.

    Raises:
        BatchError: an input that is neither an existing file/folder nor a glob with matches.
    """
    walk = _Walk(extensions, Path(exclude).resolve() if exclude is not None else None)
    for raw in inputs:
        text = str(raw)
        path = Path(text)
        if path.is_dir():
            walk.folder(path)
        elif path.is_file():
            walk.add(path, path.parent)
        elif os.path.lexists(path):  # there, but a dangling link, a FIFO, a device, ...
            raise BatchError(path, not_a_file(path) or "not a regular file")
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            base = _glob_base(text)
            before = len(walk.items) + len(walk.found.skipped)
            for m in matches:
                if not m.is_dir():
                    walk.consider(m, base)
            if len(walk.items) + len(walk.found.skipped) == before:
                raise BatchError(f"{text}: the pattern matches no {kinds(walk.exts)} files")
        else:
            raise BatchError(f"{text}: no such file or folder")
    walk.found.items = sorted(walk.items.values(), key=lambda it: str(it.relative))
    return walk.found
