"""Reading PyTorch files without running what they ask for.

Foreign checkpoints are read with torch's weights-only unpickler plus stand-ins for the few class paths
WaveGlow checkpoints contain (``glow.WaveGlow``, ``torch.nn.modules.conv.Conv1d``, ...). A stand-in only
records the pickled state; nothing from the file is executed, and any other class or function is refused.
Legacy-format (pre-1.6, non-zip) files, which torch's weights-only unpickler cannot read when they hold pickled
modules, go through an equivalent allow-listing ``pickle.Unpickler``.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

# Class paths found in NVIDIA's pickled checkpoints (old and new PyTorch). Nothing else is accepted.
NVIDIA_CLASS_PATHS = (
    "glow.WaveGlow",
    "glow.WN",
    "glow.Invertible1x1Conv",
    "glow.WaveGlowLoss",
    "glow_old.WaveGlow",
    "glow_old.WN",
    "glow_old.Invertible1x1Conv",
    "torch.nn.modules.conv.Conv1d",
    "torch.nn.modules.conv.ConvTranspose1d",
    "torch.nn.modules.container.ModuleList",
    "torch.nn.utils.weight_norm.WeightNorm",
)


class PickledObject:
    """Stand-in for an allow-listed class: records the pickled state and does nothing else."""

    class_path = "?"

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in for {self.class_path}>"


_STANDINS = {
    path: type(f"StandIn_{path.replace('.', '_')}", (PickledObject,), {"class_path": path})
    for path in NVIDIA_CLASS_PATHS
}


def _no_backend() -> None:
    """Stands in for ``torch.nn.backends.thnn._get_thnn_function_backend``: PyTorch <= 1.4 pickled a call to
    it in every module's ``_backend`` attribute, so NVIDIA's published checkpoints contain it."""


_FUNCTIONS = {"torch.nn.backends.thnn._get_thnn_function_backend": _no_backend}


def allowed_globals() -> list[tuple[Any, str]]:
    """``(stand-in, class path)`` pairs for ``torch.serialization.safe_globals``."""
    return [(cls, path) for path, cls in _STANDINS.items()] + [(fn, path) for path, fn in _FUNCTIONS.items()]


# ------------------------------------------------------------------------------------------ legacy format
def _legacy_globals() -> dict[str, Any]:
    """Everything a legacy-format WaveGlow file may name: tensor rebuilders, containers, the stand-ins."""
    utils = torch._utils
    names = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state")
    allowed: dict[str, Any] = {f"torch._utils.{n}": getattr(utils, n) for n in names if hasattr(utils, n)}
    allowed.update({"collections.OrderedDict": OrderedDict, "builtins.set": set, "torch.Size": torch.Size})
    allowed.update({path: obj for obj, path in allowed_globals()})
    return allowed


class _AllowListUnpickler(pickle.Unpickler):
    """Resolves only the globals of :func:`_legacy_globals`; anything else is refused before it exists.

    PyTorch's legacy (pre-1.6) format records the class of every pickled ``nn.Module`` as a persistent id,
    which torch's weights-only unpickler refuses outright, so NVIDIA's published (legacy) files need this.
    """

    def find_class(self, module: str, name: str) -> Any:
        # Protocol-2 pickles use Python 2 names (``__builtin__.set``); map them as pickle itself would.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        found = _legacy_globals().get(f"{module}.{name}")
        if found is None:
            raise pickle.UnpicklingError(f"Unsupported global: GLOBAL {module}.{name} is not allow-listed")
        return found


class _AllowListPickle:
    """A ``pickle_module`` for ``torch.load`` whose unpickler is :class:`_AllowListUnpickler`."""

    Unpickler = _AllowListUnpickler

    @staticmethod
    def load(file, **kwargs) -> Any:
        return _AllowListUnpickler(file, **kwargs).load()


def load_legacy(path: str | Path) -> Any:
    """Read a legacy-format (non-zip) PyTorch file with the allow-listing unpickler, on the CPU."""
    with warnings.catch_warnings():
        # torch compares each pickled module's saved source with the stand-in's and warns; irrelevant here.
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_AllowListPickle)


def safe_load(path: Path) -> Any:
    """``torch.load`` that runs no code from the file: weights-only with the stand-ins (zip files), the
    allow-listing unpickler (legacy files); a refusal or a corrupt file is a :class:`CheckpointError`."""
    try:
        if not zipfile.is_zipfile(path):
            return load_legacy(path)  # pre-1.6 format: NVIDIA's published files
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        message = str(e)
        found = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"got <class '([\w.]+)'>", message)
        if found:
            raise CheckpointError(
                path,
                f"refused to load: the file asks for the Python object '{found.group(1)}', which is not on "
                "waveflow's allow-list of WaveGlow checkpoint classes (loading it could run arbitrary code)",
            ) from None
        raise CheckpointError(path, f"not a readable PyTorch checkpoint ({_first_line(message)})") from None
    except Exception as e:  # noqa: BLE001 - a corrupt file fails anywhere in the unpickler (IndexError, ...)
        reason = _first_line(str(e)) if str(e).strip() else type(e).__name__
        raise CheckpointError(path, f"not a readable PyTorch checkpoint ({reason})") from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"
