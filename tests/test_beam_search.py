"""Notebook 07's language model and beam search: the Kneser-Ney ARPA file (by hand, read back,
through KenLM where flashlight-text is installed), the ``lm`` command, and the CTC prefix beam
search: it sums a transcript's paths, writes only lexicon words on any input (a trained-looking
model's frames, a half-spelled word at the end, noise, silence, the course test split and the
unseen set through ``course-base``), and picks the words flashlight-text's decoder picks."""

from __future__ import annotations

import csv
import math
import re

import numpy as np
import pytest
import torch

from asr_helpers import decoding, ngram
from asr_helpers.__main__ import main
from asr_helpers.beam_search import BeamSearchDecoder, BeamSettings
from asr_helpers.data import CORPUS_DIR, load_offline_corpus, load_unseen_set
from asr_helpers.metrics import word_error_rate
from asr_helpers.text import normalize_text

SENTENCES = ["I want to pay a bill", "I want to freeze my card", "can you freeze my card please", "pay my gas bill"]
"""The sentences of conftest's ``arpa`` fixture."""
TOY_TOKENS = ["_", "T", "O", "|"]  # the blank, two letters, the word delimiter


# --- the n-gram model ---------------------------------------------------------------------------


def test_kneser_ney_matches_the_hand_computation():
    # "A B", "A C": adjusted unigram counts A 1, B 1, C 1, </s> 2 (left contexts), D1 = 3 / (3 + 2 * 1);
    # bigrams <s> A 2, A B 1, A C 1, B </s> 1, C </s> 1, D2 = 4 / (4 + 2 * 1).
    model = ngram.kneser_ney(["A B", "A C"], order=2)
    d1, d2, vocabulary = 3 / 5, 2 / 3, 5  # A B C </s> <unk>
    unigram_a = (1 - d1) / 5 + d1 * 4 / 5 / vocabulary
    assert 10 ** model.entries[1][("A",)][0] == pytest.approx(unigram_a, abs=1e-5)
    assert 10 ** model.entries[1][("<unk>",)][0] == pytest.approx(d1 * 4 / 5 / vocabulary, abs=1e-5)
    assert 10 ** model.entries[2][("<s>", "A")][0] == pytest.approx((2 - d2) / 2 + d2 * 1 / 2 * unigram_a, abs=1e-5)
    assert 10 ** model.entries[1][("<s>",)][1] == pytest.approx(d2 * 1 / 2, abs=1e-5), "<s>'s backoff is its freed mass"
    assert model.entries[1][("<s>",)][0] == ngram.NO_PROBABILITY
    assert model.vocabulary == ["A", "B", "C"]


def test_arpa_round_trip_and_every_context_sums_to_one(arpa):
    assert ngram.read_arpa_counts(arpa) == {1: 16, 2: 20, 3: 19}
    text = arpa.read_text()
    assert text.startswith("\n\\data\\\nngram 1=16\n") and text.rstrip().endswith("\\end\\")
    model = ngram.read_arpa(arpa)
    estimated = ngram.kneser_ney(ngram.sentences_from_text(SENTENCES), 3)
    assert model.order == 3 and model.entries.keys() == estimated.entries.keys()
    for n, entries in estimated.entries.items():
        assert model.entries[n].keys() == entries.keys()
        assert all(model.entries[n][g] == pytest.approx(v, abs=1e-6) for g, v in entries.items())
    assert "FREEZE" in model.vocabulary and not {"<s>", "</s>", "<unk>"} & set(model.vocabulary)
    outcomes = [*model.vocabulary, "</s>", "<unk>"]
    for context in ((), ("<s>",), ("<s>", "I"), ("I", "WANT"), ("MY", "GAS"), ("PLEASE",), ("NEVER", "SEEN")):
        total = sum(10 ** model.log10_prob(context, word) for word in outcomes)
        assert total == pytest.approx(1.0, abs=1e-4), context
    assert model.log10_prob(("PAY",), "BALLOTS") == model.log10_prob(("PAY",), "<unk>"), "an unknown word is <unk>"


def test_log10_prob_backs_off_as_kenlm_does(arpa):
    """The course's reading of the file against KenLM's, on every word after contexts seen and unseen."""
    kenlm_module = pytest.importorskip("flashlight.lib.text.decoder.kenlm", reason="flashlight-text is not installed")
    from flashlight.lib.text.dictionary import Dictionary

    from asr_helpers.fast.flashlight_decoder import c_stderr_silenced

    model = ngram.read_arpa(arpa)
    word_dict = Dictionary([*model.vocabulary, "<unk>"])
    with c_stderr_silenced():
        kenlm = kenlm_module.KenLM(str(arpa), word_dict)
    for sentence in ["I WANT TO PAY MY CARD", "PAY A GAS BILL PLEASE", "CAN YOU PAY"]:
        state, context = kenlm.start(False), ("<s>",)
        for word in sentence.split():
            state, score = kenlm.score(state, word_dict.get_index(word))
            assert model.log10_prob(context, word) == pytest.approx(score, abs=1e-4), (context, word)
            context = (*context, word)
        assert model.log10_prob(context, "</s>") == pytest.approx(kenlm.finish(state)[1], abs=1e-4)


def test_language_model_errors_are_one_clear_line(tmp_path, arpa):
    with pytest.raises(ValueError, match="no sentences"):
        ngram.kneser_ney(["", "  "], 3)
    with pytest.raises(ValueError, match="order must be at least 2"):
        ngram.kneser_ney(["A B"], 1)
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(ValueError, match=r"notes\.txt: not an ARPA language model \(no \\data\\ header\)"):
        ngram.read_arpa(tmp_path / "notes.txt")
    (tmp_path / "binary.arpa").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"binary\.arpa: not an ARPA language model \(not UTF-8 text\)"):
        ngram.read_arpa(tmp_path / "binary.arpa")
    lines = arpa.read_text().splitlines()
    (tmp_path / "short.arpa").write_text("\n".join(line for line in lines if not line.startswith("-1.") or "\t" not in line[:12]))
    (tmp_path / "bad.arpa").write_text(arpa.read_text().replace("\tFREEZE\t", "\tFREEZE\tMORE\tWORDS\t", 1))
    with pytest.raises(ValueError, match=r"bad\.arpa, line \d+: not 'log10 p, 1 words\[, backoff\]'"):
        ngram.read_arpa(tmp_path / "bad.arpa")
    (tmp_path / "counts.arpa").write_text(arpa.read_text().replace("ngram 2=20", "ngram 2=21"))
    with pytest.raises(ValueError, match=r"counts\.arpa: the header announces \{1: 16, 2: 21, 3: 19\} n-grams"):
        ngram.read_arpa(tmp_path / "counts.arpa")


def test_lm_command_counts_training_transcripts_only(tmp_path, capsys):
    assert main(["lm", "--out", str(tmp_path / "course.arpa")]) == 0
    assert re.fullmatch(r"wrote \S+course\.arpa: \d+ 1-grams, \d+ 2-grams, \d+ 3-grams from 480 sentences\n",
                        capsys.readouterr().out)
    with (CORPUS_DIR / "metadata.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    words = {split: {w for r in rows if r["split"] == split for w in ngram.sentences_from_text([r["transcription"]])[0].split()}
             for split in ("train", "test")}
    vocabulary = set(ngram.read_arpa(tmp_path / "course.arpa").vocabulary)
    assert vocabulary == words["train"]
    assert words["test"] - words["train"] and not vocabulary & (words["test"] - words["train"]), "test-only words must stay out"


def test_lm_command_from_a_text_file_and_its_errors(tmp_path, capsys):
    (tmp_path / "sentences.txt").write_text("\n".join(SENTENCES) + "\n\n")
    assert main(["lm", "--out", str(tmp_path / "lm.arpa"), "--order", "2", "--text", str(tmp_path / "sentences.txt")]) == 0
    assert capsys.readouterr().out.endswith(": 16 1-grams, 20 2-grams from 4 sentences\n")
    assert main(["lm", "--out", str(tmp_path / "x.arpa"), "--text", str(tmp_path / "missing.txt")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.txt'}: no such text file\n"
    assert main(["lm", "--out", str(tmp_path / "x.arpa"), "--order", "1", "--text", str(tmp_path / "sentences.txt")]) == 2
    assert capsys.readouterr().err == "error: order must be at least 2 (the decoder reads bigram models and up), got 1\n"


# --- the beam search ----------------------------------------------------------------------------


def toy_frames(probs: list[list[float]]) -> torch.Tensor:
    """Log-probabilities over :data:`TOY_TOKENS` from rows over (blank, T, O); the delimiter never fires."""
    rows = np.array([[*row, 0.0] for row in probs]) + 1e-12
    return torch.tensor(np.log(rows / rows.sum(axis=1, keepdims=True)))


def test_prefix_beam_search_sums_paths_where_greedy_takes_one():
    """Notebook 07's three flat frames: the best path says nothing, the sum over paths says O."""
    frames = toy_frames([[0.5, 0.1, 0.4]] * 3)
    free = BeamSearchDecoder(TOY_TOKENS, 0.02, blank="_")
    assert decoding.collapse("".join(TOY_TOKENS[i] for i in frames.argmax(dim=-1))) == ""
    assert free.best_words(frames) == ["O"]
    assert BeamSearchDecoder(TOY_TOKENS, 0.02, words=["TO"], blank="_").best_words(frames) == [], "O is no word here"


def test_repeated_letters_need_a_blank_between_them():
    held = toy_frames([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # T O O: one O held
    split = toy_frames([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # T O _ O
    lexicon = BeamSearchDecoder(TOY_TOKENS, 0.02, words=["TO", "TOO"], blank="_")
    assert lexicon.best_words(held) == ["TO"] and lexicon.best_words(split) == ["TOO"]
    assert BeamSearchDecoder(TOY_TOKENS, 0.02, words=["TOO"], blank="_").best_words(held) == [], "TOO cannot be heard in T O O"


def test_beam_search_with_the_lexicon_and_lm_fixes_a_misspelling(processor, arpa, spelled):
    log_probs = spelled("I WANT TO PAY A BILL")
    bill = 4 * len("I WANT TO PAY A B")  # the I of BILL: its frames lean to E, a word the LM never saw
    for t in range(bill, bill + 3):
        log_probs[t] = torch.full_like(log_probs[t], -20.0)
        log_probs[t, processor.tokenizer.convert_tokens_to_ids("E")] = math.log(0.6)
        log_probs[t, processor.tokenizer.convert_tokens_to_ids("I")] = math.log(0.4)
    tokens = processor.tokenizer.convert_ids_to_tokens(list(range(len(processor.tokenizer))))
    greedy = processor.decode(log_probs.argmax(dim=-1))
    free = BeamSearchDecoder(tokens, 0.02)(log_probs)
    with_lm = BeamSearchDecoder(tokens, 0.02, arpa, BeamSettings(beam_size=20, lm_weight=1.0))(log_probs)
    assert greedy == "I WANT TO PAY A BELL"  # E E E: the best single path, 0.6 ** 3 = 0.216
    assert " ".join(w.word for w in free) == "I WANT TO PAY A BEILL", "E E I and E I I: 0.144 + 0.096 = 0.24"
    assert " ".join(w.word for w in with_lm) == "I WANT TO PAY A BILL"
    assert [w.start for w in with_lm] == [w.start for w in free] == [0.0, 0.16, 0.56, 0.8, 1.12, 1.28]


def test_a_word_cut_off_at_the_end_is_never_written(processor, arpa, spelled):
    """The last frames spell BIL: no lexicon word, so the decoder writes the finished words, or a
    lexicon word the frames allow, never BIL (the defect of a decoder that wrote its letters)."""
    tokens = processor.tokenizer.convert_ids_to_tokens(list(range(len(processor.tokenizer))))
    words = BeamSearchDecoder(tokens, 0.02, arpa)(spelled("I WANT TO PAY A BIL"))
    assert [w.word for w in words] in (["I", "WANT", "TO", "PAY", "A"], ["I", "WANT", "TO", "PAY", "A", "BILL"])
    assert BeamSearchDecoder(tokens, 0.02)(spelled("PAY A BIL"))[-1].word == "BIL", "lexicon-free writes letters"


@pytest.mark.parametrize("kind", ["noise", "silence", "confident nonsense"])
def test_the_lexicon_decoder_writes_lexicon_words_on_frames_unlike_speech(processor, arpa, kind):
    tokens = processor.tokenizer.convert_ids_to_tokens(list(range(len(processor.tokenizer))))
    generator = torch.Generator().manual_seed(3)
    frames = torch.randn(400, len(tokens), generator=generator)
    if kind == "silence":
        frames[:, processor.tokenizer.pad_token_id] += 12.0
    elif kind == "confident nonsense":  # each frame sure of a random token: letters no word spells
        frames[torch.arange(400), torch.randint(len(tokens), (400,), generator=generator)] += 15.0
    decoder = BeamSearchDecoder(tokens, 0.02, arpa)
    words = decoder(frames.log_softmax(dim=-1))
    assert {w.word for w in words} <= set(decoder.lm.vocabulary)
    assert all(0 <= w.start < w.end <= 8.0 for w in words)
    if kind == "silence":
        assert words == []


@pytest.fixture(scope="module")
def course_base_frames():
    """``course-base`` (the shipped pre-trained checkpoint, before fine-tuning: WER about 0.45, so
    many half-right words) on the course test split and the unseen set: real frames, model-made."""
    from asr_helpers.audio import load_audio
    from asr_helpers.inference import frame_logits, load_trained
    from asr_helpers.preprocessing import COURSE_CHECKPOINT

    model, processor = load_trained(COURSE_CHECKPOINT, "cpu")
    test, unseen = load_offline_corpus(CORPUS_DIR)["test"], load_unseen_set()
    frames = {name: [logits.log_softmax(dim=-1) for logits in frame_logits(model, processor, [load_audio(path) for path in rows["path"]])]
              for name, rows in (("test", test), ("unseen", unseen))}
    references = {name: [normalize_text(t) for t in rows["transcription"]] for name, rows in (("test", test), ("unseen", unseen))}
    return model, processor, frames, references


@pytest.fixture(scope="module")
def course_lm(tmp_path_factory):
    sentences = ngram.sentences_from_text(load_offline_corpus(CORPUS_DIR)["train"]["transcription"])
    return ngram.write_arpa(ngram.kneser_ney(sentences, 3), tmp_path_factory.mktemp("lm") / "course.arpa")


@pytest.mark.parametrize("split", ["test", "unseen"])
def test_the_lexicon_decoder_writes_lexicon_words_on_real_frames(course_base_frames, course_lm, split):
    model, processor, frames, references = course_base_frames
    decoder = BeamSearchDecoder.for_model(model, processor, course_lm)
    hypotheses = [[w.word for w in decoder(lp)] for lp in frames[split]]
    assert {w for h in hypotheses for w in h} <= set(decoder.lm.vocabulary)
    greedy = processor.batch_decode([lp.argmax(dim=-1) for lp in frames[split]])
    greedy_wer = word_error_rate(greedy, references[split])
    lm_wer = word_error_rate([" ".join(h) for h in hypotheses], references[split])
    if split == "test":  # the test split's words are nearly all training words: the LM helps a lot
        assert lm_wer <= 0.5 * greedy_wer, (lm_wer, greedy_wer)
    else:  # a third of the unseen set's words are in no training sentence: a lexicon cannot write them
        assert lm_wer > greedy_wer - 0.05, (lm_wer, greedy_wer)


def test_flashlight_picks_the_same_words(course_base_frames, course_lm, processor, arpa, spelled):
    """flashlight-text's C++ lexicon decoder, where installed, with the same settings: the same words
    on clear frames, and on course-base's frames of the test split WERs within 0.02 (it keeps each
    hypothesis's best path where the course's search sums a prefix's paths)."""
    pytest.importorskip("flashlight.lib.text.decoder", reason="flashlight-text is not installed (no wheel for Python 3.13)")
    from asr_helpers.fast.flashlight_decoder import FlashlightDecoder

    tokens = processor.tokenizer.convert_ids_to_tokens(list(range(len(processor.tokenizer))))
    clear = spelled("CAN YOU FREEZE MY CARD PLEASE")
    assert FlashlightDecoder(tokens, 0.02, arpa)(clear) == BeamSearchDecoder(tokens, 0.02, arpa)(clear)
    model, base_processor, frames, references = course_base_frames
    ours, theirs = BeamSearchDecoder.for_model(model, base_processor, course_lm), None
    theirs = FlashlightDecoder(ours.tokens, ours.frame_s, course_lm)
    wers = [word_error_rate([" ".join(d.best_words(lp)) for lp in frames["test"]], references["test"]) for d in (ours, theirs)]
    assert abs(wers[0] - wers[1]) <= 0.02, wers
