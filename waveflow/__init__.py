"""waveflow: a WaveGlow-style neural vocoder toolkit.

Public API (stable)::

    from waveflow import Vocoder                       # the main inference class
    from waveflow import MelConfig, MelSpectrogram, WaveGlowConfig, WaveGlow, load_model, save_model
"""

from .checkpoints import load_model, save_model
from .errors import WaveflowError
from .inference import Vocoder
from .mel import MelConfig, MelSpectrogram
from .models import WaveGlow, WaveGlowConfig
from .version import __version__

__all__ = ["MelConfig", "MelSpectrogram", "Vocoder", "WaveGlow", "WaveGlowConfig", "WaveflowError", "__version__",
           "load_model", "save_model"]
