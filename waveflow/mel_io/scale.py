"""Log scales of mel files: telling natural-log (Tacotron2) mels from log10, dB, ln-of-power and linear ones,
and converting the others to Tacotron2's natural log of magnitudes."""

from __future__ import annotations

import math

import torch

MEL_SCALES = ("ln", "ln-power", "log10", "db")
LN_FLOOR = math.log(1e-5)  # Tacotron2's floor: ln(clamp(x, 1e-5)) = -11.51
# Natural-log mels of audio in [-1, 1] with Tacotron2's filterbank stay in about [ln(1e-5), 4]; a margin
# either side still counts as ln. log10 mels stay in [-5, 2], dB mels (20 log10) in [-100, 40].
_LN_RANGE = (LN_FLOOR - 0.5, 8.0)
# ln of a power mel (magnitude squared) doubles every value: speech reaches about 2 * 4 = 8 at its loudest and
# goes below the magnitude floor in quiet parts (unclamped powers of 1e-12 are -27.6). dB mels of speech reach
# +20..+40 at their loudest. So: below the floor, no louder than 10, not down at dB depths: ln of power.
_POWER_RANGE = (-60.0, 10.0)


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
    return range_problem(float(mel.min()), float(mel.max()))


def range_problem(lo: float, hi: float) -> str | None:
    """:func:`scale_problem` from a mel's smallest and largest values (a long mel is read in pieces)."""
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
