"""Where a folder job writes: the output folder, checked before any work; temporaries kept out of the outputs;
and a full disk, told once.

Every output is written to ``OUT/.waveflow-tmp/<process>/`` first and renamed into place in one step when it
is complete, so the output tree only ever holds complete files, whatever kills the job. Each process's
temporary folder is held by a lock on ``<process>.lock``; a job starting on the same ``OUT`` removes the
folders whose lock nobody holds (left by a killed job), never those of a job still running there (another
shard, another process of the same launch). When a job ends, its folder goes, and ``.waveflow-tmp`` with it
once empty.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .discover import BatchError

if TYPE_CHECKING:
    from typing_extensions import Self

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
    return resolved


try:
    import fcntl
except ImportError:  # no POSIX locks (Windows): temporaries of killed jobs stay until removed by hand
    fcntl = None


def _try_lock(fd: int) -> bool:
    """Lock ``fd`` without waiting; ``False`` if another process holds it (or there are no locks here)."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


class Scratch:
    """This process's temporary folder under ``OUT/.waveflow-tmp`` (see the module docstring); a context."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.area = self.out_dir / TMP_NAME
        self._counter = itertools.count()
        self._lock_fd: int | None = None
        self.dir: Path | None = None

    def __enter__(self) -> Self:
        try:
            self.area.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BatchError(self.out_dir, f"cannot create the output folder ({e.strerror})") from None
        clean_stale(self.area)
        while self.dir is None:
            name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
            lock = self.area / f"{name}.lock"
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            # A cleaner may take a lock file in the instant before it is locked: then it is gone, try another.
            if (_try_lock(fd) or fcntl is None) and lock.exists() and os.stat(lock).st_ino == os.fstat(fd).st_ino:
                self._lock_fd, self.dir = fd, self.area / name
                self.dir.mkdir()
            else:
                os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            (self.area / f"{self.dir.name}.lock").unlink(missing_ok=True)
            os.close(self._lock_fd)
            self.dir = self._lock_fd = None
        try:
            self.area.rmdir()  # only when no other job is writing to OUT
        except OSError:
            pass

    @contextmanager
    def output(self, dst: Path, size_hint: int = 0) -> Iterator[Path]:
        """Yield a temporary path (``dst``'s suffix) to write ``dst`` to; it is renamed onto ``dst`` on success.

        Raises:
            DiskFull: the file system is full (the temporary is removed; ``dst`` is untouched).
        """
        tmp = self.dir / f"{next(self._counter)}{dst.suffix}"
        try:
            yield tmp
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(tmp, dst)
            except OSError as e:
                if e.errno != errno.EXDEV:  # a sub-folder of OUT on another file system: copy, then rename there
                    raise
                _copy_atomically(tmp, dst)
        except (OSError, RuntimeError) as e:
            if is_disk_full(e, self.area, size_hint):
                raise DiskFull(self.out_dir, f"no space left on the device (while writing {dst.name}): the job "
                                             "stopped, every output written is complete; free some space and run "
                                             "the same command again (finished outputs are skipped)") from None
            raise
        finally:
            tmp.unlink(missing_ok=True)


def _copy_atomically(src: Path, dst: Path) -> None:
    from ..audio import atomic_path

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def is_disk_full(error: BaseException, folder: Path, size_hint: int = 0) -> bool:
    """Whether a failed write failed for want of space (by errno, or by the free space left after it)."""
    if isinstance(error, OSError) and error.errno in FULL_ERRNOS:
        return True
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    return st.f_bavail * st.f_frsize < max(size_hint, FULL_MARGIN)


def clean_stale(area: Path) -> None:
    """Remove the temporary folders under ``area`` that no running job holds (left by a killed one)."""
    try:
        entries = list(area.iterdir())
    except OSError:
        return
    locks = {p.name[: -len(".lock")] for p in entries if p.name.endswith(".lock")}
    for name in locks:
        lock = area / f"{name}.lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue
        try:
            if _try_lock(fd):  # its owner is gone (a lock dies with its process)
                shutil.rmtree(area / name, ignore_errors=True)
                lock.unlink(missing_ok=True)
        finally:
            os.close(fd)
    for p in entries:
        if p.is_dir() and p.name not in locks:  # no lock at all: not a running job's
            shutil.rmtree(p, ignore_errors=True)
        elif p.is_file() and not p.name.endswith(".lock"):
            p.unlink(missing_ok=True)
