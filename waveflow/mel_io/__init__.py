"""Mel-spectrogram files: writing ``.npy``/``.pt`` in Tacotron2's ``(n_mels, frames)`` layout, and reading mel
files back with validation (layout, dtype, NaN/inf, n_mels, log scale) for vocoding. The ``waveflow mel`` folder
job is :mod:`waveflow.jobs.mel`.

Mel files may come from anyone (the demo takes uploads), so reading is bounded: a ``.npy`` header is read and
checked against the file's size before its data, any byte order or float width is converted; a ``.pt`` file's
zip directory is checked (zip bombs), it is loaded weights-only (a refused pickle is said to be refused, naming
what it asked for), and its tensor must be honest (no stride-0 or overlapping view) before a value is copied.
Shape and length limits apply to the header's shape, before the data is read."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import atomic_path
from .errors import WaveflowError
from .safeload import check_tensor, scan_pickle, zip_pickle

MEL_EXTENSIONS = (".npy", ".pt")


def save_mel(path: str | Path, mel: torch.Tensor | np.ndarray) -> None:
    """Write a ``(n_mels, frames)`` float32 mel atomically as ``.npy`` or ``.pt`` (by extension)."""
    path = Path(path)
    if isinstance(mel, np.ndarray):
        mel = torch.from_numpy(mel)
    mel = mel.detach().to("cpu", torch.float32).contiguous()
    with atomic_path(path) as tmp:
        if path.suffix == ".npy":
            with open(tmp, "wb") as f:
                np.save(f, mel.numpy())
        elif path.suffix == ".pt":
            torch.save(mel.clone(), tmp)
        else:
            raise ValueError(f"{path}: mel files must end in .npy or .pt")


# ---------------------------------------------------------------------------------------------- reading
MEL_LAYOUTS = ("auto", "mels-first", "frames-first")
MEL_SCALES = ("ln", "ln-power", "log10", "db")
LN_FLOOR = math.log(1e-5)  # Tacotron2's floor: ln(clamp(x, 1e-5)) = -11.51
# Natural-log mels of audio in [-1, 1] with Tacotron2's filterbank stay in about [ln(1e-5), 4]; a margin
# either side still counts as ln. log10 mels stay in [-5, 2], dB mels (20 log10) in [-100, 40].
_LN_RANGE = (LN_FLOOR - 0.5, 8.0)
# ln of a power mel (magnitude squared) doubles every value: speech reaches about 2 * 4 = 8 at its loudest and
# goes below the magnitude floor in quiet parts (unclamped powers of 1e-12 are -27.6). dB mels of speech reach
# +20..+40 at their loudest. So: below the floor, no louder than 10, not down at dB depths: ln of power.
_POWER_RANGE = (-60.0, 10.0)


class MelFileError(WaveflowError, ValueError):
    """A mel file cannot be used; the message names the file and the reason."""


class MelScaleWarning(UserWarning):
    """A mel's values look like another log scale than the one it is read as."""


def to_natural_log(mel: torch.Tensor, scale: str) -> torch.Tensor:
    """Convert ``ln-power`` (natural log of a power mel, e.g. ``np.log(librosa.feature.melspectrogram(...))``,
    whose default is power 2: twice Tacotron2's values), log10 or dB (``20 log10`` of magnitudes, i.e.
    ``10 log10`` of powers) mels to Tacotron2's natural log of magnitudes, floored at ``ln(1e-5)`` (the model
    never saw quieter values)."""
    if scale not in MEL_SCALES:
        raise ValueError(f"mel scale must be one of {', '.join(MEL_SCALES)}, got {scale!r}")
    if scale == "ln":
        return mel
    factor = {"ln-power": 0.5, "log10": math.log(10.0), "db": math.log(10.0) / 20.0}[scale]
    return torch.clamp(mel * factor, min=LN_FLOOR)


def scale_problem(mel: torch.Tensor) -> str | None:
    """Why the values of a mel read as natural log look like another scale (naming ``--mel-scale``), or ``None``."""
    lo, hi = float(mel.min()), float(mel.max())
    seen = f"values range {lo:.3g}..{hi:.3g}"
    if lo >= 0.0 and hi > 0.0:
        return f"{seen}, all >= 0: looks like linear magnitudes, not a log-mel (no --mel-scale converts those)"
    if lo < _LN_RANGE[0] and lo >= _POWER_RANGE[0] and hi <= _POWER_RANGE[1]:
        return (f"{seen}, below natural-log mels' floor ({LN_FLOOR:.2f}) but not as loud as dB mels: looks like "
                "the natural log of a POWER mel (librosa's melspectrogram squares by default: about twice Tacotron2's "
                "values); recompute it with power=1 (magnitudes) as Tacotron2 does, or pass --mel-scale ln-power "
                "(an approximation: halves each value, i.e. the square root of the power)")
    if lo < _LN_RANGE[0] or hi > _LN_RANGE[1]:
        if lo >= -160.0 and hi <= 60.0:
            return (f"{seen}, outside natural-log mels ({_LN_RANGE[0]:.1f}..{_LN_RANGE[1]:.0f}): looks like dB; "
                    "if so, pass --mel-scale db")
        return f"{seen}: far outside natural-log mels ({_LN_RANGE[0]:.1f}..{_LN_RANGE[1]:.0f}); not a log-mel?"
    if lo >= -5.05 and hi <= 2.5 and hi - lo > 1.0:
        return (f"{seen}, never below -5.05 although natural-log mels reach {LN_FLOOR:.2f} in silence: looks like "
                "log10; if so, pass --mel-scale log10")
    return None


class MelTooLongError(MelFileError):
    """A mel longer than the caller takes, found from the file's header before its data was read."""

    def __init__(self, path: str | Path, frames: int, limit: int):
        self.frames, self.limit = frames, limit
        super().__init__(path, f"{frames} frames; at most {limit} are accepted")


# Untrusted mel files are read in bounded memory: the shape and dtype come from the .npy header or from a .pt
# file's (honest, checked) tensor before any value is copied, and every refusal is a MelFileError.
PT_MAX_PICKLE = 1 << 20  # a tensor's pickle is a few hundred bytes
_MEL_GLOBALS = {"torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter", "collections.OrderedDict"}


@dataclass
class _Array:
    """What a mel file holds, known before its values are read; ``read()`` gives them as float32."""

    shape: tuple[int, ...]
    dtype: str
    floating: bool
    read: Callable[[], torch.Tensor]


def _open_array(path: Path) -> _Array:
    """The shape and dtype of a ``.npy``/``.pt`` file (from its header), or :class:`MelFileError`."""
    suffix = path.suffix.lower()
    if suffix not in MEL_EXTENSIONS:
        raise MelFileError(path, f"unknown mel file type {suffix or '(none)'}; use .npy or .pt")
    try:
        with path.open("rb") as f:
            head = f.read(8)
        size = path.stat().st_size
    except OSError as e:
        raise MelFileError(path, f"cannot read the file ({e.strerror or e})") from None
    if not head:
        raise MelFileError(path, "the file is empty (0 bytes)")
    if suffix == ".npy":
        if not head.startswith(b"\x93NUMPY"):
            kind = "a text file" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "an unknown file"
            raise MelFileError(path, f"not a NumPy .npy array ({kind}: no .npy header)")
        return _open_npy(path, size)
    return _open_pt(path, size, is_zip=head.startswith(b"PK\x03\x04"))


def _open_npy(path: Path, size: int) -> _Array:
    """Read the header only (``np.lib.format``), check it against the file's size; the values come later."""
    fmt = np.lib.format
    try:
        with path.open("rb") as f:
            version = fmt.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise MelFileError(path, f"unsupported .npy format version {version[0]}.{version[1]}")
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
    except MelFileError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as e:
        raise MelFileError(path, f"not a readable .npy file (broken header: {e})") from None
    if dtype.hasobject:
        raise MelFileError(path, "holds Python objects, not numbers (wrong dtype: object)")
    if any(n < 0 for n in shape):
        raise MelFileError(path, f"not a readable .npy file (shape {shape} in its header)")
    count = math.prod(shape)
    need = count * dtype.itemsize
    if need > size - offset:
        raise MelFileError(path, f"truncated .npy file (its header says shape {shape} of {dtype.name}: {need:,} "
                                 f"bytes; {size - offset:,} follow)")

    def read() -> torch.Tensor:
        with path.open("rb") as f:
            f.seek(offset)
            raw = f.read(need)
        if len(raw) != need:
            raise MelFileError(path, "truncated .npy file (it changed while being read)")
        array = np.frombuffer(raw, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
        return torch.from_numpy(array.astype(np.float32))  # any byte order and float width -> native float32

    return _Array(tuple(shape), dtype.name, dtype.kind == "f", read)


def _open_pt(path: Path, size: int, is_zip: bool) -> _Array:
    """``torch.load(weights_only=True)`` after the shared checks of :mod:`waveflow.safeload` (zip directory,
    pickle globals); the tensor must be honest (no stride-0 or overlapping view) before anything copies it."""
    if is_zip:
        scan_pickle(zip_pickle(path, size, MelFileError), _mel_global, path, error=MelFileError,
                    allowed_what="what a mel file holds (a tensor)")
    else:
        with path.open("rb") as f:
            head = f.read(PT_MAX_PICKLE)
        scan_pickle(head, _mel_global, path, count=5, error=MelFileError,  # legacy: magic, protocol, info, data, keys
                    allowed_what="what a mel file holds (a tensor)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on pickle protocols
            # weights_only: a mel file is data; nothing in it may run code.
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt files
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        first = "torch's weights-only reader refused it" if "weights_only" in first else first
        raise MelFileError(path, f"not a readable tensor file ({first})") from None
    if not isinstance(data, torch.Tensor):
        raise MelFileError(path, f"holds a {type(data).__name__}, not a tensor")
    check_tensor(data, path, "", MelFileError)
    return _Array(tuple(data.shape), str(data.dtype).replace("torch.", ""), data.is_floating_point(),
                  lambda: data.to(torch.float32))


def _mel_global(name: str) -> bool:
    return name in _MEL_GLOBALS or (name.startswith("torch.") and name.endswith("Storage"))


def _layout(shape: tuple[int, ...], n_mels: int, layout: str, notes: list[str]) -> tuple[bool, bool]:
    """``(drop a leading axis of 1, transpose)`` bringing ``shape`` to ``(n_mels, frames)``."""
    squeeze = len(shape) == 3 and shape[0] == 1
    dims = shape[1:] if squeeze else shape
    if len(dims) != 2:
        raise MelFileError("", f"shape {shape}: expected (n_mels, frames), (1, n_mels, frames) or (frames, n_mels)")
    rows, cols = dims
    if layout == "mels-first":
        if rows != n_mels:
            raise MelFileError("", f"shape {shape}: {rows} mel bins, the model expects {n_mels} (--mel-layout mels-first)")
        return squeeze, False
    if layout == "frames-first":
        if cols != n_mels:
            raise MelFileError("", f"shape {shape}: {cols} mel bins, the model expects {n_mels} (--mel-layout frames-first)")
        return squeeze, True
    if rows == n_mels:
        if cols == n_mels:
            notes.append(f"shape {shape} is ambiguous; read as (n_mels, frames) (set --mel-layout to choose)")
        return squeeze, False
    if cols == n_mels:
        notes.append(f"shape {shape} read as (frames, n_mels) and transposed (set --mel-layout to force a layout)")
        return squeeze, True
    raise MelFileError("", f"shape {shape}: wrong number of mel bins, the model expects {n_mels} in either dimension")


def read_mel(
    path: str | Path, n_mels: int, layout: str = "auto", scale: str = "ln", max_frames: int | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Read and validate a mel file; like :func:`load_mel` but returns the warnings instead of issuing them
    (thread-safe: batch jobs collect them per file).

    Args:
        max_frames: refuse longer mels with :class:`MelTooLongError`, found from the header before any value
            is read (the demo's limit).
    """
    path = Path(path)
    if layout not in MEL_LAYOUTS:
        raise ValueError(f"mel layout must be one of {', '.join(MEL_LAYOUTS)}, got {layout!r}")
    if scale not in MEL_SCALES:
        raise ValueError(f"mel scale must be one of {', '.join(MEL_SCALES)}, got {scale!r}")
    array = _open_array(path)
    if not array.floating:
        raise MelFileError(path, f"wrong dtype {array.dtype}: a log-mel holds floating-point values")
    if math.prod(array.shape) == 0:
        raise MelFileError(path, f"empty array (shape {array.shape})")
    notes: list[str] = []
    try:
        squeeze, transpose = _layout(array.shape, n_mels, layout, notes)
    except MelFileError as e:
        raise MelFileError(path, e.reason) from None
    frames = array.shape[-2] if transpose else array.shape[-1]
    if max_frames is not None and frames > max_frames:
        raise MelTooLongError(path, frames, max_frames)
    data = array.read()
    data = data[0] if squeeze else data
    mel = data.T if transpose else data
    bad = int((~torch.isfinite(mel)).sum())
    if bad:
        raise MelFileError(path, f"contains {bad} NaN or infinite values")
    if scale == "ln":
        problem = scale_problem(mel)
        if problem:
            notes.append(problem)
    mel = to_natural_log(mel, scale).contiguous()
    return mel, notes


def load_mel(path: str | Path, n_mels: int, layout: str = "auto", scale: str = "ln") -> torch.Tensor:
    """Read a mel file as a float32 natural-log mel ``(n_mels, frames)`` (Tacotron2's layout and scale).

    Args:
        path: ``.npy`` (read without pickle) or ``.pt`` (read with ``weights_only=True``).
        n_mels: mel bins the model expects.
        layout: ``auto`` accepts ``(n_mels, F)``, ``(1, n_mels, F)`` and, when unambiguous, ``(F, n_mels)``;
            ``mels-first``/``frames-first`` force one.
        scale: the file's log scale: ``ln`` (Tacotron2), ``log10`` or ``db`` (``20 log10`` magnitude);
            converted to ln.

    Raises:
        MelFileError: unreadable, truncated, text, non-tensor ``.pt``, non-float, empty, NaN/inf, wrong n_mels.

    Warns:
        MelScaleWarning: the values look like log10/dB/linear while read as ``ln`` (names the file and
        the ``--mel-scale`` option), or the layout was guessed.
    """
    mel, notes = read_mel(path, n_mels, layout, scale)
    for note in notes:
        warnings.warn(MelScaleWarning(f"{path}: {note}"), stacklevel=2)
    return mel
