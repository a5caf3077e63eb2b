"""What a mel file holds, known from its header before a value is read, and its values read whole or a stretch
of frames at a time.

Mel files may come from anyone (the demo takes uploads), so reading is bounded. Only regular files are opened,
and without waiting (a FIFO or a device named like a mel would otherwise stall the job). A ``.npy`` header is read
and checked against the file's size before its data; any byte order, float width and memory order is
converted, and a stretch of frames is read with positioned reads (``os.pread``) of just its bytes, so a long mel
never needs its whole size in memory. A ``.pt`` file's zip directory is checked (zip bombs), its pickle scanned
(a refused pickle is said to be refused, naming what it asked for); a legacy-format (non-zip) file's storages
must fit in the file before torch allocates them; it is loaded weights-only, and its tensor must be honest (no
stride-0 or overlapping view) before a value is copied.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import WaveflowError
from ..safeload import REFUSED, canonical_name, check_tensor, scan_pickle, zip_pickle

MEL_EXTENSIONS = (".npy", ".pt")
PT_MAX_PICKLE = 1 << 20  # a tensor's pickle is a few hundred bytes
_MEL_GLOBALS = {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "collections.OrderedDict"}
_STORAGE_BYTES = {"Float": 4, "Double": 8, "Half": 2, "BFloat16": 2, "Long": 8, "Int": 4, "Short": 2, "Char": 1,
                  "Byte": 1, "Bool": 1, "Untyped": 1}
_KINDS = {stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
          stat.S_ISSOCK: "a socket", stat.S_ISDIR: "a folder"}


class MelFileError(WaveflowError, ValueError):
    """A mel file cannot be used; the message names the file and the reason."""


def file_kind(mode: int) -> str:
    """``a FIFO (named pipe)``, ``a character device``, ... for a ``st_mode`` that is not a regular file."""
    return next((what for test, what in _KINDS.items() if test(mode)), "not a regular file")


def open_regular(path: Path) -> int:
    """A file descriptor of ``path`` opened for reading without waiting; anything but a regular file is refused."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise MelFileError(path, f"cannot read the file ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise MelFileError(path, f"is {file_kind(mode)}, not a regular file")
    return fd


@dataclass
class Array:
    """A mel file's array, known before its values are read: ``read()`` gives them all as float32,
    ``read_frames(axis, lo, hi)`` the stretch ``lo:hi`` of ``axis`` (counted without a leading axis of 1)."""

    shape: tuple[int, ...]
    dtype: str
    floating: bool
    read: Callable[[], torch.Tensor]
    read_frames: Callable[[int, int, int], torch.Tensor]


def open_array(path: Path) -> Array:
    """The shape and dtype of a ``.npy``/``.pt`` file (from its header), or :class:`MelFileError`."""
    suffix = path.suffix.lower()
    if suffix not in MEL_EXTENSIONS:
        raise MelFileError(path, f"unknown mel file type {suffix or '(none)'}; use .npy or .pt")
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        head, size = f.read(8), os.fstat(f.fileno()).st_size
        if not head:
            raise MelFileError(path, "the file is empty (0 bytes)")
        if suffix == ".npy":
            if not head.startswith(b"\x93NUMPY"):
                kind = "a text file" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "an unknown file"
                raise MelFileError(path, f"not a NumPy .npy array ({kind}: no .npy header)")
            f.seek(0)
            return _open_npy(path, f, size)
        return _open_pt(path, f, size, is_zip=head.startswith(b"PK\x03\x04"))


def _open_npy(path: Path, f, size: int) -> Array:
    """Read the header only (``np.lib.format``), check it against the file's size; the values come later."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise MelFileError(path, f"unsupported .npy format version {version[0]}.{version[1]}")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    except MelFileError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise MelFileError(path, f"not a readable .npy file (broken header: {str(e)[:200]})") from None
    if dtype.hasobject:
        raise MelFileError(path, "holds Python objects, not numbers (wrong dtype: object)")
    if any(n < 0 for n in shape):
        raise MelFileError(path, f"not a readable .npy file (shape {shape} in its header)")
    count = math.prod(shape)
    need = count * dtype.itemsize
    if need > size - offset:
        raise MelFileError(path, f"truncated .npy file (its header says shape {shape} of {dtype.name}: {need:,} "
                                 f"bytes; {size - offset:,} follow)")

    def pread(fd: int, n: int, at: int) -> bytes:
        raw = os.pread(fd, n, at)
        if len(raw) != n:
            raise MelFileError(path, "truncated .npy file (it changed while being read)")
        return raw

    def read() -> torch.Tensor:
        fd = open_regular(path)
        try:
            array = np.frombuffer(pread(fd, need, offset), dtype=dtype, count=count)
        finally:
            os.close(fd)
        array = array.reshape(shape, order="F" if fortran else "C")
        return torch.from_numpy(array.astype(np.float32))  # any byte order and float width -> native float32

    dims = tuple(shape[1:]) if len(shape) == 3 and shape[0] == 1 else tuple(shape)

    def read_frames(axis: int, lo: int, hi: int) -> torch.Tensor:
        """``dims`` sliced ``lo:hi`` on ``axis`` (2-D), reading only those bytes."""
        n, item = hi - lo, dtype.itemsize
        slow = 1 if fortran else 0  # the axis whose index changes slowest in the file
        other = dims[1 - axis]
        fd = open_regular(path)
        try:
            if axis == slow:  # one block
                block = np.frombuffer(pread(fd, n * other * item, offset + lo * other * item), dtype=dtype)
                part = block.reshape(n, other)
            else:  # one run of frames per row of the slow axis
                runs = [pread(fd, n * item, offset + (j * dims[axis] + lo) * item) for j in range(other)]
                part = np.frombuffer(b"".join(runs), dtype=dtype).reshape(other, n)
        finally:
            os.close(fd)
        # the block is (frames, other) and the runs (other, frames): bring either to dims' own axis order
        if (axis == 0) != (axis == slow):
            part = part.T
        return torch.from_numpy(np.array(part, dtype=np.float32, order="C"))  # a copy: the bytes are read-only

    return Array(tuple(shape), dtype.name, dtype.kind == "f", read, read_frames)


def _open_pt(path: Path, f, size: int, is_zip: bool) -> Array:
    """``torch.load(weights_only=True)`` after the shared checks of :mod:`waveflow.safeload` (zip directory,
    pickle globals) and, for the legacy format, the storages' declared sizes; the tensor must be honest (no
    stride-0 or overlapping view) before anything copies it."""
    what = "what a mel file holds (a tensor)"
    if is_zip:
        scan_pickle(zip_pickle(path, size, MelFileError), mel_global, path, error=MelFileError, allowed_what=what)
    else:
        f.seek(0)
        head = f.read(PT_MAX_PICKLE)
        # legacy: magic, protocol, system info, the tensor, the storage keys
        scan_pickle(head, mel_global, path, count=5, error=MelFileError, allowed_what=what)
        declared = legacy_storage_bytes(head, path)
        if declared > size:
            raise MelFileError(path, f"{REFUSED}: its storages declare {declared:,} bytes and the file holds {size:,} "
                                     "(truncated, or a size bomb); nothing was allocated")
    f.seek(0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on pickle protocols
            # weights_only: a mel file is data; nothing in it may run code.
            data = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt files
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        first = "torch's weights-only reader refused it" if "weights_only" in first else first
        raise MelFileError(path, f"not a readable tensor file ({first})") from None
    data = _the_mel(data, path)
    check_tensor(data, path, "", MelFileError)
    body = data[0] if data.dim() == 3 and data.shape[0] == 1 else data

    def read_frames(axis: int, lo: int, hi: int) -> torch.Tensor:
        return body.narrow(axis, lo, hi - lo).to(torch.float32).contiguous()

    return Array(tuple(data.shape), str(data.dtype).replace("torch.", ""), data.is_floating_point(),
                 lambda: data.to(torch.float32), read_frames)


def mel_global(name: str) -> bool:
    return name in _MEL_GLOBALS or (name.startswith("torch.") and name.endswith("Storage"))


class _Named:
    """What a scanned, allow-listed global stands for while counting storages: its name, nothing callable
    from the file's side (calling it builds nothing)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs) -> None:
        return None


def legacy_storage_bytes(head: bytes, path: Path) -> int:
    """Bytes the storages of a legacy-format (pre-1.6) tensor file declare, counted from its pickle with
    stand-ins for every global (torch would allocate each storage before reading it). The pickle must have
    been scanned (:func:`~waveflow.safeload.scan_pickle`) first."""
    declared: dict[object, int] = {}

    class Counter(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            return _Named(canonical_name(module, name))

        def persistent_load(self, pid):
            if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
                kind, key, numel = pid[1], pid[2], pid[4]
                if type(numel) is not int or numel < 0 or not isinstance(kind, _Named):
                    raise MelFileError(path, f"not a readable tensor file (a storage of {numel!r:.40} elements)")
                kind_name = kind.name.rsplit(".", 1)[-1].removesuffix("Storage")
                declared[key] = numel * _STORAGE_BYTES.get(kind_name, 8)

    stream = io.BytesIO(head)
    try:
        for _ in range(4):  # magic, protocol, system info, then the object with the storages' ids
            Counter(stream).load()
    except MelFileError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken pickle fails anywhere
        raise MelFileError(path, f"not a readable tensor file (broken pickle: {str(e)[:200]})") from None
    return sum(declared.values())


def _the_mel(data, path: Path) -> torch.Tensor:
    """The tensor a ``.pt`` mel file holds: the tensor itself, or a dict's ``"mel"`` tensor, or a dict's only
    tensor (as some TTS scripts save ``{"mel": mel, "text": ...}``)."""
    if isinstance(data, torch.Tensor):
        return data
    if isinstance(data, dict):
        tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
        if "mel" in tensors:
            return tensors["mel"]
        if "mel" in data:  # never another tensor in its place
            raise MelFileError(path, f"holds a dict whose 'mel' is a {type(data['mel']).__name__}, not a tensor")
        if len(tensors) == 1:
            return next(iter(tensors.values()))
        keys = ", ".join(repr(k)[:40] for k in list(data)[:8]) + (", ..." if len(data) > 8 else "")
        raise MelFileError(path, f"holds a dict ({keys}), not a tensor: it has {len(tensors)} tensors and none "
                                 "under 'mel'; save the mel tensor itself, or put it under 'mel'")
    raise MelFileError(path, f"holds a {type(data).__name__}, not a tensor")
