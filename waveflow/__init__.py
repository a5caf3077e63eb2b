"""waveflow: a WaveGlow-style neural vocoder toolkit.

Public API (stable)::

    from waveflow import MelConfig, MelSpectrogram, WaveGlowConfig, WaveGlow, load_model, save_model
"""

__version__ = "0.1.0"

from .checkpoints import load_model, save_model
from .mel import MelConfig, MelSpectrogram
from .models import WaveGlow, WaveGlowConfig

__all__ = ["MelConfig", "MelSpectrogram", "WaveGlow", "WaveGlowConfig", "__version__", "load_model", "save_model"]
