"""Reading PyTorch files without running what they ask for, in bounded memory.

Foreign checkpoints are read with torch's weights-only unpickler plus stand-ins for the few class paths
WaveGlow checkpoints contain (``glow.WaveGlow``, ``torch.nn.modules.conv.Conv1d``, ...). A stand-in only
records the pickled state; nothing from the file is executed, and any other class or function is refused.
Legacy-format (pre-1.6, non-zip) files, which torch's weights-only unpickler cannot read when they hold pickled
modules, go through an equivalent allow-listing ``pickle.Unpickler``. Before either runs, :mod:`waveflow.safeload` checks
the container and scans the pickle (refusing, by name, anything off the allow-list); after, it checks that every
tensor is honest (see :func:`safe_load`).
"""

from __future__ import annotations

import functools
import pickle
import re
import tarfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ..safeload import (
    MAX_FILE_BYTES,
    MAX_PICKLE_BYTES,
    REFUSED,
    canonical_name,
    check_loaded,
    refusal,
    scan_pickle,
    zip_pickle,
)
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
# Storage classes as both formats name them (``torch.FloatStorage``; ``torch.cuda.FloatStorage`` in legacy files
# saved from a GPU, as NVIDIA's are); torch maps them to dtypes itself, and everything is loaded to the CPU.
STORAGE_NAMES = frozenset(
    f"{module}.{kind}Storage"
    for module in ("torch", "torch.cuda")
    for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool", "Untyped")
)


@functools.cache
def _legacy_globals() -> dict[str, Any]:
    """Everything a WaveGlow file may name: tensor rebuilders, containers, the stand-ins."""
    utils = torch._utils
    names = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state")
    allowed: dict[str, Any] = {f"torch._utils.{n}": getattr(utils, n) for n in names if hasattr(utils, n)}
    allowed.update({"collections.OrderedDict": OrderedDict, "builtins.set": set, "torch.Size": torch.Size})
    allowed.update({path: obj for obj, path in allowed_globals()})
    return allowed


def is_allowed(name: str) -> bool:
    """Whether a checkpoint's pickle may name the global ``name`` (canonical ``module.name``)."""
    return name in _legacy_globals() or name in STORAGE_NAMES


class _AllowListUnpickler(pickle.Unpickler):
    """Resolves only the globals of :func:`_legacy_globals`; anything else is refused before it exists.

    PyTorch's legacy (pre-1.6) format records the class of every pickled ``nn.Module`` as a persistent id,
    which torch's weights-only unpickler refuses outright, so NVIDIA's published (legacy) files need this.
    ``storage_budget`` (bytes, set per file) bounds the storages the pickle may declare: torch allocates each
    before reading it.
    """

    storage_budget: int | None = None
    path: Path | None = None

    def find_class(self, module: str, name: str) -> Any:
        found = _legacy_globals().get(canonical_name(module, name))
        if found is None:
            raise refusal(self.path or Path("?"), canonical_name(module, name), error=CheckpointError)
        return found

    def __setattr__(self, name: str, value: Any) -> None:
        # torch's loader installs its persistent_load here; each storage it creates is checked first.
        if name == "persistent_load" and self.storage_budget is not None:
            value = _bounded_storages(value, self.storage_budget, self.path)
        super().__setattr__(name, value)


def _bounded_storages(load, budget: int, path: Path | None):
    """torch's ``persistent_load``, refusing storages that together declare more bytes than ``budget``."""
    seen: set = set()
    total = 0

    def persistent_load(pid):
        nonlocal total
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage") and pid[2] not in seen:
            storage_type, numel = pid[1], pid[4]
            if type(numel) is not int or numel < 0:
                raise CheckpointError(path, f"not a readable PyTorch checkpoint (a storage of {numel!r:.40} elements)")
            seen.add(pid[2])
            total += numel * torch.empty((), dtype=storage_type.dtype).element_size()
            if total > budget:
                raise CheckpointError(path, f"not a readable PyTorch checkpoint (its storages declare {total:,} bytes, "
                                            f"the file holds {budget:,}: truncated, or a size bomb)")
        return load(pid)

    return persistent_load


def _pickle_module(path: Path, budget: int) -> type:
    """A ``pickle_module`` for ``torch.load`` whose unpickler is an :class:`_AllowListUnpickler` for ``path``."""
    unpickler = type("Unpickler", (_AllowListUnpickler,), {"storage_budget": budget, "path": path})
    return type("_AllowListPickle", (), {
        "Unpickler": unpickler,
        "load": staticmethod(lambda file, **kwargs: unpickler(file, **kwargs).load()),
    })


def load_legacy(path: str | Path) -> Any:
    """Read a legacy-format (non-zip) PyTorch file with the allow-listing unpickler, on the CPU, its storages
    bounded by the file's size (the pickle is not scanned first: :func:`safe_load` is the way in)."""
    path = Path(path)
    with warnings.catch_warnings():
        # torch compares each pickled module's saved source with the stand-in's and warns; irrelevant here.
        warnings.simplefilter("ignore")
        module = _pickle_module(path, path.stat().st_size)
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)


# ------------------------------------------------------------------------------------------ the way in
def safe_load(path: Path) -> Any:
    """``torch.load`` that runs no code from the file and allocates about its size at most.

    The file's container and pickle are checked first (:mod:`waveflow.safeload`), then it is read weights-only with the
    stand-ins (zip files) or with the allow-listing unpickler (legacy files: NVIDIA's published ones), and
    what it holds is checked before anything is copied (:func:`waveflow.safeload.check_loaded`).

    Raises:
        CheckpointError: a refusal (naming what the file asked for), a file over the limits, a corrupt file.
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(path, f"{REFUSED}: {size / 1e9:.1f} GB; waveflow reads checkpoints up to "
                                    f"{MAX_FILE_BYTES / 1e9:.1f} GB")
    with path.open("rb") as f:
        is_zip = f.read(4) == b"PK\x03\x04"  # torch's own test
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols and module sources
            if is_zip:
                scan_pickle(zip_pickle(path, size, CheckpointError), is_allowed, path, error=CheckpointError)
                with torch.serialization.safe_globals(allowed_globals()):
                    payload = torch.load(path, map_location="cpu", weights_only=True)
            else:
                if tarfile.is_tarfile(path):
                    raise CheckpointError(path, "a PyTorch < 0.4 tar archive; waveflow does not read that format")
                with path.open("rb") as f:
                    head = f.read(MAX_PICKLE_BYTES)
                scan_pickle(head, is_allowed, path, count=5, error=CheckpointError)  # magic, protocol, system info, objects, storage keys
                payload = load_legacy(path)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:  # scanned first, so rarely met; never torch's words (they suggest
        found = re.search(r"GLOBAL ([\w.]+)", str(e))  # weights_only=False)
        if found:
            raise refusal(path, found.group(1), error=CheckpointError) from None
        raise CheckpointError(path, f"{REFUSED}: torch's weights-only reader refused it; nothing was run") from None
    except Exception as e:  # noqa: BLE001 - a corrupt file fails anywhere in the unpickler (IndexError, ...)
        raise CheckpointError(path, f"not a readable PyTorch checkpoint ({_reason(e)})") from None
    check_loaded(payload, path, size, CheckpointError)
    return payload


def _reason(e: Exception) -> str:
    text = str(e).strip()
    if "weights_only" in text:
        return "torch's weights-only reader refused it"
    return text.splitlines()[0][:200] if text else type(e).__name__
