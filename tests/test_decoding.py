"""Notebook 07's package side: CTC by hand against ``torch.nn.functional.ctc_loss``, forced
alignment against brute force, word times through chunked recordings, and the ``evaluate`` and
``transcribe --lm --timestamps`` commands (the LM and the beam search: ``test_beam_search.py``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from asr_helpers import decoding, inference, ngram
from asr_helpers.__main__ import main
from asr_helpers.data import load_offline_corpus
from asr_helpers.decoding import Word
from asr_helpers.text import normalize_text

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


def test_words_from_frames_agree_with_output_word_offsets(processor, spelled):
    log_probs = spelled("PAY MY BILL")
    ids = log_probs.argmax(dim=-1)
    offsets = processor.decode(ids, output_word_offsets=True).word_offsets
    words = decoding.words_from_frames(processor.tokenizer.convert_ids_to_tokens(ids.tolist()), 0.02)
    assert [(w.word, w.start, w.end) for w in words] == [
        (o["word"], round(o["start_offset"] * 0.02, 3), round(o["end_offset"] * 0.02, 3)) for o in offsets]
    assert words[0] == Word("PAY", 0.0, 0.22)  # P _ A _ Y: 3 frames a letter, 1 blank between: 11 frames


def test_a_long_recording_is_transcribed_over_its_absolute_frames(model, processor):
    rng = np.random.default_rng(0)
    long = (0.1 * rng.standard_normal(16_000 * 45)).astype(np.float32)  # 45 s: three 20 s chunks
    short = (0.1 * rng.standard_normal(16_000 * 2)).astype(np.float32)
    logits = inference.frame_logits(model, processor, [long, short], batch_size=2)
    frames = inference.ConvGeometry.of(model.config).frames
    assert [len(frame) for frame in logits] == [frames(len(long)), frames(len(short))]
    results = inference.transcribe(model, processor, [long, short], batch_size=2)
    assert [result.text for result in results] == processor.batch_decode([frame.argmax(dim=-1) for frame in logits])
    words = results[0].words
    assert " ".join(w.word for w in words) == " ".join(results[0].text.split())  # "A  B": two delimiters, one gap
    assert words[-1].end > 40.0, "times past the first chunk are absolute"


def test_confusions_count_aligned_substitutions():
    counts = decoding.confusions(["PAY MY BILL", "PAY A BILL"], ["PAY MY BELL", "PAY BELL"])
    # "PAY A BILL" -> "PAY BELL" costs two edits either way; jiwer's (rapidfuzz's) walk back prefers
    # the deletion, so BILL is deleted and A becomes BELL (notebook 04's align)
    assert counts == {("BILL", "BELL"): 1, ("A", "BELL"): 1}
    assert decoding.confusions(["BILL"], ["BELL"], unit="char") == {("I", "E"): 1}


# --- the command line ---------------------------------------------------------------------------


def test_transcribe_json_with_timestamps_and_lm_and_a_bad_file(model_dir, arpa, write_audio, tmp_path, capsys):
    rng = np.random.default_rng(0)
    good = write_audio("speech.wav", (0.1 * rng.standard_normal(16_000)).astype(np.float32), 16_000)
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    args = ["transcribe", "--model", str(model_dir), "--device", "cpu", "--lm", str(arpa), "--timestamps", "--format", "json"]
    assert main([*args, str(good), str(tmp_path / "broken.wav"), str(good)]) == 2
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r["file"] for r in records] == [str(good), str(good)]
    assert records[0] == records[1] and set(records[0]) == {"file", "text", "words"}
    assert records[0]["text"] == " ".join(w["word"] for w in records[0]["words"])
    assert set(records[0]["text"].split()) <= set(ngram.read_arpa(arpa).vocabulary), "the lexicon holds the LM's words"
    assert all(0 <= w["start"] < w["end"] <= 1.0 for w in records[0]["words"])
    assert err.splitlines()[0] == "device: cpu", "the device, decided once, is said once"
    assert len(err.splitlines()) == 2 and err.splitlines()[1].startswith(f"error: {tmp_path / 'broken.wav'}")


def test_transcribe_formats_without_lm(model_dir, model, processor, write_audio, capsys):
    audio = (0.1 * np.random.default_rng(1).standard_normal(24_000)).astype(np.float32)
    path = write_audio("speech.wav", audio, 16_000)
    text = inference.transcribe(model, processor, [audio])[0].text
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
    assert capsys.readouterr().err == (f"error: {tmp_path / 'unigram.arpa'}: the decoder needs a bigram model or higher, "
                                       "this one has orders [1]\n")


def test_evaluate_prints_the_wer_and_cer_of_the_transcripts_with_a_progress_bar(model, processor, model_dir, arpa, small_corpus, capsys):
    from asr_helpers.beam_search import BeamSearchDecoder, BeamSettings
    from asr_helpers.metrics import character_error_rate, word_error_rate

    test = load_offline_corpus(small_corpus)["test"]
    references = [normalize_text(text) for text in test["transcription"]]

    def scores(decoder=None) -> str:
        hypotheses = [result.text for result in inference.transcribe(model, processor, test["path"], decoder=decoder)]
        return f"wer={word_error_rate(hypotheses, references):.4f} cer={character_error_rate(hypotheses, references):.4f}\n"

    assert main(["evaluate", "--model", str(model_dir), "--corpus", str(small_corpus)]) == 0
    out, err = capsys.readouterr()
    assert out == scores() and "2/2" in err
    assert main(["evaluate", "--model", str(model_dir), "--corpus", str(small_corpus), "--lm", str(arpa), "--beam-size", "5"]) == 0
    assert capsys.readouterr().out == scores(BeamSearchDecoder.for_model(model, processor, arpa, BeamSettings(beam_size=5)))
    (small_corpus / "test" / "test_0001.flac").write_bytes(b"")
    assert main(["evaluate", "--model", str(model_dir), "--corpus", str(small_corpus)]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"error: {small_corpus / 'test' / 'test_0001.flac'}: empty file")


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
    hypotheses = [result.text for result in transcribe(model, processor, list(unseen["path"]))]
    references = [normalize_text(text) for text in unseen["transcription"]]
    wer, cer = word_error_rate(hypotheses, references), character_error_rate(hypotheses, references)
    assert lines[-1].split() == ["all", "files=36", f"wer={wer:.4f}", f"cer={cer:.4f}"]
    with pytest.raises(SystemExit):  # one evaluation set at a time
        main(["evaluate", "--model", str(model_dir), "--unseen", "--corpus", "x"])
    assert "argument --corpus: not allowed with argument --unseen" in capsys.readouterr().err
