"""One error base for everything waveflow refuses on purpose.

Every module's errors derive from :class:`WaveflowError`, so the command line catches this one class and prints
its message (no traceback), and library users can do the same. An error about a file carries ``path`` and
``reason`` and reads ``"path: reason"``; an error about no file in particular carries only the message.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
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


def run_command(action: Callable[[], int | None], interrupted: str = "interrupted") -> int:
    """Run a command-line action and turn what it raises into a message and an exit code, never a traceback:
    0 (or the action's code), 1 for our errors and for bad values or file-system trouble from below (a missing
    folder, a full disk), 130 for Ctrl+C. Every entry point (``waveflow``, ``python -m waveflow.app``,
    ``python -m waveflow.corpus``) goes through here."""
    try:
        return int(action() or 0)
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
    except (WaveflowError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
