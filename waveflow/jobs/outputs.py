"""Where a folder job writes, checked before any work: the output folder, its scratch area, each output's
name; and a full disk, told once. The temporaries themselves are :mod:`.scratch`'s.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .discover import BatchError

TMP_NAME = ".waveflow-tmp"
FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
# A write that failed without an errno (libsndfile says "System error", numpy "requested and written") is taken
# for a full disk when less than this (or the output's own size) is free afterwards.
FULL_MARGIN = 16 << 20


class DiskFull(BatchError):
    """The output's file system is full: the job stops (nothing partial is left among the outputs)."""


def check_output_dir(out_dir: str | Path, inputs) -> Path:
    """Refuse an output folder that cannot work, before any work; returns it resolved.

    Refused: an existing file (not a folder); one of the input files; one of the input folders (outputs would
    mix with the inputs; a folder *inside* an input folder is fine, it is left out of the inputs); a folder
    that cannot be created or written to.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BatchError(out, "the output folder exists and is not a folder; choose another -o")
    resolved = out.resolve()
    for raw in inputs:
        p = Path(str(raw))
        if p.is_file() and p.resolve() == resolved:
            raise BatchError(out, "the output folder is one of the input files")
        if p.is_dir() and p.resolve() == resolved:
            raise BatchError(out, "the output folder is also an input folder (outputs would mix with the inputs); "
                                  "choose another -o, e.g. a sub-folder (it is then left out of the inputs)")
    probe = resolved
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise BatchError(out, f"cannot create the output folder: {probe} is a file")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise BatchError(out, f"cannot write there ({probe}: permission denied)")
    check_scratch_area(out)
    return resolved


def check_scratch_area(out: Path) -> None:
    """Refuse an ``OUT/.waveflow-tmp`` that is not a plain folder of this user's (see the module docstring)."""
    area = out / TMP_NAME
    try:
        st = os.lstat(area)
    except FileNotFoundError:
        return
    except OSError as e:
        raise BatchError(area, f"cannot check waveflow's temporary folder ({e.strerror})") from None
    why = scratch_refusal(st, area)
    if why:
        raise BatchError(area, f"{why}; waveflow keeps its temporaries there and removes what is in it, so it never "
                               "uses one it did not make: remove it (or choose another -o)")


def scratch_refusal(st: os.stat_result, area: Path) -> str | None:
    """Why an ``lstat`` (or ``fstat``) of the scratch area rules it out, or ``None``."""
    if stat.S_ISLNK(st.st_mode):
        try:
            return f"is a symbolic link (to {os.readlink(area)}), not a folder"
        except OSError:
            return "is a symbolic link, not a folder"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a folder"
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        return f"belongs to another user (uid {st.st_uid})"
    return None


def name_limit(out: Path) -> int:
    """The longest file name (in bytes) the output folder's file system takes (255 on most)."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(os.pathconf(probe, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def output_problem(out: Path, relative: Path, limit: int, links: dict[Path, bool]) -> str | None:
    """Why the output ``out / relative`` cannot be written (a name too long for the file system, a folder on
    its way that is a symbolic link or a file), or ``None``; ``links`` caches the folders already looked at.
    Existing outputs themselves are fine (they are skipped or replaced, never written through)."""
    for part in relative.parts:
        size = len(os.fsencode(part))
        if size > limit:
            return (f"its output name {part[:40]!r}... is {size} bytes long; the output folder's file system takes at "
                    f"most {limit}: rename the input")
    folder = out
    for part in relative.parts[:-1]:
        folder = folder / part
        if folder not in links:
            try:
                st = os.lstat(folder)
                links[folder] = not stat.S_ISDIR(st.st_mode)
            except FileNotFoundError:
                links[folder] = False
                break
            except OSError as e:
                return f"cannot look at its output folder {folder} ({e.strerror})"
        if links[folder]:
            return f"its output folder {folder} is a symbolic link or a file; outputs are never written through links"
    return None


def exists(path: Path) -> bool:
    """Whether an output is there (a link counts, and is never followed); a path the file system cannot even
    name counts as absent (:func:`output_problem` reports it)."""
    try:
        os.lstat(path)
        return True
    except OSError:
        return False


def is_disk_full(error: BaseException, folder: Path, size_hint: int = 0) -> bool:
    """Whether a failed write failed for want of space (by errno, or by the free space left after it)."""
    if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
        return True
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return st.f_bavail * st.f_frsize < max(size_hint, FULL_MARGIN)
