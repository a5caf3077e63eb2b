"""Where a folder job's outputs are made: ``OUT/.waveflow-tmp/<process>/``, then renamed into place in one step.

The output tree therefore only ever holds complete files, whatever kills the job. Each process's temporary
folder is held by a lock on ``<process>.lock``; a job starting on the same ``OUT`` removes the folders whose lock
nobody holds (left by a killed job), never those of a job still running there (another shard, another process
of the same launch). When a job ends, its folder goes, and ``.waveflow-tmp`` with it once empty.

Nothing outside ``OUT`` is ever removed or written, whatever ``OUT`` holds: ``.waveflow-tmp`` is checked with
``lstat`` and refused when it is a symbolic link, not a folder, or not this user's; it is then opened without
following links, and every delete and rename works relative to opened folder handles (``dir_fd``), never through
a path that a link planted inside ``OUT`` could redirect. An output's own folders are opened the same way (a
link among them fails that file), and removing a folder tree uses :func:`shutil.rmtree` on a handle, which
unlinks links instead of following them.
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import shutil
import socket
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from .discover import BatchError
from .outputs import TMP_NAME, DiskFull, check_scratch_area, is_disk_full, scratch_refusal

if TYPE_CHECKING:
    from typing_extensions import Self

_DIR = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

try:
    import fcntl
except ImportError:  # no POSIX locks (Windows): temporaries of killed jobs stay until removed by hand
    fcntl = None


class OutputPathError(OSError):
    """An output cannot be placed: a folder on its way is a symbolic link or not a folder (that file fails)."""


def _try_lock(fd: int) -> bool:
    """Lock ``fd`` without waiting; ``False`` if another process holds it (or there are no locks here)."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def remove_at(folder_fd: int, name: str) -> None:
    """Remove the entry ``name`` of an opened folder: a folder tree (links inside unlinked, never followed), or
    a file or a link itself. Missing is fine."""
    try:
        st = os.stat(name, dir_fd=folder_fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=folder_fd)
        else:
            os.unlink(name, dir_fd=folder_fd)
    except FileNotFoundError:
        pass


def open_folders(root_fd: int, parts: tuple[str, ...], create: bool) -> int:
    """Open the folder ``root/parts[0]/parts[1]/...`` (created if ``create``) without following a link.

    Raises:
        OutputPathError: one of them is a link or not a folder (naming it).
    """
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            if create:
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                nxt = os.open(part, _DIR, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise
                raise OutputPathError(e.errno, f"{Path(*parts[: i + 1])} is a symbolic link or not a folder; outputs "
                                               "are never written through links") from None
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


class Scratch:
    """This process's temporary folder under ``OUT/.waveflow-tmp`` (see the module docstring); a context."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.area = self.out_dir / TMP_NAME
        self._counter = itertools.count()
        self._lock_fd: int | None = None
        self._out_fd = self._area_fd = self._dir_fd = None
        self.dir: Path | None = None

    def __enter__(self) -> Self:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._out_fd = os.open(self.out_dir, os.O_RDONLY | os.O_DIRECTORY)  # OUT itself is the user's choice
            try:
                os.mkdir(TMP_NAME, 0o700, dir_fd=self._out_fd)
            except FileExistsError:
                pass
            check_scratch_area(self.out_dir)
            self._area_fd = os.open(TMP_NAME, _DIR, dir_fd=self._out_fd)
            why = scratch_refusal(os.fstat(self._area_fd), self.area)  # the folder opened is the one checked
            if why:
                raise BatchError(self.area, why)
        except OSError as e:
            self._close()
            raise BatchError(self.out_dir, f"cannot create the output folder ({e.strerror})") from None
        except BaseException:
            self._close()
            raise
        clean_stale(self._area_fd)
        while self.dir is None:
            name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
            fd = os.open(f"{name}.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o644,
                         dir_fd=self._area_fd)
            # A cleaner may take a lock file in the instant before it is locked: then it is gone, try another.
            if (_try_lock(fd) or fcntl is None) and _same_file(self._area_fd, f"{name}.lock", fd):
                self._lock_fd = fd
                os.mkdir(name, 0o700, dir_fd=self._area_fd)
                self._dir_fd = os.open(name, _DIR, dir_fd=self._area_fd)
                self.dir = self.area / name
            else:
                os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        if self.dir is not None:
            remove_at(self._area_fd, self.dir.name)
            remove_at(self._area_fd, f"{self.dir.name}.lock")
            os.close(self._lock_fd)
            self.dir = self._lock_fd = None
        try:
            os.rmdir(TMP_NAME, dir_fd=self._out_fd)  # only when no other job is writing to OUT
        except OSError:
            pass
        self._close()

    def _close(self) -> None:
        for name in ("_dir_fd", "_area_fd", "_out_fd"):
            if getattr(self, name) is not None:
                os.close(getattr(self, name))
                setattr(self, name, None)

    def temporary(self, suffix: str) -> Path:
        """A fresh path in this process's folder (for :meth:`place`)."""
        return self.dir / f"{next(self._counter)}{suffix}"

    def discard(self, tmp: Path) -> None:
        try:
            os.unlink(tmp.name, dir_fd=self._dir_fd)
        except FileNotFoundError:
            pass

    def place(self, tmp: Path, dst: Path) -> None:
        """Rename the finished ``tmp`` onto ``dst`` (inside ``OUT``) in one step, through opened folders only."""
        parts = dst.relative_to(self.out_dir).parts
        parent = open_folders(self._out_fd, parts[:-1], create=True)
        try:
            try:
                os.replace(tmp.name, parts[-1], src_dir_fd=self._dir_fd, dst_dir_fd=parent)
            except OSError as e:
                if e.errno != errno.EXDEV:  # a sub-folder of OUT on another file system: copy, then rename there
                    raise
                _copy_into(self._dir_fd, tmp.name, parent, parts[-1])
        finally:
            os.close(parent)

    @contextmanager
    def readable(self, source: Path) -> Iterator[Path]:
        """``source``, or a link to it under a plain name when its name is not valid UTF-8: soundfile encodes
        names strictly, so ``caf\\xe9.wav`` would fail there although the file system allows it."""
        try:
            str(source).encode()
            yield source
            return
        except UnicodeEncodeError:
            pass
        link = self.temporary(source.suffix)
        os.symlink(os.fsencode(os.path.abspath(source)), link.name, dir_fd=self._dir_fd)
        try:
            yield link
        finally:
            self.discard(link)

    @contextmanager
    def output(self, dst: Path, size_hint: int = 0) -> Iterator[Path]:
        """Yield a temporary path (``dst``'s suffix) to write ``dst`` to; it is placed onto ``dst`` on success and
        removed otherwise (``dst`` is then untouched).

        Raises:
            DiskFull: the file system is full.
        """
        tmp = self.temporary(dst.suffix)
        try:
            yield tmp
            self.place(tmp, dst)
        except OutputPathError:
            raise
        except (OSError, RuntimeError) as e:
            if is_disk_full(e, self.area, size_hint):
                raise DiskFull(self.out_dir, f"no space left on the device (while writing {dst.name}): the job "
                                             "stopped, every output written is complete; free some space and run "
                                             "the same command again (finished outputs are skipped)") from None
            raise
        finally:
            self.discard(tmp)


def _same_file(folder_fd: int, name: str, fd: int) -> bool:
    try:
        return os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _copy_into(src_dir: int, src: str, dst_dir: int, dst: str) -> None:
    """Copy ``src`` into ``dst_dir`` under a hidden name, then rename it onto ``dst`` there (atomic)."""
    tmp = f".{secrets.token_hex(4)}.waveflow-copy"
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
    src_fd = os.open(src, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=src_dir)
    try:
        out_fd = os.open(tmp, flags, 0o666, dir_fd=dst_dir)
        with open(src_fd, "rb", closefd=False) as fin, open(out_fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        os.replace(tmp, dst, src_dir_fd=dst_dir, dst_dir_fd=dst_dir)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dst_dir)
        except FileNotFoundError:
            pass
        raise
    finally:
        os.close(src_fd)


def clean_stale(area_fd: int) -> None:
    """Remove the entries of the opened scratch area that no running job holds (left by a killed one)."""
    try:
        entries = os.listdir(area_fd)
    except OSError:
        return
    locks = {name[: -len(".lock")] for name in entries if name.endswith(".lock")}
    for name in locks:
        try:
            fd = os.open(f"{name}.lock", os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), dir_fd=area_fd)
        except OSError:  # a link in a lock's place: not a job's; removed below
            remove_at(area_fd, f"{name}.lock")
            continue
        try:
            if _try_lock(fd):  # its owner is gone (a lock dies with its process)
                remove_at(area_fd, name)
                remove_at(area_fd, f"{name}.lock")
        finally:
            os.close(fd)
    for name in entries:
        if not name.endswith(".lock") and name not in locks:  # no lock at all: not a running job's
            remove_at(area_fd, name)
