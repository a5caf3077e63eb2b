"""Vocoder models built from the flows in :mod:`waveflow.flows`, and what they need to run inference."""

from .config import WaveGlowConfig
from .prepare import plain_state_dict, prepare_for_inference, receptive_field_frames
from .waveglow import NLLOutput, WaveGlow

__all__ = ["NLLOutput", "WaveGlow", "WaveGlowConfig", "plain_state_dict", "prepare_for_inference",
           "receptive_field_frames"]
