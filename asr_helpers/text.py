"""Transcripts onto the CTC alphabet: upper-case letters, the apostrophe and the word separator.

A CTC model can only spell characters of its vocabulary, so digits, currency signs and
punctuation must become the words a speaker says ("$20" is "TWENTY DOLLARS", not "$ TWENTY").
The corpus generator and the pre-training sentences spell numbers with the same functions, so
labels and audio always agree.

Written numbers are read in this order, each form claiming its digits before a more general one
sees them (:func:`normalize_text`):

1. Phone numbers: an optional ``+country`` code, an optional ``(area)`` code, then digit groups
   joined by hyphens or spaces, the last of 3-4 digits, 7 digits or more in all, and either
   three groups or more or the local form ``555-1234``. Read digit by digit, ``0`` as "ZERO"
   (the word a digit has everywhere else here), ``+`` as "PLUS". So ``2010-2020`` (two groups
   of four) stays two years and ``2024-05-06`` (last group of two) is no phone number.
2. Times: ``H:MM`` ("10:30" -> "TEN THIRTY", "7:05" -> "SEVEN OH FIVE", "9:00" -> "NINE
   O'CLOCK"), with an optional a.m./p.m. that is spelt "A M"/"P M" and replaces "O'CLOCK";
   an hour with a.m./p.m. alone ("3pm", "3 p.m.") -> "THREE P M".
3. Money: ``$ £ €`` before the amount (or right after it: "5€"). Two decimals are cents or
   pence ("$4.50" -> "FOUR DOLLARS FIFTY CENTS", "$1" -> "ONE DOLLAR", "£0.01" -> "ONE PENNY");
   other decimals and scale words are read as a number ("$1.5 million" -> "ONE POINT FIVE
   MILLION DOLLARS"). A sign with no amount is kept, for the vocabulary check to report.
4. Ordinals: "1st", "22nd", "100th" -> "FIRST", "TWENTY SECOND", "ONE HUNDREDTH".
5. Other numbers: a minus sign that starts a number is "MINUS" ("-5" but not "COVID-19");
   digits after a decimal point are read one by one ("3.05" -> "THREE POINT ZERO FIVE");
   thousands commas are dropped ("1,000,000" -> "ONE MILLION"); a number with a leading zero is
   a code, read digit by digit ("007"); a plain four-digit number from 1100 to 2099 (no comma,
   no sign, no decimals, no currency) is a year ("1984" -> "NINETEEN EIGHTY FOUR", "2024" ->
   "TWENTY TWENTY FOUR"), since that is how such numbers are mostly read in speech; any other
   number is a cardinal.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

SYMBOL_WORDS = {"&": " AND ", "%": " PERCENT ", "+": " PLUS ", "@": " AT "}
CURRENCIES = {  # sign: (one, many, one hundredth, many hundredths)
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}
YEARS = range(1100, 2100)
"""Plain four-digit numbers in this range are read as years (see the module's docstring)."""

_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    " sixteen seventeen eighteen nineteen"
).split()
_DECADES = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_IRREGULAR_ORDINALS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
    "twelve": "twelfth",
}
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))


def spell_number(number: int) -> str:
    """An integer in words, as a speaker says it ("one hundred five", "minus five"). The corpus's
    sentences and the transcripts' digits (:func:`number_to_words`)
    are both spelled by it, so the two always agree."""
    if number < 0:
        return f"minus {spell_number(-number)}"
    if number < 20:
        return _SMALL[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _DECADES[tens] + (f" {_SMALL[ones]}" if ones else "")
    size, name = next(scale for scale in _SCALES if number >= scale[0])
    high, rest = divmod(number, size)
    return f"{spell_number(high)} {name}" + (f" {spell_number(rest)}" if rest else "")


def spell_ordinal(number: int) -> str:
    """A positive integer as an ordinal ("twenty third", "one hundredth"): the cardinal with its
    last word made ordinal, which is how English forms every ordinal past a few irregular ones."""
    if number < 1:
        raise ValueError(f"spell_ordinal({number}): ordinals start at 1 (first)")
    *head, last = spell_number(number).split()
    if last in _IRREGULAR_ORDINALS:
        last = _IRREGULAR_ORDINALS[last]
    else:
        last = last[:-1] + "ieth" if last.endswith("y") else last + "th"
    return " ".join([*head, last])


def spell_year(year: int) -> str:
    """A year the way it is read aloud: "nineteen eighty four", "two thousand nine"."""
    if year < 0:
        raise ValueError(f"spell_year({year}): a year before year 0 has no reading here")
    century, rest = divmod(year, 100)
    if 2000 <= year < 2010:
        return spell_number(year)
    if rest == 0:
        return f"{spell_number(century)} hundred"
    return f"{spell_number(century)} " + (f"oh {_SMALL[rest]}" if rest < 10 else spell_number(rest))


def number_to_words(number: int) -> str:
    """Spell an integer the way a speaker says it ("105" -> "ONE HUNDRED FIVE"), in the CTC alphabet."""
    return spell_number(number).upper()


def _spell_digits(digits: str) -> str:
    """Digits one at a time ("0018" -> "zero zero one eight"): phone numbers, codes and the part
    after a decimal point are read this way, not as one quantity."""
    return " ".join(_SMALL[int(digit)] for digit in digits if digit.isdigit())


def _say_integer(written: str, year_allowed: bool) -> str:
    """A written integer ("1,234", "007", "1984") in words; see rule 5 of the module's docstring."""
    digits = written.replace(",", "")
    if len(digits) > 1 and digits.startswith("0"):
        return _spell_digits(digits)
    if year_allowed and written == digits and len(digits) == 4 and int(digits) in YEARS:
        return spell_year(int(digits))
    return spell_number(int(digits))


def _say_decimal(whole: str | None, fraction: str | None, year_allowed: bool = False) -> str:
    """A written number with an optional decimal part: "3.5" -> "three point five", ".5" -> "point five"."""
    words = [] if whole is None else [_say_integer(whole, year_allowed and fraction is None)]
    return " ".join(words + ([] if fraction is None else ["point", _spell_digits(fraction)]))


_INTEGER = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"  # 1,234,567 or a plain run of digits
_PHONE = re.compile(
    r"(?<![\w$£€.,:+-])(?:\+\d{1,3}[ -]?)?(?:\(\d{1,4}\)[ -]?)?(?:\d{1,4}[ -])+\d{3,4}(?!\w|[.,:-]\d|%)"
)
_TIME = re.compile(
    r"(?<![\d:.,])(?P<hour>[01]?\d|2[0-3])(?::(?P<minute>[0-5]\d)(?![\d:])|(?=\s?[AP]\.?\s?M(?!\w)))"
    r"(?:\s?(?P<half>[AP])\.?\s?M(?!\w)\.?)?"
)
_MONEY = re.compile(
    rf"(?P<minus>(?<![\w.])[-−])?(?:(?P<before>[$£€])\s?)?(?P<whole>{_INTEGER})(?:\.(?P<fraction>\d+))?"
    r"(?:\s(?P<scale>THOUSAND|MILLION|BILLION)(?!\w))?(?(before)|(?P<after>[$£€]))"
)
_ORDINAL = re.compile(rf"(?<![\d.,])(?P<number>{_INTEGER})(?:ST|ND|RD|TH)(?!\w)")
_NUMBER = re.compile(rf"(?P<minus>(?<![\w.])[-−])?(?=\.?\d)(?P<whole>{_INTEGER})?(?:\.(?P<fraction>\d+))?")


def _say_phone(match: re.Match[str]) -> str:
    """A phone number digit by digit; a match that is not one by rule 1 is left for later rules."""
    groups = re.findall(r"\d+", match.group())
    if sum(map(len, groups)) < 7 or (len(groups) < 3 and [len(group) for group in groups] != [3, 4]):
        return match.group()
    plus = "plus " if match.group().startswith("+") else ""
    return f" {plus}{_spell_digits(''.join(groups))} ".upper()


def _say_time(match: re.Match[str]) -> str:
    """A clock time: "ten thirty", "seven oh five", "nine o'clock", "three p m"."""
    words = [spell_number(int(match["hour"]))]
    minute = int(match["minute"] or 0)
    if minute:
        words.append(spell_number(minute) if minute >= 10 else f"oh {_SMALL[minute]}")
    if match["half"]:
        words.append(f"{match['half']} m")
    elif not minute:
        words.append("o'clock")
    return f" {' '.join(words)} ".upper()


def _say_money(match: re.Match[str]) -> str:
    """An amount of money, its unit after the number as it is said: "four dollars fifty cents"."""
    one, many, hundredth, hundredths = CURRENCIES[match["before"] or match["after"]]
    minus = "minus " if match["minus"] else ""
    whole, fraction = int(match["whole"].replace(",", "")), match["fraction"]
    if match["scale"] or (fraction is not None and len(fraction) != 2):
        scale = f" {match['scale']}" if match["scale"] else ""
        return f" {minus}{_say_decimal(match['whole'], fraction)}{scale} {many} ".upper()
    cents = int(fraction or 0)
    parts = [f"{spell_number(whole)} {one if whole == 1 else many}"] if whole or not cents else []
    if cents:
        parts.append(f"{spell_number(cents)} {hundredth if cents == 1 else hundredths}")
    return f" {minus}{' '.join(parts)} ".upper()


def _say_ordinal(match: re.Match[str]) -> str:
    """"21st" -> "twenty first"."""
    return f" {spell_ordinal(int(match['number'].replace(',', '')))} ".upper()


def _say_number(match: re.Match[str]) -> str:
    """Any other number: sign, thousands commas, decimals, codes and years (rule 5)."""
    minus = "minus " if match["minus"] else ""
    return f" {minus}{_say_decimal(match['whole'], match['fraction'], year_allowed=not minus)} ".upper()


_NUMBER_RULES: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    (_PHONE, _say_phone), (_TIME, _say_time), (_MONEY, _say_money), (_ORDINAL, _say_ordinal), (_NUMBER, _say_number),
)


def normalize_text(text: str) -> str:
    """Map a transcript onto the CTC alphabet: upper case letters, apostrophe and space.

    The rules, in order: accents are stripped (é -> E); numbers are spelled out as they are said
    (phone numbers, times, money, ordinals, decimals, years: see the module's docstring);
    ``& % + @`` become words; other punctuation becomes a space, except an apostrophe inside a
    word ("I'M"); whitespace collapses. Any other symbol (a lone $, emoji) is kept, so
    :func:`~asr_helpers.checks.check_vocab` can report it instead of the row vanishing silently.
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).upper()
    for pattern, say in _NUMBER_RULES:
        text = pattern.sub(say, text)
    for symbol, word in SYMBOL_WORDS.items():
        text = text.replace(symbol, word)
    text = re.sub(r"(?<=[A-Z])'(?=[A-Z])", "\0", text)
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.replace("\0", "'").split())
