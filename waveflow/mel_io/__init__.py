"""Mel-spectrogram files: writing ``.npy``/``.pt`` in Tacotron2's ``(n_mels, frames)`` layout, and reading mel
files back with validation (layout, dtype, NaN/inf, n_mels, log scale) for vocoding, whole or a stretch at a
time. The ``waveflow mel`` folder job is :mod:`waveflow.jobs.mel`.

- :mod:`.files`: what a file holds, from its header, in bounded memory (untrusted files welcome);
- :mod:`.scale`: log scales told apart and converted to natural log;
- :mod:`.read`: :func:`read_mel`/:func:`load_mel` (whole), :func:`open_mel` (long mels, piece by piece), :func:`save_mel`.
"""

from .files import MEL_EXTENSIONS, PT_MAX_PICKLE, MelFileError
from .read import MEL_LAYOUTS, MelSource, MelTooLongError, load_mel, open_mel, read_mel, save_mel
from .scale import LN_FLOOR, MEL_SCALES, MelScaleWarning, range_problem, scale_problem, to_natural_log

__all__ = ["LN_FLOOR", "MEL_EXTENSIONS", "MEL_LAYOUTS", "MEL_SCALES", "PT_MAX_PICKLE", "MelFileError", "MelScaleWarning",
           "MelSource", "MelTooLongError", "load_mel", "open_mel", "range_problem", "read_mel", "save_mel",
           "scale_problem", "to_natural_log"]
