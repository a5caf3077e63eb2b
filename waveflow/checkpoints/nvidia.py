"""Conversion of NVIDIA WaveGlow checkpoints (NVIDIA/waveglow and DeepLearningExamples) to waveflow weights.

Layouts handled (all map onto :class:`~waveflow.models.WaveGlow` exactly):

* NVIDIA/waveglow ``glow.py``: ``{"model": <pickled glow.WaveGlow>, ...}``; WN with one fused
  ``cond_layer`` and fused ``res_skip_layers``; weight norm as ``weight_g``/``weight_v``.
* NVIDIA/waveglow ``glow_old.py``: per-layer ``cond_layers.{i}``, separate ``res_layers``/``skip_layers``.
* DeepLearningExamples / torch.hub: ``{"state_dict": {...}, "config": {...}}``, keys maybe ``module.``-prefixed,
  per-layer ``cond_layers.{i}`` and fused ``res_skip_layers``.
* A bare ``state_dict`` with any of the names above.

The config is inferred from tensor shapes; the file's own ``config`` entry is not trusted over them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError
from ..models import WaveGlowConfig
from .errors import CheckpointError
from .unpickler import PickledObject


# ------------------------------------------------------------------------------------------ pickled modules
def _module_tensors(obj: PickledObject, prefix: str, out: dict, extra: dict) -> None:
    """Walk a pickled ``nn.Module`` stand-in: collect parameters/buffers by dotted name."""
    state = getattr(obj, "state", None)
    if not isinstance(state, dict):
        return
    for group in ("_parameters", "_buffers"):
        for name, tensor in (state.get(group) or {}).items():
            if isinstance(tensor, torch.Tensor):
                out[prefix + name] = tensor.detach()
    if obj.class_path.endswith("ConvTranspose1d") and "stride" in state:
        extra[prefix + "stride"] = tuple(state["stride"])
    for name, child in (state.get("_modules") or {}).items():
        if isinstance(child, PickledObject):
            _module_tensors(child, f"{prefix}{name}.", out, extra)


def _find_model(payload: Any) -> tuple[dict[str, torch.Tensor], dict, str] | None:
    if isinstance(payload, dict) and isinstance(payload.get("model"), PickledObject):
        payload = payload["model"]
    if isinstance(payload, PickledObject):
        tensors: dict[str, torch.Tensor] = {}
        extra: dict = {}
        _module_tensors(payload, "", tensors, extra)
        origin = "nvidia/waveglow (glow_old)" if payload.class_path.startswith("glow_old") else "nvidia/waveglow"
        return tensors, extra, origin
    return None


# ------------------------------------------------------------------------------------------ state dicts
def _fold_weight_norm(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weight = g * v / ||v||`` (norm over all dims but 0), computed in float64."""
    out = {}
    for key, value in sd.items():
        if key.endswith(".weight_v"):
            base = key[: -len("_v")]
            g = sd[base + "_g"].double()
            v = value.double()
            norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
            out[base] = (g * v / norm).float()
        elif not key.endswith(".weight_g"):
            out[key] = value.float()
    return out


def _fuse_layers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-layer ``cond_layers``/``res_layers``/``skip_layers`` -> fused ``cond_layer``/``res_skip_layers``.

    Concatenating output channels is exact: each output channel of a 1x1 conv is independent.
    """
    per_flow: dict[str, dict[str, dict[int, torch.Tensor]]] = defaultdict(lambda: defaultdict(dict))
    out = {}
    pattern = re.compile(r"^(WN\.\d+)\.(cond_layers|res_layers|skip_layers)\.(\d+)\.(weight|bias)$")
    for key, value in sd.items():
        m = pattern.match(key)
        if m:
            per_flow[m.group(1)][f"{m.group(2)}.{m.group(4)}"][int(m.group(3))] = value
        else:
            out[key] = value
    for flow, groups in per_flow.items():
        for kind in ("weight", "bias"):
            conds = groups.get(f"cond_layers.{kind}")
            if conds:
                out[f"{flow}.cond_layer.{kind}"] = torch.cat([conds[i] for i in sorted(conds)], 0)
            skips = groups.get(f"skip_layers.{kind}")
            if skips:
                res = groups.get(f"res_layers.{kind}", {})
                for i in sorted(skips):
                    parts = [res[i], skips[i]] if i in res else [skips[i]]
                    out[f"{flow}.res_skip_layers.{i}.{kind}"] = torch.cat(parts, 0)
    return out


def _infer_config(
    sd: dict[str, torch.Tensor], stride: int | None, path, alternate_halves: bool = False
) -> WaveGlowConfig:
    try:
        up = sd["upsample.weight"]
        n_mels, kernel = up.shape[0], up.shape[2]
        flows = sorted({int(k.split(".")[1]) for k in sd if k.startswith("WN.")})
        n_flows = len(flows)
        n_layers = len({k.split(".")[3] for k in sd if k.startswith("WN.0.in_layers.")})
        n_channels = sd["WN.0.start.weight"].shape[0]
        kernel_size = sd["WN.0.in_layers.0.weight"].shape[2]
        n_group = sd["WN.0.cond_layer.weight"].shape[1] // n_mels
        channels = [sd[f"convinv.{k}.conv.weight"].shape[0] for k in range(n_flows)]
        n_half = sd["WN.0.start.weight"].shape[1]
        n_out = sd["WN.0.end.weight"].shape[0]
    except (KeyError, IndexError) as e:
        raise CheckpointError(path, f"not a WaveGlow checkpoint layout (missing {e})") from None
    hop = stride or kernel // 4
    if kernel != 4 * hop:
        raise CheckpointError(path, f"upsampler kernel {kernel} with stride {hop} is not supported (need kernel = 4*stride)")
    drops = [(k, channels[k - 1] - channels[k]) for k in range(1, n_flows) if channels[k] != channels[k - 1]]
    every = drops[0][0] if drops else n_flows
    size = drops[0][1] if drops else 0
    try:
        cfg = WaveGlowConfig(
            n_mels=n_mels,
            n_flows=n_flows,
            n_group=n_group,
            n_early_every=every,
            n_early_size=size,
            n_layers=n_layers,
            n_channels=n_channels,
            kernel_size=kernel_size,
            hop_length=hop,
            coupling="affine" if n_out == 2 * n_half else "additive",
            alternate_halves=alternate_halves,
        )
    except ConfigError as e:
        raise CheckpointError(path, f"unsupported WaveGlow shape: {e}") from None
    if cfg.flow_channels() != channels or channels[0] != n_group:
        raise CheckpointError(path, f"unsupported early-output schedule (channels per flow: {channels})")
    return cfg


def _to_waveflow_names(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in sd.items():
        if key.startswith("WN."):
            _, k, rest = key.split(".", 2)
            out[f"flows.{k}.coupling.wn.{rest}"] = value
        elif key.startswith("convinv."):
            k = key.split(".")[1]
            out[f"flows.{k}.invconv.weight"] = value.reshape(value.shape[0], value.shape[1])
        else:
            out[key] = value
    return out


def convert_foreign(payload: Any, path: str | Path) -> tuple[dict[str, torch.Tensor], WaveGlowConfig, str]:
    """A loaded foreign checkpoint -> ``(waveflow plain state dict, config, origin)``.

    Raises:
        CheckpointError: the layout is not one of NVIDIA's WaveGlow layouts.
    """
    stride = None
    found = _find_model(payload)
    if found is not None:
        sd, extra, origin = found
        stride_t = extra.get("upsample.stride")
        stride = int(stride_t[0]) if stride_t else None
    elif isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        sd = payload["state_dict"]
        origin = "nvidia/DeepLearningExamples"
    elif isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        sd, origin = payload, "state dict (NVIDIA names)"
    else:
        kind = type(payload).__name__
        keys = f" with keys {sorted(map(str, payload))[:6]}" if isinstance(payload, dict) else ""
        raise CheckpointError(path, f"not a waveflow or WaveGlow checkpoint (a {kind}{keys})")
    sd = {re.sub(r"^module\.", "", k): v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not any(k.startswith("WN.") for k in sd):
        raise CheckpointError(path, "no WaveGlow weights found (expected keys like 'WN.0.start.weight_g')")
    sd = _fuse_layers(_fold_weight_norm(sd))
    # glow_old.py's couplings alternate halves (odd flows transform the first half); later layouts do not.
    cfg = _infer_config(sd, stride, path, alternate_halves="glow_old" in origin)
    return _to_waveflow_names(sd), cfg, origin
