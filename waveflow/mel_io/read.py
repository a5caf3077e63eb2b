"""Writing mel files, and reading them for vocoding: layout, dtype, NaN/inf, n_mels and log scale checked, whole
(:func:`read_mel`) or, for long mels, a piece at a time (:func:`open_mel`)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from ..audio import atomic_path
from .files import Array, MelFileError, open_array
from .scale import MEL_SCALES, MelScaleWarning, range_problem, to_natural_log

MEL_LAYOUTS = ("auto", "mels-first", "frames-first")


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


class MelTooLongError(MelFileError):
    """A mel longer than the caller takes, found from the file's header before its data was read."""

    def __init__(self, path: str | Path, frames: int, limit: int):
        self.frames, self.limit = frames, limit
        super().__init__(path, f"{frames} frames; at most {limit} are accepted")


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


class MelSource:
    """A mel file opened for vocoding: its layout and length known from the header alone (:attr:`frames`,
    :attr:`notes`), its values read whole (:meth:`read`) or a stretch of frames at a time (:meth:`pieces`, in
    memory that does not grow with the mel's length for ``.npy`` files)."""

    def __init__(self, path: Path, array: Array, n_mels: int, layout: str, scale: str):
        self.path, self.array, self.n_mels, self.scale = path, array, n_mels, scale
        if not array.floating:
            raise MelFileError(path, f"wrong dtype {array.dtype}: a log-mel holds floating-point values")
        if math.prod(array.shape) == 0:
            raise MelFileError(path, f"empty array (shape {array.shape})")
        self.notes: list[str] = []
        try:
            self.squeeze, self.transpose = _layout(array.shape, n_mels, layout, self.notes)
        except MelFileError as e:
            raise MelFileError(path, e.reason) from None
        self.frames = array.shape[-2] if self.transpose else array.shape[-1]

    def _finish(self, mel: torch.Tensor, bad_at: str = "") -> torch.Tensor:
        bad = int((~torch.isfinite(mel)).sum())
        if bad:
            raise MelFileError(self.path, f"contains {bad} NaN or infinite values{bad_at}")
        return to_natural_log(mel, self.scale).contiguous()

    def read(self) -> tuple[torch.Tensor, list[str]]:
        """The whole mel ``(n_mels, frames)`` (float32 natural log) and the notes on it (layout, scale)."""
        data = self.array.read()
        data = data[0] if self.squeeze else data
        mel = data.T if self.transpose else data
        finite = self._finish(mel)  # refuses NaN/inf before the scale is judged
        problem = range_problem(float(mel.min()), float(mel.max())) if self.scale == "ln" else None
        return finite, self.notes + ([problem] if problem else [])

    def stretch(self, lo: int, hi: int) -> torch.Tensor:
        """Frames ``lo:hi`` as ``(n_mels, hi - lo)`` float32 natural log, reading only those."""
        part = self.array.read_frames(0 if self.transpose else 1, lo, hi)
        return self._finish(part.T if self.transpose else part, f" (in frames {lo}..{hi})")

    def pieces(self, frames: int) -> Iterator[torch.Tensor]:
        """The mel in consecutive stretches of ``frames`` (the last one shorter)."""
        for lo in range(0, self.frames, frames):
            yield self.stretch(lo, min(self.frames, lo + frames))

    def check(self, frames: int = 4096) -> list[str]:
        """Read the mel once, a stretch at a time, keeping nothing: NaN/inf anywhere is a :class:`MelFileError`
        (before any of it is vocoded); returns the notes :meth:`read` would give."""
        lo_value, hi_value = math.inf, -math.inf
        for lo in range(0, self.frames, frames):
            hi = min(self.frames, lo + frames)
            part = self.array.read_frames(0 if self.transpose else 1, lo, hi)
            bad = int((~torch.isfinite(part)).sum())
            if bad:
                raise MelFileError(self.path, f"contains NaN or infinite values (from frame {lo}; {bad} in frames "
                                              f"{lo}..{hi})")
            lo_value, hi_value = min(lo_value, float(part.min())), max(hi_value, float(part.max()))
        problem = range_problem(lo_value, hi_value) if self.scale == "ln" else None
        return self.notes + ([problem] if problem else [])


def open_mel(path: str | Path, n_mels: int, layout: str = "auto", scale: str = "ln",
             max_frames: int | None = None) -> MelSource:
    """Open a mel file for vocoding from its header alone (see :class:`MelSource`).

    Raises:
        MelFileError: unreadable, not a regular file, truncated, text, non-tensor ``.pt``, non-float, empty, wrong
            n_mels; :class:`MelTooLongError` when longer than ``max_frames``.
    """
    path = Path(path)
    if layout not in MEL_LAYOUTS:
        raise ValueError(f"mel layout must be one of {', '.join(MEL_LAYOUTS)}, got {layout!r}")
    if scale not in MEL_SCALES:
        raise ValueError(f"mel scale must be one of {', '.join(MEL_SCALES)}, got {scale!r}")
    source = MelSource(path, open_array(path), n_mels, layout, scale)
    if max_frames is not None and source.frames > max_frames:
        raise MelTooLongError(path, source.frames, max_frames)
    return source


def read_mel(
    path: str | Path, n_mels: int, layout: str = "auto", scale: str = "ln", max_frames: int | None = None
) -> tuple[torch.Tensor, list[str]]:
    """Read and validate a mel file; like :func:`load_mel` but returns the warnings instead of issuing them
    (thread-safe: batch jobs collect them per file).

    Args:
        max_frames: refuse longer mels with :class:`MelTooLongError`, found from the header before any value
            is read (the demo's limit).
    """
    return open_mel(path, n_mels, layout, scale, max_frames).read()


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
