"""Vocoder models built from the flows in :mod:`waveflow.flows`, and what they need to run inference.

Code above this package goes through the seam in :mod:`.registry` (:func:`build_model`, :func:`model_type`,
:func:`receptive_field_frames`, :func:`prepare_for_inference`, :func:`plain_state_dict`), not a family's class.
"""

from .config import WaveGlowConfig
from .registry import (
    FAMILIES,
    MODEL_TYPES,
    ModelConfig,
    VocoderModel,
    build_model,
    config_from_dict,
    family,
    model_type,
    plain_state_dict,
    prepare_for_inference,
    receptive_field_frames,
)
from .waveflow import WaveFlow
from .waveflow_config import WaveFlowConfig
from .waveglow import NLLOutput, WaveGlow

__all__ = ["FAMILIES", "MODEL_TYPES", "ModelConfig", "NLLOutput", "VocoderModel", "WaveFlow", "WaveFlowConfig",
           "WaveGlow", "WaveGlowConfig",
           "build_model", "config_from_dict", "family", "model_type", "plain_state_dict", "prepare_for_inference",
           "receptive_field_frames"]
