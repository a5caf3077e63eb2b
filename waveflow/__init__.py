"""waveflow: a WaveGlow-style neural vocoder toolkit.

Public API (stable)::

    from waveflow import Vocoder                       # the main inference class
    from waveflow import MelConfig, MelSpectrogram, WaveGlowConfig, WaveGlow, load_model, save_model
    from waveflow import WaveFlowConfig, WaveFlow      # the second flow family (autoregressive over a height)
"""

import os as _os
import sys as _sys

if "torch" not in _sys.modules:  # read once, when torch loads its OpenMP runtime; a user's own setting wins
    # Idle OpenMP threads sleep instead of spinning. Where the cores are shared (2 cores beside a training run),
    # spinning threads wait on each other's busy core: vocoding was 3-10x slower (README, Benchmarks).
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .checkpoints import load_model, save_model
from .errors import WaveflowError
from .inference import Vocoder
from .mel import MelConfig, MelSpectrogram
from .models import WaveGlow, WaveGlowConfig
from .models.waveflow import WaveFlow, WaveFlowConfig
from .version import __version__

__all__ = ["MelConfig", "MelSpectrogram", "Vocoder", "WaveFlow", "WaveFlowConfig", "WaveGlow", "WaveGlowConfig",
           "WaveflowError", "__version__", "load_model", "save_model"]
