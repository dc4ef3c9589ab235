"""A small offline stand-in for MInDS-14 en-US, synthesised with espeak-ng.

MInDS-14 holds short phone calls to a bank: a customer states one of 14 intents ("I lost my
card", "what's my balance") over an 8 kHz telephone line. The course fine-tunes Wav2Vec2 on it,
but a classroom may have no internet, so the package ships a look-alike made here: sentences
from per-intent templates, spoken by espeak-ng voices, resampled to 8 kHz, saved as FLAC.

Like a real test set, the test split has held-out speakers (voice variants never heard in
training) and held-out sentences. Every random choice is seeded from the seed and the row's
place, never from how many rows are asked for: the same seed and espeak-ng version give
byte-identical files, and a smaller corpus is exactly the first rows of a bigger one.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import random
import shutil
import string
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from asr_helpers.data import CORPUS_DIR, INTENTS
from asr_helpers.text import spell_number, spell_ordinal, spell_year

EN_US_LANG_ID = 4  # index of en-US in MInDS-14's lang_id ClassLabel
SAMPLE_RATE = 8000  # MInDS-14 is telephone audio
SPLITS: tuple[str, ...] = ("train", "test")
METADATA_COLUMNS: tuple[str, ...] = (
    "file", "split", "transcription", "english_transcription", "intent_class", "lang_id",
    "voice", "speed", "pitch", "duration_s",
)
MISSING_ESPEAK = "espeak-ng not found: install the Debian package espeak-ng to regenerate the corpus"

# A voice is an espeak-ng accent plus a variant (timbre). The variants are split between train and
# test, so every test speaker is new to the model, as in a real test set. The mbrola voices are left
# out: they need separate voice packages. Robotic, whispered and heavy-echo variants are left out too.
ACCENTS: tuple[str, ...] = (
    "en-us", "en-us-nyc", "en-029", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
VARIANTS: dict[str, tuple[str, ...]] = {
    "train": (
        "m1", "m2", "m4", "m5", "m6", "m8", "f1", "f3", "f5", "klatt", "klatt3", "Alex", "Andy",
        "Annie", "Gene", "linda", "max", "paul", "robert", "steph", "travis",
    ),
    "test": ("m3", "m7", "f2", "f4", "klatt2", "Mike", "belinda"),
}
SPEED_WPM = (150, 200)  # espeak-ng -s, words per minute
PITCH = (30, 70)  # espeak-ng -p, 0-99 around the variant's own pitch
AMPLITUDE = 50  # espeak-ng -a (default 100): a phone-call level with headroom, and smaller files
TEST_EVERY = 5  # every fifth sentence of each intent is held out for test

# Slots shared by the templates: "{bill}" in a template becomes every filler below in turn.
# Numbers are spelled out because the model's vocabulary has letters only. Sentences are short
# (under seven words on average) to keep the shipped corpus small.
SLOTS: dict[str, tuple[str, ...]] = {
    "hi": ("", "hi "),  # with and without a greeting
    "country": ("france", "spain", "mexico", "japan", "canada", "italy", "germany", "brazil"),
    "trip": ("next week", "tomorrow", "this summer"),
    "currency": ("euros", "pesos", "yen", "pounds"),
    "moved": ("I moved", "I've moved", "we moved"),
    "city": ("boston", "denver", "chicago", "dallas", "miami", "seattle", "austin", "phoenix"),
    "address": ("address", "home address", "mailing address"),
    "device": ("phone", "tablet", "iphone"),
    "fails": ("won't open", "keeps crashing", "won't load", "keeps freezing"),
    "error": ("something went wrong", "try again later", "session expired", "connection failed"),
    "cash": (
        "forty dollars", "sixty dollars", "eighty dollars", "a hundred dollars", "two hundred dollars",
        "five hundred dollars",
    ),
    "period": ("today", "in a day", "per week"),
    "account": ("account", "checking account", "savings account", "business account", "credit card"),
    "business": (
        "bakery", "restaurant", "small business", "hair salon", "shop", "food truck", "farm", "cafe",
    ),
    "card": ("card", "debit card", "credit card"),
    "broken": ("is damaged", "is bent", "stopped working", "won't scan", "is cracked"),
    "place": ("the store", "a restaurant", "the gas station", "the pharmacy"),
    "deposit_at": ("an atm", "the branch", "the post office", "any branch"),
    "change": ("cancel", "change", "set up", "stop"),
    "stop": ("cancel", "stop"),
    "debit": ("phone", "water", "gas", "internet", "rent", "gym"),
    "lost": ("card", "wallet", "purse", "bag", "phone"),
    "big": ("ten thousand dollars", "twenty thousand dollars", "fifty thousand dollars"),
    "payee": ("my landlord", "a lawyer", "my builder", "a car dealer"),
    "purchase": ("a house", "a new car", "a boat", "my wedding", "college fees"),
    "person": ("wife", "husband", "partner", "mom", "dad", "daughter", "son", "sister"),
    "recent": ("last three", "last five", "last ten", "recent"),
    "when": ("yesterday", "last night", "this morning", "on monday", "last week"),
    "bill": (
        "phone bill", "water bill", "gas bill", "internet bill", "electricity bill", "credit card bill",
    ),
}

TEMPLATES: dict[str, tuple[str, ...]] = {
    "abroad": (
        "I'm going to {country} {trip}",
        "can I use my card in {country}?",
        "will my card work in {country}",
        "{hi}I'm traveling abroad {trip}",
        "can I pay in {currency} with my card",
        "does my card work abroad?",
        "what fees do I pay abroad",
        "I will be in {country} {trip}",
    ),
    "address": (
        "{hi}I need to change my {address}",
        "{moved}, can I update my address?",
        "how do I update my {address}",
        "can you change my {address} please",
        "{moved} to {city}, please update my address",
        "my {address} is wrong",
        "where do I change my address",
        "I have a new {address}",
        "my {address} changed",
        "{hi}I've got a new address",
    ),
    "app_error": (
        "{hi}the app {fails}",
        "the app {fails} on my {device}",
        "the app says {error}",
        "I keep getting {error}",
        "why does the app say {error}?",
        "the app {fails} since the update",
        "I can't sign in on my {device}",
        "I can't log in to the app",
        "the app won't accept my password",
        "the app crashed on my {device}",
        "{hi}the app won't let me pay",
        "the app is down",
        "the app logs me out",
    ),
    "atm_limit": (
        "{hi}what's my daily atm limit",
        "can I take out {cash} at an atm?",
        "the atm won't give me {cash}",
        "is {cash} over my atm limit?",
        "how much cash can I withdraw {period}",
        "what's the most I can take out {period}",
        "why can't I take out {cash}",
        "{hi}how do I raise my atm limit",
        "can I change my atm limit",
        "my atm limit is too low",
        "the atm said I hit my limit",
        "can I get {cash} out today",
        "what's my withdrawal limit",
        "{hi}what's my atm limit",
        "{hi}can I raise my cash limit",
    ),
    "balance": (
        "{hi}what's my balance",
        "what's my {account} balance",
        "how much is in my {account}",
        "what's the balance on my {account}?",
        "is my {account} overdrawn",
        "what's left in my {account}",
        "I need my {account} balance",
        "{hi}I want to know my balance",
        "how much money do I have",
        "can you tell me my balance?",
        "what's my available balance",
        "what's in my {account}",
        "how much is left on my {account}",
        "{hi}check my balance please",
    ),
    "business_loan": (
        "I'd like a loan for my {business}",
        "do you give loans to a {business}",
        "can my {business} get a loan",
        "how much can my {business} borrow",
        "{hi}I need a business loan",
        "can I get a business loan?",
        "what's the interest on a business loan",
        "how do I apply for a business loan",
        "what do I need for a business loan",
        "I want a loan to start a {business}",
    ),
    "card_issues": (
        "my {card} {broken}",
        "my {card} was declined at {place}",
        "why was my {card} declined?",
        "my {card} keeps getting declined",
        "I haven't got my new {card}",
        "my new {card} won't activate",
        "my {card} doesn't work",
        "the chip on my card {broken}",
    ),
    "cash_deposit": (
        "{hi}how do I deposit cash",
        "can I deposit cash at {deposit_at}?",
        "can I deposit coins at {deposit_at}",
        "I want to deposit {cash}",
        "I deposited {cash} but it's not there",
        "how do I pay cash into my {account}",
        "where can I deposit cash",
        "is there a limit on cash deposits",
        "my cash deposit hasn't shown up",
        "how long does a cash deposit take",
        "{hi}I want to deposit some cash",
        "I need to deposit {cash} in cash",
        "does the atm take cash deposits",
        "{hi}can I deposit cash today",
        "I made a cash deposit {when}, where is it",
    ),
    "direct_debit": (
        "{hi}I want to {change} a direct debit",
        "how do I {change} a direct debit?",
        "can I {change} a direct debit in the app",
        "please {stop} my {debit} direct debit",
        "my {debit} direct debit went out twice",
        "my {debit} direct debit bounced",
        "why did my direct debit fail",
        "who set up this direct debit",
        "my {debit} direct debit is wrong",
    ),
    "freeze": (
        "I lost my {lost}, please freeze my card",
        "my {lost} was stolen, block my card",
        "how do I freeze my {card}?",
        "please freeze my {card}",
        "someone stole my {card}",
        "can I unfreeze my {card}",
        "stop all payments on my {card}",
        "{hi}I want to freeze my card",
        "can I freeze my card in the app",
        "freeze my card, I can't find it",
        "I lost my {card}, can you freeze it",
        "I can't find my {card}, freeze it please",
        "please freeze my {account}",
        "{hi}how do I freeze my account",
        "my {card} is missing",
        "please lock my {card}",
    ),
    "high_value_payment": (
        "can I send {big} today?",
        "my payment of {big} was blocked",
        "I want to transfer {big}",
        "I need to pay {payee} {big}",
        "how do I send a large payment to {payee}",
        "I need to send money for {purchase}",
        "{hi}I need to make a big transfer",
        "is there a limit on big payments",
        "what's the most I can transfer at once",
        "why was my large transfer stopped?",
        "I'm buying {purchase}, is there a limit",
        "{hi}how do I make a big payment",
        "I need to pay for {purchase} today",
    ),
    "joint_account": (
        "I want a joint account with my {person}",
        "add my {person} to my account",
        "my {person} and I want a joint account",
        "please take my {person} off our account",
        "{hi}how do I open a joint account",
        "what do we need for a joint account",
        "can I open a joint account online",
        "can I close our joint account",
        "{hi}can we open a joint account",
        "can my {person} join my account",
    ),
    "latest_transactions": (
        "what are my {recent} transactions",
        "{hi}can you read my {recent} payments",
        "I don't recognize a payment from {when}",
        "what did I spend {when}?",
        "show me my payments from {when}",
        "did my pay come in {when}",
        "was I charged twice {when}",
        "{hi}what's my latest transaction",
        "what's this charge from {when}",
        "show me my {recent} transactions",
        "{hi}what was my last payment",
    ),
    "pay_bill": (
        "{hi}I need to pay my {bill}",
        "can I pay my {bill} online?",
        "how do I pay my {bill}",
        "I'd like to pay my {bill} today",
        "can you pay my {bill} for me",
        "{hi}I want to pay a bill",
        "can I pay a bill with my card",
        "has my {bill} been paid",
        "pay my {bill} please",
    ),
}


@dataclass(frozen=True)
class Utterance:
    """One planned recording: what to say, who says it, and where the file goes."""

    file: str
    split: str
    text: str
    intent_class: int
    voice: str
    speed: int
    pitch: int


def expand(template: str) -> list[str]:
    """Every sentence a template can produce, one per combination of its slot fillers."""
    slots = [name for _, name, _, _ in string.Formatter().parse(template) if name]
    combinations = itertools.product(*(SLOTS[name] for name in slots))
    return [template.format(**dict(zip(slots, fillers))) for fillers in combinations]


def sentences_by_intent() -> dict[str, list[str]]:
    """All distinct sentences of each intent, sorted: set order changes from one run to the next."""
    return {intent: sorted({s for t in TEMPLATES[intent] for s in expand(t)}) for intent in INTENTS}


def sentence_pools(seed: int) -> dict[str, list[list[str]]]:
    """Shuffle each intent's sentences and deal every TEST_EVERY-th to test, the rest to train.

    The pools depend on the seed only, never on how many files are asked for: that is what keeps
    train and test sentences disjoint and makes a small corpus the prefix of a big one.
    """
    pools: dict[str, list[list[str]]] = {split: [] for split in SPLITS}
    for intent, sentences in sentences_by_intent().items():
        shuffled = random.Random(f"{seed}-sentences-{intent}").sample(sentences, len(sentences))
        pools["test"].append(shuffled[::TEST_EVERY])
        pools["train"].append([s for i, s in enumerate(shuffled) if i % TEST_EVERY])
    return pools


def round_order(seed: int, split: str, round_: int) -> list[int]:
    """The 14 intent indices in the order one round of a split speaks them."""
    return random.Random(f"{seed}-{split}-round-{round_}").sample(range(len(INTENTS)), len(INTENTS))


def plan_split(split: str, n: int, seed: int, pools: list[list[str]]) -> list[Utterance]:
    """Utterances of one split: intents in rounds of 14 (shuffled per round), each sentence once.

    Round ``r`` uses sentence ``r`` of every intent's pool, so intents stay balanced as in
    MInDS-14 and no sentence repeats. Voice, speed and pitch come from a generator seeded with
    (seed, split, index), so each row is fixed whatever ``n`` is.
    """
    most = len(INTENTS) * min(len(pool) for pool in pools)
    if n > most:
        raise ValueError(f"{split}: asked for {n} utterances but the templates give at most {most}")
    plan = []
    for index in range(n):
        round_, position = divmod(index, len(INTENTS))
        intent = round_order(seed, split, round_)[position]
        rng = random.Random(f"{seed}-{split}-{index}")
        plan.append(
            Utterance(
                file=f"{split}/{split}_{index:04d}.flac",
                split=split,
                text=pools[intent][round_],
                intent_class=intent,
                voice=f"{rng.choice(ACCENTS)}+{rng.choice(VARIANTS[split])}",
                speed=rng.randint(*SPEED_WPM),
                pitch=rng.randint(*PITCH),
            )
        )
    return plan


def plan_corpus(seed: int, n_train: int, n_test: int) -> list[Utterance]:
    """The whole corpus as a list of utterances, before any audio exists."""
    pools = sentence_pools(seed)
    train = plan_split("train", n_train, seed, pools["train"])
    return train + plan_split("test", n_test, seed, pools["test"])


def speak(utterance: Utterance) -> np.ndarray:
    """Run espeak-ng and return its speech at 8 kHz as 16-bit samples.

    espeak-ng writes a 22050 Hz WAV to stdout; we resample it to the telephone rate and round to
    16 bits ourselves, so the FLAC writer receives exact integers and the bytes are reproducible.
    """
    command = [
        "espeak-ng", "--stdout", "-v", utterance.voice, "-s", str(utterance.speed),
        "-p", str(utterance.pitch), "-a", str(AMPLITUDE), utterance.text,
    ]
    wav = subprocess.run(command, capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    resampled = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ")
    return np.clip(np.round(resampled * 32768), -32768, 32767).astype(np.int16)


def render(utterance: Utterance, out_dir: Path) -> float:
    """Synthesise one utterance into its FLAC file and return its duration in seconds."""
    samples = speak(utterance)
    sf.write(
        out_dir / utterance.file, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16",
        compression_level=1.0,  # the smallest files; decoding is just as fast
    )
    return len(samples) / SAMPLE_RATE


def metadata_row(utterance: Utterance, duration_s: float) -> dict[str, object]:
    """A metadata.csv row: MInDS-14's columns, then how the voice was made."""
    return {
        "file": utterance.file,
        "split": utterance.split,
        "transcription": utterance.text,
        "english_transcription": utterance.text,  # en-US rows of MInDS-14 repeat the transcription
        "intent_class": utterance.intent_class,
        "lang_id": EN_US_LANG_ID,
        "voice": utterance.voice,
        "speed": utterance.speed,
        "pitch": utterance.pitch,
        "duration_s": f"{duration_s:.3f}",
    }


def generate_corpus(out_dir: Path, seed: int = 14, n_train: int = 480, n_test: int = 120) -> Path:
    """Synthesise the corpus into ``out_dir`` and return the path of its ``metadata.csv``.

    Old ``{split}_*.flac`` files are removed first so that a smaller run leaves nothing stale.
    Threads are enough to use every core: the work happens in the espeak-ng processes and in
    numpy, soxr and libsndfile, which release the GIL. Results come back in plan order, so the
    output is the same with any number of workers.
    """
    if shutil.which("espeak-ng") is None:
        raise RuntimeError(MISSING_ESPEAK)
    out_dir = Path(out_dir)
    plan = plan_corpus(seed, n_train, n_test)
    for split in SPLITS:
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / split).glob(f"{split}_*.flac"):
            stale.unlink()
    with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
        durations = pool.map(lambda utterance: render(utterance, out_dir), plan)
        rows = [metadata_row(u, d) for u, d in tqdm(zip(plan, durations), total=len(plan), desc="synth")]
    metadata = out_dir / "metadata.csv"
    with metadata.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda row: row["file"]))
    return metadata


# --- The pre-training corpus ------------------------------------------------------------------
#
# The offline course fine-tunes a small checkpoint (asr_helpers/checkpoints/course-base) that was
# first trained on the corpus below, made by the same machinery: general English from a grammar
# of everyday topics (never a banking request, never a sentence of the course corpus), spoken by
# many more espeak-ng voices at wider speeds and pitches, with light noise and a telephone band.
# The course TEST variants are never heard in pre-training, so the course's goal is measured on
# voices both models have never heard. A second set of variants, PRETRAIN_VARIANTS["heldout"],
# is kept out of pre-training too: the checkpoint's card reports its error rates on them.
# scripts/pretrain_checkpoint.py generates this corpus and trains the checkpoint.

PRETRAIN_SPLITS: tuple[str, ...] = ("train", "heldout")
PRETRAIN_METADATA_COLUMNS: tuple[str, ...] = (
    "file", "split", "transcription", "voice", "speed", "pitch", "amplitude", "snr_db", "band_hz",
    "duration_s",
)
# Variants left out of pre-training besides the course test ones: whispered, robotic or heavy-echo
# voices, an unstable one ("fast"), and "Mr serious", whose file name holds a space.
PRETRAIN_EXCLUDED_VARIANTS: tuple[str, ...] = (
    "whisper", "whisperf", "caleb", "UniRobot", "anikaRobot", "robosoft", "robosoft2", "robosoft3",
    "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8", "RicishayMax", "RicishayMax2",
    "RicishayMax3", "Demonic", "fast", "Mr serious",
)
PRETRAIN_VARIANTS: dict[str, tuple[str, ...]] = {
    # every other variant of espeak-ng 1.51's voices/!v folder, course train variants included
    "train": (
        "Alex", "Alicia", "Andy", "Annie", "AnxiousAndy", "Diogo", "Gene", "Gene2", "Henrique",
        "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Nguyen", "Storm", "Tweaky", "adam",
        "anika", "announcer", "antonio", "aunty", "benjamin", "boris", "croak", "david", "ed",
        "edward", "edward2", "f1", "f3", "f5", "gustave", "iven", "iven3", "iven4", "john",
        "kaukovalta", "klatt", "klatt3", "klatt4", "klatt6", "linda", "m1", "m2", "m4", "m5", "m6",
        "m8", "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul", "pedro", "rob",
        "robert", "sandro", "shelby", "steph", "steph3", "travis", "victor", "zac",
    ),
    # held out of pre-training to measure it; none is a course variant either
    "heldout": ("Andrea", "Denis", "grandma", "grandpa", "iven2", "klatt5", "quincy", "steph2"),
}
PRETRAIN_SPEED_WPM = (120, 260)
PRETRAIN_PITCH = (5, 95)
PRETRAIN_AMPLITUDE = (30, 90)
PRETRAIN_SNR_DB = (15.0, 40.0)  # white noise added before the telephone band-pass
TELEPHONE_LOW_HZ = (200, 400)  # the band-pass edges vary around the classic 300-3400 Hz line
TELEPHONE_HIGH_HZ = (3200, 3700)
TELEPHONE_EDGE_HZ = 100.0  # width of the raised-cosine transition at each edge
PRETRAIN_HELDOUT_SHARE = 20  # one sentence in 20 may go to the held-out split, never to train

# A small grammar of everyday English. "{rule}" is replaced by a random alternative of that rule,
# recursively; rules in _GENERATED (numbers, times, dates) are spelled out in words by code.
# Lower case except "I", as in the course corpus; numbers are always words.
PRETRAIN_GRAMMAR: dict[str, tuple[str, ...]] = {
    # Half the utterances are grammar sentences, half lists of words from a broad everyday lexicon
    # (pretrain_words.txt): the grammar gives natural phrasing, the lists teach spelling over
    # thousands of words, which is what lets the model write words it has never heard.
    "utterance": ("{sentence}", "{word_list}"),
    "sentence": (
        "{person} {past_action} {time_past}",
        "{time_past} {person} {past_action}",
        "I {past_action} {time_past}",
        "we {past_action} and then {past_action}",
        "{pronoun} {past_action} {time_past}",
        "we went to {place} {time_past}",
        "{person} went to {city} by {vehicle} {time_past}",
        "I saw a {adj} {animal} near {place} {time_past}",
        "there was a {animal} in {place} {time_past}",
        "I was {feeling} because {clause}",
        "{person} was {feeling} {time_past}",
        "it was {weather} {time_past}, so we stayed at home",
        "it was {weather} {time_past}, so we went to {place}",
        "the {vehicle} was {count} minutes late {time_past}",
        "{person} told me that {clause}",
        "I think {clause}",
        "we stayed in {city} for {count} days",
        "I read {number} pages of my book {time_past}",
        "{person} has lived in {city} since {year}",
        "the {building} was built in {year}",
        "my {relative} was born in {year}",
        "{person} is {age} years old",
        "the {thing} is on the {furniture}",
        "the {color} {thing} belongs to {person}",
        "I can't find my {thing}",
        "have you seen my {color} {thing}?",
        "where did you put the {thing}?",
        "the {animal} is sleeping under the {furniture}",
        "there are {number} {animals} on the farm",
        "{count} {animals} were swimming in the {water}",
        "the train to {city} leaves at {clock}",
        "the {event} starts at {clock} on {weekday}",
        "let's meet at {place} at {clock}",
        "I usually wake up at {clock}",
        "the {shop} closes at {clock} on {weekdays}",
        "my {relative} likes {activity}",
        "I love {activity} on {weekdays}",
        "do you like {activity}?",
        "we are going to {action} {time_future}",
        "I want to {action} {time_future}",
        "would you like to {action} {time_future}?",
        "let's {action} {time_future}",
        "can you help me {action}?",
        "could you {request}, please?",
        "please {request}",
        "don't forget to {action} {time_future}",
        "{person} will {action} {time_future}",
        "I'm going to {place} {time_future}",
        "we need {count} more {groceries} for the {dish}",
        "I'd like a cup of {drink}, please",
        "this {dish} tastes {taste}",
        "for {meal} we had {food} and {food}",
        "I had {food} with {food} for {meal}",
        "add a little {spice} to the {dish}",
        "how long does it take to get to {place}?",
        "how far is it from {city} to {city}?",
        "it is about {number} kilometers from here",
        "it was {small_number} degrees in {city} {time_past}",
        "what time does the {vehicle} leave?",
        "what are you doing {time_future}?",
        "where are you going {time_future}?",
        "why is the {animal} so {feeling}?",
        "who left the {thing} in the {room}?",
        "when did you last {action}?",
        "how many {animals} can you see?",
        "is it going to be {weather} {time_future}?",
        "did you {action} {time_past}?",
        "have you ever been to {city}?",
        "the {room} needs a new coat of paint",
        "the library has over {number} books about {topic}",
        "our team scored {count} goals {time_past}",
        "{name} won the {game} match on {weekday}",
        "the children played {game} in {place} all afternoon",
        "the {event} was {opinion}",
        "I fell asleep during the film about {topic}",
        "my favorite color is {color}",
        "my favorite animal is the {animal}",
        "my favorite subject is {subject}",
        "in {season} the {nature} is {scene}",
        "the sky was {color} at sunset",
        "a {adj} wind blew across the {nature}",
        "{pronoun} painted the {paintable} {color}",
        "the students studied {subject} for {count} hours",
        "our {subject} teacher gave us a test on {weekday}",
        "the {event} is on the {ordinal} of {month}",
        "my birthday is on the {ordinal} of {month}",
        "we moved to {city} in {year}",
        "there were {number} people at the {event}",
        "{count} of my friends came to the {event}",
        "the {event} was cancelled because of the {bad_weather}",
        "I need to buy {groceries} and {groceries}",
        "{liker} {food}",
        "the {animal} chased the {animal} around the {room}",
        "can I borrow your {thing} for {count} days?",
        "thank you for the {gift}",
        "good morning, {name}",
        "nice to meet you, {name}",
        "see you {time_future}, {name}",
        "I'm sorry I'm late, the {vehicle} was {delay}",
        "our flight to {city} takes {count} hours",
        "{name} plays the {instrument} very well",
        "I'm learning to play the {instrument}",
        "turn left at the {landmark} and walk for {count} minutes",
        "the {shop} is next to the {landmark}",
        "go straight on until you reach the {landmark}",
        "my {relative} grows {plants} in the garden",
        "the {plants} need more water",
        "the moon was very bright {time_past}",
        "{name} ran {count} kilometers {time_past}",
        "the river is {number} meters wide here",
        "the mountain is over {number} meters high",
        "the bus stops here every {count} minutes",
        "the film lasts {count} hours",
        "the baby is {count} months old",
        "I have {count} brothers and {count} sisters",
        "the house has {count} bedrooms and a {adj} garden",
        "we walked {count} miles along the {nature}",
        "{person} said the {food} was {taste}",
        "the {adj} {animal} jumped over the {obstacle}",
        "if it's {weather} {time_future}, we will {action}",
        "after {meal} we {past_action}",
        "before the {event}, {person} {past_action}",
        "I heard {music} while I was {activity}",
        "{person} and {person} are {activity} in the {room}",
        "there is a {adj} {thing} in the {room}",
        "the {thing} was {adj} and {adj}",
        "I don't know where the {thing} is",
        "I don't know what {person} wants for {meal}",
        "what's the weather like in {city}?",
        "I've never been to {country}",
        "we're traveling to {country} {time_future}",
        "we had a lovely time in {country}",
        "we haven't seen {person} for {count} weeks",
        "{person} doesn't like {food}",
        "the {thing} won't fit in the {container}",
        "the {machine} isn't working",
        "the {machine} stopped working {time_past}",
        "the {machine} broke down {time_past}",
        "the {machine} keeps making a strange noise",
        "there's something wrong with the {machine}",
        "why won't the {machine} start?",
        "can you show me how to {skill}?",
        "tell me a story about {topic}",
        "give the {thing} to {person}",
        "someone left a {thing} at {place}",
        "something smells {smell} in the {room}",
        "I got a letter from {person} {time_past}",
        "{person} made {baked} for the {event}",
        "try to {action} before {meal}",
        "we use the {thing} once a {period}",
        "I spent {count} hours {activity} {time_past}",
        "how much does a {animal} weigh?",
        "most {animals} sleep during the day",
        "some {animals} can swim",
        "I'll start {activity} again {time_future}",
        "stop {activity} and come to {meal}",
        "come and see the {animals}",
        "my {relative}'s {pet} is called {name}",
        "it's {count} minutes by {vehicle}",
        "is there any {drink} left?",
        "we don't have any {groceries}",
        "let me know when {clause}",
        "it's not very {weather} today",
        "I've lost my {thing} again",
        "{person} is getting married in {month}",
        "I sent a postcard to {person} from {country}",
        "{pronoun} {modal} {action} {time_future}",
        "{pronoun} {modal} {action}",
        "what's for {meal}?",
        "do you want some {drink}?",
        "the food at the {event} was {taste}",
        "the {shop} opens at {clock}",
        "the water in the {water} was {adj}",
        "{name} hit the ball over the {obstacle}",
        "I made a mistake, it was the wrong {thing}",
        "ask {person} to {request}",
        "look at all those {animals}",
        "who wants to {action} with me?",
        "I feel {feeling} today",
        "{person} seems {feeling} {time_past}",
        "it takes about {count} hours to {action}",
        "the {pet} needs a walk",
        "{person} works at the {workplace}",
        "{person} got a new job at the {workplace}",
        "my {relative} used to live in {country}",
        "nobody knows where the {animal} came from",
    ),
    "clause": (
        "{person} {past_action}",
        "the {vehicle} was {delay}",
        "it was {weather} {time_past}",
        "the {animal} ran away",
        "I forgot my {thing} at {place}",
        "we missed the {vehicle}",
        "the {event} was cancelled",
        "{person} lost the {thing}",
        "the {dish} tasted {taste}",
        "{name} is moving to {city}",
    ),
    "person": (
        "my {relative}", "{name}", "our neighbor", "the teacher", "the doctor", "my best friend",
        "the new student", "the old man next door", "a woman from work", "the kids", "my boss",
        "the bus driver", "the waiter", "her {relative}", "his {relative}", "their {relative}",
        "{name}'s {relative}", "the farmer", "the little girl", "a tall man",
    ),
    "pronoun": ("he", "she", "they", "we", "I", "you"),
    "liker": (
        "I like", "we love", "she likes", "he hates", "my {relative} loves", "{name} can't stand",
        "the kids enjoy", "nobody here eats",
    ),
    "name": (
        "anna", "ben", "carlos", "david", "emma", "frank", "grace", "henry", "isabel", "jack",
        "kate", "leo", "maria", "nina", "oscar", "paula", "quinn", "rosa", "sam", "tom", "uma",
        "wendy", "yusuf", "zoe", "alice", "bruno", "chloe", "daniel", "elena", "felix", "george",
        "hannah", "ivan", "julia", "kevin", "laura", "noah", "olivia", "peter", "rachel", "simon",
        "tara", "william", "amir", "priya", "kenji", "fatima", "lucas", "sofia", "mateo", "aisha",
        "omar", "lily", "jamal", "mei", "tanya", "hugo", "ella",
    ),
    "relative": (
        "mother", "father", "brother", "sister", "grandmother", "grandfather", "uncle", "aunt",
        "cousin", "nephew", "niece", "grandson", "granddaughter", "best friend", "roommate", "son",
        "daughter", "wife", "husband", "mom", "dad", "grandma", "grandpa", "partner",
    ),
    "modal": ("can", "can't", "should", "might", "will", "won't", "must", "could", "would like to", "need to"),
    "country": (
        "france", "spain", "italy", "germany", "japan", "canada", "mexico", "brazil", "india", "china",
        "egypt", "kenya", "peru", "chile", "norway", "sweden", "greece", "turkey", "vietnam",
        "portugal", "ireland", "scotland", "wales", "australia", "new zealand", "argentina",
        "iceland", "morocco",
    ),
    "container": ("box", "bag", "drawer", "car", "cupboard", "suitcase", "basket", "fridge"),
    "machine": (
        "washing machine", "fridge", "oven", "heater", "printer", "dishwasher", "computer",
        "television", "kettle", "lawn mower", "car", "radio", "phone", "tablet", "laptop", "camera",
    ),
    "smell": ("delicious", "strange", "burnt", "sweet", "funny", "awful", "lovely"),
    "period": ("day", "week", "month", "year"),
    "pet": ("dog", "cat", "rabbit", "parrot", "goldfish", "hamster", "tortoise", "puppy", "kitten"),
    "workplace": (
        "hospital", "school", "library", "museum", "airport", "bakery", "restaurant", "zoo", "farm",
        "hotel", "factory", "garden center", "post office", "newspaper",
    ),
    "past_action": (
        "cooked {food} for dinner", "painted the {paintable}", "fixed the {thing}",
        "found a {thing} in {place}", "planted {plants} in the garden", "washed the car",
        "read a book about {topic}", "watched a film about {topic}", "wrote a letter to {person}",
        "called {person}", "visited {person} in {city}", "walked the dog to {place}",
        "forgot the {thing} at {place}", "bought {groceries} at the market", "cleaned the {room}",
        "baked {baked}", "learned to {skill}", "sang a song about {topic}",
        "took a photo of the {animals}", "slept for {count} hours", "missed the {vehicle}",
        "won the {game} match", "built a {built} out of {material}", "drew a picture of a {animal}",
        "borrowed a {thing} from {person}", "climbed {climbable}", "fed the {animals}",
        "went {activity}", "carried the {thing} up the stairs", "lost a {thing} on the {vehicle}",
        "knitted a {clothing}", "swam across the {water}", "looked for the {thing}",
        "saw {count} {animals}", "played {game} with {person}", "listened to {music}",
    ),
    "action": (
        "go to {place}", "cook {food}", "play {game}", "watch a film about {topic}",
        "visit {person}", "learn to {skill}", "paint the {paintable}", "take the {vehicle} to {city}",
        "feed the {animals}", "fix the {thing}", "clean the {room}", "read a book about {topic}",
        "plant {plants}", "bake {baked}", "walk along the {nature}", "call {person}",
        "meet {person} at {place}", "go {activity}", "climb {climbable}", "draw a {animal}",
        "buy {groceries}", "knit a {clothing}", "listen to {music}", "swim in the {water}",
    ),
    "request": (
        "close the window", "open the door", "turn off the lights", "pass the salt",
        "feed the {animals}", "water the {plants}", "bring me a glass of {drink}",
        "turn up the radio", "speak more slowly", "wait for me at {place}",
        "pick up {person} from {place}", "put the {thing} on the {furniture}", "call me later",
        "take the {thing} to the {room}", "keep the {animal} out of the {room}",
    ),
    "activity": (
        "reading", "swimming", "cooking", "playing {game}", "painting", "walking the dog",
        "riding a bike", "singing", "dancing", "gardening", "fishing", "camping", "hiking",
        "skating", "sailing", "knitting", "drawing {animals}", "studying {subject}",
        "listening to {music}", "baking {baked}", "watching the {animals}",
    ),
    "time_past": (
        "yesterday", "last night", "this morning", "last {weekday}", "on {weekday}",
        "in {month}", "{count} days ago", "a long time ago", "last summer", "last winter",
        "at {clock}", "earlier today", "the other day", "in {year}", "last weekend",
        "{count} weeks ago",
    ),
    "time_future": (
        "tomorrow", "next {weekday}", "on {weekday}", "this weekend", "next month", "in {month}",
        "tonight", "later today", "at {clock}", "in {count} weeks", "next summer", "soon",
        "tomorrow morning", "after {meal}",
    ),
    "weekday": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    "weekdays": ("mondays", "tuesdays", "wednesdays", "thursdays", "fridays", "saturdays", "sundays"),
    "month": (
        "january", "february", "march", "april", "may", "june", "july", "august", "september",
        "october", "november", "december",
    ),
    "season": ("spring", "summer", "autumn", "winter"),
    "place": (
        "the park", "the beach", "the library", "the museum", "the zoo", "the market",
        "the station", "the airport", "school", "the hospital", "the cinema", "the theater",
        "the stadium", "the harbor", "the bakery", "the river", "the lake", "the mountains",
        "the forest", "the village", "the farm", "the office", "the gym", "the pool",
        "the playground", "the castle", "the old bridge", "the island", "my grandmother's house",
        "the town square", "the garden center", "the swimming pool",
    ),
    "city": (
        "london", "paris", "tokyo", "sydney", "toronto", "madrid", "rome", "berlin", "cairo",
        "lisbon", "dublin", "oslo", "vienna", "prague", "athens", "seoul", "lima", "nairobi",
        "mumbai", "bangkok", "glasgow", "leeds", "cardiff", "portland", "atlanta", "houston",
        "edinburgh", "manchester", "montreal", "vancouver", "melbourne", "auckland",
    ),
    "vehicle": ("bus", "train", "ferry", "tram", "boat", "plane", "taxi", "car", "bike", "coach"),
    "food": (
        "soup", "pasta", "rice", "bread", "cheese", "apples", "bananas", "oranges", "strawberries",
        "tomatoes", "potatoes", "carrots", "onions", "eggs", "chicken", "fish", "noodles", "salad",
        "pancakes", "pizza", "cake", "cookies", "honey", "butter", "yogurt", "beans", "mushrooms",
        "grapes", "lemons", "cherries", "peaches", "pears", "corn", "peas", "spinach", "sandwiches",
        "dumplings", "curry", "sausages", "porridge", "toast", "jam", "olives", "melon",
    ),
    "groceries": (
        "eggs", "apples", "potatoes", "onions", "carrots", "lemons", "tomatoes", "bananas",
        "mushrooms", "peppers", "cucumbers", "oranges", "avocados", "peaches", "plums",
    ),
    "dish": ("soup", "stew", "salad", "cake", "pie", "sauce", "curry", "omelette", "risotto", "pudding"),
    "spice": ("salt", "pepper", "garlic", "ginger", "cinnamon", "lemon", "sugar", "chili", "basil"),
    "taste": ("sweet", "salty", "sour", "delicious", "strange", "spicy", "bitter", "wonderful", "bland"),
    "meal": ("breakfast", "lunch", "dinner", "supper"),
    "drink": ("tea", "coffee", "water", "milk", "juice", "lemonade", "hot chocolate", "cocoa"),
    "baked": ("bread", "a cake", "cookies", "muffins", "a pie", "scones", "a loaf of bread", "biscuits"),
    "animal": (
        "dog", "cat", "horse", "rabbit", "bird", "fox", "owl", "duck", "goat", "sheep", "cow", "pig",
        "mouse", "frog", "turtle", "bear", "deer", "squirrel", "dolphin", "whale", "eagle", "parrot",
        "lion", "tiger", "elephant", "giraffe", "monkey", "zebra", "penguin", "butterfly", "bee",
        "spider", "snake", "wolf", "camel", "kangaroo", "hedgehog", "swan", "goose", "badger",
    ),
    "animals": (
        "dogs", "cats", "horses", "rabbits", "birds", "foxes", "owls", "ducks", "goats", "sheep",
        "cows", "pigs", "mice", "frogs", "turtles", "bears", "deer", "squirrels", "dolphins",
        "whales", "eagles", "parrots", "lions", "monkeys", "zebras", "penguins", "butterflies",
        "bees", "wolves", "camels", "swans", "geese", "chickens", "ponies",
    ),
    "thing": (
        "umbrella", "key", "book", "jacket", "hat", "scarf", "bicycle", "camera", "lamp", "clock",
        "ladder", "bucket", "kettle", "guitar", "map", "backpack", "blanket", "pillow", "candle",
        "mirror", "radio", "watch", "ticket", "notebook", "pencil", "bottle", "basket", "kite",
        "ball", "shovel", "hammer", "torch", "suitcase", "glasses", "sweater", "teapot", "vase",
        "toy train", "paintbrush", "tent",
    ),
    "furniture": ("table", "chair", "sofa", "shelf", "bed", "desk", "piano", "windowsill", "bench", "cupboard"),
    "room": ("kitchen", "bedroom", "bathroom", "living room", "hallway", "garage", "attic", "basement", "shed", "classroom"),
    "paintable": ("fence", "door", "kitchen", "bedroom", "garage", "boat", "gate", "shed", "bench", "ceiling"),
    "building": ("castle", "church", "library", "museum", "station", "bridge", "school", "theater", "lighthouse", "tower"),
    "game": ("chess", "football", "tennis", "basketball", "baseball", "soccer", "golf", "cricket", "volleyball", "hockey", "rugby", "table tennis"),
    "topic": (
        "the ocean", "space", "dinosaurs", "ancient rome", "volcanoes", "the moon", "old castles",
        "famous painters", "the weather", "honeybees", "the rainforest", "the desert", "pirates",
        "robots", "the stars", "music", "history", "mountains", "trains", "birds", "the arctic",
    ),
    "skill": (
        "swim", "drive", "sew", "knit", "dance", "juggle", "sail", "ski", "surf", "cook", "paint",
        "play the piano", "play the guitar", "speak french", "speak spanish", "ride a horse",
        "bake bread", "draw", "skate", "fish",
    ),
    "subject": (
        "math", "history", "biology", "chemistry", "physics", "geography", "music", "art", "french",
        "spanish", "literature", "science", "english", "german",
    ),
    "weather": (
        "sunny", "cloudy", "rainy", "windy", "foggy", "stormy", "cold", "hot", "warm", "cool",
        "freezing", "humid", "snowy", "wet", "dry",
    ),
    "bad_weather": ("rain", "snow", "storm", "fog", "wind", "heat", "ice", "flooding"),
    "color": (
        "red", "blue", "green", "yellow", "purple", "orange", "black", "white", "brown", "gray",
        "pink", "silver", "golden", "dark blue", "bright green",
    ),
    "adj": (
        "old", "new", "small", "big", "heavy", "quiet", "noisy", "bright", "dark", "warm", "cold",
        "clean", "dirty", "tall", "long", "round", "soft", "beautiful", "strange", "funny", "busy",
        "empty", "tiny", "huge", "friendly", "wild", "lovely", "shiny",
    ),
    "feeling": (
        "happy", "tired", "hungry", "thirsty", "excited", "nervous", "bored", "sleepy", "proud",
        "surprised", "worried", "calm", "grumpy", "cheerful",
    ),
    "plants": ("roses", "tulips", "sunflowers", "herbs", "apple trees", "daisies", "lettuce", "carrots", "lilies", "ferns"),
    "music": ("the radio", "jazz", "rock music", "an old song", "the birds", "classical music", "a story", "the rain"),
    "nature": ("river", "hills", "forest", "lake", "coast", "valley", "beach", "meadow", "cliffs", "canal"),
    "water": ("lake", "river", "sea", "pond", "pool", "bay"),
    "scene": ("beautiful", "quiet", "green", "full of flowers", "covered in snow", "very busy", "cold and gray"),
    "clothing": ("sweater", "scarf", "hat", "pair of socks", "blanket", "jumper", "pair of gloves"),
    "material": ("wood", "paper", "stone", "clay", "snow", "sand", "cardboard", "old boxes"),
    "built": ("house", "boat", "tower", "bridge", "bench", "birdhouse", "robot", "castle"),
    "climbable": ("the hill behind the house", "a tall tree", "the old tower", "the stairs", "the mountain", "the wall"),
    "obstacle": ("fence", "gate", "log", "puddle", "wall", "stream"),
    "event": ("wedding", "concert", "match", "party", "festival", "meeting", "parade", "picnic", "play", "race"),
    "opinion": ("wonderful", "terrible", "too long", "really loud", "amazing", "very funny", "a bit boring", "great fun"),
    "gift": ("flowers", "book", "lovely dinner", "kind letter", "chocolates", "warm scarf", "photos", "help"),
    "delay": ("slow", "crowded", "late", "cancelled", "stuck in traffic", "full"),
    "instrument": ("piano", "violin", "guitar", "drums", "flute", "trumpet", "cello", "harp"),
    "landmark": ("bridge", "church", "fountain", "school", "big tree", "traffic lights", "roundabout", "statue"),
    "shop": ("bakery", "bookshop", "pharmacy", "florist", "butcher", "toy shop", "hardware store", "fish market"),
}

def spell_clock(rng: random.Random) -> str:
    """A time of day in words: "seven thirty", "half past six", "a quarter to nine", "noon"."""
    hour, minute = rng.randint(1, 12), rng.choice((0, 5, 10, 15, 20, 30, 40, 45, 50))
    style = rng.randrange(4)
    if style == 0:
        return f"{spell_number(hour)} o'clock" if minute == 0 else f"{spell_number(hour)} {spell_number(minute)}"
    if style == 1 and minute in (15, 30, 45):
        return {15: "a quarter past", 30: "half past", 45: "a quarter to"}[minute] + " " + spell_number(
            hour if minute < 45 else hour % 12 + 1
        )
    if style == 2:
        return rng.choice(("noon", "midnight", "dawn"))
    return f"{spell_number(hour)} {rng.choice(('in the morning', 'in the evening', 'at night'))}"


PRETRAIN_WORDS_FILE = Path(__file__).parent / "pretrain_words.txt"
WORD_LIST_LENGTH = (3, 8)


@cache
def pretraining_words() -> tuple[str, ...]:
    """The everyday lexicon of the word-list utterances (jobs, shops, places, verbs in all forms...).

    It is general English written without regard to the course, so, as in any English corpus, some
    course words are in it (about 120 of the course's ~300); the course's sentences never are.
    """
    return tuple(PRETRAIN_WORDS_FILE.read_text(encoding="utf-8").split())


_GENERATED = {
    "word_list": lambda rng: " ".join(rng.sample(pretraining_words(), rng.randint(*WORD_LIST_LENGTH))),
    "count": lambda rng: spell_number(rng.randint(2, 12)),
    "small_number": lambda rng: spell_number(rng.randint(0, 40)),
    "number": lambda rng: spell_number(
        rng.choice((rng.randint(13, 99), rng.randint(100, 999), rng.randint(1000, 9999)))
    ),
    "age": lambda rng: spell_number(rng.randint(2, 99)),
    "year": lambda rng: spell_year(rng.randint(1850, 2029)),
    "clock": spell_clock,
    "ordinal": lambda rng: spell_ordinal(rng.randint(1, 31)),
}


def expand_grammar(rng: random.Random, rule: str = "utterance") -> str:
    """One random sentence of ``rule``: each "{name}" is expanded in turn, left to right."""
    if rule in _GENERATED:
        return _GENERATED[rule](rng)
    template = rng.choice(PRETRAIN_GRAMMAR[rule])
    parts = []
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        if name:
            parts.append(expand_grammar(rng, name))
    return "".join(parts)


def sentence_key(text: str) -> str:
    """What a sentence is once punctuation and case are gone: how sentences are compared."""
    return " ".join("".join(ch if ch.isalpha() or ch == "'" else " " for ch in text.lower()).split())


def course_sentence_keys() -> set[str]:
    """Keys of every sentence the course templates can produce (the shipped corpus included)."""
    return {sentence_key(s) for sentences in sentences_by_intent().values() for s in sentences}


def pretraining_split_of(text: str) -> str:
    """Which pre-training split may speak ``text``: fixed by the sentence alone, so none is in both."""
    bucket = random.Random(f"pretrain-heldout-{sentence_key(text)}").randrange(PRETRAIN_HELDOUT_SHARE)
    return "heldout" if bucket == 0 else "train"


@dataclass(frozen=True)
class PretrainUtterance:
    """One planned pre-training recording: text, voice and the channel it goes through."""

    file: str
    split: str
    text: str
    voice: str
    speed: int
    pitch: int
    amplitude: int
    snr_db: float
    band_hz: tuple[int, int]
    noise_seed: int


def pretraining_sentences(seed: int, split: str, n: int) -> list[str]:
    """``n`` distinct grammar sentences of one split, none of them a course sentence.

    Drawn in order from one generator seeded by (seed, split): a smaller list is the prefix of a
    bigger one. Sentences belonging to the other split (:func:`pretraining_split_of`) or to the
    course are skipped.
    """
    rng = random.Random(f"{seed}-pretrain-sentences-{split}")
    course = course_sentence_keys()
    seen: set[str] = set()
    sentences: list[str] = []
    attempts = 0
    while len(sentences) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"{split}: the grammar gave only {len(sentences)} distinct sentences of {n}")
        text = expand_grammar(rng)
        key = sentence_key(text)
        if key in seen or key in course or pretraining_split_of(text) != split:
            continue
        seen.add(key)
        sentences.append(text)
    return sentences


def plan_pretraining(seed: int = 0, n_train: int = 12_000, n_heldout: int = 400) -> list[PretrainUtterance]:
    """The pre-training corpus as a list of utterances, before any audio exists.

    Each row's voice, speed, pitch, level, noise and band come from a generator seeded with
    (seed, split, index), so a row is the same whatever ``n_train`` and ``n_heldout`` are.
    """
    plan = []
    for split, n in zip(PRETRAIN_SPLITS, (n_train, n_heldout)):
        for index, text in enumerate(pretraining_sentences(seed, split, n)):
            rng = random.Random(f"{seed}-pretrain-{split}-{index}")
            plan.append(
                PretrainUtterance(
                    file=f"{split}/{split}_{index:05d}.flac",
                    split=split,
                    text=text,
                    voice=f"{rng.choice(ACCENTS)}+{rng.choice(PRETRAIN_VARIANTS[split])}",
                    speed=rng.randint(*PRETRAIN_SPEED_WPM),
                    pitch=rng.randint(*PRETRAIN_PITCH),
                    amplitude=rng.randint(*PRETRAIN_AMPLITUDE),
                    snr_db=round(rng.uniform(*PRETRAIN_SNR_DB), 1),
                    band_hz=(rng.randint(*TELEPHONE_LOW_HZ), rng.randint(*TELEPHONE_HIGH_HZ)),
                    noise_seed=rng.getrandbits(32),
                )
            )
    return plan


def telephone_band(samples: np.ndarray, low_hz: float, high_hz: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-pass ``samples`` to [low_hz, high_hz] with raised-cosine edges, in the frequency domain."""
    size = 1 << max(len(samples) - 1, 1).bit_length()  # a power of two: prime lengths are slow
    spectrum = np.fft.rfft(samples, size)
    freqs = np.fft.rfftfreq(size, 1 / rate)
    rise = np.clip((freqs - (low_hz - TELEPHONE_EDGE_HZ / 2)) / TELEPHONE_EDGE_HZ, 0, 1)
    fall = np.clip(((high_hz + TELEPHONE_EDGE_HZ / 2) - freqs) / TELEPHONE_EDGE_HZ, 0, 1)
    gain = (0.5 - 0.5 * np.cos(np.pi * rise)) * (0.5 - 0.5 * np.cos(np.pi * fall))
    return np.fft.irfft(spectrum * gain, size)[: len(samples)]


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` below the power of the speech (samples within 40 dB of the peak)."""
    peak = np.max(np.abs(samples)) if len(samples) else 0.0
    active = samples[np.abs(samples) > peak * 0.01] if peak > 0 else samples
    power = float(np.mean(active**2)) if len(active) else 0.0
    noise = rng.standard_normal(len(samples)) * np.sqrt(power / 10 ** (snr_db / 10))
    return samples + noise


def speak_pretraining(utterance: PretrainUtterance) -> np.ndarray:
    """espeak-ng speech at 8 kHz with noise and a telephone band, as 16-bit samples."""
    command = [
        "espeak-ng", "--stdout", "-v", utterance.voice, "-s", str(utterance.speed),
        "-p", str(utterance.pitch), "-a", str(utterance.amplitude), utterance.text,
    ]
    wav = subprocess.run(command, capture_output=True, check=True).stdout
    samples, rate = sf.read(io.BytesIO(wav), dtype="float32")
    resampled = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ").astype(np.float64)
    noisy = add_noise(resampled, utterance.snr_db, np.random.default_rng(utterance.noise_seed))
    banded = telephone_band(noisy, *utterance.band_hz)
    return np.clip(np.round(banded * 32768), -32768, 32767).astype(np.int16)


def render_pretraining(utterance: PretrainUtterance, out_dir: Path) -> float:
    """Synthesise one pre-training utterance into its FLAC file and return its duration in seconds."""
    samples = speak_pretraining(utterance)
    sf.write(out_dir / utterance.file, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return len(samples) / SAMPLE_RATE


def pretraining_metadata_row(utterance: PretrainUtterance, duration_s: float) -> dict[str, object]:
    return {
        "file": utterance.file,
        "split": utterance.split,
        "transcription": utterance.text,
        "voice": utterance.voice,
        "speed": utterance.speed,
        "pitch": utterance.pitch,
        "amplitude": utterance.amplitude,
        "snr_db": f"{utterance.snr_db:.1f}",
        "band_hz": f"{utterance.band_hz[0]}-{utterance.band_hz[1]}",
        "duration_s": f"{duration_s:.3f}",
    }


def generate_pretraining_corpus(
    out_dir: Path, seed: int = 0, n_train: int = 12_000, n_heldout: int = 400, workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Synthesise the pre-training corpus into ``out_dir`` and return its ``metadata.csv``.

    Same layout as the course corpus (``train/``, ``heldout/``, ``metadata.csv``); old FLAC files
    of the splits are removed first. Threads use every core, since the work happens in espeak-ng
    processes and in C libraries; results come back in plan order, so any number of workers gives
    the same files.
    """
    if shutil.which("espeak-ng") is None:
        raise RuntimeError(MISSING_ESPEAK)
    out_dir = Path(out_dir)
    plan = plan_pretraining(seed, n_train, n_heldout)
    for split in PRETRAIN_SPLITS:
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / split).glob(f"{split}_*.flac"):
            stale.unlink()
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        durations = pool.map(lambda utterance: render_pretraining(utterance, out_dir), plan)
        rows = [
            pretraining_metadata_row(u, d)
            for u, d in tqdm(zip(plan, durations), total=len(plan), desc="synth-pretrain", disable=not progress)
        ]
    metadata = out_dir / "metadata.csv"
    with metadata.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=PRETRAIN_METADATA_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda row: row["file"]))
    return metadata
