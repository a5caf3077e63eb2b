"""Progress bars that suit where they are written.

On a terminal: tqdm's bar, redrawn in place. On a file or a pipe (a log, CI, ``nohup``, ``2> train.log``) a bar
redrawn in place becomes one line per redraw, thousands for a training run; there :class:`LogBar` writes whole
lines instead, at most about :data:`LOG_LINES` per bar (every ``1 / LOG_LINES`` of the total, and the end), or
one every :data:`LOG_INTERVAL` seconds when the total is not known.
"""

from __future__ import annotations

import math
import sys

from tqdm import tqdm

LOG_LINES = 10  # lines per bar written to a file or a pipe (plus the first and the last)
LOG_INTERVAL = 60.0  # seconds between lines when the total is unknown


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable=None, *, enabled: bool = True, file=None, **kwargs) -> tqdm:
    """A tqdm bar (same arguments) on ``file`` (default: stderr): redrawn in place on a terminal, a
    :class:`LogBar` elsewhere, no output at all unless ``enabled``."""
    file = file if file is not None else sys.stderr
    if not enabled:
        return tqdm(iterable, file=file, disable=True, **kwargs)
    if is_terminal(file):
        return tqdm(iterable, file=file, dynamic_ncols=True, **kwargs)
    return LogBar(iterable, file=file, **kwargs)


class LogBar(tqdm):
    """tqdm for logs: whole lines (no carriage returns), at most about ``lines`` of them per bar.

    With a known total a line is written every ``ceil(remaining / lines)`` steps; without one, at most every
    :data:`LOG_INTERVAL` seconds. tqdm's monitor thread, which would force a redraw every ``maxinterval``
    seconds, is kept out (``maxinterval`` is infinite), and :meth:`tqdm.write` (log messages) writes between
    whole lines without wiping anything.
    """

    def __init__(self, iterable=None, *args, lines: int = LOG_LINES, **kwargs):
        total = kwargs.get("total")
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        remaining = None if total is None else total - kwargs.get("initial", 0)
        if remaining and remaining > 0:
            kwargs.update(miniters=max(1, math.ceil(remaining / max(1, lines))), mininterval=0.0)
        else:
            kwargs.update(mininterval=LOG_INTERVAL)
        kwargs.update(maxinterval=math.inf, ascii=True, ncols=kwargs.get("ncols") or 100)
        kwargs.pop("dynamic_ncols", None)
        self._shown: float | None = None  # the count of the last line written
        super().__init__(iterable, *args, **kwargs)

    def display(self, msg=None, pos=None) -> bool:
        if msg == "":  # tqdm clearing its line: nothing to clear in a log
            return False
        if self.n == self._shown:  # a redraw of the same count (e.g. after tqdm.write): said already
            return True
        line = self.__str__() if msg is None else msg
        if line.strip():
            self.fp.write(line.rstrip() + "\n")
            self.fp.flush()
            self._shown = self.n
        return True

    def clear(self, nolock=False) -> None:
        pass  # lines already written stay; tqdm.write() calls this before writing a message

    def close(self) -> None:
        if self.disable:
            return
        self.display()  # the final count, unless the last line showed it
        self.leave = False  # and no extra newline from tqdm: every line already ends with one
        super().close()
