"""Mel-spectrogram files: writing ``.npy``/``.pt`` in Tacotron2's ``(n_mels, frames)`` layout, and reading mel
files back with validation (layout, dtype, NaN/inf, n_mels, log scale) for vocoding. The ``waveflow mel`` folder
job is :mod:`waveflow.jobs.mel`."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch

from .audio import atomic_path
from .errors import WaveflowError

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
MEL_SCALES = ("ln", "log10", "db")
LN_FLOOR = math.log(1e-5)  # Tacotron2's floor: ln(clamp(x, 1e-5)) = -11.51
# Natural-log mels of audio in [-1, 1] with Tacotron2's filterbank stay in about [ln(1e-5), 4]; a margin
# either side still counts as ln. log10 mels stay in [-5, 2], dB mels (20 log10) in [-100, 40].
_LN_RANGE = (LN_FLOOR - 0.5, 8.0)


class MelFileError(WaveflowError, ValueError):
    """A mel file cannot be used; the message names the file and the reason."""


class MelScaleWarning(UserWarning):
    """A mel's values look like another log scale than the one it is read as."""


def to_natural_log(mel: torch.Tensor, scale: str) -> torch.Tensor:
    """Convert log10 or dB (``20 log10`` of magnitudes, i.e. ``10 log10`` of powers) mels to natural log,
    floored at Tacotron2's ``ln(1e-5)`` (the model never saw quieter values)."""
    if scale not in MEL_SCALES:
        raise ValueError(f"mel scale must be one of {', '.join(MEL_SCALES)}, got {scale!r}")
    if scale == "ln":
        return mel
    factor = math.log(10.0) if scale == "log10" else math.log(10.0) / 20.0
    return torch.clamp(mel * factor, min=LN_FLOOR)


def scale_problem(mel: torch.Tensor) -> str | None:
    """Why the values of a mel read as natural log look like another scale (naming ``--mel-scale``), or ``None``."""
    lo, hi = float(mel.min()), float(mel.max())
    seen = f"values range {lo:.3g}..{hi:.3g}"
    if lo >= 0.0 and hi > 0.0:
        return f"{seen}, all >= 0: looks like linear magnitudes, not a log-mel (no --mel-scale converts those)"
    if lo < _LN_RANGE[0] or hi > _LN_RANGE[1]:
        if lo >= -160.0 and hi <= 60.0:
            return (f"{seen}, outside natural-log mels ({_LN_RANGE[0]:.1f}..{_LN_RANGE[1]:.0f}): looks like dB; "
                    "if so, pass --mel-scale db")
        return f"{seen}: far outside natural-log mels ({_LN_RANGE[0]:.1f}..{_LN_RANGE[1]:.0f}); not a log-mel?"
    if lo >= -5.05 and hi <= 2.5 and hi - lo > 1.0:
        return (f"{seen}, never below -5.05 although natural-log mels reach {LN_FLOOR:.2f} in silence: looks like "
                "log10; if so, pass --mel-scale log10")
    return None


def _read_array(path: Path) -> torch.Tensor:
    """The raw array of a ``.npy``/``.pt`` file as a tensor, or :class:`MelFileError`."""
    suffix = path.suffix.lower()
    if suffix not in MEL_EXTENSIONS:
        raise MelFileError(path, f"unknown mel file type {suffix or '(none)'}; use .npy or .pt")
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise MelFileError(path, f"cannot read the file ({e.strerror or e})") from None
    if not head:
        raise MelFileError(path, "the file is empty (0 bytes)")
    if suffix == ".npy":
        if not head.startswith(b"\x93NUMPY"):
            kind = "a text file" if all(32 <= b < 127 or b in (9, 10, 13) for b in head) else "an unknown file"
            raise MelFileError(path, f"not a NumPy .npy array ({kind}: no .npy header)")
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except ValueError as e:
            text = str(e)
            if "Object arrays" in text or "pickled" in text:
                raise MelFileError(path, "holds Python objects, not numbers (wrong dtype: object)") from None
            if "read all data" in text or "cannot reshape" in text:
                raise MelFileError(path, f"truncated .npy file ({text.split('. (')[0]})") from None
            raise MelFileError(path, f"not a readable .npy file ({text})") from None
        except (OSError, EOFError) as e:
            raise MelFileError(path, f"truncated or unreadable .npy file ({e})") from None
    try:
        # weights_only: a mel file is data; nothing in it may run code.
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt or hostile files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MelFileError(path, f"not a readable tensor file ({first[:200]})") from None
    if not isinstance(data, torch.Tensor):
        raise MelFileError(path, f"holds a {type(data).__name__}, not a tensor")
    return data


def _to_mels_first(data: torch.Tensor, n_mels: int, layout: str, notes: list[str]) -> torch.Tensor:
    shape = tuple(data.shape)
    if data.dim() == 3 and shape[0] == 1:
        data = data[0]
    if data.dim() != 2:
        raise MelFileError("", f"shape {shape}: expected (n_mels, frames), (1, n_mels, frames) or (frames, n_mels)")
    rows, cols = data.shape
    if layout == "mels-first":
        if rows != n_mels:
            raise MelFileError("", f"shape {shape}: {rows} mel bins, the model expects {n_mels} (--mel-layout mels-first)")
        return data
    if layout == "frames-first":
        if cols != n_mels:
            raise MelFileError("", f"shape {shape}: {cols} mel bins, the model expects {n_mels} (--mel-layout frames-first)")
        return data.T
    if rows == n_mels:
        if cols == n_mels:
            notes.append(f"shape {shape} is ambiguous; read as (n_mels, frames) (set --mel-layout to choose)")
        return data
    if cols == n_mels:
        notes.append(f"shape {shape} read as (frames, n_mels) and transposed (set --mel-layout to force a layout)")
        return data.T
    raise MelFileError("", f"shape {shape}: wrong number of mel bins, the model expects {n_mels} in either dimension")


def read_mel(
    path: str | Path, n_mels: int, layout: str = "auto", scale: str = "ln"
) -> tuple[torch.Tensor, list[str]]:
    """Read and validate a mel file; like :func:`load_mel` but returns the warnings instead of issuing them
    (thread-safe: batch jobs collect them per file)."""
    path = Path(path)
    if layout not in MEL_LAYOUTS:
        raise ValueError(f"mel layout must be one of {', '.join(MEL_LAYOUTS)}, got {layout!r}")
    if scale not in MEL_SCALES:
        raise ValueError(f"mel scale must be one of {', '.join(MEL_SCALES)}, got {scale!r}")
    data = _read_array(path)
    if not torch.is_floating_point(data):
        raise MelFileError(path, f"wrong dtype {str(data.dtype).replace('torch.', '')}: a log-mel holds floating-point values")
    if data.numel() == 0:
        raise MelFileError(path, f"empty array (shape {tuple(data.shape)})")
    notes: list[str] = []
    try:
        mel = _to_mels_first(data, n_mels, layout, notes)
    except MelFileError as e:
        raise MelFileError(path, e.reason) from None
    mel = mel.to(torch.float32)
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
