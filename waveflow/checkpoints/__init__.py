"""Model files: waveflow's own format (:mod:`.own`), NVIDIA/DLE conversion (:mod:`.nvidia`), and the
allow-listing unpickler every foreign file goes through (:mod:`.unpickler`)."""

from .errors import CheckpointError
from .own import LoadedCheckpoint, describe, import_checkpoint, load_checkpoint, load_model, save_model

__all__ = ["CheckpointError", "LoadedCheckpoint", "describe", "import_checkpoint", "load_checkpoint", "load_model",
           "save_model"]
