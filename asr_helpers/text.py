"""Transcripts onto the CTC alphabet: upper-case letters, the apostrophe and the word separator.

A CTC model can only spell characters of its vocabulary, so digits, currency signs and
punctuation must become the words a speaker says ("$20" is "TWENTY DOLLARS", not "$ TWENTY").
The corpus generator and the pre-training sentences spell numbers with the same functions, so
labels and audio always agree.
"""

from __future__ import annotations

import re
import unicodedata

SYMBOL_WORDS = {"&": " AND ", "%": " PERCENT ", "+": " PLUS ", "@": " AT "}

_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    " sixteen seventeen eighteen nineteen"
).split()
_DECADES = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINALS = (
    "_ first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth"
    " fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
).split()


_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))


def spell_number(number: int) -> str:
    """A non-negative integer in words, as a speaker says it ("one hundred five"). The corpus's
    sentences and the transcripts' digits (:func:`number_to_words`)
    are both spelled by it, so the two always agree."""
    if number < 20:
        return _SMALL[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _DECADES[tens] + (f" {_SMALL[ones]}" if ones else "")
    size, name = next(scale for scale in _SCALES if number >= scale[0])
    high, rest = divmod(number, size)
    return f"{spell_number(high)} {name}" + (f" {spell_number(rest)}" if rest else "")


def spell_ordinal(number: int) -> str:
    """1 to 31 as an ordinal word ("twenty third")."""
    if number <= 20:
        return _ORDINALS[number]
    tens, ones = divmod(number, 10)
    return f"{_DECADES[tens]} {_ORDINALS[ones]}" if ones else _DECADES[tens][:-1] + "ieth"


def spell_year(year: int) -> str:
    """A year the way it is read aloud: "nineteen eighty four", "two thousand nine"."""
    century, rest = divmod(year, 100)
    if 2000 <= year < 2010:
        return spell_number(year)
    if rest == 0:
        return f"{spell_number(century)} hundred"
    return f"{spell_number(century)} " + (f"oh {_SMALL[rest]}" if rest < 10 else spell_number(rest))



def number_to_words(number: int) -> str:
    """Spell a non-negative integer the way a speaker says it ("105" -> "ONE HUNDRED FIVE"), in the CTC alphabet."""
    return spell_number(number).upper()


def normalize_text(text: str) -> str:
    """Map a transcript onto the CTC alphabet: upper case letters, apostrophe and space.

    The rules, in order: accents are stripped (é -> E); digit runs are spelled out
    ("24" -> "TWENTY FOUR"); ``& % + @`` become words; other punctuation becomes a space, except
    an apostrophe inside a word ("I'M"); whitespace collapses. Any other symbol ($, €, emoji) is
    kept, so :func:`~asr_helpers.checks.check_vocab` can report it instead of the row vanishing silently.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).upper()
    text = re.sub(r"\d+", lambda m: f" {number_to_words(int(m.group()))} ", text)
    for symbol, word in SYMBOL_WORDS.items():
        text = text.replace(symbol, word)
    text = re.sub(r"(?<=[A-Z])'(?=[A-Z])", "\0", text)
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.replace("\0", "'").split())
