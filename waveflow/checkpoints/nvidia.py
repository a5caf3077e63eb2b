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
from ..safeload import check_weights
from .errors import CheckpointError
from .unpickler import PickledObject

# ------------------------------------------------------------------------------------------ pickled modules
MAX_MODULE_DEPTH = 32  # NVIDIA's WaveGlow nests modules 4 deep


def _module_tensors(root: PickledObject, path) -> tuple[dict[str, torch.Tensor], dict]:
    """Walk a pickled ``nn.Module`` stand-in: its parameters/buffers by dotted name, and the upsampler's stride.

    Iterative, and every module is visited once: a cycle, or a module under two names, is refused.
    """
    tensors: dict[str, torch.Tensor] = {}
    extra: dict = {}
    todo, seen = [(root, "")], set()
    while todo:
        obj, prefix = todo.pop()
        where = prefix[:-1] or "the model"
        if id(obj) in seen:
            raise CheckpointError(path, f"module '{where}' is reached twice (the module tree has a cycle)")
        seen.add(id(obj))
        if prefix.count(".") > MAX_MODULE_DEPTH:
            raise CheckpointError(path, f"modules nest more than {MAX_MODULE_DEPTH} levels deep (at '{where}')")
        state = getattr(obj, "state", None)
        if not isinstance(state, dict):
            continue
        for group in ("_parameters", "_buffers"):
            for name, tensor in _entries(state, group, where, path):
                if isinstance(tensor, torch.Tensor):
                    tensors[prefix + str(name)] = tensor.detach()
        if obj.class_path.endswith("ConvTranspose1d") and "stride" in state:
            stride = state["stride"]
            if not isinstance(stride, (tuple, list)) or not stride or type(stride[0]) is not int or stride[0] < 1:
                raise CheckpointError(path, f"module '{where}' has stride {stride!r:.60}, not a positive integer")
            extra[prefix + "stride"] = tuple(stride)
        children = [(f"{prefix}{name}.", child) for name, child in _entries(state, "_modules", where, path)]
        todo.extend((child, name) for name, child in reversed(children) if isinstance(child, PickledObject))
    return tensors, extra


def _entries(state: dict, group: str, where: str, path) -> list[tuple[Any, Any]]:
    entries = state.get(group) or {}
    if not isinstance(entries, dict):
        raise CheckpointError(path, f"module '{where}' has {group} of type {type(entries).__name__}, not a mapping")
    return list(entries.items())


def _find_model(payload: Any, path) -> tuple[dict[str, torch.Tensor], dict, str] | None:
    if isinstance(payload, dict) and isinstance(payload.get("model"), PickledObject):
        payload = payload["model"]
    if isinstance(payload, PickledObject):
        tensors, extra = _module_tensors(payload, path)
        origin = "nvidia/waveglow (glow_old)" if payload.class_path.startswith("glow_old") else "nvidia/waveglow"
        return tensors, extra, origin
    return None


# ------------------------------------------------------------------------------------------ state dicts
def _fold_weight_norm(sd: dict[str, torch.Tensor], path) -> dict[str, torch.Tensor]:
    """``weight = g * v / ||v||`` (norm over all dims but 0), computed in float64."""
    out = {}
    for key, value in sd.items():
        if key.endswith(".weight_v"):
            base = key[: -len("_v")]
            g = sd.get(base + "_g")
            if g is None:
                raise CheckpointError(path, f"weight '{key}' has no '{base}_g': weight norm needs both")
            if value.dim() < 2 or g.numel() != value.shape[0]:
                raise CheckpointError(path, f"weight norm '{base}': v of shape {tuple(value.shape)} does not fit g "
                                            f"of shape {tuple(g.shape)}")
            v = value.double()
            norm = v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))
            if not bool((norm > 0).all()):
                raise CheckpointError(path, f"weight '{key}' has an all-zero row: weight norm would divide by zero")
            out[base] = (g.double().reshape(norm.shape) * v / norm).float()
        elif not key.endswith(".weight_g"):
            out[key] = value.float()
    return out


def _fuse_layers(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-layer ``cond_layers``/``res_layers``/``skip_layers`` -> fused ``cond_layer``/``res_skip_layers``.

    Concatenating output channels is exact: each output channel of a 1x1 conv is independent.
    """
    per_flow: dict[str, dict[str, dict[int, torch.Tensor]]] = defaultdict(lambda: defaultdict(dict))
    out = {}
    pattern = re.compile(r"^(WN\.\d+)\.(cond_layers|res_layers|skip_layers)\.(\d+)\.(weight|bias)$", re.ASCII)
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


def _shape(sd: dict[str, torch.Tensor], key: str, path) -> tuple[int, ...]:
    """The shape of the conv weight ``key``: 3-D, no zero dimension."""
    if key not in sd:
        raise CheckpointError(path, f"not a WaveGlow checkpoint layout (missing '{key}')")
    shape = tuple(sd[key].shape)
    if len(shape) != 3 or 0 in shape:
        raise CheckpointError(path, f"weight '{key}' has shape {shape}; a conv weight has three non-zero dimensions")
    return shape


def _flow_count(sd: dict[str, torch.Tensor], path) -> int:
    """Flows numbered ``WN.0`` .. ``WN.{n-1}``; a name with another index is refused."""
    indices = set()
    for key in sd:
        if key.startswith("WN."):
            index = key.split(".")[1]
            if not re.fullmatch(r"\d{1,6}", index, re.ASCII):
                raise CheckpointError(path, f"weight '{key[:80]}': flow index '{index[:20]}' is not a number")
            indices.add(int(index))
    if sorted(indices) != list(range(len(indices))):
        raise CheckpointError(path, f"flows are numbered {sorted(indices)[:8]}..., not 0..{len(indices) - 1}")
    return len(indices)


def _infer_config(
    sd: dict[str, torch.Tensor], stride: int | None, path, alternate_halves: bool = False
) -> WaveGlowConfig:
    n_mels, _, kernel = _shape(sd, "upsample.weight", path)
    n_flows = _flow_count(sd, path)
    n_layers = len({k.split(".")[3] for k in sd if k.startswith("WN.0.in_layers.")})
    n_channels, n_half, _ = _shape(sd, "WN.0.start.weight", path)
    kernel_size = _shape(sd, "WN.0.in_layers.0.weight", path)[2]
    cond = _shape(sd, "WN.0.cond_layer.weight", path)[1]
    if cond % n_mels:
        raise CheckpointError(path, f"conditioning of {cond} channels is not a multiple of {n_mels} mels")
    n_group = cond // n_mels
    channels = [_shape(sd, f"convinv.{k}.conv.weight", path)[0] for k in range(n_flows)]
    n_out = _shape(sd, "WN.0.end.weight", path)[0]
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
    found = _find_model(payload, path)
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
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    check_weights(sd, path, CheckpointError)  # by the file's own names
    sd = {re.sub(r"^module\.", "", k): v for k, v in sd.items()}
    if not any(k.startswith("WN.") for k in sd):
        raise CheckpointError(path, "no WaveGlow weights found (expected keys like 'WN.0.start.weight_g')")
    sd = _fuse_layers(_fold_weight_norm(sd, path))
    # glow_old.py's couplings alternate halves (odd flows transform the first half); later layouts do not.
    cfg = _infer_config(sd, stride, path, alternate_halves="glow_old" in origin)
    return _to_waveflow_names(sd), cfg, origin
