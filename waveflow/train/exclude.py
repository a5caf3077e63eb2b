"""``data.exclude``: clips a run leaves out of every split, e.g. the ``exclude.txt`` of ``waveflow score``.

One clip a line, as a path (absolute, relative to the current folder or to the list's own folder) or as an
utterance id; blank lines and lines starting with ``#`` are skipped. The file is read as bytes, so any name
the file system allows matches (``waveflow score`` writes them so)."""

from __future__ import annotations

import os
from pathlib import Path

from ..config import ConfigError


class Exclusion:
    """The clips a ``data.exclude`` file names; :meth:`__contains__` tells whether an utterance is one."""

    def __init__(self, path: str | Path):
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise ConfigError(f"data.exclude {path}: cannot read it ({e.strerror})") from None
        self.lines = [os.fsdecode(line.strip()) for line in raw.splitlines()]
        self.lines = [line for line in self.lines if line and not line.startswith("#")]
        self.found: set[str] = set()
        self._paths: dict[Path, str] = {}
        for line in self.lines:
            here = Path(line)
            for candidate in (here,) if here.is_absolute() else (here, path.parent / here):
                self._paths.setdefault(Path(os.path.realpath(candidate)), line)

    def __contains__(self, utterance: tuple[str, Path]) -> bool:
        """``(id, path) in exclusion``: the clip's real path or its id is listed."""
        utt_id, path = utterance
        line = self._paths.get(Path(os.path.realpath(path))) or (utt_id if utt_id in self.lines else None)
        if line is not None:
            self.found.add(line)
        return line is not None

    def unmatched(self) -> list[str]:
        """Listed clips that are not in the data (a list made for another corpus, or moved files)."""
        return [line for line in self.lines if line not in self.found]

    def warn_unmatched(self, log) -> None:
        missing = self.unmatched()
        if missing:
            log.warning("data.exclude: %d of its %d clips are not in the data (first: %s)", len(missing),
                        len(self.lines), missing[0])
