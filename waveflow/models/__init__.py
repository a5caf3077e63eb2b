"""Vocoder models built from the flows in :mod:`waveflow.flows`."""

from .waveglow import NLLOutput, WaveGlow, WaveGlowConfig

__all__ = ["NLLOutput", "WaveGlow", "WaveGlowConfig"]
