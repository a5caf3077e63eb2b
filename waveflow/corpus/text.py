"""Spoken forms of the corpus sentences: what the engines are given and ``metadata.csv``'s third column.

The engines disagree on digits and abbreviations (one reads "Dr." as "drive", another spells it out), so
text is normalised here to plain words before any engine sees it, and every voice says the same words.
The spellers also serve the sentence templates, which write numbers, years and dates as words.
"""

from __future__ import annotations

import re

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


def ordinal_words(n: int) -> str:
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


def year_to_words(year: int) -> str:
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

    Expands the few abbreviations the corpus sentences use, ``&`` and ``%``, and spells any digits out;
    whitespace is collapsed. Numbers in the corpus sentences are already words, so this is mostly the
    identity.

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
