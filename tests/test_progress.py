"""Progress output on a file or a pipe stays a handful of whole lines (waveflow.progress), not one per step."""

from __future__ import annotations

import io
import itertools

import pytest
import tqdm.std as tqdm_std
from tqdm import tqdm

from waveflow.progress import LOG_INTERVAL, LOG_LINES, LogBar, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def slow_steps(monkeypatch):
    """tqdm's clock advances a second each time it is read: every step looks like a slow training step (with
    plain tqdm each would be a line), without any waiting."""
    ticks = itertools.count()
    monkeypatch.setattr(tqdm_std, "time", lambda: float(next(ticks)))


def lines_of(text: str) -> list[str]:
    """What a log viewer shows: carriage returns start lines too."""
    return [line for line in text.replace("\r", "\n").split("\n") if line.strip()]


def test_a_long_bar_into_a_file_writes_a_bounded_number_of_whole_lines(slow_steps):
    plain = io.StringIO()
    bar = tqdm(total=500, file=plain)
    for _ in range(500):
        bar.update(1)
    bar.close()
    assert len(lines_of(plain.getvalue())) > 400  # what a log of plain tqdm looks like
    out = io.StringIO()
    bar = progress_bar(total=5000, desc="train", unit="step", file=out)
    assert isinstance(bar, LogBar)
    for _ in range(5000):
        bar.update(1)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = lines_of(text)
    assert 2 <= len(lines) <= LOG_LINES + 2, lines
    assert "5000/5000" in lines[-1] and lines[-1].startswith("train")


def test_an_iterable_and_log_messages_between_lines(slow_steps):
    out = io.StringIO()
    for i in progress_bar(range(300), desc="eval", file=out):
        if i % 50 == 0:
            tqdm.write(f"note {i}", file=out)  # what waveflow's logging handler does
    lines = lines_of(out.getvalue())
    assert [line for line in lines if line.startswith("note")] == [f"note {i}" for i in range(0, 300, 50)]
    bars = [line for line in lines if line.startswith("eval")]
    assert len(bars) <= LOG_LINES + 2 and "300/300" in bars[-1]
    assert all(line.startswith(("eval", "note")) for line in lines), lines  # nothing half-wiped


def test_resumed_and_unknown_totals_stay_bounded(slow_steps):
    out = io.StringIO()
    bar = progress_bar(total=1500, initial=1400, desc="train", file=out)  # a resumed run: 100 steps left
    for _ in range(100):
        bar.update(1)
    bar.close()
    assert len(lines_of(out.getvalue())) <= LOG_LINES + 2
    out = io.StringIO()
    bar = progress_bar(desc="corpus", file=out)  # no total: time-based, one line a minute at most
    for _ in range(3000):  # 3000 "seconds"
        bar.update(1)
    bar.close()
    lines = lines_of(out.getvalue())
    assert len(lines) <= 3000 / LOG_INTERVAL + 2 and "3000" in lines[-1]


def test_a_terminal_gets_tqdms_bar_and_disabled_is_silent():
    term = Terminal()
    bar = progress_bar(total=10, file=term)
    assert type(bar) is tqdm
    bar.close()
    out = io.StringIO()
    bar = progress_bar(total=10, file=out, enabled=False)
    for _ in range(10):
        bar.update(1)
    bar.close()
    assert out.getvalue() == ""
