"""The error every checkpoint loader raises: it names the file and the reason."""

from __future__ import annotations

from ..errors import WaveflowError


class CheckpointError(WaveflowError, ValueError):
    """A checkpoint cannot be read, is of an unknown layout, or was refused; names the file and the reason."""
