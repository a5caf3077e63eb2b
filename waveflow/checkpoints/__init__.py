"""Model files: waveflow's own format (:mod:`.own`), NVIDIA/DLE conversion (:mod:`.nvidia`), and the
allow-listing unpickler every foreign file goes through (:mod:`.unpickler`)."""

from .bundled import DEFAULT_VOICE, bundled_voices, resolve_checkpoint
from .errors import CheckpointError
from .own import LoadedCheckpoint, describe, import_checkpoint, load_checkpoint, load_model, save_model

__all__ = [
           "DEFAULT_VOICE",
           "CheckpointError",
           "LoadedCheckpoint",
           "bundled_voices",
           "describe",
           "import_checkpoint",
           "load_checkpoint",
           "load_model",
           "resolve_checkpoint",
           "save_model",
]
