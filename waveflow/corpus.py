"""Offline voice corpus maker: real synthesised English speech in LJSpeech layout, without downloads.

Tests, CI, demos and quality checks need *speech*, not sine waves, but downloading LJSpeech (2.6 GB) is slow
and impossible on offline runners. This module drives the text-to-speech engines that Debian ships
(``espeak-ng``, ``flite`` and ``festival`` with two voice packages) to write a small corpus locally::

    out/
      metadata.csv          # id|text|normalized text, one line per utterance (LJSpeech format)
      wavs/ESPEAK-EN-US-0001.wav
      wavs/FLITE-SLT-0001.wav
      ...

Every wav is mono 16-bit PCM at the requested sample rate. Sentences come from :data:`SENTENCES` (our own
text, part hand-written and part generated from templates by deterministic code), drawn per voice with a
seeded shuffle, so the same arguments always give the same ids and texts, and asking for more utterances
extends a corpus instead of reshuffling it.

Writes are atomic (temporary file, then :func:`os.replace`): an interrupted run never leaves a half-written
wav, and re-running the same command resumes by skipping the files already there. ``metadata.csv`` is
written last, also atomically, and lists exactly the utterances of the run.

Typical use::

    from waveflow.corpus import make_corpus
    [folder] = make_corpus("data/tts", voices=("espeak-en-us", "flite-slt"), n_utterances=50)

or from the shell: ``python scripts/make_voice_corpus.py --out data/tts --voices espeak-en-us,flite-slt``.
Two runs must not write into the same folder at the same time.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import soundfile as sf

__all__ = [
    "DEFAULT_VOICES",
    "LAYOUTS",
    "SENTENCES",
    "VOICES",
    "CorpusError",
    "VoiceSpec",
    "available_voices",
    "check_engines",
    "main",
    "make_corpus",
    "normalize_text",
    "number_to_words",
    "select_sentences",
    "utterance_id",
]


class CorpusError(RuntimeError):
    """The corpus cannot be made: a missing engine or voice, an engine failure, or bad arguments.

    The message is meant for the user as is: it names the voice, and the ``apt-get install`` command or the
    engine's own error output.
    """


# --------------------------------------------------------------------------------------------------------
# Voices
# --------------------------------------------------------------------------------------------------------

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


#: Voice name -> how to synthesise it, in a stable order (``--voices all`` follows it). Only voices that
#: work with Debian's stock packages are listed: espeak-ng's MBROLA voices need the separate ``mbrola``
#: packages, flite's ``awb_time`` only speaks clock times, and flite's 8 kHz ``kal`` is replaced by ``kal16``.
VOICES: dict[str, VoiceSpec] = {
    "espeak-en-us": VoiceSpec("espeak-ng", "en-us", "espeak-ng", "espeak-ng, American English, male"),
    "espeak-en-gb": VoiceSpec("espeak-ng", "en-gb", "espeak-ng", "espeak-ng, British English, male"),
    "espeak-en-us-f": VoiceSpec(
        "espeak-ng", "en-us+f3", "espeak-ng", "espeak-ng, American English, female (f3)"
    ),
    "espeak-en-gb-f": VoiceSpec(
        "espeak-ng", "en-gb+f4", "espeak-ng", "espeak-ng, British English, female (f4)"
    ),
    "espeak-en-gb-m": VoiceSpec(
        "espeak-ng", "en-gb+m4", "espeak-ng", "espeak-ng, British English, male (m4)"
    ),
    "espeak-en-gb-rp": VoiceSpec(
        "espeak-ng", "en-gb-x-rp", "espeak-ng", "espeak-ng, Received Pronunciation, male"
    ),
    "espeak-en-gb-scotland": VoiceSpec(
        "espeak-ng", "en-gb-scotland", "espeak-ng", "espeak-ng, Scottish English, male"
    ),
    "espeak-en-us-nyc": VoiceSpec(
        "espeak-ng", "en-us-nyc", "espeak-ng", "espeak-ng, New York City English, male"
    ),
    "espeak-en-029": VoiceSpec("espeak-ng", "en-029", "espeak-ng", "espeak-ng, Caribbean English, male"),
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

#: Accepted values of ``layout``.
LAYOUTS: tuple[str, ...] = ("mixed", "per-voice")

# Bounds for a single engine call; festival's HTS voice needs ~0.2 s per utterance, so this is generous.
_ENGINE_TIMEOUT_S = 300.0
# Festival pays ~0.3 s to start, so it synthesises several utterances per process; espeak-ng and flite
# start in milliseconds and take one utterance per call (finer progress, simpler errors).
# Below _FESTIVAL_MIN_BATCH utterances a second process costs more in start-up than it saves.
_FESTIVAL_BATCH = 10
_FESTIVAL_MIN_BATCH = 4


def _which(executable: str) -> str | None:
    """Locate ``executable`` on PATH (a seam the tests monkeypatch to simulate a missing engine)."""
    return shutil.which(executable)


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


def _voice_problems(voices: Iterable[str]) -> dict[str, str]:
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
            problems[name] = (
                f"voice {name!r} needs the {spec.executable!r} executable, which is not on PATH "
                f"(install it with: sudo apt-get install {spec.engine_package}"
                + (f" {spec.package}" if spec.package != spec.engine_package else "")
                + ")"
            )
            continue
        if spec.engine == "espeak-ng":
            ok = _espeak_voice_ok(exe, spec.voice)
        else:
            if spec.engine not in listed:
                listed[spec.engine] = _probe_engine_voices(spec.engine, exe)
            ok = spec.voice in listed[spec.engine]
        if not ok:
            problems[name] = (
                f"voice {name!r} needs {spec.engine} voice {spec.voice!r}, which {spec.engine} does not "
                f"have (install it with: sudo apt-get install {spec.package})"
            )
    return problems


def check_engines(voices: Iterable[str]) -> None:
    """Check that every voice is known and its engine executable and voice data are installed.

    Args:
        voices: Voice names, keys of :data:`VOICES`.

    Raises:
        CorpusError: One or more voices cannot be used; the message names each voice, what is missing and
            the ``apt-get install`` command that fixes it.
    """
    voices = _parse_voice_list(voices)
    problems = _voice_problems(voices)
    if problems:
        raise CorpusError("; ".join(problems.values()))


def available_voices() -> list[str]:
    """Names of the voices in :data:`VOICES` that work on this machine, in :data:`VOICES` order."""
    problems = _voice_problems(VOICES)
    return [name for name in VOICES if name not in problems]


# --------------------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------------------

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_to_words(n: int) -> str:
    """Spell a non-negative integer below one million in English words.

    Args:
        n: The number, ``0 <= n < 1_000_000``.

    Returns:
        For example ``"three hundred and twelve"`` or ``"forty-five thousand and six"``.

    Raises:
        ValueError: ``n`` is out of range.
    """
    if not 0 <= n < 1_000_000:
        raise ValueError(f"number_to_words handles 0 <= n < 1000000, got {n}")
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" and {number_to_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    head = f"{number_to_words(thousands)} thousand"
    if not rest:
        return head
    return head + (" and " if rest < 100 else " ") + number_to_words(rest)


_ORDINAL_ENDINGS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def _ordinal_words(n: int) -> str:
    """Spell an ordinal: 1 -> "first", 22 -> "twenty-second", 30 -> "thirtieth"."""
    words = number_to_words(n)
    head, sep, last = words.rpartition("-") if "-" in words else ("", "", words)
    if last in _ORDINAL_ENDINGS:
        last = _ORDINAL_ENDINGS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def _year_to_words(year: int) -> str:
    """Spell a year the way it is read aloud: 1984 -> "nineteen eighty-four", 2007 -> "two thousand and seven"."""
    century, rest = divmod(year, 100)
    if 2000 <= year < 2010 or year % 1000 == 0:
        return number_to_words(year)
    if rest == 0:
        return f"{number_to_words(century)} hundred"
    return f"{number_to_words(century)} " + (f"oh {_ONES[rest]}" if rest < 10 else number_to_words(rest))


# Abbreviations the sentences use; the engines would otherwise read "Dr." as "drive" or spell it out.
_ABBREVIATIONS = (
    (re.compile(r"\bMr\."), "Mister"),
    (re.compile(r"\bMrs\."), "Missus"),
    (re.compile(r"\bDr\."), "Doctor"),
    (re.compile(r"\bProf\."), "Professor"),
    (re.compile(r"\bSt\.(?= [A-Z])"), "Saint"),
    (re.compile(r"\bvs\."), "versus"),
    (re.compile(r"\betc\."), "et cetera"),
)


def normalize_text(text: str) -> str:
    """Return the spoken form of a sentence: the third column of ``metadata.csv``, and what is synthesised.

    Expands the few abbreviations :data:`SENTENCES` uses, ``&`` and ``%``, and spells any digits out;
    whitespace is collapsed. Numbers in :data:`SENTENCES` are already words, so this is mostly the identity.

    Args:
        text: A sentence.

    Returns:
        The normalised sentence.
    """
    for pattern, replacement in _ABBREVIATIONS:
        text = pattern.sub(replacement, text)
    text = text.replace("&", " and ").replace("%", " percent")
    text = re.sub(
        r"\d+", lambda m: number_to_words(int(m.group())) if len(m.group()) < 7 else m.group(), text
    )
    return " ".join(text.replace("|", " ").split())


# Hand-written sentences: statements, questions, exclamations, dialogue, lists, numbers as words, names,
# abbreviations, short and long. Kept free of "|" (the metadata separator) and of digits.
_WRITTEN: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Good morning, everyone.",
    "Where did you leave the keys?",
    "It rained for three days and three nights without stopping.",
    "Please close the window before you go to bed.",
    "She counted forty-two steps from the gate to the front door.",
    "Is this the train to the airport?",
    "The museum opens at nine and closes at half past five.",
    "I would like two coffees and a slice of lemon cake, please.",
    "Nobody expected the old bridge to last another winter.",
    "What a wonderful surprise!",
    "Turn left at the bakery, then walk straight on for about two hundred metres.",
    "Mr. Patel repaired the bicycle in less than an hour.",
    "Dr. Evans will see you now.",
    "The children built a sandcastle with four towers and a deep moat.",
    "Can you hear the birds singing in the garden?",
    "My grandmother grew up on a farm near the river.",
    "The library has more than eleven thousand books about the sea.",
    "Why is the sky blue during the day and red in the evening?",
    "He forgot his umbrella again.",
    "A gentle breeze carried the smell of bread across the market square.",
    "The meeting has been moved to Thursday afternoon.",
    "Seven swans were swimming slowly across the lake.",
    "Do you prefer tea or coffee in the morning?",
    "The recipe calls for three eggs, a cup of flour and a pinch of salt.",
    "Mrs. Gomez teaches music at the village school.",
    "Every winter the pond freezes over for a few weeks.",
    "Stop right there!",
    "The parcel arrived two days later than promised.",
    "How long does it take to walk to the lighthouse?",
    "Our neighbour plays the piano every evening after dinner.",
    "The mountain path was steep, narrow and covered in loose stones.",
    "They sold nine hundred tickets in the first hour.",
    "I think we should leave before the traffic gets worse.",
    "Prof. Lindqvist explained the experiment with great patience.",
    "The cat slept all afternoon in a patch of warm sunlight.",
    "Have you ever seen a shooting star?",
    "The train was delayed by twenty minutes because of snow on the line.",
    "Fresh paint covered the fence by the end of the weekend.",
    "That is the best soup I have ever tasted!",
    "The old clock in the hall strikes twelve at midnight.",
    "Would you mind holding the door for a moment?",
    "Thousands of people gathered in the square to watch the fireworks.",
    "The river rises every spring when the snow melts in the hills.",
    "She wrote a letter to her brother who lives overseas.",
    "The shop on the corner sells newspapers, sweets and stamps.",
    "We planted tomatoes, beans and sunflowers along the south wall.",
    "Which of these roads leads to the harbour?",
    "Quiet in the library, please.",
    "The pilot announced that we would land in fifteen minutes.",
    "His first novel sold more copies than anyone had predicted.",
    "The storm knocked out the power for most of the night.",
    "Could you spell your surname for me?",
    "A small boat drifted past the pier with nobody on board.",
    "The committee will publish its report at the end of March.",
    "I have never been so tired in my whole life.",
    "The garden gate squeaks whenever the wind blows from the west.",
    "Each student received a notebook, a pencil and a map of the campus.",
    "When does the next bus leave for the city centre?",
    "The baker starts work at four o'clock every morning.",
    "Lightning struck the tall oak tree behind the church.",
    "Several volunteers helped to clean the beach on Sunday.",
    "It is colder today than it was yesterday.",
    "The orchestra rehearsed the final movement one more time.",
    "Who left the lights on in the kitchen?",
    "The hotel room had a view of the harbour and the hills beyond.",
    "Remember to water the plants while I am away.",
    "The fisherman mended his nets on the quay.",
    "After the concert we walked home under a full moon.",
    "There are sixty seconds in a minute and sixty minutes in an hour.",
    "Is there a pharmacy near here?",
    "The engineer checked every bolt on the bridge before it reopened.",
    "Snow fell softly on the empty streets.",
    "Our team scored two goals in the last five minutes of the match.",
    "I found an old photograph of my parents in the attic.",
    "The price of apples went up by ten percent this year.",
    "Where were you when the lights went out?",
    "A thick fog rolled in from the sea just before dawn.",
    "The gardener trimmed the hedges into the shape of animals.",
    "What time does the film start tonight?",
    "The kettle is boiling.",
    "Every player on the team trained hard throughout the summer.",
    "The bus driver waited patiently for the old man to sit down.",
    "This road is closed for repairs until the end of the month.",
    "She spoke so quietly that we could barely hear her.",
    "How much does a return ticket to the coast cost?",
    "The festival attracts visitors from all over the country.",
    "The scientists measured the temperature of the water every hour.",
    "Dinner will be ready in about twenty minutes.",
    "We watched the sun rise over the mountains.",
    "Don't forget your passport!",
    "The farmer sold eggs, milk and cheese at the market.",
    "Why did the chicken cross the road?",
    "The hospital opened a new wing for children last autumn.",
    "Please speak a little more slowly.",
    "The museum guard asked us not to touch the paintings.",
    "A flock of geese flew south in a long uneven line.",
    "The crossword in the Sunday paper took me all morning.",
    "Who is going to win the election this time?",
    "The carpenter measured twice and cut once.",
    "In the morning the valley was full of mist.",
    "The waiter brought us bread, olives and a jug of water.",
    "My brother is five years older than me.",
    "Do you know the way to St. Andrews?",
    "The ice cream van plays the same tune every afternoon.",
    "Nobody answered the phone at the office.",
    "The astronauts spent one hundred and eighty days on the station.",
    "The dog barked at the postman, as it does every day.",
    "Let me know when you arrive.",
    "The path through the forest was lined with bluebells.",
    "Could we have the bill, please?",
    "The company hired thirty new engineers this year.",
    "Her voice echoed through the empty hall.",
    "The last ferry leaves the island at a quarter to eight.",
    "It is never too late to learn something new.",
    "The wind turbines turned slowly on the distant hills.",
    "Which platform does the night train leave from?",
    "He painted the kitchen a pale shade of yellow.",
    "The students asked so many questions that the lecture ran late.",
    "Our flight was cancelled, so we spent the night at the airport.",
    "There is a small cafe at the top of the hill.",
    "Watch out for the ice on the steps!",
    "The council plans to build a new swimming pool next year.",
    "The violinist played without any sheet music at all.",
    "How many languages do you speak?",
    "The bakery sold out of croissants before eight o'clock.",
    "Heavy rain is expected across the north later tonight.",
    "The detective examined the footprints in the mud very carefully.",
    "I am looking forward to seeing you again soon.",
    "The castle was built more than eight hundred years ago.",
    "Bring a warm coat, because it gets cold after sunset.",
    "The printer has run out of paper again.",
    "Is it true that the shop is closing down?",
    "The twins wore matching red scarves to the party.",
    "We reached the summit just as the clouds began to clear.",
    "The market is busiest on Saturday mornings.",
    "She solved the puzzle in under three minutes.",
    "Dr. Okafor said the results would be ready by Friday.",
    "The lighthouse keeper kept a diary for forty years.",
    "Who wants another cup of tea?",
    "The river was too deep to cross on foot.",
    "Thank you very much for your help.",
    "Hundreds of lanterns floated slowly down the river at night.",
    "The bridge opens to let the tall ships through.",
    "My favourite season is autumn, when the leaves turn gold and red.",
    "Where can I buy a map of the town?",
    "The little boy laughed when the puppy licked his face.",
    "Our teacher read us a story about a dragon who was afraid of the dark.",
    "The concert hall holds two thousand five hundred people.",
    "Mr. and Mrs. Chen celebrated their fiftieth wedding anniversary in June.",
    "Please switch off your phones before the performance begins.",
    "The tide comes in twice a day.",
    "Everyone agreed that the plan was risky, but nobody had a better idea.",
    "It took the workers six months to repair the roof of the cathedral.",
    "The old sailor told stories of storms, whales and distant islands to anyone who would listen.",
    (
        "The forecast had promised sunshine, but we spent most of Saturday sheltering from the rain in a "
        "tiny cafe."
    ),
    (
        "Follow the river upstream for about three miles and you will find a stone bridge, a mill and a "
        "small inn."
    ),
    (
        "The report, which took two years to write, recommends more trains, cheaper fares and better "
        "stations for the towns in the north."
    ),
    (
        "She had always wanted to learn the cello, so on her seventieth birthday she bought one and "
        "booked her first lesson."
    ),
    (
        "Before the invention of the telephone, news travelled only as fast as a horse, a ship or a "
        "train could carry it."
    ),
)


# Word lists and templates for the generated sentences. Generation is index arithmetic, not random
# numbers, so the list is identical on every Python version and platform.
_NAMES = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Irene",
    "James",
    "Kofi",
    "Laura",
    "Marco",
    "Nina",
    "Oscar",
    "Priya",
]
_ADJECTIVES = [
    "old",
    "new",
    "small",
    "heavy",
    "bright",
    "quiet",
    "noisy",
    "yellow",
    "broken",
    "shiny",
    "wooden",
    "narrow",
    "famous",
    "friendly",
    "tiny",
    "dusty",
    "painted",
    "curious",
]
_NOUNS = [
    "lamp",
    "kettle",
    "ladder",
    "bicycle",
    "violin",
    "basket",
    "compass",
    "clock",
    "teapot",
    "blanket",
    "suitcase",
    "camera",
    "umbrella",
]
_PLURALS = [
    "apples",
    "boxes",
    "letters",
    "candles",
    "chairs",
    "oranges",
    "stamps",
    "pencils",
    "buttons",
    "tickets",
    "shells",
    "postcards",
    "bottles",
    "keys",
    "cups",
]
_PLACES = [
    "station",
    "harbour",
    "library",
    "kitchen",
    "garden",
    "market",
    "museum",
    "bakery",
    "attic",
    "river bank",
    "school",
    "hallway",
    "playground",
    "theatre",
    "village square",
]
_VERBS_PAST = [
    "found",
    "carried",
    "painted",
    "mended",
    "sold",
    "borrowed",
    "dropped",
    "cleaned",
    "wrapped",
    "hid",
    "opened",
]
_VERBS = ["open", "carry", "paint", "mend", "wrap", "move", "clean", "check", "polish", "measure"]
_TIMES = [
    "this morning",
    "last night",
    "on Monday",
    "after lunch",
    "before dawn",
    "yesterday evening",
    "in the spring",
    "at the weekend",
    "during the storm",
    "an hour ago",
]
_COLOURS = ["blue", "green", "white", "red", "yellow", "grey", "pale pink", "dark brown", "orange"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

# A template gets word(list, slot) -> a word, and num(lo, hi, slot) -> an int in [lo, hi]; slots are small
# ints that make the choices of one sentence independent of each other.
_WordFn = Callable[[Sequence[str], int], str]
_NumFn = Callable[[int, int, int], int]
_TEMPLATES: tuple[Callable[[_WordFn, _NumFn], str], ...] = (
    lambda w, n: (
        f"{w(_NAMES, 0)} {w(_VERBS_PAST, 1)} the {w(_ADJECTIVES, 2)} {w(_NOUNS, 3)} "
        f"in the {w(_PLACES, 4)} {w(_TIMES, 5)}."
    ),
    lambda w, n: f"There were {number_to_words(n(2, 99, 0))} {w(_PLURALS, 1)} on the table.",
    lambda w, n: f"Did you see the {w(_ADJECTIVES, 0)} {w(_NOUNS, 1)} near the {w(_PLACES, 2)}?",
    lambda w, n: (
        f"{w(_NAMES, 0)} paid {number_to_words(n(2, 950, 1))} dollars and "
        f"{number_to_words(n(1, 99, 2))} cents for a {w(_ADJECTIVES, 3)} {w(_NOUNS, 4)}."
    ),
    lambda w, n: f"Please {w(_VERBS, 0)} the {w(_NOUNS, 1)} before {w(_NAMES, 2)} gets back.",
    lambda w, n: f"How many {w(_PLURALS, 0)} can you fit in one basket?",
    lambda w, n: f"On {w(_DAYS, 0)} the {w(_PLACES, 1)} opens at {number_to_words(n(6, 11, 2))} o'clock.",
    lambda w, n: f"In {_year_to_words(n(1850, 2024, 0))} the {w(_PLACES, 1)} was painted {w(_COLOURS, 2)}.",
    lambda w, n: f"Why did {w(_NAMES, 0)} leave the {w(_NOUNS, 1)} in the {w(_PLACES, 2)}?",
    lambda w, n: f"The {w(_NOUNS, 0)} weighs {number_to_words(n(2, 40, 1))} kilograms.",
    lambda w, n: (
        f"{w(_NAMES[:8], 0)} and {w(_NAMES[8:], 5)} counted {number_to_words(n(100, 9999, 1))} "
        f"{w(_PLURALS, 2)} {w(_TIMES, 3)}."
    ),
    lambda w, n: f"Meet me by the {w(_PLACES, 0)} on the {_ordinal_words(n(1, 28, 1))} of {w(_MONTHS, 2)}.",
    lambda w, n: (
        f"When {w(_NAMES, 0)} finally reached the {w(_PLACES, 1)} {w(_TIMES, 2)}, the {w(_ADJECTIVES, 3)} "
        f"{w(_NOUNS, 4)} had gone, and nobody knew who had taken it."
    ),
    lambda w, n: (
        f"According to the notice by the {w(_PLACES, 0)}, {number_to_words(n(3, 60, 1))} {w(_PLURALS, 2)} "
        f"went missing {w(_TIMES, 3)}, so please tell {w(_NAMES, 4)} if you find any of them."
    ),
    lambda w, n: (
        f"Is the {w(_ADJECTIVES, 0)} {w(_NOUNS, 1)} still in the {w(_PLACES, 2)}, or did "
        f"{w(_NAMES, 3)} take it home?"
    ),
    lambda w, n: f"Nobody {w(_VERBS_PAST, 0)} the {w(_NOUNS, 1)}!",
    lambda w, n: f"Room {number_to_words(n(1, 400, 0))} is on the left.",
)
_N_GENERATED = 280


def _pick(i: int, slot: int, modulus: int) -> int:
    """A well-mixed, platform-independent choice in ``range(modulus)`` for slot ``slot`` of sentence ``i``.

    BLAKE2 rather than ``random`` or ``hash()``: its output is fixed by its specification, so the sentence
    list never changes between Python versions, platforms or PYTHONHASHSEED values.
    """
    digest = hashlib.blake2b(f"{i}:{slot}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % modulus


def _generate_sentences(count: int) -> list[str]:
    """Fill :data:`_TEMPLATES` deterministically until ``count`` distinct sentences exist.

    Sentence ``i`` uses template ``i mod len(_TEMPLATES)``; each slot's choice is :func:`_pick`.
    """
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while len(out) < count:

        def word(words: Sequence[str], slot: int, i: int = i) -> str:
            return words[_pick(i, slot, len(words))]

        def num(lo: int, hi: int, slot: int, i: int = i) -> int:
            return lo + _pick(i, slot, hi - lo + 1)

        sentence = _TEMPLATES[i % len(_TEMPLATES)](word, num)
        if sentence not in seen and sentence not in _WRITTEN:
            seen.add(sentence)
            out.append(sentence)
        i += 1
    return out


def _build_sentences() -> tuple[str, ...]:
    written = tuple(dict.fromkeys(_WRITTEN))  # order-preserving de-duplication
    return written + tuple(_generate_sentences(_N_GENERATED))


#: The English sentences the corpus speaks: hand-written ones first, then template-generated ones. Each has
#: 3 to 25 words, no "|" and no digits. The order is part of the API: changing it changes
#: which sentence an id gets, so append rather than edit.
SENTENCES: tuple[str, ...] = _build_sentences()


def select_sentences(voice: str, n: int, seed: int = 0) -> list[str]:
    """Draw ``n`` sentences for one voice, deterministically.

    The draw depends only on ``(voice, seed)``, not on which other voices are in the corpus, and the first
    ``k`` sentences of a draw of ``n > k`` are the draw of ``k``: growing ``n`` extends a corpus. Sentences
    repeat only after all of :data:`SENTENCES` have been used.

    Args:
        voice: Voice name (part of the seed, so voices speak different sentences).
        n: Number of sentences.
        seed: Seed for the shuffle.

    Returns:
        ``n`` sentences from :data:`SENTENCES`.
    """
    # random.Random(str) hashes the string with SHA-512: stable across runs and PYTHONHASHSEED.
    rng = random.Random(f"waveflow.corpus:{seed}:{voice}")
    out: list[str] = []
    while len(out) < n:
        order = list(range(len(SENTENCES)))
        rng.shuffle(order)
        out.extend(SENTENCES[j] for j in order[: n - len(out)])
    return out


def utterance_id(voice: str, index: int, n: int = 1) -> str:
    """The id of utterance ``index`` (0-based) of ``voice``: ``"FLITE-SLT-0001"`` for ``("flite-slt", 0)``.

    Args:
        voice: Voice name.
        index: 0-based utterance index.
        n: Utterances per voice; ids get more than four digits only when ``n`` needs them.

    Returns:
        The id, also the wav's file stem.
    """
    width = max(4, len(str(n)))
    return f"{voice.upper()}-{index + 1:0{width}d}"


# --------------------------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
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


def _synthesise(spec: VoiceSpec, exe: str, jobs: Sequence[_Job], workdir: Path) -> None:
    """Write the engine's native wav for each job to ``job.raw``."""
    if spec.engine == "festival":
        # One festival process per batch; --batch exits non-zero on any Scheme error (e.g. unknown voice).
        script = workdir / f"{jobs[0].uid}.scm"
        lines = [f"(voice_{spec.voice})"]
        lines += [
            f"(utt.save.wave (SynthText {_scheme_string(j.spoken)}) {_scheme_string(str(j.raw))} 'riff)"
            for j in jobs
        ]
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _run_engine(jobs[0].voice, [exe, "--batch", str(script)])
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


def _trim(audio: np.ndarray, sr: int, top_db: float = 40.0, margin_s: float = 0.1) -> np.ndarray:
    """Leave ``margin_s`` of silence before and after the speech (frames within ``top_db`` of the loudest).

    Engines pad with anything from nothing to half a second of silence; a fixed, short margin is kept
    because real recordings (and LJSpeech) start and end with some. Where the engine left less, zeros
    are added, after a 5 ms fade so that speech starting at the very first sample does not click.
    Plain numpy rather than ``librosa.effects.trim``, whose first call costs seconds of JIT compilation:
    more than synthesising a whole small corpus.
    """
    frame, hop = 1024, 256
    if audio.size < frame:
        return audio
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop]
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10.0 ** (-top_db / 20.0))
    margin = int(margin_s * sr)
    start = int(loud[0]) * hop - margin
    end = int(loud[-1]) * hop + frame + margin
    kept = audio[max(0, start) : min(audio.size, end)].astype(np.float32, copy=True)
    fade = min(int(0.005 * sr), kept.size // 2)
    if fade > 0:
        ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))).astype(np.float32)
        kept[:fade] *= ramp
        kept[-fade:] *= ramp[::-1]
    return np.pad(kept, (max(0, -start), max(0, end - audio.size)))


def _resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample with soxr's HQ filter: exactly ``librosa.resample(..., res_type="soxr_hq")``.

    soxr (a librosa dependency) is called directly because librosa's first ``resample`` call spends ~2 s
    on one-off setup, several times the cost of synthesising a small corpus.
    """
    try:
        import soxr
    except ImportError:  # pragma: no cover - soxr ships with librosa >= 0.10
        import librosa

        return librosa.resample(audio, orig_sr=orig_sr, target_sr=target_sr, res_type="soxr_hq")
    return soxr.resample(audio, orig_sr, target_sr, quality="HQ").astype(np.float32, copy=False)


def _convert(job: _Job, sample_rate: int) -> None:
    """Turn the engine's wav into the corpus wav: mono, resampled, trimmed, 16-bit PCM, written atomically."""
    try:
        audio, sr = sf.read(job.raw, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise CorpusError(
            f"voice {job.voice!r}: engine wrote no readable audio for {job.uid}: {exc}"
        ) from exc
    audio = audio.mean(axis=1)
    if audio.size == 0 or not np.any(audio):
        raise CorpusError(f"voice {job.voice!r}: engine produced silence for {job.uid} ({job.spoken!r})")
    if sr != sample_rate:
        audio = _resample(audio, sr, sample_rate)
    audio = _trim(audio, sample_rate)
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:  # resampling can overshoot a full-scale engine output; scale rather than clip
        audio = audio * (0.99 / peak)
    _write_wav_atomic(job.out, audio, sample_rate)


def _write_wav_atomic(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM to a hidden temporary file beside ``path``, fsync it, then rename it onto ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            sf.write(f, audio, sample_rate, format="WAV", subtype="PCM_16")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text_atomic(path: Path, text: str) -> None:
    """Write a UTF-8 text file atomically (temporary file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_metadata(path: Path) -> dict[str, str]:
    """Map id -> text of an existing ``metadata.csv`` (empty when there is none or it is unreadable)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    return {parts[0]: parts[1] for parts in (line.split("|") for line in lines) if len(parts) >= 2}


def _is_complete(path: Path, sample_rate: int) -> bool:
    """Whether ``path`` is a finished corpus wav at ``sample_rate`` (atomic writes make existence nearly
    enough; the header check catches files from a run with another sample rate, or foreign files)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError):
        return False
    return (
        info.samplerate == sample_rate and info.channels == 1 and info.subtype == "PCM_16" and info.frames > 0
    )


def _parse_voice_list(voices: str | Iterable[str]) -> list[str]:
    """Accept a comma list or an iterable of names; expand ``all`` and ``available``; drop duplicates."""
    items = voices.split(",") if isinstance(voices, str) else list(voices)
    names: list[str] = []
    for item in (v.strip() for v in items):
        if not item:
            continue
        expanded = list(VOICES) if item == "all" else available_voices() if item == "available" else [item]
        names.extend(name for name in expanded if name not in names)
    return names


def make_corpus(
    out_dir: str | os.PathLike[str],
    voices: str | Iterable[str] = ("espeak-en-us",),
    n_utterances: int = 20,
    sample_rate: int = 22050,
    seed: int = 0,
    layout: str = "mixed",
    overwrite: bool = False,
    progress: bool = True,
    jobs: int | None = None,
) -> list[Path]:
    """Synthesise an LJSpeech-layout corpus with local TTS engines.

    Each voice speaks ``n_utterances`` sentences from :data:`SENTENCES` (see :func:`select_sentences`). Wavs
    are mono 16-bit PCM at ``sample_rate``, with leading and trailing silence trimmed to 0.1 s, named
    ``wavs/<id>.wav`` with voice-prefixed ids (``FLITE-SLT-0001``); ``metadata.csv`` has one
    ``id|text|normalized text`` line per utterance, in voice then index order, and lists exactly this run's
    utterances.

    Re-running resumes: a wav that already exists at the right format is kept (unless ``overwrite``), except
    when the folder's previous ``metadata.csv`` shows it was spoken with another text (e.g. another seed).

    Args:
        out_dir: Output folder, created if needed.
        voices: Voice names (keys of :data:`VOICES`), a comma-separated string, ``"all"`` or ``"available"``.
        n_utterances: Utterances per voice, at least 1.
        sample_rate: Output sample rate in Hz (engines run at 8 to 48 kHz and are resampled with soxr).
        seed: Seed for the sentence draw; the same seed gives the same ids and texts.
        layout: ``"mixed"``: one corpus folder ``out_dir`` with every voice. ``"per-voice"``: one corpus
            folder ``out_dir/<voice>`` per voice.
        overwrite: Re-synthesise wavs that already exist.
        progress: Show a tqdm progress bar on stderr.
        jobs: Engine processes run at once; default: the number of CPUs, at most 8.

    Returns:
        The corpus folders written: ``[out_dir]`` for ``"mixed"``, one per voice for ``"per-voice"``.

    Raises:
        CorpusError: Bad arguments, a missing engine or voice (the message names the apt package), or an
            engine failure (the message names the voice and quotes the engine's stderr). Wavs finished
            before the error are kept, so the same call resumes after the problem is fixed.
    """
    names = _parse_voice_list(voices)
    if not names:
        raise CorpusError("no voices given")
    if layout not in LAYOUTS:
        raise CorpusError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if not isinstance(n_utterances, int) or n_utterances < 1:
        raise CorpusError(f"n_utterances must be a positive integer, got {n_utterances!r}")
    if not isinstance(sample_rate, int) or not 4000 <= sample_rate <= 192_000:
        raise CorpusError(f"sample_rate must be an integer from 4000 to 192000 Hz, got {sample_rate!r}")
    workers = jobs if jobs is not None else min(8, os.cpu_count() or 1)
    if workers < 1:
        raise CorpusError(f"jobs must be at least 1, got {workers}")
    check_engines(names)

    out_root = Path(out_dir)
    folders = [out_root] if layout == "mixed" else [out_root / name for name in names]
    rows: dict[Path, list[str]] = {folder: [] for folder in folders}
    todo: list[_Job] = []
    n_skipped = 0

    with tempfile.TemporaryDirectory(prefix="waveflow-corpus-") as tmp:
        workdir = Path(tmp)
        for folder in folders:
            (folder / "wavs").mkdir(parents=True, exist_ok=True)
            # Hidden *.tmp files are the remains of a killed run (nothing else writes them).
            for stale in (folder / "wavs").glob(".*.tmp"):
                stale.unlink(missing_ok=True)
        previous = {folder: _read_metadata(folder / "metadata.csv") for folder in folders}

        for name in names:
            folder = out_root if layout == "mixed" else out_root / name
            for index, text in enumerate(select_sentences(name, n_utterances, seed)):
                uid = utterance_id(name, index, n_utterances)
                spoken = normalize_text(text)
                rows[folder].append(f"{uid}|{text}|{spoken}")
                out = folder / "wavs" / f"{uid}.wav"
                stale_text = previous[folder].get(uid, text) != text
                if not overwrite and not stale_text and _is_complete(out, sample_rate):
                    n_skipped += 1
                    continue
                todo.append(_Job(name, uid, text, spoken, workdir / f"{uid}.wav", out))

        batches = _batches(todo, workers)
        bar = _progress_bar(len(todo) + n_skipped, n_skipped, enabled=progress)
        try:
            _run_batches(batches, sample_rate, workdir, workers, on_done=bar.update)
        finally:
            bar.close()

    for folder in folders:
        _write_text_atomic(folder / "metadata.csv", "\n".join(rows[folder]) + "\n")
    return folders


def _batches(todo: Sequence[_Job], workers: int) -> list[list[_Job]]:
    """Group jobs into engine calls: one utterance each, except festival (several per process)."""
    batches: list[list[_Job]] = []
    by_voice: dict[str, list[_Job]] = {}
    for job in todo:
        by_voice.setdefault(job.voice, []).append(job)
    for voice, voice_jobs in by_voice.items():
        if VOICES[voice].engine == "festival":
            # Split so every worker gets a share, but cap the batch so that progress still moves.
            size = min(_FESTIVAL_BATCH, max(_FESTIVAL_MIN_BATCH, math.ceil(len(voice_jobs) / workers)))
            batches.extend(voice_jobs[i : i + size] for i in range(0, len(voice_jobs), size))
        else:
            batches.extend([job] for job in voice_jobs)
    return batches


def _run_batches(
    batches: Sequence[list[_Job]],
    sample_rate: int,
    workdir: Path,
    workers: int,
    on_done: Callable[[int], object],
) -> None:
    """Synthesise and convert every batch on a thread pool (the work is in subprocesses and numpy)."""
    if not batches:
        return
    # Resolve executables once, in the calling thread (check_engines has just found them on PATH).
    exes = {
        b[0].voice: _which(VOICES[b[0].voice].executable) or VOICES[b[0].voice].executable for b in batches
    }

    # Set on the first failure so that batches already handed to a worker thread return at once instead
    # of synthesising on after the run is lost (cancel_futures only drops batches not yet started).
    failed = threading.Event()

    def work(batch: list[_Job]) -> int:
        if failed.is_set():
            return 0
        try:
            _synthesise(VOICES[batch[0].voice], exes[batch[0].voice], batch, workdir)
            for job in batch:
                _convert(job, sample_rate)
                job.raw.unlink(missing_ok=True)
        except BaseException:
            failed.set()
            raise
        return len(batch)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="corpus")
    try:
        futures = [pool.submit(work, batch) for batch in batches]
        for future in concurrent.futures.as_completed(futures):
            on_done(future.result())  # re-raises the first failure
    except BaseException:  # a failed batch, or Ctrl-C while waiting
        failed.set()
        raise
    finally:
        # On failure or Ctrl-C: drop queued batches, let running ones finish their atomic writes.
        pool.shutdown(wait=True, cancel_futures=True)


class _NoBar:
    """Stand-in for tqdm when progress is off."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, done: int, enabled: bool) -> _NoBar:
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc="corpus", unit="utt", dynamic_ncols=True)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------

_DESCRIPTION = """\
Make an offline speech corpus in LJSpeech layout with Debian's text-to-speech
engines (espeak-ng, flite, festival): real English speech for tests, CI, demos
and quality checks, without downloads.

Each voice speaks --n sentences drawn (by --seed) from a built-in list of a few
hundred English sentences. The same arguments always give the same ids and
texts, and re-running a command resumes it: finished wavs are kept.
"""

_EPILOG = """\
examples:
  # 20 utterances each of espeak-en-us and flite-slt (the default) in one folder
  %(prog)s --out data/tts

  # every installed voice, 50 utterances each, one LJSpeech folder per voice, 16 kHz
  %(prog)s --out data/tts16k --voices available --n 50 --layout per-voice --sample-rate 16000

  # three chosen voices; then grow the same corpus to 100 utterances per voice
  %(prog)s --out data/tts --voices espeak-en-gb-f,flite-awb,festival-slt --n 20
  %(prog)s --out data/tts --voices espeak-en-gb-f,flite-awb,festival-slt --n 100

  # which voices exist, and which are installed here
  %(prog)s --list-voices

output (LJSpeech layout; ids are voice-prefixed, so voices can share a folder):
  DIR/metadata.csv      id|text|normalized text, one line per utterance, e.g.
                        FLITE-SLT-0001|Dr. Evans will see you now.|Doctor Evans will see you now.
  DIR/wavs/<id>.wav     mono 16-bit PCM at --sample-rate
  (--layout per-voice: DIR/<voice>/metadata.csv and DIR/<voice>/wavs/)

An interrupted run leaves no half-written wav: run the same command again to
finish it. --overwrite synthesises every wav again.

engines (Debian packages):
  sudo apt-get install espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts
"""


class _UsageError(Exception):
    """A command-line usage error (argparse would exit 2; :func:`main` reports it and returns 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's hook; raising keeps main() exit-free
        raise _UsageError(f"{message} (see --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _build_parser(prog: str) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=prog,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (required unless --list-voices)")
    parser.add_argument(
        "--voices",
        default=",".join(DEFAULT_VOICES),
        help="comma-separated voice names, 'all', or 'available' (the installed ones); "
        "see --list-voices (default: %(default)s)",
    )
    parser.add_argument(
        "--n", type=_positive_int, default=20, metavar="N", help="utterances per voice (default: %(default)s)"
    )
    parser.add_argument(
        "--sample-rate",
        type=_positive_int,
        default=22050,
        metavar="HZ",
        help="output sample rate in Hz (default: %(default)s, as LJSpeech)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the sentence draw (default: %(default)s)"
    )
    parser.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="mixed",
        help="mixed: one folder with every voice; per-voice: one sub-folder per voice (default: %(default)s)",
    )
    parser.add_argument("--overwrite", action="store_true", help="synthesise again wavs that already exist")
    parser.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        metavar="J",
        help="engine processes at once (default: the number of CPUs, at most 8)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--list-voices", action="store_true", help="list the voices, whether each is installed here, and exit"
    )
    return parser


def _list_voices() -> str:
    """One line per voice: name, description, and "ok" or what to install."""
    problems = _voice_problems(VOICES)
    name_width = max(len(name) for name in VOICES)
    desc_width = max(len(spec.description) for spec in VOICES.values())
    lines = []
    for name, spec in VOICES.items():
        # Problems end "(install it with: sudo apt-get install X)": show the actionable part.
        fix = re.search(r"\(install it with: (.*)\)$", problems.get(name, ""))
        status = "ok" if name not in problems else "missing: " + (fix.group(1) if fix else problems[name])
        lines.append(f"{name:<{name_width}}  {spec.description:<{desc_width}}  {status}")
    return "\n".join(lines)


def _prog_name() -> str:
    """The program name for usage lines: the script's, or ``python -m waveflow.corpus``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return "python -m waveflow.corpus" if name in ("", "corpus.py", "__main__.py", "-c") else name


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python scripts/make_voice_corpus.py`` / ``python -m waveflow.corpus``).

    Never raises SystemExit: ``--help`` prints and returns 0.

    Args:
        argv: Arguments without the program name; default ``sys.argv[1:]``.

    Returns:
        The exit status: 0 on success, 1 on an error (printed as ``error: ...`` on stderr, no traceback),
        130 when interrupted.
    """
    parser = _build_parser(_prog_name())
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    try:
        if args.list_voices:
            print(_list_voices())
            return 0
        if not args.out:
            raise CorpusError("--out DIR is required (see --help)")
        folders = make_corpus(
            args.out,
            voices=args.voices,
            n_utterances=args.n,
            sample_rate=args.sample_rate,
            seed=args.seed,
            layout=args.layout,
            overwrite=args.overwrite,
            progress=not args.quiet,
            jobs=args.jobs,
        )
    except KeyboardInterrupt:
        print("interrupted: finished wavs are kept; run the same command again to resume", file=sys.stderr)
        return 130
    except (CorpusError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for folder in folders:
        n_rows = len((folder / "metadata.csv").read_text(encoding="utf-8").splitlines())
        print(f"{folder}: {n_rows} utterances, {folder / 'metadata.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
