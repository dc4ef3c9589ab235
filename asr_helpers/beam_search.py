"""CTC prefix beam search with a lexicon and an n-gram language model (notebook 07), in Python.

A *prefix* is a partial transcript: the words finished so far and the letters of the word being
spelled. CTC reaches the same prefix by many frame paths, so each prefix keeps two numbers, the
log-probability of its paths that end in a blank and of those that end in its last letter; the
next frame extends them by the three moves of CTC's rules (:meth:`BeamSearchDecoder.step`). After
each frame only the ``beam_size`` best prefixes stay. A lexicon, held as a trie of letters, lets a
prefix spell only the beginnings of known words, and a word counts only once the trie says it is
complete: so the decoder never writes a word outside the lexicon, whatever the audio. The language
model scores each word as it is finished, ``lm_weight`` x log10 P(word | previous words), plus
``word_score``: the scale flashlight-text's decoders use, so the same settings mean the same there.

Speed in pure Python comes from pruning as flashlight-text's decoders prune: a prefix more than
``beam_threshold`` below the best is dropped, so a prefix only tries the tokens that could keep
it within that distance. On a trained model most frames leave one or two tokens to try.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from asr_helpers.decoding import Word, forced_align, frame_seconds, words_from_frames
from asr_helpers.ngram import BOS, EOS, NgramModel, read_arpa

NEG_INF = -math.inf


def log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without leaving log space: adding the probabilities of two sets of paths."""
    if a < b:
        a, b = b, a
    return a if b == NEG_INF else a + math.log1p(math.exp(b - a))


@dataclass(frozen=True)
class BeamSettings:
    """The beam search's knobs. ``lm_weight`` scales the LM's log10 probability against the model's
    natural-log one; ``word_score`` is added per word (it offsets the LM's pull towards fewer words)."""

    beam_size: int = 50
    beam_threshold: float = 25.0
    lm_weight: float = 0.5
    word_score: float = 0.0


@dataclass
class TrieNode:
    """The letters spelled so far of some lexicon words: which letter may come next, which word (if
    any) these letters already spell, and the best unigram log10 probability of the words below."""

    children: dict[int, TrieNode] = field(default_factory=dict)
    word: str | None = None
    best: float = NEG_INF


def build_trie(words: Sequence[str], token_ids: dict[str, int], log10_prob: Callable[[str], float]) -> TrieNode:
    """A trie of ``words`` spelled in token ids; words with a letter the model cannot write are left out.

    Each node keeps the best ``log10_prob`` of the words it leads to: a look-ahead that lets a
    half-spelled word carry an LM score before it is finished, so that it competes fairly with
    prefixes whose words have been scored already (flashlight-text calls this smearing).
    """
    root = TrieNode()
    for word in words:
        if not set(word) <= token_ids.keys():
            continue
        score, node = log10_prob(word), root
        for letter in word:
            node.best = max(node.best, score)
            node = node.children.setdefault(token_ids[letter], TrieNode())
        node.word, node.best = word, max(node.best, score)
    return root


@dataclass(frozen=True)
class Prefix:
    """A partial transcript: the finished words and the trie node of the word being spelled
    (``letters`` for the lexicon-free search, which has no trie), and the last token written."""

    words: tuple[str, ...]
    letters: str
    last: int


class BeamSearchDecoder:
    """CTC prefix beam search over a model's tokens; with a lexicon (``words``, or an LM's vocabulary)
    it writes only lexicon words, and with an LM (an ARPA file) it scores each word in context.
    With neither it is a lexicon-free search over letters, with ``|`` between words."""

    def __init__(self, tokens: Sequence[str], frame_s: float, lm_path: str | Path | None = None,
                 settings: BeamSettings = BeamSettings(), *, words: Sequence[str] | None = None,
                 blank: str = "<pad>", delimiter: str = "|") -> None:
        self.tokens, self.frame_s, self.settings = list(tokens), frame_s, settings
        self.blank, self.delimiter = self.tokens.index(blank), self.tokens.index(delimiter)
        self.lm: NgramModel | None = read_arpa(lm_path) if lm_path is not None else None
        lexicon = self.lm.vocabulary if self.lm is not None and words is None else words
        letters = {token: index for index, token in enumerate(self.tokens) if len(token) == 1 and token != delimiter}
        self.letters = set(letters.values())
        unigram = (lambda word: self.lm.log10_prob((), word)) if self.lm is not None else (lambda word: 0.0)
        self.trie = build_trie(lexicon, letters, unigram) if lexicon is not None else None
        self.nodes: dict[str, TrieNode] = {}  # the trie node of every prefix's letters, found once

    @classmethod
    def for_model(cls, model, processor, lm_path: str | Path | None = None,
                  settings: BeamSettings = BeamSettings()) -> BeamSearchDecoder:
        """A decoder over ``processor``'s tokens, in the order of the model's logits."""
        tokenizer = processor.tokenizer
        tokens = tokenizer.convert_ids_to_tokens(list(range(model.config.vocab_size)))
        return cls(tokens, frame_seconds(model, processor), lm_path, settings,
                   blank=tokenizer.pad_token, delimiter=tokenizer.word_delimiter_token)

    # --- scoring ----------------------------------------------------------------------------

    def word_bonus(self, words: tuple[str, ...], word: str) -> float:
        """What finishing ``word`` after ``words`` adds to a prefix: the weighted LM score and the word score."""
        lm = self.settings.lm_weight * self.lm.log10_prob((BOS, *words), word) if self.lm is not None else 0.0
        return lm + self.settings.word_score

    def lookahead(self, letters: str) -> float:
        """The weighted look-ahead of a half-spelled word (0 without an LM or letters): see :func:`build_trie`."""
        return self.settings.lm_weight * self.node(letters).best if self.lm is not None and letters else 0.0

    def node(self, letters: str) -> TrieNode | None:
        """The trie node that ``letters`` lead to (the lexicon-free search has none)."""
        if self.trie is None:
            return None
        if letters not in self.nodes:
            parent = self.node(letters[:-1]) if letters else self.trie
            self.nodes[letters] = parent.children[self.tokens.index(letters[-1])] if letters else parent
        return self.nodes[letters]

    def next_letters(self, prefix: Prefix) -> Container[int]:
        """The letters ``prefix`` may write next: any letter without a lexicon, else those the trie continues with."""
        return self.letters if self.trie is None else self.node(prefix.letters).children

    def finished_word(self, prefix: Prefix) -> str | None:
        """The word that ``prefix``'s letters spell, if they spell one (any letters, without a lexicon)."""
        if not prefix.letters:
            return None
        return prefix.letters if self.trie is None else self.node(prefix.letters).word

    # --- the search -------------------------------------------------------------------------

    def step(self, beams: dict[Prefix, tuple[float, float, float]], frame: Sequence[tuple[int, float]],
             best: float) -> dict[Prefix, tuple[float, float, float]]:
        """One frame: every prefix, as (log P ending in blank, log P ending in its last letter, bonus),
        extended by the frame's tokens, most probable first, under CTC's rules.

        A blank keeps the prefix. The prefix's last letter again (with no blank between) is the same
        letter held longer: it keeps the prefix too. Any other allowed letter, or the same letter
        after a blank, makes a longer prefix. The delimiter ``|`` finishes the word being spelled,
        if it is a word; between words it is a pause, counted like a blank. A prefix skips the
        tokens that would put it ``beam_threshold`` below ``best``, a score some prefix surely
        reaches (the best one, with a blank), except the blank: no prefix is left without a way on.
        """
        new: dict[Prefix, list[float]] = {}

        def add(prefix: Prefix, blank: float, letter: float, bonus: float) -> None:
            entry = new.get(prefix)
            if entry is None:
                new[prefix] = [blank, letter, bonus]
            else:
                entry[0], entry[1] = log_add(entry[0], blank), log_add(entry[1], letter)

        for prefix, (p_blank, p_letter, bonus) in beams.items():
            p_total = log_add(p_blank, p_letter)
            cutoff = best - self.settings.beam_threshold - p_total - bonus
            next_letters = self.next_letters(prefix)
            for token, lp in frame:
                if token == self.blank:
                    add(prefix, p_total + lp, NEG_INF, bonus)
                elif lp < cutoff:
                    continue
                elif token == self.delimiter:
                    word = self.finished_word(prefix)
                    if word is not None:
                        finished = bonus - self.lookahead(prefix.letters) + self.word_bonus(prefix.words, word)
                        add(Prefix((*prefix.words, word), "", token), p_total + lp, NEG_INF, finished)
                    elif not prefix.letters:
                        add(prefix, p_total + lp, NEG_INF, bonus)
                elif token == prefix.last and prefix.letters:
                    add(prefix, NEG_INF, p_letter + lp, bonus)  # the same letter, held
                    if token in next_letters:
                        self.extend(add, prefix, token, p_blank + lp, bonus)
                elif token in next_letters:
                    self.extend(add, prefix, token, p_total + lp, bonus)
        return self.prune(new)

    def extend(self, add: Callable[[Prefix, float, float, float], None], prefix: Prefix, token: int,
               p_letter: float, bonus: float) -> None:
        """``prefix`` with one more letter, its look-ahead moved from the old letters to the new."""
        letters = prefix.letters + self.tokens[token]
        add(Prefix(prefix.words, letters, token), NEG_INF, p_letter, bonus - self.lookahead(prefix.letters) + self.lookahead(letters))

    def prune(self, beams: dict[Prefix, list[float]]) -> dict[Prefix, tuple[float, float, float]]:
        """The ``beam_size`` best prefixes within ``beam_threshold`` of the best, by paths plus bonus."""
        scored = sorted(((log_add(b, l) + bonus, prefix) for prefix, (b, l, bonus) in beams.items()),
                        key=lambda item: item[0], reverse=True)
        floor = scored[0][0] - self.settings.beam_threshold
        return {prefix: tuple(beams[prefix]) for score, prefix in scored[: self.settings.beam_size] if score >= floor}

    def best_words(self, log_probs: torch.Tensor | np.ndarray) -> list[str]:
        """The most probable word sequence for one recording's frames x tokens log-probabilities.

        At the end, a prefix's unfinished letters must spell a lexicon word, which is then scored
        with the LM as if ``|`` followed, and every sentence gets the LM's ``</s>``. A prefix that
        stops in the middle of a word is not a transcript; if every prefix does, the best one's
        finished words are kept.
        """
        frames = np.asarray(log_probs, dtype=np.float64)
        order = np.argsort(-frames, axis=1, kind="stable")
        near = np.take_along_axis(frames, order, axis=1) >= frames.max(axis=1, keepdims=True) - self.settings.beam_threshold
        beams: dict[Prefix, tuple[float, float, float]] = {Prefix((), "", self.blank): (0.0, NEG_INF, 0.0)}
        scores = frames.tolist()
        for t in range(len(frames)):
            tokens = order[t][near[t]].tolist()
            frame = [(token, scores[t][token]) for token in (tokens if self.blank in tokens else [*tokens, self.blank])]
            leader = max(log_add(p_blank, p_letter) + bonus for p_blank, p_letter, bonus in beams.values())
            beams = self.step(beams, frame, leader + scores[t][self.blank])
        endings = []
        for prefix, (p_blank, p_letter, bonus) in beams.items():
            words, word = prefix.words, self.finished_word(prefix)
            if prefix.letters and word is None:
                continue
            if word is not None:
                bonus, words = bonus - self.lookahead(prefix.letters) + self.word_bonus(words, word), (*words, word)
            end = self.settings.lm_weight * self.lm.log10_prob((BOS, *words), EOS) if self.lm is not None else 0.0
            endings.append((log_add(p_blank, p_letter) + bonus + end, words))
        if not endings:
            return list(max(beams, key=lambda p: log_add(*beams[p][:2]) + beams[p][2]).words)
        return list(max(endings, key=lambda item: item[0])[1])

    def timed_words(self, log_probs: torch.Tensor | np.ndarray, words: Sequence[str]) -> list[Word]:
        """``words`` with their times: where the most probable frame path that spells them
        (:func:`~asr_helpers.decoding.forced_align`) puts each one."""
        if not words:
            return []
        targets = [token for word in words for token in (self.delimiter, *map(self.tokens.index, word))][1:]
        path = forced_align(np.asarray(log_probs), targets, self.blank)
        return words_from_frames([self.tokens[t] for t in path], self.frame_s, self.tokens[self.blank], self.tokens[self.delimiter])

    def __call__(self, log_probs: torch.Tensor) -> list[Word]:
        """Decode one recording's frames x tokens log-probabilities into timed words."""
        return self.timed_words(log_probs, self.best_words(log_probs))
