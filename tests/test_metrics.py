"""Tests for asr_helpers.metrics: hand-worked cases, and agreement with jiwer (what `evaluate` calls).

The rates come from jiwer itself; what is checked against jiwer here is notebook 04's hand-written
alignment (:func:`align`, :func:`count_errors`). Several alignments can be equally cheap and split
the same total into different S, D and I; which one jiwer picks is rapidfuzz's business, so the
tests compare the split only where the cheapest alignments all agree on it, and otherwise the
total S + D + I and the WER."""

from __future__ import annotations

import json
import random
import sys
import types

import jiwer
import numpy as np
import pytest

from asr_helpers.metrics import (
    ErrorCounts,
    JiwerMetric,
    align,
    character_error_rate,
    count_errors,
    format_alignment,
    load_metric,
    make_compute_metrics,
    make_guide_compute_metrics,
    word_error_rate,
    word_error_rates_by,
)
from conftest import BASE_CONV

# ---------------------------------------------------------------- hand-computed error rates


@pytest.mark.parametrize(
    ("reference", "hypothesis", "wer", "cer"),
    [
        # sat->sit is 1 S, "the" is 1 D, over 6 words; in characters a->i and "the " (4 D) over 22
        ("the cat sat on the mat", "the cat sit on mat", 2 / 6, 5 / 22),
        # insertion only: "big" (1 I over 2 words), "big " (4 I over 11 characters)
        ("hello world", "hello big world", 1 / 2, 4 / 11),
        # empty hypothesis: every word and character is deleted
        ("a b c", "", 1.0, 1.0),
        ("same words here", "same words here", 0.0, 0.0),
        # insertions are not capped: 3 extra words for a 1-word reference
        ("hi", "oh hi there you", 3.0, 13 / 2),
        # extra whitespace between and around words is not a word
        ("the cat", "  the   cat ", 0.0, 2 / 7),
    ],
)
def test_error_rates_on_hand_computed_cases(reference: str, hypothesis: str, wer: float, cer: float) -> None:
    assert word_error_rate(predictions=[hypothesis], references=[reference]) == pytest.approx(wer, abs=1e-12)
    assert character_error_rate(predictions=[hypothesis], references=[reference]) == pytest.approx(
        cer, abs=1e-12
    )


def test_corpus_rate_sums_errors_before_dividing() -> None:
    # 2 errors over 4 words, then 1 over 1: 3/5, not the mean of 0.5 and 1.0
    assert word_error_rate(predictions=["a b", "x"], references=["a b c d", "y"]) == pytest.approx(3 / 5)


def test_count_errors_fields() -> None:
    counts = count_errors("the cat sat on the mat".split(), "the cat sit on mat".split())
    assert counts == ErrorCounts(substitutions=1, deletions=1, insertions=0, hits=4)
    assert counts.reference_length == 6


@pytest.mark.parametrize("rate", [word_error_rate, character_error_rate])
def test_errors_are_clear(rate) -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rate(predictions=["a", "b"], references=["a"])
    with pytest.raises(ValueError, match=r"references\[1\] is empty"):
        rate(predictions=["a", "b"], references=["a", ""])
    with pytest.raises(ValueError, match=r"references\[0\] is empty"):
        rate(predictions=["a"], references=["   "])
    with pytest.raises(ValueError, match="at least one reference"):
        rate(predictions=[], references=[])


# ---------------------------------------------------------------- alignment


def test_align_op_sequence() -> None:
    assert align("the cat sat on the mat".split(), "the cat sit on mat".split()) == [
        ("equal", "the", "the"),
        ("equal", "cat", "cat"),
        ("substitute", "sat", "sit"),
        ("equal", "on", "on"),
        ("delete", "the", None),
        ("equal", "mat", "mat"),
    ]
    assert align([], ["a"]) == [("insert", None, "a")]
    assert align(["a"], []) == [("delete", "a", None)]
    assert align([], []) == []


def _optimal_splits(reference: list[str], hypothesis: list[str]) -> set[tuple[int, int, int]]:
    """Every (S, D, I) of some cheapest alignment: a reference that breaks no ties, so it holds for jiwer and for align alike."""
    cells: dict[tuple[int, int], tuple[int, set[tuple[int, int, int]]]] = {(0, 0): (0, {(0, 0, 0)})}
    for i in range(len(reference) + 1):
        for j in range(len(hypothesis) + 1):
            if i == j == 0:
                continue
            options = []
            if i:
                cost, splits = cells[i - 1, j]
                options.append((cost + 1, {(s, d + 1, n) for s, d, n in splits}))
            if j:
                cost, splits = cells[i, j - 1]
                options.append((cost + 1, {(s, d, n + 1) for s, d, n in splits}))
            if i and j:
                cost, splits = cells[i - 1, j - 1]
                if reference[i - 1] == hypothesis[j - 1]:
                    options.append((cost, splits))
                else:
                    options.append((cost + 1, {(s + 1, d, n) for s, d, n in splits}))
            best = min(cost for cost, _ in options)
            cells[i, j] = (best, set().union(*(splits for cost, splits in options if cost == best)))
    return cells[len(reference), len(hypothesis)][1]


def _split(counts) -> tuple[int, int, int]:
    return counts.substitutions, counts.deletions, counts.insertions


def _check_against_jiwer(reference: list[str], hypothesis: list[str], theirs, *, splits: bool = True) -> None:
    """``count_errors`` is a cheapest alignment: jiwer's total and, with ``splits``, a possible
    split, jiwer's split where there is only one (the check of splits is the slow part)."""
    ours = count_errors(reference, hypothesis)
    columns = align(reference, hypothesis)
    # the columns spell both sequences, and each column's operation fits its tokens
    assert [ref for _, ref, _ in columns if ref is not None] == reference
    assert [hyp for _, _, hyp in columns if hyp is not None] == hypothesis
    fits = {
        "equal": lambda ref, hyp: ref is not None and ref == hyp,
        "substitute": lambda ref, hyp: ref is not None and hyp is not None and ref != hyp,
        "delete": lambda ref, hyp: ref is not None and hyp is None,
        "insert": lambda ref, hyp: ref is None and hyp is not None,
    }
    for op, ref, hyp in columns:
        assert fits[op](ref, hyp), (op, ref, hyp)
    assert ours.reference_length == len(reference) and ours.hits + ours.substitutions + ours.insertions == len(hypothesis)
    total = theirs.substitutions + theirs.deletions + theirs.insertions
    assert sum(_split(ours)) == total  # as few edits as jiwer's alignment
    if not splits:
        return
    optimal = _optimal_splits(reference, hypothesis)
    assert _split(ours) in optimal and _split(theirs) in optimal
    if len(optimal) == 1:  # no tie: there is only one right answer, and it is jiwer's
        assert (ours.substitutions, ours.deletions, ours.insertions, ours.hits) == (
            theirs.substitutions, theirs.deletions, theirs.insertions, theirs.hits)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "split"),
    [
        ("the cat sat on the mat", "the cat sit on mat", (1, 1, 0)),
        ("hello world", "hello big world", (0, 0, 1)),
        ("a b c", "x b", (1, 1, 0)),
        ("one two three four", "one too three for five", (2, 0, 1)),
        ("a b a", "b a b", (0, 1, 1)),  # 3 S would cost more
        ("x a b", "a b y", (0, 1, 1)),
        ("a a b", "a b b", (1, 0, 0)),
    ],
)
def test_counts_equal_jiwers_where_the_cheapest_alignment_is_unique(reference: str, hypothesis: str, split) -> None:
    ref, hyp = reference.split(), hypothesis.split()
    assert _optimal_splits(ref, hyp) == {split}
    theirs = jiwer.process_words(reference, hypothesis)
    assert _split(count_errors(ref, hyp)) == _split(theirs) == split
    _check_against_jiwer(ref, hyp, theirs)


@pytest.mark.parametrize(
    ("reference", "hypothesis"),
    [
        ("a b", "b c"),  # 2 S, or 1 D + 1 I: equally cheap
        ("a b", "b a"),
        ("b c a", "a a b"),  # 3 S, or 1 S + 1 D + 1 I
        ("a c c b", "d a c"),  # 2 S + 1 D, or 2 D + 1 I
        ("b c", "c d b"),  # 2 S + 1 I, or 1 D + 2 I
    ],
)
def test_ties_cost_what_jiwer_counts(reference: str, hypothesis: str) -> None:
    ref, hyp = reference.split(), hypothesis.split()
    assert len(_optimal_splits(ref, hyp)) > 1  # equally cheap alignments split the errors differently
    _check_against_jiwer(ref, hyp, jiwer.process_words(reference, hypothesis))
    counts = count_errors(ref, hyp)
    wer = (counts.substitutions + counts.deletions + counts.insertions) / counts.reference_length
    assert wer == pytest.approx(word_error_rate([hypothesis], [reference]), abs=1e-12)


# ---------------------------------------------------------------- agreement with jiwer on random text


def _random_text(rng: random.Random, words: list[str]) -> str:
    """Words from a small vocabulary (so that some match), with ragged spacing now and then.

    A lone tab does not split words for jiwer (only spaces and whitespace runs do), so it is here too.
    """
    text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
    if rng.random() < 0.2:
        text = "  " + text.replace(" ", rng.choice(["  ", " \t ", "\t"])) + " "
    return text


def _mutate(rng: random.Random, text: str, words: list[str]) -> str:
    """A plausible recognizer output: the reference with a few words substituted, dropped or added."""
    tokens = text.split()
    for _ in range(rng.randint(0, 4)):
        position = rng.randint(0, len(tokens))
        edit = rng.choice(["substitute", "delete", "insert"])
        if edit == "insert":
            tokens.insert(position, rng.choice(words))
        elif tokens and position < len(tokens):
            if edit == "substitute":
                tokens[position] = rng.choice(words)
            else:
                del tokens[position]
    return " ".join(tokens)


def _random_corpus(seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    words = ["a", "b", "ab", "ba", "the", "cat", "hat", "at", "c"][: rng.randint(2, 9)]
    size = rng.randint(1, 6)
    references: list[str] = []
    while len(references) < size:
        text = _random_text(rng, words)
        if text.strip():
            references.append(text)
    predictions = [
        _random_text(rng, words) if rng.random() < 0.3 else _mutate(rng, reference, words)
        for reference in references
    ]
    return predictions, references


@pytest.mark.parametrize("seed", range(200))
def test_alignment_agrees_with_jiwer_on_random_corpora(seed: int) -> None:
    predictions, references = _random_corpus(seed)
    word_errors = word_length = char_errors = char_length = 0
    for reference, prediction in zip(references, predictions):
        words = jiwer.process_words(reference, prediction)  # jiwer's own split into words
        ref_words, hyp_words = words.references[0], words.hypotheses[0]
        _check_against_jiwer(ref_words, hyp_words, words)
        counts = count_errors(ref_words, hyp_words)
        word_errors += sum(_split(counts))
        word_length += counts.reference_length
        chars = jiwer.process_characters(reference, prediction)
        ref_chars, hyp_chars = chars.references[0], chars.hypotheses[0]
        _check_against_jiwer(ref_chars, hyp_chars, chars, splits=False)
        counts = count_errors(ref_chars, hyp_chars)
        char_errors += sum(_split(counts))
        char_length += counts.reference_length
    # the corpus rates of notebook 04's counts are the rates the course reports
    assert word_errors / word_length == pytest.approx(word_error_rate(predictions, references), abs=1e-12)
    assert char_errors / char_length == pytest.approx(character_error_rate(predictions, references), abs=1e-12)


# ---------------------------------------------------------------- the printed picture


def test_format_alignment_deletion() -> None:
    assert format_alignment("the cat sat on the mat", "the cat sit on mat") == (
        "REF: the cat sat on the mat\n"
        "HYP: the cat sit on *** mat\n"
        "             S      D"
    )


def test_format_alignment_substitution_and_insertion() -> None:
    assert format_alignment("hello there world", "hallo there big world") == (
        "REF: hello there *** world\n"
        "HYP: hallo there big world\n"
        "     S           I"
    )


# ---------------------------------------------------------------- load_metric


@pytest.mark.parametrize(("name", "jiwer_rate"), [("wer", jiwer.wer), ("cer", jiwer.cer)])
def test_load_metric_offline_matches_jiwer(name: str, jiwer_rate) -> None:
    predictions, references = ["the cat sit on mat", "helo world"], ["the cat sat on the mat", "hello world"]
    metric = load_metric(name, "offline")
    assert metric.compute(predictions=predictions, references=references) == pytest.approx(
        jiwer_rate(references, predictions), abs=1e-12
    )


def _fake_evaluate(monkeypatch: pytest.MonkeyPatch, load) -> None:
    """Stand a stub in for the `evaluate` package: the real one takes seconds to import."""
    monkeypatch.setitem(sys.modules, "evaluate", types.SimpleNamespace(load=load))


def test_load_metric_hub_falls_back_with_a_note(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def unreachable(name: str):
        raise ConnectionError("hub unreachable\n(retry later)")

    _fake_evaluate(monkeypatch, unreachable)
    metric = load_metric("wer", "hub")
    assert capsys.readouterr().out == (
        "note: evaluate.load('wer') failed (ConnectionError: hub unreachable (retry later));"
        " using jiwer directly (the same definition and number)\n"
    )
    assert metric == JiwerMetric("wer")
    assert metric.compute(predictions=["the cat sit on mat"], references=["the cat sat on the mat"]) == 2 / 6


def test_load_metric_hub_uses_evaluate_when_it_loads(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    loaded = object()
    _fake_evaluate(monkeypatch, lambda name: loaded)
    assert load_metric("cer", "hub") is loaded
    assert capsys.readouterr().out == ""


def test_load_metric_rejects_unknown_names_and_modes() -> None:
    with pytest.raises(ValueError, match="'bleu'"):
        load_metric("bleu", "offline")
    with pytest.raises(ValueError, match="'cloud'"):
        load_metric("wer", "cloud")


# ---------------------------------------------------------------- compute_metrics: the guide's and the course's

VOCAB = {"<pad>": 0, "<unk>": 1, "|": 2, "D": 3, "E": 4, "H": 5, "L": 6, "O": 7, "R": 8, "W": 9}


@pytest.fixture(scope="module")
def letter_processor(tmp_path_factory: pytest.TempPathFactory):
    """The guide's kind of processor over a few capital letters: enough to spell HELLO WORLD."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    vocab_file = tmp_path_factory.mktemp("processor") / "vocab.json"
    vocab_file.write_text(json.dumps(VOCAB))
    tokenizer = Wav2Vec2CTCTokenizer(
        str(vocab_file), unk_token="<unk>", pad_token="<pad>", word_delimiter_token="|"
    )
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=True
    )
    return Wav2Vec2Processor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def _one_hot_frames(frames: list[str]) -> np.ndarray:
    """Logits whose argmax spells the given CTC frames (one token per frame)."""
    logits = np.zeros((len(frames), len(VOCAB)), dtype=np.float32)
    logits[np.arange(len(frames)), [VOCAB[token] for token in frames]] = 1.0
    return logits


def _label_ids(text: str, length: int) -> list[int]:
    ids = [VOCAB["|" if char == " " else char] for char in text]
    return ids + [-100] * (length - len(ids))


@pytest.mark.parametrize("as_tuple", [False, True])
def test_guide_compute_metrics_decodes_and_scores(letter_processor, as_tuple: bool) -> None:
    from transformers import EvalPrediction

    logits = np.stack(
        [
            # repeated frames collapse and <pad> separates the two Ls: "HELLO WORLD"
            _one_hot_frames("H H E L <pad> L O | W W O R L D <pad>".split()),
            # no <pad> between the Ls, so CTC collapses them: "HELO", 1 character short
            _one_hot_frames("H E E L L O <pad> <pad> <pad> <pad> <pad> <pad> <pad> <pad> <pad>".split()),
        ]
    )
    labels = np.array([_label_ids("HELLO WORLD", 11), _label_ids("HELLO", 11)])
    labels_before = labels.copy()
    predictions = (logits, np.zeros(3)) if as_tuple else logits

    compute_metrics = make_guide_compute_metrics(letter_processor, {"wer": JiwerMetric("wer"), "cer": JiwerMetric("cer")})
    scores = compute_metrics(EvalPrediction(predictions=predictions, label_ids=labels))

    # words: HELO vs HELLO is 1 S over 2 + 1 words; characters: 1 D over 11 + 5
    assert scores == {"wer": pytest.approx(1 / 3, abs=1e-12), "cer": pytest.approx(1 / 16, abs=1e-12)}
    np.testing.assert_array_equal(labels, labels_before)


@pytest.mark.parametrize("as_tuple", [False, True])
def test_compute_metrics_reads_each_utterance_over_its_own_frames(letter_processor, as_tuple: bool) -> None:
    """The second utterance has 6 frames; the batch is padded to 15, and the model spells WORLD
    in the padding. The guide's function counts that as an inserted word, the course's does not."""
    from transformers import EvalPrediction

    logits = np.stack(
        [
            _one_hot_frames("H H E L <pad> L O | W W O R L D <pad>".split()),
            _one_hot_frames("H E L <pad> L O | W O R L D <pad> <pad> <pad>".split()),
        ]
    )
    labels = np.array([_label_ids("HELLO WORLD", 11), _label_ids("HELLO", 11)])
    lengths = np.array([400 + 320 * 14 + 319, 400 + 320 * 5])  # 15 frames (and a part-frame), 6 frames
    assert [BASE_CONV.frames(int(n)) for n in lengths] == [15, 6]
    predictions = (logits, np.zeros(3)) if as_tuple else logits
    scorers = {"wer": JiwerMetric("wer"), "cer": JiwerMetric("cer")}

    ours = make_compute_metrics(letter_processor, BASE_CONV, scorers)(EvalPrediction(predictions=predictions, label_ids=(labels, lengths)))
    guides = make_guide_compute_metrics(letter_processor, scorers)(EvalPrediction(predictions=predictions, label_ids=labels))

    assert ours == {"wer": 0.0, "cer": 0.0}
    # WORLD inserted after HELLO: 1 I over 3 words; " WORLD", 6 I over 16 characters
    assert guides == {"wer": pytest.approx(1 / 3, abs=1e-12), "cer": pytest.approx(6 / 16, abs=1e-12)}


def test_compute_metrics_asks_for_the_lengths(letter_processor) -> None:
    from transformers import EvalPrediction

    compute_metrics = make_compute_metrics(letter_processor, BASE_CONV, {"wer": JiwerMetric("wer")})
    prediction = EvalPrediction(predictions=_one_hot_frames(["H", "O"])[None], label_ids=np.array([_label_ids("HO", 2)]))
    with pytest.raises(ValueError, match=r"\(labels, input_lengths\).*CTCTrainer"):
        compute_metrics(prediction)


def test_rates_by_group_pool_each_groups_sentences():
    """Group "a": 2 errors over its 4 reference words (0.5), not the mean of its sentence WERs ((1 + 1/3) / 2)."""
    predictions = ["A B C D", "X", "E F G H"]
    references = ["A B C D", "Y", "E F G"]
    rates = word_error_rates_by(predictions, references, ["b", "a", "a"])
    assert list(rates) == ["a", "b"]
    # characters, spaces included: X for Y, then " H" inserted: 3 edits over the 6 characters of "Y" and "E F G"
    assert rates["a"] == (pytest.approx(2 / 4), pytest.approx(3 / 6), 2)
    assert rates["b"] == (0.0, 0.0, 1)
