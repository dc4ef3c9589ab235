"""The fast training profile: same losses as the guide's recipe, sane settings on every machine.

The speed itself is measured by ``benchmarks/`` on a GPU, not here: these tests run on CPU.
"""

import numpy as np
import pytest
import torch
from datasets import Dataset

from asr_helpers.inference import greedy_decode, quantize_dynamic_int8, transcribe
from asr_helpers.modeling import load_model
from asr_helpers.training import (
    FAST_PAD_MULTIPLE,
    build_fast_trainer,
    build_trainer,
    fast_batch_size,
    fast_collator,
    fast_mechanics,
    fast_training_args,
    guide_training_args,
    prepare_fast_model,
    seed_length_grouping,
)
from conftest import tone

RUN = dict(max_steps=6, learning_rate=1e-3, warmup_steps=1, logging_steps=1, eval_strategy="no",
           save_strategy="no", load_best_model_at_end=False, disable_tqdm=True, seed=7, data_seed=7)


def _speech_like(processor, n=32):
    """Tones of different lengths (0.5 to 1.4 s) with four transcripts: something CTC can learn."""
    rng = np.random.default_rng(1)
    texts = ["HI", "PAY A BILL", "FREEZE MY CARD", "CHECK MY BALANCE"]
    rows = []
    for i in range(n):
        seconds = 0.5 + 0.9 * rng.random()
        audio = tone(150 + 40 * (i % 4), seconds, 16000)
        audio = audio + 0.01 * rng.standard_normal(audio.size).astype(np.float32)
        values = processor(audio=audio, sampling_rate=16000)["input_values"][0]
        rows.append({"input_values": values, "labels": processor.tokenizer(texts[i % 4])["input_ids"],
                     "input_length": len(values)})
    return Dataset.from_list(rows)


def _model(processor):
    model = load_model(processor, "offline", seed=0, freeze_feature_encoder=True)
    # SpecAugment and the dropout before the CTC head draw random numbers per batch shape; without
    # them training is deterministic and the two profiles can be compared step by step
    model.config.mask_time_prob = 0.0
    model.dropout.p = 0.0
    return model


def _losses(trainer):
    trainer.train()
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def test_fast_profile_trains_to_the_same_losses_as_the_guide(processor, tmp_path):
    data = _speech_like(processor)
    guide_args = guide_training_args(tmp_path / "guide", **RUN)
    fast_args = fast_training_args(tmp_path / "fast", **RUN)
    assert (guide_args.per_device_train_batch_size, guide_args.gradient_accumulation_steps) == (8, 2)
    assert (fast_args.per_device_train_batch_size, fast_args.gradient_accumulation_steps) == (16, 1)
    assert guide_args.activation_checkpointing and not fast_args.activation_checkpointing

    # build each Trainer right before it trains: its sampler shuffles with the RNG that Trainer seeds
    guide = seed_length_grouping(build_trainer(_model(processor), guide_args, processor, data, data))
    guide_losses = _losses(guide)
    fast = build_fast_trainer(_model(processor), fast_args, processor, data, data)
    assert fast.data_collator.pad_to_multiple_of == FAST_PAD_MULTIPLE
    fast_losses = _losses(fast)

    assert len(guide_losses) == len(fast_losses) == 6 and all(np.isfinite(fast_losses))
    # transformers 5.x logs (and back-propagates) the *sum* of the accumulated micro-batch means for
    # Wav2Vec2ForCTC (its forward takes **kwargs, so Trainer assumes the model scaled the loss); with
    # gradient clipping and Adam the updates are the same, the logged loss is 2x
    guide_losses = np.array(guide_losses) / guide_args.gradient_accumulation_steps
    np.testing.assert_allclose(fast_losses, guide_losses, rtol=2e-3)
    assert fast_losses[-1] < fast_losses[0]  # and it does learn
    for (name, p_guide), p_fast in zip(guide.model.named_parameters(), fast.model.parameters()):
        torch.testing.assert_close(p_fast, p_guide, rtol=1e-3, atol=1e-4, msg=name)


def test_bigger_fast_batches_see_the_same_samples(tmp_path):
    guide = guide_training_args(tmp_path)
    args = fast_training_args(tmp_path, batch_size=64)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (64, 1)
    # 2000 steps of 16 = 500 steps of 64; warm-up, evaluation and checkpoints keep their place in the run
    assert (args.max_steps, args.warmup_steps, args.eval_steps, args.save_steps) == (500, 125, 250, 250)
    assert args.learning_rate == pytest.approx(guide.learning_rate * 2)  # square-root rule: sqrt(64 / 16)
    assert fast_training_args(tmp_path, batch_size=64, lr_scaling="none").learning_rate == guide.learning_rate
    assert fast_training_args(tmp_path, batch_size=64, lr_scaling="linear").learning_rate == pytest.approx(4e-5)
    # a recipe given for another effective batch is rescaled from that one
    course = fast_training_args(tmp_path, batch_size=32, per_device_train_batch_size=8,
                                gradient_accumulation_steps=1, max_steps=300, learning_rate=2e-3)
    assert (course.max_steps, course.learning_rate) == (75, pytest.approx(4e-3))
    # settings asked for explicitly win over the profile's
    assert fast_training_args(tmp_path, optim="sgd").optim == "sgd"
    with pytest.raises(ValueError, match="lr_scaling"):
        fast_training_args(tmp_path, lr_scaling="cubic")


def test_fast_mechanics_fall_back_by_hardware():
    cpu = fast_mechanics(cuda=False)
    assert not cpu["bf16"] and not cpu["fp16"] and "tf32" not in cpu
    assert cpu["optim"] == "adamw_torch" and cpu["dataloader_num_workers"] == 0 and not cpu["dataloader_pin_memory"]
    hopper = fast_mechanics(cuda=True, bf16_supported=True, capability=(9, 0), cpu_count=16)
    assert hopper["bf16"] and not hopper["fp16"] and hopper["tf32"]
    assert hopper["optim"] == "adamw_torch_fused" and hopper["dataloader_num_workers"] == 8
    assert hopper["dataloader_pin_memory"] and hopper["accelerator_config"] == {"non_blocking": True}
    turing = fast_mechanics(cuda=True, bf16_supported=False, capability=(7, 5), cpu_count=4)
    assert turing["fp16"] and not turing["bf16"] and "tf32" not in turing
    assert turing["dataloader_num_workers"] == 2
    for settings in (cpu, hopper, turing):
        assert settings["activation_checkpointing"] is False


def test_fast_batch_size_follows_gpu_memory():
    gib = 2**30
    assert [fast_batch_size(m * gib) for m in (141, 80, 40, 24, 16, 8, 1)] == [64, 64, 32, 16, 8, 4, 4]
    if not torch.cuda.is_available():
        assert fast_batch_size() == 16


def test_fast_args_on_this_machine(tmp_path):
    args = fast_training_args(tmp_path)
    if not torch.cuda.is_available():
        assert not args.bf16 and not args.fp16 and args.per_device_train_batch_size == 16
        assert args.dataloader_num_workers == 0


def test_prepare_fast_model_on_cpu(processor):
    model = load_model(processor, "offline", seed=0)
    model.activation_checkpointing_enable()
    prepare_fast_model(model)
    assert model.config._attn_implementation == "sdpa"
    assert not model.is_activation_checkpointing
    assert not any(p.requires_grad for p in model.wav2vec2.feature_extractor.parameters())
    if not torch.cuda.is_available():  # compiled regions only where torch.compile pays
        assert all(getattr(layer, "_compiled_call_impl", None) is None for layer in model.wav2vec2.encoder.layers)


def test_bucket_padding_changes_no_prediction(processor):
    model = load_model(processor, "offline", seed=0).eval()
    speech = [tone(200, 0.73, 16000), tone(300, 1.21, 16000)]
    features = [{"input_values": processor(audio=a, sampling_rate=16000)["input_values"][0], "labels": [3, 4]}
                for a in speech]
    batch = fast_collator(processor)(features)
    assert batch["input_values"].shape[1] % FAST_PAD_MULTIPLE == 0
    assert batch["labels"].shape[1] % 8 == 0
    with torch.inference_mode():
        logits = model(input_values=batch["input_values"], attention_mask=batch["attention_mask"]).logits
    frames = model._get_feat_extract_output_lengths(batch["attention_mask"].sum(-1))
    texts = [processor.decode(ids[:n]) for ids, n in zip(logits.argmax(-1), frames)]
    assert texts == [greedy_decode(model, processor, [a])[0] for a in speech]


def test_int8_copy_leaves_the_model_alone_and_stays_close(processor):
    model = load_model(processor, "offline", seed=0).eval()
    quantized = quantize_dynamic_int8(model)
    assert type(model.lm_head) is torch.nn.Linear and type(quantized.lm_head) is not torch.nn.Linear
    speech = [tone(220, 0.9, 16000), tone(330, 1.3, 16000)]
    inputs = processor(audio=speech, sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.inference_mode():
        exact, approx = model(**inputs).logits, quantized(**inputs).logits
    # int8 weights and activations: logits within ~10 %, most frames keep their most likely token
    assert torch.linalg.norm(approx - exact) / torch.linalg.norm(exact) < 0.2
    assert (approx.argmax(-1) == exact.argmax(-1)).float().mean() > 0.7
    assert len(transcribe(quantized, processor, speech)) == 2
