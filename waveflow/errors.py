"""One error base for everything waveflow refuses on purpose.

Every module's errors derive from :class:`WaveflowError`, so the command line catches this one class and prints
its message (no traceback), and library users can do the same. An error about a file carries ``path`` and
``reason`` and reads ``"path: reason"``; an error about no file in particular carries only the message.
"""

from __future__ import annotations

from pathlib import Path


class WaveflowError(Exception):
    """Something waveflow cannot do, said for the user as is.

    ``WaveflowError(path, reason)`` names a file (``str(e) == f"{path}: {reason}"``);
    ``WaveflowError(message)`` does not (``path`` is then ``None`` and ``reason`` the message).
    """

    def __init__(self, path_or_message: str | Path, reason: str | None = None):
        if reason is None:
            self.path, self.reason = None, str(path_or_message)
            super().__init__(self.reason)
        else:
            self.path, self.reason = str(path_or_message), reason
            super().__init__(f"{path_or_message}: {reason}")
