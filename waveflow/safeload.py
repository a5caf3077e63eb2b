"""Bounds on what an untrusted PyTorch file may make waveflow run or allocate, checked before it happens.

Shared by every reader of outside files: checkpoints (:func:`waveflow.checkpoints.unpickler.safe_load`) and
mel files (:mod:`waveflow.mel_io`). Each check raises the caller's error class (``error=``), so a refusal is
a ``CheckpointError`` or a ``MelFileError`` naming the file. A file is read in three guarded steps:

1. **The container.** A zip file's directory is read first (:func:`zip_pickle`): a bounded number of entries,
   no name listed twice, no TorchScript archive, and all entries together inflating to at most
   :func:`inflation_budget` of the file's size (torch writes its records uncompressed; only a zip bomb needs
   more). torch itself then checks that each storage the pickle declares is exactly the size of its record.
2. **The pickle**, read opcode by opcode with :mod:`pickletools`, which builds nothing (:func:`scan_pickle`):
   every global it names must be allow-listed (the refusal names it), no ``copyreg`` extension codes, at most
   :data:`MAX_PICKLE_OPS` instructions in :data:`MAX_PICKLE_BYTES`, memo indices below :data:`MAX_PICKLE_OPS`
   (CPython's C unpickler sizes its memo by the largest index: ``LONG_BINPUT 0x1fffffff`` in a 10-byte pickle
   costs 8 GB).
3. **What came out** (:func:`check_loaded`): nested at most :data:`MAX_DEPTH` levels, and every tensor honest: a
   dense CPU tensor of a plain dtype whose elements do not overlap (no stride-0 views), inside its storage,
   all tensors together no larger than the inflation budget. Nothing is materialised until this holds.

After these checks every tensor is backed by bytes present in the file, so copying them costs about the file's
size; what the pickle builds is bounded by :data:`MAX_PICKLE_OPS` (some tens of MB at worst).
"""

from __future__ import annotations

import io
import pickletools
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import WaveflowError

ErrorType = Callable[[Path, str], Exception]

MAX_FILE_BYTES = 8 << 30  # NVIDIA's largest published WaveGlow is 0.7 GB
MAX_ZIP_ENTRIES = 100_000
MAX_PICKLE_BYTES = 8 << 20  # NVIDIA's pickled 12-flow, 8-layer model: 0.25 MB
MAX_PICKLE_OPS = 500_000  # ... and 78,000 instructions
MAX_DEPTH = 100  # a pickled NVIDIA model nests about 15 levels
SLACK_BYTES = 1 << 20
TENSOR_DTYPES = frozenset({
    torch.float16, torch.bfloat16, torch.float32, torch.float64,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
})
REFUSED = "refused for safety"


def inflation_budget(file_size: int) -> int:
    """Bytes the records (and the tensors viewing them) of a ``file_size``-byte file may hold in all."""
    return 2 * file_size + SLACK_BYTES


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


# ------------------------------------------------------------------------------------------ the container
def zip_pickle(path: Path, file_size: int, error: ErrorType = WaveflowError) -> bytes:
    """Check a zip checkpoint's directory (before torch reads anything) and return its pickle record.

    Raises:
        error: a broken zip, too many entries, a name listed twice, a TorchScript archive, no
            ``data.pkl``, records inflating beyond :func:`inflation_budget` or a pickle over the limit.
    """
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ZIP_ENTRIES:
                raise error(path, f"{REFUSED}: its zip lists {len(infos):,} records (at most "
                                            f"{MAX_ZIP_ENTRIES:,} are read)")
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                twice = next(n for n in names if names.count(n) > 1)
                raise error(path, f"{REFUSED}: its zip lists the record '{twice}' twice")
            inflated = sum(i.file_size for i in infos)
            if inflated > inflation_budget(file_size):
                raise error(path, f"{REFUSED}: its zip records inflate to {_mb(inflated)} from a "
                                            f"{_mb(file_size)} file (a zip bomb?); torch never compresses them")
            prefix = names[0].split("/")[0] if names else ""
            if f"{prefix}/constants.pkl" in names:
                raise error(path, "a TorchScript archive, not a checkpoint (waveflow runs no TorchScript)")
            info = next((i for i in infos if i.filename == f"{prefix}/data.pkl"), None)
            if info is None:
                raise error(path, "not a readable PyTorch checkpoint (a zip file without data.pkl)")
            if info.file_size > MAX_PICKLE_BYTES:
                raise error(path, f"{REFUSED}: its pickle is {_mb(info.file_size)} (at most "
                                            f"{_mb(MAX_PICKLE_BYTES)} are read)")
            with archive.open(info) as f:
                return f.read(MAX_PICKLE_BYTES + 1)
    except WaveflowError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as e:
        raise error(path, f"not a readable PyTorch checkpoint (broken zip file: {e})") from None


# ------------------------------------------------------------------------------------------ the pickle
_STRINGS = {"UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}
_GETS = {"GET", "BINGET", "LONG_BINGET"}
_MARK = object()


class _Text:
    """A string constant on the emulated stack (the only values STACK_GLOBAL may take its names from)."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value


def canonical_name(module: str, name: str) -> str:
    """``module.name`` as Python 3 knows it (protocol-2 pickles say ``__builtin__.set``; pickle maps them)."""
    import _compat_pickle

    module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{name}"


def refusal(path: Path, asked: str, allowed_what: str = "WaveGlow checkpoint classes",
            error: ErrorType = WaveflowError) -> Exception:
    """The error for a file that asks for a Python object outside the allow-list."""
    return error(
        path,
        f"{REFUSED}: the file asks for the Python object '{asked}', which is not on waveflow's allow-list of "
        f"{allowed_what} (loading it could run code); nothing from the file was run",
    )


def scan_pickle(data: bytes, allowed: Callable[[str], bool], path: Path, count: int = 1,
                error: ErrorType = WaveflowError, allowed_what: str = "WaveGlow checkpoint classes") -> int:
    """Check ``count`` consecutive pickles at the start of ``data`` without unpickling anything.

    The stack is emulated as :func:`pickletools.dis` does, so a ``STACK_GLOBAL`` is checked against the two
    string constants it really takes (a name the pickle computes any other way is refused).

    Args:
        allowed: whether a canonical ``module.name`` may be named.

    Returns:
        the offset just past the last pickle.

    Raises:
        error: a global not allowed, an extension code, a pickle over the limits, a broken pickle.
    """
    stream, ops = io.BytesIO(data), 0
    try:
        for _ in range(count):
            stack: list[Any] = []
            memo: dict[int, Any] = {}  # as the unpickler's: index -> string constant (or None: anything else)
            for op, arg, _pos in pickletools.genops(stream):
                ops += 1
                if ops > MAX_PICKLE_OPS:
                    raise error(path, f"{REFUSED}: its pickle has more than {MAX_PICKLE_OPS:,} instructions")
                _check_op(op, arg, stack, allowed, path, error, allowed_what)
                _emulate(op, arg, stack, memo)
    except WaveflowError:
        raise
    except Exception as e:  # noqa: BLE001 - pickletools meets a broken pickle as ValueError, struct.error, ...
        raise error(path, f"not a readable PyTorch checkpoint (broken pickle: {e})") from None
    return stream.tell()


def _check_op(op, arg, stack: list, allowed: Callable[[str], bool], path: Path, error: ErrorType,
              allowed_what: str) -> None:
    name = op.name
    if name in ("GLOBAL", "INST"):
        module, _, qualname = str(arg).partition(" ")
        asked = canonical_name(module, qualname)
    elif name == "STACK_GLOBAL":
        parts = stack[-2:]
        if len(parts) < 2 or not all(isinstance(p, _Text) for p in parts):
            raise error(path, f"{REFUSED}: the file asks for a Python object by a name it computes; "
                                        "nothing from the file was run")
        asked = canonical_name(parts[0].value, parts[1].value)
    elif name.startswith("EXT"):
        raise error(path, f"{REFUSED}: the file asks for a Python object by its copyreg extension code "
                                    f"{arg}; nothing from the file was run")
    else:
        if name in _PUTS and arg >= MAX_PICKLE_OPS:
            raise error(path, f"{REFUSED}: its pickle stores at memo index {arg:,} (a memory bomb)")
        return
    if not allowed(asked):
        raise refusal(path, asked, allowed_what, error)


def _emulate(op, arg, stack: list, memo: dict) -> None:
    """The opcode's effect on the stack, as :func:`pickletools.dis` emulates it; string constants are kept."""
    before, after, name = op.stack_before, op.stack_after, op.name
    top = stack[-1] if stack else None
    pop = len(before)
    if pickletools.markobject in before or (name == "POP" and top is _MARK):
        while stack and stack[-1] is not _MARK:
            stack.pop()
        if not stack:
            raise ValueError(f"{name} without a MARK")
        stack.pop()
        pop = before.index(pickletools.markobject) if pickletools.markobject in before else 0
    if name in _PUTS or name == "MEMOIZE":  # the stack stays as it is
        if not stack or stack[-1] is _MARK:
            raise ValueError("memo store from an empty stack")
        memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1] if isinstance(stack[-1], _Text) else None
        return
    if len(stack) < pop:
        raise ValueError(f"{name} pops from an empty stack")
    if pop:
        del stack[-pop:]
    if name in _STRINGS:
        stack.append(_Text(str(arg)))
    elif name in _GETS:
        stack.append(memo.get(arg))
    elif name == "DUP":
        stack.extend([top, top])
    else:
        stack.extend(_MARK if x is pickletools.markobject else None for x in after)


# ------------------------------------------------------------------------------------------ what came out
def check_tensor(t: torch.Tensor, path: Path, where: str, error: ErrorType = WaveflowError) -> int:
    """Refuse a tensor that is not plain and honest; return its size in bytes.

    Honest: a strided CPU tensor of a dtype in :data:`TENSOR_DTYPES` whose elements do not overlap (no
    stride-0 or overlapping views: each distinct element is one distinct storage element) and lie inside its
    storage. Then copying it costs no more than its storage, which torch checked against the file.
    """
    what = f"tensor '{where}'" if where else "a tensor"
    if type(t) not in (torch.Tensor, torch.nn.Parameter):
        raise error(path, f"{REFUSED}: {what} is a {type(t).__name__}, not a plain tensor")
    if t.layout != torch.strided or t.device.type != "cpu" or t.is_quantized or t.is_nested:
        kind = "quantized" if t.layout == torch.strided and t.is_quantized else f"{t.layout} on {t.device.type}"
        raise error(path, f"{REFUSED}: {what} is a {kind} tensor; only dense CPU tensors are read")
    if t.dtype not in TENSOR_DTYPES:
        raise error(path, f"{REFUSED}: {what} has dtype {str(t.dtype).replace('torch.', '')}")
    if t.numel() == 0:
        return 0
    extent = 1  # one past the farthest element, in elements from the first
    for stride, size in sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz > 1):
        if stride < extent:
            raise error(
                path, f"{REFUSED}: {what} is a view whose elements overlap (shape {tuple(t.shape)}, strides "
                      f"{tuple(t.stride())}): it would make {t.numel():,} elements out of {extent:,} stored ones")
        extent += stride * (size - 1)
    stored = t.untyped_storage().nbytes() // t.element_size() - t.storage_offset()
    if extent > stored:
        raise error(path, f"{REFUSED}: {what} reaches past its storage ({extent:,} > {stored:,} elements)")
    return t.numel() * t.element_size()


def check_loaded(obj: Any, path: Path, file_size: int, error: ErrorType = WaveflowError) -> None:
    """Walk everything a file unpickled to (iteratively; cycles are visited once): refuse nesting deeper than
    :data:`MAX_DEPTH`, any tensor :func:`check_tensor` refuses, and tensors that together hold more than
    :func:`inflation_budget` bytes (views sharing one storage)."""
    budget, total, seen = inflation_budget(file_size), 0, set()
    todo: list[tuple[Any, int, str]] = [(obj, 0, "")]
    while todo:
        item, depth, where = todo.pop()
        if depth > MAX_DEPTH:
            raise error(path, f"{REFUSED}: its objects nest more than {MAX_DEPTH} levels deep")
        if isinstance(item, (str, bytes, int, float, complex, type(None), torch.dtype, torch.device)):
            continue
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            total += check_tensor(item, path, where, error)
            if total > budget:
                raise error(path, f"{REFUSED}: its tensors hold {_mb(total)}, more than a {_mb(file_size)} "
                                            "file can (views sharing a storage)")
            continue
        todo.extend((child, depth + 1, label) for child, label in _children(item, where))


def _children(item: Any, where: str):
    if isinstance(item, Mapping):
        for key, value in item.items():
            yield key, where
            yield value, _join(where, key)
    elif isinstance(item, (list, tuple, set, frozenset)):
        for i, value in enumerate(item):
            yield value, f"{where}[{i}]"
    elif isinstance(getattr(item, "__dict__", None), dict):  # stand-ins of pickled modules, storages
        for key, value in vars(item).items():
            yield value, where if key == "state" else _join(where, key)


def _join(where: str, key: Any) -> str:
    key = key[:60] if isinstance(key, str) else repr(key)[:60]
    return f"{where}.{key}" if where else key


def check_weights(state: Mapping[Any, Any], path: Path, error: ErrorType = WaveflowError) -> None:
    """Weights must be named by text, floating point and finite; the first bad one is named."""
    for key, value in state.items():
        if not isinstance(key, str):
            raise error(path, f"a weight is named {type(key).__name__} {key!r:.60}, not text")
        if not isinstance(value, torch.Tensor):
            raise error(path, f"weight '{key}' is a {type(value).__name__}, not a tensor")
        if not value.is_floating_point():
            raise error(path, f"weight '{key}' has dtype {str(value.dtype).replace('torch.', '')}; "
                                        "weights are floating point")
        if not bool(torch.isfinite(value).all()):
            raise error(path, f"weight '{key}' holds NaN or infinite values: the model would "
                                        "make noise or silence")
