"""What every benchmark script shares: model shapes by name, random couplings, timing, SNR, the JSON record.

The scripts import it as ``from benchlib import ...`` (``python scripts/bench_x.py`` puts ``scripts/`` on
the path). Every benchmark prints JSON whose records carry :func:`record`'s fields (figure, config, device,
device_name, dtype, torch, waveflow) next to its own figures, so results from different scripts, machines
and versions can be put side by side.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# As `import waveflow` does when it loads torch: idle OpenMP threads sleep instead of spinning (on a busy
# 2-core machine spinning threads made inference 3-10x slower). OMP_WAIT_POLICY=ACTIVE measures spinning ones.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # after the OpenMP setting

import waveflow
from waveflow.config import ConfigError, bundled_configs, find_config, load_yaml
from waveflow.flows.wavenet import randomize_ends
from waveflow.inference import DTYPES, pick_device
from waveflow.kernels import snr_db as _snr_db
from waveflow.models import VocoderModel, WaveGlowConfig, config_from_dict
from waveflow.models import build_model as build_fresh

DEFAULT_SOURCE = "WaveGlowConfig() (NVIDIA's published shape)"
MODEL_NAMES = ("default", *bundled_configs())  # default, 256, small, tiny; or the path of a YAML file
CONFIG_HELP = f"a bundled model ({', '.join(MODEL_NAMES)}; default is NVIDIA's shape) or a YAML file's path"

__all__ = ["CONFIG_HELP", "DTYPES", "MODEL_NAMES", "Timing", "build_model", "config_arg", "device_name",
           "emit", "model_config", "record", "resolve_device", "snr_db", "snr_field", "sync", "time_calls"]


# ------------------------------------------------------------------------------------------------ models
def model_config(name: str) -> tuple[object, str]:
    """``(config, where it came from)`` for a model shape given by name or path.

    Args:
        name: ``"default"`` (``WaveGlowConfig()``, NVIDIA's published WaveGlow-256), a bundled config's name
            (``tiny``, ``small``, ``256``, ``waveflow-64``...: the shapes our training configs use, found with
            :func:`waveflow.config.find_config`) or the path of a YAML file with a ``model`` section.

    Raises:
        ConfigError: no such config, no ``model`` section, or a bad key in it.
    """
    if name == "default":
        return WaveGlowConfig(), DEFAULT_SOURCE
    path = find_config(name)
    data = load_yaml(path)
    if not isinstance(data.get("model"), dict):
        raise ConfigError(f"{path}: no model section")
    source = str(path) if Path(name).is_file() else path.name
    return config_from_dict(data["model"], "model"), source


def config_arg(value: str) -> str:
    """argparse ``type=`` for ``--config``: checks that the shape exists, keeps the name as given."""
    try:
        model_config(value)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def build_model(config, *, seed: int = 0, end_std: float = 0.0) -> VocoderModel:
    """A random model of ``config`` (any family) (torch seeded with ``seed``), in float32 on the CPU.

    With ``end_std > 0`` the WN end convs are drawn from ``N(0, end_std^2)``
    (:func:`waveflow.flows.wavenet.randomize_ends`): a fresh model's are zero, which makes every coupling
    the identity, cheaper and more exact than a trained model's.
    """
    torch.manual_seed(seed)
    model = build_fresh(config)
    if end_std > 0:
        randomize_ends(model, end_std, seed)
    return model


# ---------------------------------------------------------------------------------------------- devices
def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA, then MPS, else CPU) or a torch device name; ``ValueError`` if CUDA is asked for but absent."""
    device = pick_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available")
    return device


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model name with torch's thread count (CPU figures depend on both)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    name = ""
    if cpuinfo.exists():
        lines = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        name = lines[0].split(":", 1)[1].strip() if lines else ""
    name = name or platform.processor() or platform.machine()
    return f"{name} ({torch.get_num_threads()} threads)"


def sync(device: torch.device) -> None:
    """Wait for the device's queued work, so a clock read after it measures the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# ----------------------------------------------------------------------------------------------- timing
@dataclass
class Timing:
    """Wall seconds of the timed calls and what the last one returned."""

    times: list[float]
    output: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def total(self) -> float:
        return sum(self.times)


def time_calls(fn: Callable[[], Any], device: torch.device, warmup: int, repeats: int) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; the device is synchronised
    before every clock read, so queued GPU work is counted where it belongs."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    sync(device)
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return Timing(times, out)


# ------------------------------------------------------------------------------------------------ numerics
def snr_db(reference: torch.Tensor | Sequence[torch.Tensor], test: torch.Tensor | Sequence[torch.Tensor]) -> float:
    """SNR of ``test`` against ``reference`` in dB (:func:`waveflow.kernels.snr_db`); lists of tensors (e.g.
    one audio per utterance) are flattened and concatenated first. ``inf`` when identical."""
    def flat(x):
        return torch.cat([t.detach().float().cpu().flatten() for t in x]) if isinstance(x, (list, tuple)) else x

    return _snr_db(flat(reference), flat(test))


def snr_field(snr: float) -> float | None:
    """An SNR for the JSON: ``None`` (null) when identical (``inf`` is not JSON); a NaN stays visible."""
    return None if snr == math.inf else snr


# ------------------------------------------------------------------------------------------------ records
def record(figure: Any, *, config: str, device: torch.device, dtype: str, **fields: Any) -> dict[str, Any]:
    """The fields every benchmark's JSON starts with, then ``fields``.

    Args:
        figure: what is measured (e.g. ``"inverse"``).
        config: the model shape or run config as given on the command line (or a checkpoint's path).
        device: where it ran; ``device_name`` says which GPU or CPU.
        dtype: ``"float32"``, ``"float16"`` or ``"bfloat16"``.
    """
    return {"figure": figure, "config": str(config), "device": str(device), "device_name": device_name(device),
            "dtype": dtype, "torch": str(torch.__version__), "waveflow": waveflow.__version__, **fields}


def emit(data: dict[str, Any], path: Path | None = None, indent: int | None = None) -> None:
    """Print ``data`` as JSON on stdout (progress goes to stderr); also write it to ``path`` if given."""
    text = json.dumps(data, indent=indent, default=str)
    print(text, flush=True)
    if path is not None:
        Path(path).write_text(text + "\n")
