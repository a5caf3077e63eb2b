"""Copy-synthesis metrics from :mod:`waveflow.metrics`, as rows of a table a newcomer can read."""

from __future__ import annotations

import math

import numpy as np

from ..mel import MelConfig
from ..metrics import MetricSet, compare

METRIC_HEADERS = ["metric", "value", "what it means"]

# metric key -> (label, explanation); in display order
_LABELS = {
    "log_mel_l1": ("log-mel distance (L1)", "mean |difference| of the log-mels, nats; 0 = identical"),
    "mcd_db": ("mel-cepstral distortion (dB)", "difference of spectral envelopes; lower is closer"),
    "stft_distance": ("multi-resolution STFT distance", "spectral difference at 3 resolutions; 0 = identical"),
    "pesq_wb": ("PESQ (wideband)", "predicted listening quality, 1.0 (bad) to 4.6 (transparent)"),
    "stoi": ("STOI", "predicted intelligibility, 0 to 1; higher is better"),
}


def metrics_rows(reference: np.ndarray, vocoded: np.ndarray, mel_config: MelConfig, perceptual: bool = True) -> list[list]:
    """``[[label, value, explanation], ...]`` for a clip and its copy synthesis (both at the model's rate).

    Args:
        perceptual: also PESQ and STOI (optional packages; left out, with no error, where not installed).
            F0 metrics are never computed here: pYIN takes seconds per clip, too slow for a live demo.
    """
    values = compare(reference, vocoded, mel_config, MetricSet(pesq=perceptual, stoi=perceptual, f0=False))
    rows = []
    for key, (label, meaning) in _LABELS.items():
        value = values.get(key)
        if value is not None and math.isfinite(value):
            rows.append([label, round(float(value), 3), meaning])
    return rows
