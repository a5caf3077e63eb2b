"""The sentences the corpus speaks, and which of them each voice gets.

The sentence bank is data, not code: ``sentences.txt`` holds the hand-written sentences and
``templates.txt`` the word lists and templates that generate the rest, both package data read with
:mod:`importlib.resources` (so a wheel or a zip install works as well as a checkout). What code remains
makes the bank reproducible: generation and draws depend only on their arguments, never on the Python
version, the platform or ``PYTHONHASHSEED``, so an utterance id names the same sentence everywhere.
"""

from __future__ import annotations

import hashlib
import random
import re
from importlib.resources import files
from typing import NamedTuple

from .text import number_to_words, ordinal_words, year_to_words

# How many sentences the templates add to the hand-written ones.
_N_GENERATED = 280

# "{list:slot}", "{list[a:b]:slot}" or "{speller:lo-hi:slot}" (see templates.txt).
_PLACEHOLDER = re.compile(
    r"\{(?P<name>\w+)(?:\[(?P<start>\d*):(?P<stop>\d*)\])?(?::(?P<lo>\d+)-(?P<hi>\d+))?:(?P<slot>\d+)\}"
)
_SPELLERS = {"number": number_to_words, "year": year_to_words, "ordinal": ordinal_words}


class _Bank(NamedTuple):
    """The sentence bank as read from the package data."""

    written: tuple[str, ...]
    words: dict[str, tuple[str, ...]]
    templates: tuple[str, ...]


def _data_lines(name: str) -> list[str]:
    """The non-blank, non-comment lines of package data file ``name``, stripped."""
    text = files(__package__).joinpath(name).read_text(encoding="utf-8")
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _sections(name: str) -> dict[str, list[str]]:
    """Split a data file into its ``[section]``s."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in _data_lines(name):
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = sections.setdefault(header[1], [])
        elif current is None:
            raise ValueError(f"{name}: {line!r} comes before the first [section]")
        else:
            current.append(line)
    return sections


def _check_template(template: str, words: dict[str, tuple[str, ...]]) -> None:
    """Refuse a template whose placeholders name no list or speller, or are malformed."""
    for match in _PLACEHOLDER.finditer(template):
        name, has_range = match["name"], match["lo"] is not None
        if name in _SPELLERS and (not has_range or match["start"] is not None):
            raise ValueError(f"templates.txt: {match[0]} needs a range, e.g. {{{name}:1-9:0}}")
        if name not in _SPELLERS and (name not in words or has_range):
            raise ValueError(f"templates.txt: {match[0]} names no word list (lists: {', '.join(words)})")
    if "{" in _PLACEHOLDER.sub("", template):
        raise ValueError(f"templates.txt: malformed placeholder in {template!r}")


def _load_bank() -> _Bank:
    """Read the hand-written sentences and the templates from the package data."""
    sections = _sections("templates.txt")
    templates = tuple(sections.pop("templates"))
    words = {name: tuple(entries) for name, entries in sections.items()}
    for template in templates:
        _check_template(template, words)
    return _Bank(tuple(_data_lines("sentences.txt")), words, templates)


_BANK = _load_bank()
_WRITTEN = _BANK.written


def _pick(i: int, slot: int, modulus: int) -> int:
    """A well-mixed, platform-independent choice in ``range(modulus)`` for slot ``slot`` of sentence ``i``.

    BLAKE2 rather than ``random`` or ``hash()``: its output is fixed by its specification, so the sentence
    list never changes between Python versions, platforms or PYTHONHASHSEED values.
    """
    digest = hashlib.blake2b(f"{i}:{slot}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % modulus


def _fill(template: str, i: int, words: dict[str, tuple[str, ...]]) -> str:
    """Template ``template`` with every placeholder replaced by sentence ``i``'s choice for its slot."""

    def choose(match: re.Match[str]) -> str:
        slot = int(match["slot"])
        if match["name"] in _SPELLERS:
            lo, hi = int(match["lo"]), int(match["hi"])
            return _SPELLERS[match["name"]](lo + _pick(i, slot, hi - lo + 1))
        start, stop = (int(x) if x else None for x in (match["start"], match["stop"]))
        choices = words[match["name"]][start:stop]
        return choices[_pick(i, slot, len(choices))]

    return _PLACEHOLDER.sub(choose, template)


def _generate_sentences(count: int, bank: _Bank = _BANK) -> list[str]:
    """Fill the templates deterministically until ``count`` distinct sentences exist.

    Sentence ``i`` uses template ``i mod len(templates)``; each slot's choice is :func:`_pick`. Sentences
    that repeat an earlier one or a hand-written one are skipped.
    """
    out: list[str] = []
    seen = set(bank.written)
    i = 0
    while len(out) < count:
        sentence = _fill(bank.templates[i % len(bank.templates)], i, bank.words)
        if sentence not in seen:
            seen.add(sentence)
            out.append(sentence)
        i += 1
    return out


def _build_sentences(bank: _Bank = _BANK) -> tuple[str, ...]:
    written = tuple(dict.fromkeys(bank.written))  # order-preserving de-duplication
    return written + tuple(_generate_sentences(_N_GENERATED, bank))


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
    # random.Random(str) hashes the string with SHA-512: stable across runs and PYTHONHASHSEED. The
    # "waveflow.corpus" prefix is part of the seed, not a module path: changing it changes every draw.
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
