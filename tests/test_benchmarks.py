"""The benchmark scripts' own arithmetic and variants, checked on CPU (their timings need a GPU)."""

from __future__ import annotations


import csv
import inspect
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC, pipeline
from transformers.pipelines.automatic_speech_recognition import AutomaticSpeechRecognitionPipeline

from asr_helpers.cache import prepare_splits
from asr_helpers.data import load_offline_corpus
from asr_helpers.inference import load_trained
from asr_helpers.metrics import word_error_rate
from conftest import BASE_CONV

import cpu_transcribe
import domain_shift
import end_to_end
import layer_kernels
import repeats
import train_throughput
import wer_difference


@pytest.mark.slow  # a training step of the 95 M-parameter wav2vec2-base architecture on CPU
def test_analytic_flops_match_torchs_flop_counter():
    """The MFU numerator: the analytic count equals torch's count of a real wav2vec2-base training
    step, apart from the grouped positional convolution whose backward torch over-counts."""
    check = train_throughput.check_flops_against_torch(train_throughput.base_config(False), vocab=32, seconds=1.0)
    assert check["ratio_without_positional_conv"] == pytest.approx(1.0, rel=1e-3)
    assert check["analytic"] < check["torch_flop_counter"]


def test_conv_lengths_are_the_models_frames():
    # wav2vec2-base's convolutions (Wav2Vec2Config's kernels and strides), narrow and shallow: the
    # frame count depends on those alone, and a 95 M-parameter model would take seconds to build
    config = Wav2Vec2Config(conv_dim=(8,) * 7, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    assert (config.conv_kernel, config.conv_stride) == (Wav2Vec2Config().conv_kernel, Wav2Vec2Config().conv_stride)
    model = Wav2Vec2ForCTC(config)
    for samples in (400, 16_000, 144_000, 144_321):
        expected = int(model.wav2vec2._get_feat_extract_output_lengths(torch.tensor(samples)))
        assert train_throughput.conv_lengths(config, samples)[-1] == expected


def test_fused_qkv_variant_computes_the_models_attention():
    """layer_kernels.py compares timings of the same computation: values and gradients agree."""
    config = Wav2Vec2Config(hidden_size=64, num_attention_heads=4, intermediate_size=128, num_hidden_layers=1,
                            attention_dropout=0.0, vocab_size=32)
    torch.manual_seed(0)
    model = Wav2Vec2ForCTC(config).train()
    model.set_attn_implementation("sdpa")
    attention = model.wav2vec2.encoder.layers[0].attention
    x = torch.randn(3, 21, 64, requires_grad=True)
    inputs = [x] + [getattr(attention, name).weight for name in ("q_proj", "k_proj", "v_proj")]

    expected = attention(x)[0]
    fused = layer_kernels.fused_qkv_forward(attention, x)[0]

    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    for got, want in zip(torch.autograd.grad(fused.square().sum(), inputs),
                         torch.autograd.grad(expected.square().sum(), inputs)):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel, kind", [
    ("void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<Flash_bwd_kernel_traits<64>>", "attention"),
    ("nvjet_sm90_tst_192x192_64x4_2x1_v_bz_coopB_bias_TNN", "matrix products"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "matrix products"),
    ("triton_poi_fused_gelu_native_dropout_view_6", "Triton (fused by compile)"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float>>", "other"),
])
def test_kernel_kinds(kernel, kind):
    assert layer_kernels.kernel_kind(kernel) == kind


def test_unknown_layer_variant_is_refused_by_name(capsys):
    with pytest.raises(SystemExit) as exit_info:
        layer_kernels.main(["--variants", "eager,compiled+fused"])
    assert exit_info.value.code == 2
    assert "unknown variant 'compiled+fused'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the method (repeats.py)
def test_interleaved_order_warms_every_configuration_up_then_rotates_the_timed_rounds():
    order = repeats.interleaved_order(["A", "B", "C"], 3)

    assert [(s.round, s.name, s.warmup) for s in order[:3]] == [(0, "A", True), (0, "B", True), (0, "C", True)]
    rounds = [[s.name for s in order if s.round == r] for r in (1, 2, 3)]
    assert rounds == [["A", "B", "C"], ["B", "C", "A"], ["C", "A", "B"]]
    timed = [s for s in order if not s.warmup]
    for name in "ABC":  # every configuration timed once in every place
        assert sorted(s.position for s in timed if s.name == name) == [0, 1, 2]


@pytest.mark.parametrize("names, rounds", [(["A", "A"], 3), (["A", "B"], 0), ([], 3)])
def test_interleaved_order_refuses_what_would_not_compare(names, rounds):
    with pytest.raises(ValueError):
        repeats.interleaved_order(names, rounds)


def test_warm_up_and_failed_runs_stay_out_of_the_spread(capsys):
    """A configuration is slow on its first call (the effect of issue 17): only timed runs count,
    and one that fails is recorded while the others go on."""
    calls = {"slow-first": 0}

    def slow_first():
        calls["slow-first"] += 1
        return {"rate": 1.0 if calls["slow-first"] == 1 else 10.0 + calls["slow-first"]}

    def broken():
        raise RuntimeError("out of memory")

    seen = []
    results = repeats.run_interleaved({"slow-first": slow_first, "steady": lambda: {"rate": 5.0}, "broken": broken}, 3,
                                      on_result=lambda rs: seen.append(len(rs)))

    assert seen == list(range(1, 13))
    spreads = repeats.timed_spreads(results, "rate")
    assert spreads["slow-first"] == {"median": 13.0, "min": 12.0, "max": 14.0, "n": 3}
    assert spreads["steady"]["n"] == 3 and "broken" not in spreads
    assert [r["error"] for r in results if r["name"] == "broken"] == ["RuntimeError: out of memory"] * 4
    assert repeats.run_order(results)[:4] == ["slow-first (warm-up)", "steady (warm-up)", "broken (warm-up)", "slow-first"]
    assert "broken FAILED" in capsys.readouterr().out


def test_spread_is_median_and_range_and_ratio_spans_the_worst_to_best_pairing():
    assert repeats.spread([3.0, 1.0, 10.0, 2.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
    fast, guide = {"median": 5000, "min": 4000, "max": 6000}, {"median": 500, "min": 400, "max": 800}
    assert repeats.ratio(fast, guide) == {"median": 10.0, "min": 5.0, "max": 15.0}


# ----------------------------------------------------------------------------- train_throughput.py
def test_headline_is_the_fast_profile_against_the_guide_as_written():
    spreads = {"guide": {"median": 400.0, "min": 300.0, "max": 500.0},
               "guide-frozen": {"median": 800.0, "min": 700.0, "max": 900.0},
               "fast": {"median": 4800.0, "min": 4500.0, "max": 5000.0}}
    speedups = train_throughput.headline(spreads)
    assert speedups["fast_vs_guide"]["median"] == pytest.approx(12.0)
    assert speedups["fast_vs_guide-frozen"]["median"] == pytest.approx(6.0)
    assert train_throughput.DEFAULT_RUNS.split(",") == ["guide", "guide-frozen", "fast"]


def test_each_run_starts_from_the_process_initial_backend_switches():
    """The fast profile turns cuDNN attention off and TF32 on for the whole process; a guide run
    after it must not inherit them."""
    initial = train_throughput.backend_switches()
    try:
        torch.backends.cuda.enable_cudnn_sdp(not initial["sdp.cudnn"])
        torch.backends.fp32_precision = "tf32"
        assert train_throughput.backend_switches() != initial
        train_throughput.set_backend_switches(initial)
        assert train_throughput.backend_switches() == initial
    finally:
        train_throughput.set_backend_switches(initial)


# ----------------------------------------------------------------------------- cpu_transcribe.py
def test_pipeline_baselines_batch_and_chunk_with_the_pipelines_own_stride():
    calls = cpu_transcribe.pipeline_calls(batch_size=8, chunk_length_s=20.0)
    assert calls == {"pipeline, batch_size=8": {"batch_size": 8},
                     "pipeline, chunk_length_s=20, batch_size=8": {"chunk_length_s": 20.0, "stride_length_s": 20.0 / 6,
                                                                   "batch_size": 8}}
    # the stride written out is the one the pipeline takes when none is given
    assert "stride_length_s = chunk_length_s / 6" in inspect.getsource(AutomaticSpeechRecognitionPipeline.preprocess)


def test_batched_and_chunked_pipelines_transcribe_as_the_guides_call():
    """The baselines are the same pipeline, faster or not: the same texts on real files."""
    model, processor = load_trained(cpu_transcribe.DEFAULT_MODEL, "cpu")
    pipe = pipeline("automatic-speech-recognition", model=model, tokenizer=processor.tokenizer,
                    feature_extractor=processor.feature_extractor, device="cpu")
    files, _ = cpu_transcribe.test_split(cpu_transcribe.CORPUS_DIR, 3)
    paths = cpu_transcribe.pipeline_paths(pipe, 16_000, batch_size=2, chunk_length_s=20.0)
    texts = {name: run(files) for name, run in paths.items()}
    assert len(texts) == 3
    assert all(found == texts[cpu_transcribe.GUIDE_PIPELINE] for found in texts.values())


def test_transcribe_is_compared_with_the_fastest_pipeline_configuration():
    speeds = {cpu_transcribe.GUIDE_PIPELINE: {"median": 80.0, "min": 70.0, "max": 90.0},
              "pipeline, batch_size=8": {"median": 120.0, "min": 110.0, "max": 130.0},
              "pipeline, chunk_length_s=20, batch_size=8": {"median": 100.0, "min": 90.0, "max": 125.0},
              "transcribe(fast=True), batch 8": {"median": 240.0, "min": 220.0, "max": 260.0}}
    texts = {name: ["A B", "C"] for name in speeds}
    rows = {r["name"]: r for r in cpu_transcribe.compare(speeds, texts, ["A B", "C D"])}

    assert cpu_transcribe.best_pipeline(speeds) == "pipeline, batch_size=8"
    assert rows["transcribe(fast=True), batch 8"]["vs_best_pipeline"]["median"] == pytest.approx(2.0)
    assert rows["transcribe(fast=True), batch 8"]["vs_guide_pipeline"]["median"] == pytest.approx(3.0)
    assert rows["pipeline, batch_size=8"]["equal_to_guide_pipeline"] == 2
    assert rows["pipeline, batch_size=8"]["wer"] == pytest.approx(1 / 4)  # "D" missing of 4 words


# ----------------------------------------------------------------------------- end_to_end.py
@pytest.mark.parametrize("stop, extra_pauses", [(48, 1), (1000, 1), (1200, 0)])
def test_projection_adds_the_remaining_steps_and_scheduled_evaluations(stop, extra_pauses):
    """2,000 steps, evaluation and checkpoint every 1,000. Stopped off schedule, the forced one
    stands in for one of the two the run would have; stopped on schedule, it is one of them."""
    run = dict(stop_at=stop, max_steps=2000, eval_steps=1000, process_wall_s=60.0, seconds_per_step=0.5,
               pauses=[[0, 2.0], [stop, 3.0], [stop, 7.0]])
    assert end_to_end.projected_seconds(run) == pytest.approx(60.0 + (2000 - stop) * 0.5 + extra_pauses * 10.0)


def test_timeline_times_steps_without_the_evaluations_and_stops_with_one(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 3.0, 13.0, 14.0, 15.0, 25.0])
    monkeypatch.setattr(end_to_end, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    timeline = end_to_end.Timeline(window=(1, 3), stop_at=3, device="cpu")
    state, control = SimpleNamespace(global_step=0), SimpleNamespace(should_evaluate=False, should_save=False,
                                                                     should_training_stop=False)
    timeline.on_train_begin(None, state, control)                 # clock 0
    for step, scheduled in ((1, False), (2, True), (3, False)):  # the Trainer's loop; 2 is a scheduled evaluation
        state.global_step, control.should_evaluate = step, scheduled
        timeline.on_step_end(None, state, control)                # clock 1; 2; 14
        if control.should_evaluate:                               # at 2, and at 3 because the timeline stops there
            timeline.on_evaluate(None, state, control)            # clock 3; 15
            timeline.on_save(None, state, control)                # clock 13; 25
            control.should_evaluate = control.should_save = False

    assert control.should_training_stop
    assert timeline.pauses == [(2, 1.0), (2, 10.0), (3, 1.0), (3, 10.0)]
    assert timeline.seconds_per_step() == pytest.approx((14.0 - 1.0 - 11.0) / 2)


def test_noise_corpus_goes_through_the_projects_preparation(tmp_path):
    corpus = end_to_end.write_noise_corpus(tmp_path, clips=5, mean_s=2.0)
    processor = train_throughput.letter_processor()
    raw = load_offline_corpus(corpus)
    prepared, report = prepare_splits(raw, processor, BASE_CONV)

    assert prepared.num_rows == {"train": 4, "test": 1} and not report.bad
    row = prepared["train"][0]
    assert processor.tokenizer.decode(row["labels"]) == raw["train"][0]["transcription"]
    assert 1.5 * 16_000 <= row["input_length"] <= 30 * 16_000


# ----------------------------------------------------------------------------- wer_difference.py
def test_errors_per_file_add_up_to_the_corpus_wer():
    references = ["turn left at the lights", "see you on monday", "the soup is too salty"]
    hypotheses = ["turn left at lights", "see you on a monday", "the soupis to salty"]
    errors, words = wer_difference.errors_per_file(hypotheses, references)

    assert errors.tolist() == [1, 1, 3] and words.tolist() == [5, 4, 5]
    assert errors.sum() / words.sum() == pytest.approx(word_error_rate(hypotheses, references))


def test_paired_bootstrap_of_a_model_against_itself_is_exactly_zero():
    errors, words = np.array([3, 0, 5, 1]), np.array([9, 4, 12, 8])
    assert wer_difference.paired_bootstrap(errors, errors, words, resamples=200) == {
        "difference": 0.0, "low": 0.0, "high": 0.0, "share_not_worse": 1.0}


def test_one_more_error_in_every_equal_length_file_is_certain():
    """Files of 10 words each, B one error worse in each: every resample says +0.1."""
    a = np.array([2, 0, 7, 3, 1])
    result = wer_difference.paired_bootstrap(a, a + 1, np.full(5, 10), resamples=500)
    assert result == {"difference": 0.1, "low": 0.1, "high": 0.1, "share_not_worse": 0.0}


def test_swapping_the_models_mirrors_the_interval():
    """The same resampled files for both orders (one seed): B - A is A - B reflected about zero."""
    rng = np.random.default_rng(1)
    words = rng.integers(4, 15, size=36)
    a, b = rng.binomial(words, 0.4), rng.binomial(words, 0.45)
    forward, backward = wer_difference.paired_bootstrap(a, b, words), wer_difference.paired_bootstrap(b, a, words)

    assert forward["difference"] == -backward["difference"]
    assert (forward["low"], forward["high"]) == pytest.approx((-backward["high"], -backward["low"]), abs=1e-4)
    assert forward["low"] < forward["difference"] < forward["high"]


def _corpus_folder(folder, rows):
    """A pre-training corpus folder as scripts/pretraining_corpus.py writes it: metadata.csv and FLAC files."""
    (folder / "heldout").mkdir(parents=True)
    with (folder / "metadata.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["file", "split", "transcription", "engine"])
        for i, (split, text, engine, rate) in enumerate(rows):
            name = f"heldout/row_{i}.flac"
            sf.write(folder / name, np.full(rate // 4, 0.1 * (i + 1), dtype=np.float32), rate)
            writer.writerow([name, split, text, engine])


def test_heldout_sets_split_a_corpus_folder_by_engine(tmp_path):
    folder = tmp_path / "pretrain-corpus-seed21"
    _corpus_folder(folder, [("heldout", "Grain, without drive!", "espeak-ng", 8000), ("train", "not this one", "espeak-ng", 8000),
                            ("heldout", "blame played song", "flite", 16000), ("heldout", "i love gardening", "festival", 16000)])
    sets = wer_difference.heldout_sets(folder)

    assert list(sets) == ["pretrain-corpus-seed21 espeak-ng", "pretrain-corpus-seed21 flite, festival"]
    arrays, references, groups = sets["pretrain-corpus-seed21 espeak-ng"]
    assert references == ["GRAIN WITHOUT DRIVE"] and groups == []
    assert len(arrays[0]) == 4000  # a quarter second at 8 kHz, resampled to the model's 16 kHz
    assert sets["pretrain-corpus-seed21 flite, festival"][1] == ["BLAME PLAYED SONG", "I LOVE GARDENING"]


def test_heldout_sets_name_the_folder_that_is_not_a_corpus(tmp_path):
    with pytest.raises(SystemExit, match=f"--heldout {tmp_path}: no metadata.csv"):
        wer_difference.heldout_sets(tmp_path)
    _corpus_folder(tmp_path / "c", [("train", "only training rows", "espeak-ng", 8000)])
    with pytest.raises(SystemExit, match="metadata.csv has no heldout rows"):
        wer_difference.heldout_sets(tmp_path / "c")


def test_every_base_label_keeps_its_own_fine_tuned_model():
    # two labels that share a first word once shared a --keep folder, and the second fine-tune overwrote the first
    folders = domain_shift.work_folders(["run 12c", "run 12d", "previous (3bf2d2e)", "shipped"])
    assert folders == {"run 12c": "run-12c", "run 12d": "run-12d", "previous (3bf2d2e)": "previous-3bf2d2e", "shipped": "shipped"}


def test_labels_that_would_share_a_folder_are_refused():
    with pytest.raises(SystemExit, match=r"--base labels \['run 12', 'run-12'\] would share a folder"):
        domain_shift.work_folders(["run 12", "run-12"])
