"""The same lexicon + LM beam search through flashlight-text's C++ decoder (KenLM inside): opt-in
speed work, for ``pip install 'asr_helpers[flashlight]'`` where it has wheels (CPython 3.8-3.12).

It takes the course's :class:`~asr_helpers.beam_search.BeamSettings` and returns the same timed
words as :class:`~asr_helpers.beam_search.BeamSearchDecoder`: flashlight picks the words and
:meth:`BeamSearchDecoder.timed_words` times them, so the two differ only in the search.
flashlight keeps each hypothesis's single best path (``log_add=False``) where the course's search
adds up the paths of a prefix; ``benchmarks/decoding.py`` measures how often their words differ.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from flashlight.lib.text.decoder import CriterionType, LexiconDecoder, LexiconDecoderOptions, SmearingMode, Trie
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary

from asr_helpers.beam_search import BeamSearchDecoder, BeamSettings
from asr_helpers.decoding import Word
from asr_helpers.ngram import UNK


@contextmanager
def c_stderr_silenced() -> Iterator[None]:
    """Send what C++ code writes to stderr (KenLM's loading progress) to /dev/null."""
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class FlashlightDecoder(BeamSearchDecoder):
    """flashlight-text's lexicon decoder with KenLM over the ARPA file of ``lm_path``."""

    def __init__(self, tokens: Sequence[str], frame_s: float, lm_path: str | Path,
                 settings: BeamSettings = BeamSettings(), *, blank: str = "<pad>", delimiter: str = "|") -> None:
        super().__init__(tokens, frame_s, lm_path, settings, blank=blank, delimiter=delimiter)
        token_dict = Dictionary(self.tokens)
        words = [w for w in self.lm.vocabulary if set(w) <= set(self.tokens)]
        self.word_dict = Dictionary([*words, UNK])
        try:
            with c_stderr_silenced():
                kenlm = KenLM(str(lm_path), self.word_dict)
        except RuntimeError as error:  # KenLM's message: where in its C++ it failed, then why
            raise ValueError(f"{lm_path}: KenLM cannot read it: {str(error).splitlines()[-1]}") from None
        trie = Trie(len(self.tokens), self.delimiter)
        start = kenlm.start(False)
        for word in words:
            index = self.word_dict.get_index(word)
            trie.insert([token_dict.get_index(letter) for letter in [*word, delimiter]], index, kenlm.score(start, index)[1])
        trie.smear(SmearingMode.MAX)
        options = LexiconDecoderOptions(settings.beam_size, len(self.tokens), settings.beam_threshold, settings.lm_weight,
                                        settings.word_score, -math.inf, 0.0, False, CriterionType.CTC)
        self.flashlight = LexiconDecoder(options, trie, kenlm, self.delimiter, self.blank, self.word_dict.get_index(UNK), [], False)

    def best_words(self, log_probs: torch.Tensor) -> list[str]:
        """flashlight's best hypothesis, read from its word ids (never from its letters)."""
        emissions = torch.as_tensor(log_probs, dtype=torch.float32).contiguous()
        best = self.flashlight.decode(emissions.data_ptr(), *emissions.shape)[0]
        return [self.word_dict.get_entry(index) for index in best.words if index >= 0]

    def __call__(self, log_probs: torch.Tensor) -> list[Word]:
        return self.timed_words(log_probs, self.best_words(log_probs))
