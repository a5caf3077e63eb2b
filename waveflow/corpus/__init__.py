"""Offline voice corpus maker: real synthesised English speech in LJSpeech layout, without downloads.

Tests, CI, demos and quality checks need *speech*, not sine waves, but downloading LJSpeech (2.6 GB) is slow
and impossible on offline runners. This package drives the text-to-speech engines that Debian ships
(``espeak-ng``, ``flite`` and ``festival`` with two voice packages) to write a small corpus locally::

    out/
      metadata.csv          # id|text|normalized text, one line per utterance (LJSpeech format)
      wavs/ESPEAK-EN-US-0001.wav
      wavs/FLITE-SLT-0001.wav
      ...

Every wav is mono 16-bit PCM at the requested sample rate. Sentences come from :data:`SENTENCES` (our own
text, part hand-written and part generated from templates by deterministic code, both kept as package
data), drawn per voice with a seeded shuffle, so the same arguments always give the same ids and texts, and
asking for more utterances extends a corpus instead of reshuffling it.

Writes are atomic (temporary file, then :func:`os.replace`): an interrupted run never leaves a half-written
wav, and re-running the same command resumes by skipping the files already there. ``metadata.csv`` is
written last, also atomically, and lists exactly the utterances of the run.

Typical use::

    from waveflow.corpus import make_corpus
    [folder] = make_corpus("data/tts", voices=("espeak-en-us", "flite-slt"), n_utterances=50)

or from the shell: ``python scripts/make_voice_corpus.py --out data/tts --voices espeak-en-us,flite-slt``.
Two runs must not write into the same folder at the same time.

Modules, bottom up: :mod:`.text` (spoken forms), :mod:`.sentences` (the bank and the draws),
:mod:`.engines` (voices, engine probing and calls), :mod:`.runner` (engine calls in parallel, conversion),
:mod:`.synthesis` (:func:`make_corpus`), :mod:`.cli` (:func:`main`).
"""

from __future__ import annotations

from .cli import main
from .engines import DEFAULT_VOICES, VOICES, CorpusError, VoiceSpec, available_voices, check_engines
from .sentences import SENTENCES, select_sentences, utterance_id
from .synthesis import LAYOUTS, make_corpus
from .text import normalize_text, number_to_words

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
