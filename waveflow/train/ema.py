"""Exponential moving average of model weights, saved in the training state as a tensor file of its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

EMA_FILE = "ema.pt"
LEGACY_FILE = "custom_checkpoint_0.pkl"  # where states of older versions kept it (through Accelerate's pickle)


class EMA:
    """Exponential moving average of a model's floating-point parameters (and buffers, copied).

    Saved by the trainer as ``ema.pt`` (:meth:`save`: a dict of tensors and a float) and read back weights-only
    (:meth:`load`), so a resume continues it exactly and reading it never runs code. It does not go through
    Accelerate's ``register_for_checkpointing``, which reads its files with a free unpickler.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach().float(), 1.0 - self.decay)

    @contextmanager
    def swapped_in(self, model: nn.Module) -> Iterator[None]:
        """Temporarily load the averaged weights into ``model`` (validation, export)."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        model.load_state_dict({k: v.to(backup[k].dtype) for k, v in self.shadow.items()}, strict=False)
        try:
            yield
        finally:
            model.load_state_dict(backup, strict=False)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay = state["decay"]
        self.shadow = {k: v.float() for k, v in state["shadow"].items()}

    def save(self, state_dir: Path) -> None:
        torch.save({"decay": float(self.decay), "shadow": {k: v.cpu() for k, v in self.shadow.items()}},
                   Path(state_dir) / EMA_FILE)

    def load(self, state_dir: Path) -> None:
        """Read ``ema.pt`` (or an older state's file) weights-only; a :class:`ValueError` names a bad one."""
        path = Path(state_dir) / EMA_FILE
        if not path.is_file() and (Path(state_dir) / LEGACY_FILE).is_file():
            path = Path(state_dir) / LEGACY_FILE  # older states: the same dict, pickled by Accelerate
        if not path.is_file():
            raise ValueError(f"{state_dir}: no {EMA_FILE} in a state of a run with train.ema_decay > 0")
        state = torch.load(path, map_location="cpu", weights_only=True)
        shadow = state.get("shadow") if isinstance(state, dict) else None
        if not isinstance(shadow, dict) or set(shadow) != set(self.shadow) or \
                any(not isinstance(v, torch.Tensor) or v.shape != self.shadow[k].shape for k, v in shadow.items()):
            raise ValueError(f"{path}: not the moving average of this model")
        device = next(iter(self.shadow.values())).device if self.shadow else "cpu"
        self.decay = float(state["decay"])
        self.shadow = {k: v.float().to(device) for k, v in shadow.items()}
