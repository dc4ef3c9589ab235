"""Notebook 07's package side: the Kneser-Ney ARPA file (checked by hand and through KenLM), CTC by
hand against ``torch.nn.functional.ctc_loss``, forced alignment against brute force, beam search
with a lexicon and an LM, word times through chunked recordings, and the ``lm``, ``evaluate`` and
``transcribe --lm --timestamps`` commands."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil

import numpy as np
import pytest
import torch
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary

from asr_helpers import decoding, inference, ngram
from asr_helpers.__main__ import main
from asr_helpers.data import CORPUS_DIR
from asr_helpers.decoding import BeamSearchDecoder, BeamSettings, Word
from asr_helpers.text import normalize_text

SENTENCES = ["I want to pay a bill", "I want to freeze my card", "can you freeze my card please", "pay my gas bill"]


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    sentences = ngram.sentences_from_text(SENTENCES)
    return ngram.write_arpa(ngram.kneser_ney(sentences, 3), tmp_path_factory.mktemp("lm") / "lm.arpa")


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


def test_arpa_file_loads_in_kenlm_and_every_context_sums_to_one(arpa):
    assert ngram.read_arpa_counts(arpa) == {1: 16, 2: 20, 3: 19}
    text = arpa.read_text()
    assert text.startswith("\n\\data\\\nngram 1=16\n") and text.rstrip().endswith("\\end\\")
    words = ngram.read_arpa_vocabulary(arpa)
    assert "FREEZE" in words and "<s>" not in words and "<unk>" not in words
    word_dict = Dictionary([*words, "<unk>"])
    with decoding.c_stderr_silenced():
        lm = KenLM(str(arpa), word_dict)
    for context in ([], ["I"], ["I", "WANT"], ["MY", "GAS"], ["PLEASE"]):
        state = lm.start(False)
        for word in context:
            state, _ = lm.score(state, word_dict.get_index(word))
        total = sum(10 ** lm.score(state, i)[1] for i in range(word_dict.index_size())) + 10 ** lm.finish(state)[1]
        assert total == pytest.approx(1.0, abs=1e-4), context


def test_language_model_errors_are_one_clear_line(tmp_path):
    with pytest.raises(ValueError, match="no sentences"):
        ngram.kneser_ney(["", "  "], 3)
    with pytest.raises(ValueError, match="order must be at least 2"):
        ngram.kneser_ney(["A B"], 1)
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(ValueError, match="not an ARPA language model"):
        ngram.read_arpa_vocabulary(tmp_path / "notes.txt")


def test_lm_command_counts_training_transcripts_only(tmp_path, capsys):
    assert main(["lm", "--out", str(tmp_path / "course.arpa")]) == 0
    assert re.fullmatch(r"wrote \S+course\.arpa: \d+ 1-grams, \d+ 2-grams, \d+ 3-grams from 480 sentences\n",
                        capsys.readouterr().out)
    with (CORPUS_DIR / "metadata.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    words = {split: {w for r in rows if r["split"] == split for w in ngram.sentences_from_text([r["transcription"]])[0].split()}
             for split in ("train", "test")}
    vocabulary = set(ngram.read_arpa_vocabulary(tmp_path / "course.arpa"))
    assert vocabulary == words["train"]
    assert words["test"] - words["train"] and not vocabulary & (words["test"] - words["train"]), "test-only words must stay out"


def test_lm_command_from_a_text_file_and_its_errors(tmp_path, capsys):
    (tmp_path / "sentences.txt").write_text("\n".join(SENTENCES) + "\n\n")
    assert main(["lm", "--out", str(tmp_path / "lm.arpa"), "--order", "2", "--text", str(tmp_path / "sentences.txt")]) == 0
    assert capsys.readouterr().out.endswith(": 16 1-grams, 20 2-grams from 4 sentences\n")
    assert main(["lm", "--out", str(tmp_path / "x.arpa"), "--text", str(tmp_path / "missing.txt")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.txt'}: no such text file\n"
    assert main(["lm", "--out", str(tmp_path / "x.arpa"), "--order", "1", "--text", str(tmp_path / "sentences.txt")]) == 2
    assert capsys.readouterr().err == "error: order must be at least 2 (KenLM reads bigram models and up), got 1\n"


# --- CTC by hand --------------------------------------------------------------------------------


def test_collapse_merges_repeats_then_drops_blanks():
    assert decoding.collapse("HH_EL_LL_O") == "HELLO"
    assert decoding.collapse("TOO") == "TO" and decoding.collapse("TO_O") == "TOO"


def test_sum_over_alignments_is_ctc_loss():
    alphabet, frames = "_TO", 5
    paths = decoding.alignments("TOO", frames, alphabet)
    assert "TO_OO" in paths and "TOOOO" not in paths and len(paths) == 7  # one spare frame, 7 places for it
    probs = torch.softmax(torch.randn(frames, len(alphabet), generator=torch.Generator().manual_seed(0)), dim=-1)
    total = sum(math.prod(probs[t, alphabet.index(s)].item() for t, s in enumerate(path)) for path in paths)
    loss = torch.nn.functional.ctc_loss(probs.log()[:, None], torch.tensor([[1, 2, 2]]), torch.tensor([frames]),
                                        torch.tensor([3]), blank=0, reduction="sum")
    assert total == pytest.approx(math.exp(-loss.item()), rel=1e-5)


def test_most_probable_transcript_is_not_the_best_path():
    probs = np.array([[0.6, 0.4], [0.6, 0.4]])  # blank, A: the best path "__" says nothing
    transcripts = decoding.transcript_probabilities(probs, "_A")
    assert transcripts == pytest.approx({"A": 0.64, "": 0.36})
    assert sum(transcripts.values()) == pytest.approx(1.0)


def test_forced_alignment_is_the_best_path_that_spells_the_targets():
    alphabet = "_TO"
    log_probs = torch.log_softmax(torch.randn(7, 3, generator=torch.Generator().manual_seed(1)), dim=-1).numpy()
    path = decoding.forced_align(log_probs, [1, 2, 2], blank=0)
    assert decoding.collapse("".join(alphabet[i] for i in path)) == "TOO"
    best = max(decoding.alignments("TOO", 7, alphabet),
               key=lambda p: sum(log_probs[t, alphabet.index(s)] for t, s in enumerate(p)))
    assert "".join(alphabet[i] for i in path) == best
    with pytest.raises(ValueError, match="3 tokens cannot be spelled in 2 frames"):
        decoding.forced_align(log_probs[:2], [1, 2, 2], blank=0)


# --- frames, words and times -----------------------------------------------------------------


def spelled(processor, text: str, frames_per_letter: int = 3, seed: int = 0) -> torch.Tensor:
    """Log-probabilities of a model sure of ``text``: each letter for a few frames, a blank after each."""
    tokenizer = processor.tokenizer
    path = []
    for letter in text.replace(" ", "|"):
        path += [tokenizer.convert_tokens_to_ids(letter)] * frames_per_letter + [tokenizer.pad_token_id]
    logits = torch.randn(len(path), len(tokenizer), generator=torch.Generator().manual_seed(seed))
    logits[torch.arange(len(path)), path] += 8.0
    return logits.log_softmax(dim=-1)


def test_words_from_frames_agree_with_output_word_offsets(processor):
    log_probs = spelled(processor, "PAY MY BILL")
    ids = log_probs.argmax(dim=-1)
    offsets = processor.decode(ids, output_word_offsets=True).word_offsets
    words = decoding.words_from_frames(processor.tokenizer.convert_ids_to_tokens(ids.tolist()), 0.02)
    assert [(w.word, w.start, w.end) for w in words] == [
        (o["word"], round(o["start_offset"] * 0.02, 3), round(o["end_offset"] * 0.02, 3)) for o in offsets]
    assert words[0] == Word("PAY", 0.0, 0.22)  # P _ A _ Y: 3 frames a letter, 1 blank between: 11 frames


def test_frame_log_probs_of_a_long_recording_give_transcribe_s_text_and_absolute_frames(model, processor):
    rng = np.random.default_rng(0)
    long = (0.1 * rng.standard_normal(16_000 * 45)).astype(np.float32)  # 45 s: three 20 s chunks
    short = (0.1 * rng.standard_normal(16_000 * 2)).astype(np.float32)
    log_probs = decoding.frame_log_probs(model, processor, [long, short], batch_size=2)
    frames = inference.ConvGeometry.of(model.config).frames
    assert [len(lp) for lp in log_probs] == [frames(len(long)), frames(len(short))]
    expected = inference.transcribe(model, processor, [long, short], batch_size=2)
    assert processor.batch_decode([lp.argmax(dim=-1) for lp in log_probs]) == expected
    words = decoding.greedy_words(processor, log_probs[0], decoding.frame_seconds(model, processor))
    assert " ".join(w.word for w in words) == " ".join(expected[0].split())  # "A  B": two delimiters, one gap
    assert words[-1].end > 40.0, "times past the first chunk are absolute"


def test_beam_search_with_the_lexicon_and_lm_fixes_a_misspelling(processor, arpa):
    log_probs = spelled(processor, "I WANT TO PAY A BILL")
    bill = 4 * len("I WANT TO PAY A B")  # the I of BILL: its frames lean to E, a word the LM never saw
    for t in range(bill, bill + 3):
        log_probs[t] = torch.full_like(log_probs[t], -20.0)
        log_probs[t, processor.tokenizer.convert_tokens_to_ids("E")] = math.log(0.6)
        log_probs[t, processor.tokenizer.convert_tokens_to_ids("I")] = math.log(0.4)
    tokens = processor.tokenizer.convert_ids_to_tokens(list(range(len(processor.tokenizer))))
    greedy = processor.decode(log_probs.argmax(dim=-1))
    free = BeamSearchDecoder(tokens, 0.02)(log_probs)
    with_lm = BeamSearchDecoder(tokens, 0.02, arpa, BeamSettings(beam_size=20, lm_weight=1.0))(log_probs)
    assert greedy == " ".join(w.word for w in free) == "I WANT TO PAY A BELL"
    assert " ".join(w.word for w in with_lm) == "I WANT TO PAY A BILL"
    assert [w.start for w in with_lm] == [w.start for w in free] == [0.0, 0.16, 0.56, 0.8, 1.12, 1.28]


def test_confusions_count_aligned_substitutions():
    counts = decoding.confusions(["PAY MY BILL", "PAY A BILL"], ["PAY MY BELL", "PAY BELL"])
    assert counts == {("BILL", "BELL"): 1, ("A", "BELL"): 1} or counts == {("BILL", "BELL"): 2}
    assert decoding.confusions(["BILL"], ["BELL"], unit="char") == {("I", "E"): 1}


# --- the command line ---------------------------------------------------------------------------


def test_transcribe_json_with_timestamps_and_lm_and_a_bad_file(model_dir, arpa, write_audio, tmp_path, capsys):
    rng = np.random.default_rng(0)
    good = write_audio("speech.wav", (0.1 * rng.standard_normal(16_000)).astype(np.float32), 16_000)
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    args = ["transcribe", "--model", str(model_dir), "--lm", str(arpa), "--timestamps", "--format", "json"]
    assert main([*args, str(good), str(tmp_path / "broken.wav"), str(good)]) == 2
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in records] == [str(good), str(good)]
    assert records[0] == records[1] and set(records[0]) == {"file", "text", "words"}
    assert records[0]["text"] == " ".join(w["word"] for w in records[0]["words"])
    assert set(records[0]["text"].split()) <= set(ngram.read_arpa_vocabulary(arpa)), "the lexicon holds the LM's words"
    assert all(0 <= w["start"] < w["end"] <= 1.0 for w in records[0]["words"])
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {tmp_path / 'broken.wav'}")


def test_transcribe_formats_without_lm(model_dir, model, processor, write_audio, capsys):
    audio = (0.1 * np.random.default_rng(1).standard_normal(24_000)).astype(np.float32)
    path = write_audio("speech.wav", audio, 16_000)
    text = inference.transcribe(model, processor, [audio])[0]
    assert main(["transcribe", "--model", str(model_dir), str(path)]) == 0
    assert capsys.readouterr().out == f"{path}\t{text}\n"
    assert main(["transcribe", "--model", str(model_dir), "--format", "json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"file": str(path), "text": text}
    assert main(["transcribe", "--model", str(model_dir), "--timestamps", str(path)]) == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert " ".join(word for _, _, _, word in lines) == text and all(file == str(path) for file, *_ in lines)


def test_decoding_options_need_an_lm_that_exists_and_loads(model_dir, tmp_path, capsys):
    assert main(["transcribe", "--model", str(model_dir), "--lm-weight", "2", "x.wav"]) == 2
    assert capsys.readouterr().err == "error: --lm-weight and --beam-size tune the beam search: they need --lm\n"
    assert main(["evaluate", "--model", str(model_dir), "--lm", str(tmp_path / "no.arpa")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'no.arpa'}: no language model here")
    (tmp_path / "unigram.arpa").write_text("\n\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\tA\n-0.3\t</s>\n\n\\end\\\n")
    assert main(["transcribe", "--model", str(model_dir), "--lm", str(tmp_path / "unigram.arpa"), "x.wav"]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'unigram.arpa'}: KenLM cannot read it: "
                                       "This ngram implementation assumes at least a bigram model. Byte: 19\n")


@pytest.fixture
def small_corpus(tmp_path):
    """Three rows of the shipped corpus (two of them test) in a corpus folder of their own."""
    with (CORPUS_DIR / "metadata.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if row["file"] in ("train/train_0000.flac", "test/test_0000.flac", "test/test_0001.flac")]
        fields = reader.fieldnames
    for row in rows:
        (tmp_path / row["file"]).parent.mkdir(exist_ok=True)
        shutil.copy(CORPUS_DIR / row["file"], tmp_path / row["file"])
    with (tmp_path / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


def test_evaluate_prints_wer_and_cer_with_a_progress_bar(model_dir, arpa, small_corpus, capsys):
    assert main(["evaluate", "--model", str(model_dir), "--corpus", str(small_corpus)]) == 0
    out, err = capsys.readouterr()
    greedy = re.fullmatch(r"wer=(\d\.\d{4}) cer=(\d\.\d{4})\n", out)
    assert greedy and "2/2" in err
    assert main(["evaluate", "--model", str(model_dir), "--corpus", str(small_corpus), "--lm", str(arpa), "--beam-size", "5"]) == 0
    assert re.fullmatch(r"wer=\d\.\d{4} cer=\d\.\d{4}\n", capsys.readouterr().out)
    (small_corpus / "test" / "test_0001.flac").write_bytes(b"")
    assert main(["evaluate", "--model", str(model_dir), "--corpus", str(small_corpus)]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_evaluate_unseen_prints_each_format_then_the_whole_set(model, processor, model_dir, capsys):
    """One line per file format (its band, its file count), then all 36: scored over the sentences
    together, as greedy ``transcribe`` would score them."""
    from asr_helpers.data import load_unseen_set
    from asr_helpers.inference import transcribe
    from asr_helpers.metrics import character_error_rate, word_error_rate

    assert main(["evaluate", "--model", str(model_dir), "--unseen"]) == 0
    lines = capsys.readouterr().out.splitlines()
    unseen = load_unseen_set()
    formats = sorted(set(unseen["format"]))
    bands = {name: band for name, band in zip(unseen["format"], unseen["band"])}
    assert [line.split()[:3] for line in lines[:-1]] == [[name, bands[name], "files=6"] for name in formats]
    hypotheses = transcribe(model, processor, list(unseen["path"]))
    references = [normalize_text(text) for text in unseen["transcription"]]
    wer, cer = word_error_rate(hypotheses, references), character_error_rate(hypotheses, references)
    assert lines[-1].split() == ["all", "files=36", f"wer={wer:.4f}", f"cer={cer:.4f}"]
    with pytest.raises(SystemExit):  # one evaluation set at a time
        main(["evaluate", "--model", str(model_dir), "--unseen", "--corpus", "x"])
    assert "argument --corpus: not allowed with argument --unseen" in capsys.readouterr().err
