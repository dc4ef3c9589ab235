"""A word n-gram language model (notebook 07): counted from training transcripts, smoothed with
interpolated Kneser-Ney, written as an ARPA file (the format KenLM and every decoder read), and
read back to score word sequences for the course's beam search (:mod:`asr_helpers.beam_search`).

Why build it here: the usual tool, KenLM's ``lmplz``, is a C++ program that PyPI does not ship,
and the course's sentences are a few thousand words, so counting them in Python takes well
under a second. Only *training* transcripts go in: an LM that has seen the test sentences would
make the test WER meaningless.

Kneser-Ney in three lines. Every count above zero gives up a discount ``D`` to a lower-order
model, so unseen word pairs keep some probability. The lower orders are estimated from
*continuation* counts: how many different words precede an n-gram, not how often it occurs
("FRANCISCO" is frequent but follows only "SAN", so it is a poor guess after a new word).
Interpolation mixes every order's estimate, and the ARPA file stores the mixture: each n-gram's
probability and, for each context, the weight its unseen continuations back off with.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from asr_helpers.text import normalize_text

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
NO_PROBABILITY = -99.0
"""log10 probability of ``<s>``: it starts every sentence and is never predicted (KenLM's convention)."""

Ngram = tuple[str, ...]


@dataclass(frozen=True)
class NgramModel:
    """An estimated model: for each order, n-gram -> (log10 probability, log10 backoff weight)."""

    order: int
    entries: dict[int, dict[Ngram, tuple[float, float]]]

    @property
    def vocabulary(self) -> list[str]:
        """The words a decoder can spell: the unigrams, without the sentence markers and ``<unk>``."""
        return sorted(word for (word,) in self.entries[1] if word not in (BOS, EOS, UNK))

    def log10_prob(self, context: Ngram, word: str) -> float:
        """log10 P(word | context) by backing off, as KenLM reads an ARPA file: the longest n-gram
        the file holds, plus the backoff weight of every longer context that had to be dropped.

        A word outside the vocabulary is scored as ``<unk>``; only the last ``order - 1`` words
        of ``context`` count.
        """
        word = word if (word,) in self.entries[1] else UNK
        context = context[len(context) - self.order + 1 :] if self.order > 1 else ()
        backoff = 0.0
        for start in range(len(context) + 1):
            history = context[start:]
            entry = self.entries[len(history) + 1].get((*history, word))
            if entry is not None:
                return backoff + entry[0]
            backoff += self.entries[len(history)][history][1] if history in self.entries.get(len(history), {}) else 0.0
        raise ValueError(f"{word!r} has no unigram and the model no <unk>")  # unreachable for kneser_ney's models

    def sentence_log10(self, sentence: str) -> float:
        """log10 P of a whole sentence between ``<s>`` and ``</s>``: the sum of each word's :meth:`log10_prob`."""
        words, total = (BOS,), 0.0
        for word in [*sentence.split(), EOS]:
            total += self.log10_prob(words, word)
            words = (*words, word)
        return total


def sentences_from_text(lines: Iterable[str]) -> list[str]:
    """One sentence per line, normalised as the labels are (:func:`~asr_helpers.text.normalize_text`); blank lines dropped."""
    return [sentence for sentence in (normalize_text(line) for line in lines) if sentence]


def count_ngrams(sentences: Iterable[str], order: int) -> dict[int, Counter[Ngram]]:
    """Raw counts of every n-gram up to ``order`` in sentences padded with ``<s>`` and ``</s>``."""
    counts: dict[int, Counter[Ngram]] = {n: Counter() for n in range(1, order + 1)}
    for sentence in sentences:
        words = (BOS, *sentence.split(), EOS)
        for n in range(1, order + 1):
            counts[n].update(words[i : i + n] for i in range(len(words) - n + 1))
    return counts


def adjusted_counts(counts: dict[int, Counter[Ngram]]) -> dict[int, Counter[Ngram]]:
    """Kneser-Ney's counts: raw for the highest order and for n-grams that start a sentence
    (nothing can precede ``<s>``), else the number of distinct words seen just before the n-gram."""
    order = max(counts)
    adjusted = {order: Counter(counts[order])}
    for n in range(order - 1, 0, -1):
        left_contexts = Counter(ngram[1:] for ngram in counts[n + 1])
        adjusted[n] = Counter({ngram: count if ngram[0] == BOS else left_contexts[ngram]
                               for ngram, count in counts[n].items()})
    return adjusted


def discount(counts: Counter[Ngram]) -> float:
    """Ney's estimate ``n1 / (n1 + 2 n2)`` from how many n-grams occur once (n1) and twice (n2).

    Tiny corpora can lack either; 0.5 is then a safe middle.
    """
    n1, n2 = (sum(1 for count in counts.values() if count == k) for k in (1, 2))
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5


def kneser_ney(sentences: Iterable[str], order: int = 3) -> NgramModel:
    """Estimate an interpolated Kneser-Ney model of ``order`` from normalised sentences.

    ``P(w | h) = (a(h w) - D) / a(h ·) + gamma(h) P(w | h')`` where ``a`` are the adjusted counts,
    ``h'`` is ``h`` without its first word and ``gamma(h) = D * (distinct words after h) / a(h ·)``
    is the mass the discounts set free: it is also ``h``'s backoff weight in the ARPA file. The
    unigrams are interpolated with a uniform distribution, which gives ``<unk>`` its share.
    """
    if order < 2:
        raise ValueError(f"order must be at least 2 (the decoder reads bigram models and up), got {order}")
    sentences = [sentence for sentence in sentences if sentence.strip()]
    if not sentences:
        raise ValueError("no sentences to estimate a language model from")
    adjusted = adjusted_counts(count_ngrams(sentences, order))
    probabilities: dict[int, dict[Ngram, float]] = {}
    backoffs: dict[int, dict[Ngram, float]] = {}
    vocabulary = {word for (word,) in adjusted[1] if word != BOS} | {UNK}
    for n in range(1, order + 1):
        predicted = Counter({ngram: count for ngram, count in adjusted[n].items() if ngram[-1] != BOS})
        d = discount(predicted)
        totals: Counter[Ngram] = Counter()
        followers: Counter[Ngram] = Counter()
        for ngram, count in predicted.items():
            totals[ngram[:-1]] += count
            followers[ngram[:-1]] += 1
        backoffs[n - 1] = {context: d * followers[context] / totals[context] for context in totals}
        lower = probabilities[n - 1] if n > 1 else defaultdict(lambda: 1 / len(vocabulary))
        probabilities[n] = {
            ngram: (count - d) / totals[ngram[:-1]] + backoffs[n - 1][ngram[:-1]] * lower[ngram[1:]]
            for ngram, count in predicted.items()
        }
    probabilities[1][(UNK,)] = backoffs[0][()] / len(vocabulary)
    entries = {
        n: {ngram: (math.log10(p), math.log10(backoffs[n][ngram]) if ngram in backoffs.get(n, {}) else 0.0)
            for ngram, p in probabilities[n].items()}
        for n in range(1, order + 1)
    }
    entries[1][(BOS,)] = (NO_PROBABILITY, math.log10(backoffs[1][(BOS,)]) if order > 1 else 0.0)
    return NgramModel(order, entries)


def write_arpa(model: NgramModel, path: str | Path) -> Path:
    """Write ``model`` in the ARPA text format: a count header, then one section per order of
    ``log10 p <TAB> words [<TAB> log10 backoff]`` lines (no backoff for the highest order)."""
    lines = ["", "\\data\\"]
    lines += [f"ngram {n}={len(model.entries[n])}" for n in range(1, model.order + 1)]
    for n in range(1, model.order + 1):
        lines += ["", f"\\{n}-grams:"]
        for ngram, (logprob, backoff) in sorted(model.entries[n].items()):
            fields = [f"{logprob:.6f}", " ".join(ngram)] + ([f"{backoff:.6f}"] if n < model.order else [])
            lines.append("\t".join(fields))
    lines += ["", "\\end\\", ""]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def read_arpa_counts(path: str | Path) -> dict[int, int]:
    """The header's ``ngram N=count`` lines: how many n-grams of each order the file holds."""
    header = Path(path).read_text(encoding="utf-8").split("\\1-grams:")[0]
    return {int(n): int(count) for n, count in re.findall(r"^ngram (\d+)=(\d+)$", header, flags=re.MULTILINE)}


def read_arpa(path: str | Path) -> NgramModel:
    """Read an ARPA file (:func:`write_arpa`'s, or any tool's) into the model the decoder scores with.

    Every problem is one line naming the file: not ARPA, an order below 2, a line that is not
    ``log10 p, n words[, backoff]``, counts that disagree with the header, or no ``<unk>``/``</s>``.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not an ARPA language model (not UTF-8 text)") from None
    if "\\data\\" not in (line.strip() for line in lines):
        raise ValueError(f"{path}: not an ARPA language model (no \\data\\ header)")
    counts = read_arpa_counts(path)
    entries: dict[int, dict[Ngram, tuple[float, float]]] = {}
    n = 0
    for number, line in enumerate(lines, start=1):
        header = re.fullmatch(r"\\(\d+)-grams:", line.strip())
        if header:
            n = int(header.group(1))
            entries[n] = {}
        elif line.strip() in ("", "\\end\\") or n == 0:
            continue
        else:
            fields = line.split()
            try:
                logprob, words = float(fields[0]), tuple(fields[1 : n + 1])
                backoff = float(fields[n + 1]) if len(fields) == n + 2 else 0.0
            except (ValueError, IndexError):
                raise ValueError(f"{path}, line {number}: not 'log10 p, {n} words[, backoff]': {line.strip()[:60]!r}") from None
            if len(words) != n or len(fields) > n + 2:
                raise ValueError(f"{path}, line {number}: not 'log10 p, {n} words[, backoff]': {line.strip()[:60]!r}")
            entries[n][words] = (logprob, backoff)
    found = {order: len(section) for order, section in entries.items()}
    if found != counts:
        raise ValueError(f"{path}: the header announces {counts} n-grams per order, the file holds {found}")
    if len(entries) < 2 or sorted(entries) != list(range(1, len(entries) + 1)):
        raise ValueError(f"{path}: the decoder needs a bigram model or higher, this one has orders {sorted(entries)}")
    if (UNK,) not in entries[1] or (EOS,) not in entries[1]:
        raise ValueError(f"{path}: the unigrams need <unk> and </s>")
    return NgramModel(len(entries), entries)
