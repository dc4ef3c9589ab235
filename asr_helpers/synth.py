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
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

INTENTS: tuple[str, ...] = (
    "abroad", "address", "app_error", "atm_limit", "balance", "business_loan", "card_issues",
    "cash_deposit", "direct_debit", "freeze", "high_value_payment", "joint_account",
    "latest_transactions", "pay_bill",
)
EN_US_LANG_ID = 4  # index of en-US in MInDS-14's lang_id ClassLabel
CORPUS_DIR = Path(__file__).parent / "corpus"
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
