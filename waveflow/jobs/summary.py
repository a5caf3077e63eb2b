"""What a folder job did (:class:`Summary`): counts, per-file failures and warnings, how it ended, and how to
continue; merged across processes when several shared the work."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..audio import atomic_path

# Exit codes of a job that was interrupted: 128 + the signal's number, as shells report it.
SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


@dataclass
class Failure:
    path: str
    reason: str


@dataclass
class Summary:
    """What a batch did. ``audio_seconds``/``wall_seconds`` give the real-time factor where it applies.

    ``left`` counts planned files not attempted (after an interruption or a full disk); ``interrupted`` names
    the signal that stopped the job, ``stopped`` says why it stopped on its own (a full disk).
    """

    ok: int = 0
    skipped: int = 0
    failed: int = 0
    left: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    warnings: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: str | None = None
    stopped: str | None = None
    processes: int = 1
    shard: str | None = None
    per_process: list[dict] = field(default_factory=list)
    main: bool = field(default=True, repr=False)  # False on the other processes of a launch: they stay quiet

    @property
    def rtf(self) -> float | None:
        """Real-time factor: wall time / audio time (< 1 is faster than real time)."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds > 0 else None

    def fail(self, path: str | Path, reason: str) -> None:
        self.failed += 1
        self.failures.append(Failure(str(path), reason))

    def warn(self, path: str | Path, reason: str) -> None:
        self.warnings.append(Failure(str(path), reason))

    def counts(self) -> dict:
        return {"ok": self.ok, "skipped": self.skipped, "failed": self.failed, "left": self.left}

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("main")
        d["rtf"] = self.rtf
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Summary:
        names = {f.name for f in fields(cls)}
        s = cls(**{k: v for k, v in d.items() if k in names and k not in ("failures", "warnings")})
        s.failures = [Failure(**f) for f in d.get("failures", [])]
        s.warnings = [Failure(**w) for w in d.get("warnings", [])]
        return s

    def exit_code(self) -> int:
        if self.interrupted:
            return SIGNAL_EXIT.get(self.interrupted, 130)
        return 1 if self.failed or self.stopped else 0

    def report(self, stream=None, what: str = "files") -> None:
        stream = stream or sys.stderr
        for note in self.notes:
            print(f"note: {printable(note)}", file=stream)
        for w in self.warnings:
            print(f"warning: {printable(w.path)}: {printable(w.reason)}", file=stream)
        for f in self.failures:
            print(f"failed: {printable(f.path)}: {printable(f.reason)}", file=stream)
        line = f"{self.ok} {what} written, {self.skipped} skipped (already done), {self.failed} failed"
        if self.left:
            line += f", {self.left} not done"
        if self.processes > 1:
            line += f", on {self.processes} processes"
        if self.shard:
            line = f"shard {self.shard}: {line}"
        if self.audio_seconds > 0:
            line += f"; {self.audio_seconds:.1f} s of audio in {self.wall_seconds:.1f} s"
            line += f" (real-time factor {self.rtf:.3f})"
        print(line, file=stream)
        hint = self.how_to_continue()
        if hint:
            print(hint, file=stream)

    def how_to_continue(self) -> str | None:
        again = "run the same command again to continue (finished outputs are kept and skipped)"
        if self.interrupted:
            return f"interrupted ({self.interrupted}): every output written is complete; {again}"
        if self.stopped:
            return f"error: {self.stopped}"
        if self.failed:
            return (f"the other outputs are complete; fix or remove the {self.failed} failed input(s), then run "
                    "again to retry them (finished outputs are skipped)")
        return None

    def write_json(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def printable(text: str) -> str:
    """``text`` with the bytes of names that are not UTF-8 written as ``\\xff`` (any stream can take it)."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def merge(parts: list[dict]) -> Summary:
    """One summary of the summaries (``to_dict`` form) of the processes that shared a job, in process order."""
    out = Summary.from_dict(parts[0])
    out.per_process = [{"process": i, **Summary.from_dict(p).counts()} for i, p in enumerate(parts)]
    for p in parts[1:]:
        s = Summary.from_dict(p)
        out.ok, out.skipped, out.failed, out.left = (out.ok + s.ok, out.skipped + s.skipped, out.failed + s.failed,
                                                    out.left + s.left)
        out.audio_seconds += s.audio_seconds
        out.wall_seconds = max(out.wall_seconds, s.wall_seconds)
        out.failures += s.failures
        out.warnings += s.warnings
        out.stopped = out.stopped or s.stopped
        out.interrupted = out.interrupted or s.interrupted
    out.processes = len(parts)
    return out
