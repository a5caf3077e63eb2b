"""The text-to-speech engines Debian ships, and the voices of theirs the corpus knows.

Everything that depends on one engine's quirks lives here: which executable and apt package a voice needs,
how to ask each engine which voices it has (they all answer differently), and how to make each one write a
wav. The rest of :mod:`waveflow.corpus` only sees voice names, :class:`Job` and :class:`CorpusError`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import WaveflowError


class CorpusError(WaveflowError, RuntimeError):
    """The corpus cannot be made: a missing engine or voice, an engine failure, or bad arguments.

    The message is meant for the user as is: it names the voice, and the ``apt-get install`` command or the
    engine's own error output. It is still a :class:`RuntimeError`, as it was before the common base.
    """


#: Engine name -> the executable it runs and the Debian package providing that executable.
_ENGINE_EXECUTABLES: dict[str, tuple[str, str]] = {
    "espeak-ng": ("espeak-ng", "espeak-ng"),
    "flite": ("flite", "flite"),
    "festival": ("festival", "festival"),
}


@dataclass(frozen=True)
class VoiceSpec:
    """How to synthesise one voice.

    Attributes:
        engine: ``"espeak-ng"``, ``"flite"`` or ``"festival"``.
        voice: The engine's own voice id (``espeak-ng -v``, ``flite -voice``, festival's ``voice_<id>``).
        package: The Debian package that provides the voice data (for the engine executable's package see
            :attr:`engine_package`).
        description: A few words for ``--list-voices``.
    """

    engine: str
    voice: str
    package: str
    description: str

    @property
    def executable(self) -> str:
        """Name of the engine executable looked up on ``PATH``."""
        return _ENGINE_EXECUTABLES[self.engine][0]

    @property
    def engine_package(self) -> str:
        """Debian package that provides :attr:`executable`."""
        return _ENGINE_EXECUTABLES[self.engine][1]


def _espeak(voice: str, description: str) -> VoiceSpec:
    return VoiceSpec("espeak-ng", voice, "espeak-ng", f"espeak-ng, {description}")


#: Voice name -> how to synthesise it, in a stable order (``--voices all`` follows it). Only voices that
#: work with Debian's stock packages are listed: espeak-ng's MBROLA voices need the separate ``mbrola``
#: packages, flite's ``awb_time`` only speaks clock times, and flite's 8 kHz ``kal`` is replaced by ``kal16``.
VOICES: dict[str, VoiceSpec] = {
    "espeak-en-us": _espeak("en-us", "American English, male"),
    "espeak-en-gb": _espeak("en-gb", "British English, male"),
    "espeak-en-us-f": _espeak("en-us+f3", "American English, female (f3)"),
    "espeak-en-gb-f": _espeak("en-gb+f4", "British English, female (f4)"),
    "espeak-en-gb-m": _espeak("en-gb+m4", "British English, male (m4)"),
    "espeak-en-gb-rp": _espeak("en-gb-x-rp", "Received Pronunciation, male"),
    "espeak-en-gb-scotland": _espeak("en-gb-scotland", "Scottish English, male"),
    "espeak-en-us-nyc": _espeak("en-us-nyc", "New York City English, male"),
    "espeak-en-029": _espeak("en-029", "Caribbean English, male"),
    "flite-kal": VoiceSpec("flite", "kal16", "flite", "flite diphone voice kal (16 kHz), American male"),
    "flite-awb": VoiceSpec("flite", "awb", "flite", "flite clunits voice awb, Scottish male"),
    "flite-rms": VoiceSpec("flite", "rms", "flite", "flite clunits voice rms, American male"),
    "flite-slt": VoiceSpec("flite", "slt", "flite", "flite clunits voice slt, American female"),
    "festival-kal": VoiceSpec(
        "festival", "kal_diphone", "festvox-kallpc16k", "festival diphone voice kal, American male"
    ),
    "festival-slt": VoiceSpec(
        "festival", "cmu_us_slt_arctic_hts", "festvox-us-slt-hts", "festival HTS voice slt, American female"
    ),
}

#: What ``--voices`` defaults to on the command line: two engines, a male and a female voice, both fast.
DEFAULT_VOICES: tuple[str, ...] = ("espeak-en-us", "flite-slt")

# Bounds for a single engine call; festival's HTS voice needs ~0.2 s per utterance, so this is generous.
_ENGINE_TIMEOUT_S = 300.0


def _which(executable: str) -> str | None:
    """Locate ``executable`` on PATH (a seam the tests monkeypatch to simulate a missing engine)."""
    return shutil.which(executable)


def executable_path(spec: VoiceSpec) -> str:
    """The engine executable of ``spec`` as found on PATH now (its bare name when it is not there)."""
    return _which(spec.executable) or spec.executable


def _probe_engine_voices(engine: str, exe: str) -> set[str]:
    """List the voices flite or festival reports (empty when the engine cannot be run)."""
    try:
        if engine == "flite":
            proc = subprocess.run([exe, "-lv"], check=False, capture_output=True, text=True, timeout=30)
            # "Voices available: kal awb_time kal16 awb rms slt"
            text = proc.stdout + proc.stderr
            return set(text.split(":", 1)[1].split()) if ":" in text else set()
        if engine == "festival":
            proc = subprocess.run(
                [exe, "--pipe"],
                check=False,
                input="(print (mapcar car voice-locations))\n",
                capture_output=True,
                text=True,
                timeout=60,
            )
            # "(cmu_us_slt_arctic_hts kal_diphone)"
            return set(re.findall(r"[A-Za-z0-9_]+", proc.stdout))
    except (OSError, subprocess.SubprocessError):
        pass
    return set()


def _espeak_voice_ok(exe: str, voice: str) -> bool:
    """Whether espeak-ng accepts ``voice`` (``-q`` speaks nothing; an unknown voice exits non-zero)."""
    try:
        proc = subprocess.run([exe, "-q", "-v", voice, "a"], check=False, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


def _missing_engine(name: str, spec: VoiceSpec) -> str:
    extra = f" {spec.package}" if spec.package != spec.engine_package else ""
    return (
        f"voice {name!r} needs the {spec.executable!r} executable, which is not on PATH "
        f"(install it with: sudo apt-get install {spec.engine_package}{extra})"
    )


def _missing_voice(name: str, spec: VoiceSpec) -> str:
    return (
        f"voice {name!r} needs {spec.engine} voice {spec.voice!r}, which {spec.engine} does not "
        f"have (install it with: sudo apt-get install {spec.package})"
    )


def voice_problems(voices: Iterable[str]) -> dict[str, str]:
    """Check voices and return ``{voice name: problem}`` for the ones that cannot be used.

    Each engine is probed at most once per call: festival's voice list costs ~0.3 s.
    """
    problems: dict[str, str] = {}
    listed: dict[str, set[str]] = {}
    for name in voices:
        spec = VOICES.get(name)
        if spec is None:
            problems[name] = f"unknown voice {name!r}; known voices: {', '.join(VOICES)}"
            continue
        exe = _which(spec.executable)
        if exe is None:
            problems[name] = _missing_engine(name, spec)
            continue
        if spec.engine == "espeak-ng":
            ok = _espeak_voice_ok(exe, spec.voice)
        else:
            if spec.engine not in listed:
                listed[spec.engine] = _probe_engine_voices(spec.engine, exe)
            ok = spec.voice in listed[spec.engine]
        if not ok:
            problems[name] = _missing_voice(name, spec)
    return problems


def check_engines(voices: Iterable[str]) -> None:
    """Check that every voice is known and its engine executable and voice data are installed.

    Args:
        voices: Voice names, keys of :data:`VOICES`.

    Raises:
        CorpusError: One or more voices cannot be used; the message names each voice, what is missing and
            the ``apt-get install`` command that fixes it.
    """
    voices = parse_voice_list(voices)
    problems = voice_problems(voices)
    if problems:
        raise CorpusError("; ".join(problems.values()))


def available_voices() -> list[str]:
    """Names of the voices in :data:`VOICES` that work on this machine, in :data:`VOICES` order."""
    problems = voice_problems(VOICES)
    return [name for name in VOICES if name not in problems]


def parse_voice_list(voices: str | Iterable[str]) -> list[str]:
    """Accept a comma list or an iterable of names; expand ``all`` and ``available``; drop duplicates."""
    items = voices.split(",") if isinstance(voices, str) else list(voices)
    names: list[str] = []
    for item in (v.strip() for v in items):
        if not item:
            continue
        expanded = list(VOICES) if item == "all" else available_voices() if item == "available" else [item]
        names.extend(name for name in expanded if name not in names)
    return names


@dataclass(frozen=True)
class Job:
    """One utterance to synthesise: engine output goes to ``raw``, the final wav to ``out``."""

    voice: str
    uid: str
    text: str
    spoken: str
    raw: Path
    out: Path


def _run_engine(voice: str, cmd: list[str]) -> None:
    """Run an engine command; raise :class:`CorpusError` with its stderr when it fails."""
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=_ENGINE_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise CorpusError(f"voice {voice!r}: {cmd[0]} did not finish within {exc.timeout:.0f} s") from exc
    except OSError as exc:
        raise CorpusError(f"voice {voice!r}: cannot run {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        err = (proc.stderr or proc.stdout).strip() or "(no output)"
        raise CorpusError(f"voice {voice!r}: {Path(cmd[0]).name} exited with status {proc.returncode}: {err}")


def _scheme_string(text: str) -> str:
    """Quote ``text`` as a festival (SIOD) string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _synthesise_festival(spec: VoiceSpec, exe: str, jobs: Sequence[Job], workdir: Path) -> None:
    # One festival process per batch; --batch exits non-zero on any Scheme error (e.g. unknown voice).
    script = workdir / f"{jobs[0].uid}.scm"
    lines = [f"(voice_{spec.voice})"]
    lines += [
        f"(utt.save.wave (SynthText {_scheme_string(j.spoken)}) {_scheme_string(str(j.raw))} 'riff)"
        for j in jobs
    ]
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _run_engine(jobs[0].voice, [exe, "--batch", str(script)])


def synthesise(spec: VoiceSpec, exe: str, jobs: Sequence[Job], workdir: Path) -> None:
    """Write the engine's native wav for each job to ``job.raw`` (one engine call per job, but one per
    batch for festival, whose start-up costs ~0.3 s)."""
    if spec.engine == "festival":
        _synthesise_festival(spec, exe, jobs, workdir)
        return
    for job in jobs:
        # Text goes through a file, never argv: a sentence starting with "-" would be read as an option.
        txt = job.raw.with_suffix(".txt")
        txt.write_text(job.spoken + "\n", encoding="utf-8")
        if spec.engine == "espeak-ng":
            cmd = [exe, "-v", spec.voice, "-f", str(txt), "-w", str(job.raw)]
        else:  # flite
            cmd = [exe, "-voice", spec.voice, "-f", str(txt), "-o", str(job.raw)]
        _run_engine(job.voice, cmd)
