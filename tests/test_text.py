"""normalize_text and the spellers: every expected string is written out, never computed by the code under test."""

import re

import pytest

from asr_helpers.text import normalize_text, number_to_words, spell_number, spell_ordinal, spell_year

CTC_ALPHABET = re.compile(r"[A-Z' ]*")

NUMBER_CASES = [
    # the measured bugs
    ("pay 1,000 dollars", "PAY ONE THOUSAND DOLLARS"),
    ("rate is 3.5%", "RATE IS THREE POINT FIVE PERCENT"),
    ("I owe $20", "I OWE TWENTY DOLLARS"),
    ("on the 1st of May", "ON THE FIRST OF MAY"),
    ("call 555-1234", "CALL FIVE FIVE FIVE ONE TWO THREE FOUR"),
    # years: plain four-digit numbers 1100-2099
    ("in 1984", "IN NINETEEN EIGHTY FOUR"),
    ("2009", "TWO THOUSAND NINE"),
    ("2024", "TWENTY TWENTY FOUR"),
    ("born in 1905", "BORN IN NINETEEN OH FIVE"),
    ("1900 and 2000", "NINETEEN HUNDRED AND TWO THOUSAND"),
    ("1100", "ELEVEN HUNDRED"),
    ("2099", "TWENTY NINETY NINE"),
    ("from 2010-2020", "FROM TWENTY TEN TWENTY TWENTY"),
    # ... and what is not a year
    ("1099 items", "ONE THOUSAND NINETY NINE ITEMS"),
    ("2100 items", "TWO THOUSAND ONE HUNDRED ITEMS"),
    ("1,984 items", "ONE THOUSAND NINE HUNDRED EIGHTY FOUR ITEMS"),
    ("$1984", "ONE THOUSAND NINE HUNDRED EIGHTY FOUR DOLLARS"),
    ("-1984", "MINUS ONE THOUSAND NINE HUNDRED EIGHTY FOUR"),
    ("1984.5", "ONE THOUSAND NINE HUNDRED EIGHTY FOUR POINT FIVE"),
    # times
    ("10:30", "TEN THIRTY"),
    ("7:05", "SEVEN OH FIVE"),
    ("9:00", "NINE O'CLOCK"),
    ("meet at 9:00.", "MEET AT NINE O'CLOCK"),
    ("3pm", "THREE P M"),
    ("3 p.m.", "THREE P M"),
    ("at 10:30am, not 9:00 PM", "AT TEN THIRTY A M NOT NINE P M"),
    ("14:45", "FOURTEEN FORTY FIVE"),
    ("2 a month", "TWO A MONTH"),
    # percentages and decimals
    ("50% off", "FIFTY PERCENT OFF"),
    ("0.25", "ZERO POINT TWO FIVE"),
    ("3.05", "THREE POINT ZERO FIVE"),
    (".5 of it", "POINT FIVE OF IT"),
    ("-2.5%", "MINUS TWO POINT FIVE PERCENT"),
    # negatives, and hyphens that are not minus signs
    ("-5 degrees", "MINUS FIVE DEGREES"),
    ("it was -12 outside", "IT WAS MINUS TWELVE OUTSIDE"),
    ("COVID-19", "COVID NINETEEN"),
    ("pages 10-20", "PAGES TEN TWENTY"),
    # ordinals
    ("1st 2nd 3rd 4th", "FIRST SECOND THIRD FOURTH"),
    ("21st 22nd 100th", "TWENTY FIRST TWENTY SECOND ONE HUNDREDTH"),
    ("11th 12th 13th 1,000th", "ELEVENTH TWELFTH THIRTEENTH ONE THOUSANDTH"),
    # money
    ("$1", "ONE DOLLAR"),
    ("$4.50", "FOUR DOLLARS FIFTY CENTS"),
    ("$1.01", "ONE DOLLAR ONE CENT"),
    ("$0.50", "FIFTY CENTS"),
    ("$20.00", "TWENTY DOLLARS"),
    ("$1,000", "ONE THOUSAND DOLLARS"),
    ("$ 5", "FIVE DOLLARS"),
    ("-$5", "MINUS FIVE DOLLARS"),
    ("$1.5 million", "ONE POINT FIVE MILLION DOLLARS"),
    ("£1", "ONE POUND"),
    ("£2.50", "TWO POUNDS FIFTY PENCE"),
    ("£0.01", "ONE PENNY"),
    ("it costs €5", "IT COSTS FIVE EUROS"),
    ("€1.99", "ONE EURO NINETY NINE CENTS"),
    ("5€", "FIVE EUROS"),
    # phone numbers and codes: digit by digit, 0 as ZERO
    ("(020) 7946 0018", "ZERO TWO ZERO SEVEN NINE FOUR SIX ZERO ZERO ONE EIGHT"),
    ("+1 415 555 0100", "PLUS ONE FOUR ONE FIVE FIVE FIVE FIVE ZERO ONE ZERO ZERO"),
    ("1-800-555-0100.", "ONE EIGHT ZERO ZERO FIVE FIVE FIVE ZERO ONE ZERO ZERO"),
    ("call 555 1234 now", "CALL FIVE FIVE FIVE ONE TWO THREE FOUR NOW"),
    ("agent 007", "AGENT ZERO ZERO SEVEN"),
    ("2024-05-06", "TWENTY TWENTY FOUR ZERO FIVE ZERO SIX"),
    ("10 20 30 40", "TEN TWENTY THIRTY FORTY"),
    # thousands separators and large numbers
    ("1,000,000", "ONE MILLION"),
    ("1,234,567", "ONE MILLION TWO HUNDRED THIRTY FOUR THOUSAND FIVE HUNDRED SIXTY SEVEN"),
    ("1234567", "ONE MILLION TWO HUNDRED THIRTY FOUR THOUSAND FIVE HUNDRED SIXTY SEVEN"),
    ("3,000,000,000", "THREE BILLION"),
    ("1,2,3", "ONE TWO THREE"),
    ("A4 and mp3", "A FOUR AND MP THREE"),
]


@pytest.mark.parametrize(("raw", "expected"), NUMBER_CASES)
def test_numbers_are_spelled_as_spoken(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@pytest.mark.parametrize("raw", [raw for raw, _ in NUMBER_CASES])
def test_spelled_numbers_stay_in_the_ctc_alphabet(raw: str) -> None:
    assert CTC_ALPHABET.fullmatch(normalize_text(raw))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "I'd like to pay 250 dollars & my bill, today?",
            "I'D LIKE TO PAY TWO HUNDRED FIFTY DOLLARS AND MY BILL TODAY",
        ),
        ("Café résumé: 50% off!", "CAFE RESUME FIFTY PERCENT OFF"),
        ("  Hello,   world!  ", "HELLO WORLD"),
        ("'quoted' words", "QUOTED WORDS"),
        ("well-known e-mail", "WELL KNOWN E MAIL"),
        ("one + one @ home", "ONE PLUS ONE AT HOME"),
        ("", ""),
    ],
)
def test_existing_rules_are_kept(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_unknown_symbols_are_kept_for_the_vocabulary_check() -> None:
    assert normalize_text("thanks 😀") == "THANKS 😀"
    assert normalize_text("pay $ in €") == "PAY $ IN €"  # a sign with no amount is not guessed at


def test_spell_number_reads_negatives_as_minus() -> None:
    assert spell_number(-1) == "minus one"
    assert spell_number(-105) == "minus one hundred five"
    assert number_to_words(-5) == "MINUS FIVE"


@pytest.mark.parametrize(
    ("number", "words"),
    [(0, "zero"), (13, "thirteen"), (40, "forty"), (99, "ninety nine"), (105, "one hundred five"),
     (1000, "one thousand"), (2026, "two thousand twenty six"), (1_000_001, "one million one"),
     (999_999, "nine hundred ninety nine thousand nine hundred ninety nine"), (10**9, "one billion")],
)
def test_spell_number_of_non_negative_integers_is_unchanged(number: int, words: str) -> None:
    assert spell_number(number) == words
    assert number_to_words(number) == words.upper()


def _read_cardinal(words: str) -> int:
    """The integer a lower-case cardinal names: an independent reader to check spell_number against."""
    units = {word: i for i, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
        " sixteen seventeen eighteen nineteen".split())}
    units |= {word: 10 * i for i, word in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)}
    total = group = 0
    for word in words.split():
        if word == "hundred":
            group *= 100
        elif word in ("thousand", "million", "billion"):
            total, group = total + group * {"thousand": 1000, "million": 10**6, "billion": 10**9}[word], 0
        else:
            group += units[word]
    return total + group


def test_spell_number_names_the_right_integer_up_to_a_million() -> None:
    for number in [*range(0, 2000), *range(2000, 1_000_001, 997), 1_000_000]:
        assert _read_cardinal(spell_number(number)) == number, number


def test_spell_ordinal_one_to_thirty_one_is_unchanged() -> None:
    assert [spell_ordinal(n) for n in range(1, 32)] == (
        "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth"
        " fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth"
    ).split() + [
        "twenty first", "twenty second", "twenty third", "twenty fourth", "twenty fifth", "twenty sixth",
        "twenty seventh", "twenty eighth", "twenty ninth", "thirtieth", "thirty first",
    ]


@pytest.mark.parametrize(
    ("number", "words"),
    [(40, "fortieth"), (90, "ninetieth"), (99, "ninety ninth"), (100, "one hundredth"), (101, "one hundred first"),
     (112, "one hundred twelfth"), (1000, "one thousandth"), (1_000_000, "one millionth")],
)
def test_spell_ordinal_beyond_thirty_one(number: int, words: str) -> None:
    assert spell_ordinal(number) == words


@pytest.mark.parametrize("number", [0, -3])
def test_spell_ordinal_refuses_numbers_below_one(number: int) -> None:
    with pytest.raises(ValueError, match="ordinals start at 1"):
        spell_ordinal(number)


@pytest.mark.parametrize(
    ("year", "words"),
    [(1850, "eighteen fifty"), (1900, "nineteen hundred"), (1905, "nineteen oh five"), (1984, "nineteen eighty four"),
     (2000, "two thousand"), (2009, "two thousand nine"), (2010, "twenty ten"), (2029, "twenty twenty nine")],
)
def test_spell_year_is_unchanged(year: int, words: str) -> None:
    assert spell_year(year) == words


def test_spell_year_refuses_negative_years() -> None:
    with pytest.raises(ValueError, match="spell_year"):
        spell_year(-44)
