"""Opt-in speed work (``asr_helpers.fast``): the fast training profile trains to the guide's
losses, the replaced convolutions compute the modules' results, int8 stays close, and
``transcribe`` uses the model's own modules unless asked for ``fast=True``.

The speed itself is measured by ``benchmarks/`` on a GPU, not here. Tests of what the profile
does on a GPU are marked ``gpu``; the others run on any machine (CPU behaviour is forced where
it matters, so they test the same thing on a GPU machine).
"""

import numpy as np
import pytest
import torch
from datasets import Dataset

from asr_helpers.fast.convolutions import (
    channel_norm,
    conv1d_as_matmul,
    convolutions_replaced,
    feature_encoder_as_matmuls,
    fft_conv1d,
    fft_length,
    replace_convolutions,
)
from asr_helpers.fast.int8 import quantize_dynamic_int8
from asr_helpers.fast.training import (
    FAST_PAD_MULTIPLE,
    can_compile,
    fast_batch_size,
    fast_collator,
    fast_mechanics,
    fast_training_args,
    guide_arguments,
    make_fast,
    prepare_fast_model,
    seed_length_grouping,
)
from asr_helpers.audio import load_audio
from asr_helpers.data import CORPUS_DIR
from asr_helpers.inference import transcribe
from asr_helpers.modeling import load_model, small_config
from asr_helpers.preprocessing import COURSE_CHECKPOINT
from asr_helpers.training import build_trainer
from conftest import guide_greedy, tone


@pytest.fixture
def no_cuda(monkeypatch):
    """What the profile does on a machine without a GPU, on this machine whatever it has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


RUN = dict(max_steps=6, learning_rate=1e-3, warmup_steps=1, logging_steps=1, eval_strategy="no", eval_on_start=False,
           save_strategy="no", load_best_model_at_end=False, disable_tqdm=True, seed=7, data_seed=7, use_cpu=True)


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
    model = load_model(processor, COURSE_CHECKPOINT, seed=0, freeze_feature_encoder=True)
    # SpecAugment and the dropout before the CTC head draw random numbers per batch shape; without
    # them training is deterministic and the two profiles can be compared step by step
    model.config.mask_time_prob = 0.0
    model.dropout.p = 0.0
    return model


def _losses(trainer):
    trainer.train()
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


@pytest.mark.slow
def test_fast_profile_trains_to_the_same_losses_as_the_guide(processor, tmp_path, no_cuda):
    data = _speech_like(processor)
    guide_args = guide_arguments(tmp_path / "guide", **RUN)
    fast_args = fast_training_args(tmp_path / "fast", **RUN)
    assert (guide_args.per_device_train_batch_size, guide_args.gradient_accumulation_steps) == (8, 2)
    assert (fast_args.per_device_train_batch_size, fast_args.gradient_accumulation_steps) == (16, 1)
    assert guide_args.activation_checkpointing and not fast_args.activation_checkpointing

    # build each Trainer right before it trains: its sampler shuffles with the RNG that Trainer seeds
    guide = seed_length_grouping(build_trainer(_model(processor), guide_args, processor, data, data, "offline"))
    guide_losses = _losses(guide)
    # with the GPU's convolutions (FFT and matrix products), so that their numerics are checked too
    fast = make_fast(build_trainer(_model(processor), fast_args, processor, data, data, "offline"), fast_convolutions=True)
    assert fast.data_collator.pad_to_multiple_of == FAST_PAD_MULTIPLE
    fast_losses = _losses(fast)

    assert len(guide_losses) == len(fast_losses) == 6 and all(np.isfinite(fast_losses))
    # 8 x 2 and 16 x 1 log the same mean loss: CTCTrainer averages the accumulated micro-batches
    np.testing.assert_allclose(fast_losses, guide_losses, rtol=2e-3)
    assert fast_losses[-1] < fast_losses[0]  # and it does learn
    for (name, p_guide), p_fast in zip(guide.model.named_parameters(), fast.model.parameters()):
        torch.testing.assert_close(p_fast, p_guide, rtol=1e-3, atol=1e-4, msg=name)


def test_bigger_fast_batches_see_the_same_samples(tmp_path):
    guide = guide_arguments(tmp_path)
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


def test_fast_batch_size_follows_gpu_memory(no_cuda):
    gib = 2**30
    assert [fast_batch_size(m * gib) for m in (141, 80, 40, 24, 16, 8, 1)] == [64, 64, 32, 16, 8, 4, 4]
    assert fast_batch_size() == 16  # no GPU: the guide's effective batch


@pytest.mark.gpu
def test_fast_batch_size_on_this_gpu():
    memory = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    assert fast_batch_size() == fast_batch_size(memory) in (4, 8, 16, 32, 64)


def test_fast_args_without_a_gpu(tmp_path, no_cuda):
    args = fast_training_args(tmp_path)
    assert not args.bf16 and not args.fp16 and not args.tf32
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (16, 1)
    assert args.dataloader_num_workers == 0 and not args.dataloader_pin_memory
    assert args.optim == "adamw_torch" and not args.activation_checkpointing


@pytest.mark.gpu
def test_fast_args_on_this_gpu(tmp_path):
    args = fast_training_args(tmp_path)
    bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    assert (args.bf16, args.fp16) == (bf16, not bf16)
    assert bool(args.tf32) == (torch.cuda.get_device_capability() >= (8, 0))
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (fast_batch_size(), 1)
    assert args.optim == "adamw_torch_fused" and args.dataloader_num_workers >= 2 and args.dataloader_pin_memory
    assert args.auto_find_batch_size and not args.activation_checkpointing


def test_prepare_fast_model_without_a_gpu(processor, no_cuda):
    model = load_model(processor, COURSE_CHECKPOINT, seed=0)
    model.activation_checkpointing_enable()
    prepare_fast_model(model)
    assert model.config._attn_implementation == "sdpa"
    assert not model.is_activation_checkpointing
    assert not any(p.requires_grad for p in model.wav2vec2.feature_extractor.parameters())
    # compiled regions and replaced convolutions only on a GPU
    assert all(getattr(layer, "_compiled_call_impl", None) is None for layer in model.wav2vec2.encoder.layers)
    assert "forward" not in vars(model.wav2vec2.feature_extractor)
    assert "forward" not in vars(model.wav2vec2.encoder.pos_conv_embed.conv)


@pytest.mark.gpu
def test_prepare_fast_model_on_a_gpu(processor):
    model = load_model(processor, COURSE_CHECKPOINT, seed=0).cuda()
    try:
        prepare_fast_model(model)
        assert not torch.backends.cuda.cudnn_sdp_enabled()  # FlashAttention rather than a cuDNN plan per shape
    finally:
        torch.backends.cuda.enable_cudnn_sdp(True)
    assert "forward" in vars(model.wav2vec2.feature_extractor)
    assert "forward" in vars(model.wav2vec2.encoder.pos_conv_embed.conv)
    compiled = [getattr(layer, "_compiled_call_impl", None) is not None for layer in model.wav2vec2.encoder.layers]
    assert compiled == [can_compile()] * len(compiled)


def test_bucket_padding_changes_no_prediction(model, processor):
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
    assert texts == [guide_greedy(model, processor, [a])[0] for a in speech]


def test_int8_copy_leaves_the_model_alone_and_stays_close(model, processor):
    quantized = quantize_dynamic_int8(model)
    assert type(model.lm_head) is torch.nn.Linear and type(quantized.lm_head) is not torch.nn.Linear
    speech = [load_audio(CORPUS_DIR / "test" / f"test_000{i}.flac") for i in (0, 1)]  # speech: confident frames
    inputs = processor(audio=speech, sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.inference_mode():
        exact, approx = model(**inputs).logits, quantized(**inputs).logits
    # int8 weights and activations: logits within ~10 %, most frames keep their most likely token
    assert torch.linalg.norm(approx - exact) / torch.linalg.norm(exact) < 0.2
    assert (approx.argmax(-1) == exact.argmax(-1)).float().mean() > 0.7
    # dynamic int8 scales the activations of each batch by its range: one file at a time, the same texts as the guide's path
    assert [transcribe(quantized, processor, [a])[0].text for a in speech] == [guide_greedy(quantized, processor, [a])[0] for a in speech]


# ---------------------------------------------------------------- convolutions without cuDNN (GPU fast path)
def test_fft_length_is_the_next_5_smooth_number():
    assert [fft_length(n) for n in (1, 7, 530, 1001, 1024)] == [1, 8, 540, 1024, 1024]
    smooth = sorted(2**a * 3**b * 5**c for a in range(10) for b in range(7) for c in range(5))  # 1, 2, 3, 4, 5, 6, 8, 9, 10, 12, ...
    assert [fft_length(n) for n in range(1, 300)] == [min(m for m in smooth if m >= n) for n in range(1, 300)]


@pytest.mark.parametrize("channels,groups,kernel,length", [(768, 16, 128, 97), (64, 16, 64, 50), (6, 3, 4, 5), (8, 1, 3, 11)])
def test_fft_conv1d_equals_conv1d_with_its_gradients(channels, groups, kernel, length):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=groups)
    x = torch.randn(2, channels, length, requires_grad=True)
    direct = conv(x)
    fft = fft_conv1d(x, conv.weight, conv.bias, kernel // 2, groups)
    assert fft.shape == direct.shape and fft.dtype == x.dtype
    torch.testing.assert_close(fft, direct, rtol=1e-4, atol=1e-5)
    target = torch.randn_like(direct)
    grads = torch.autograd.grad((direct * target).sum(), (x, conv.weight, conv.bias))
    fft_grads = torch.autograd.grad((fft * target).sum(), (x, conv.weight, conv.bias))
    for got, want in zip(fft_grads, grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_conv1d_as_matmul_equals_conv1d_on_channels_last_input():
    torch.manual_seed(0)
    for kernel, stride, channels_in in [(10, 5, 1), (3, 2, 16), (2, 2, 16)]:
        conv = torch.nn.Conv1d(channels_in, 8, kernel, stride=stride, bias=True)
        x = torch.randn(3, channels_in, 101)
        out = conv1d_as_matmul(x.transpose(1, 2), conv.weight, conv.bias, stride)
        torch.testing.assert_close(out.transpose(1, 2), conv(x), rtol=1e-5, atol=1e-5)


def _wav2vec2(norm: str):
    """A tiny course-style model with wav2vec2-base's group-norm encoder or the course's layer norms."""
    from transformers import Wav2Vec2ForCTC

    torch.manual_seed(0)
    config = small_config(12, 0, hidden_size=32, num_layers=2, intermediate_size=64)
    config.feat_extract_norm, config.do_stable_layer_norm = norm, norm == "layer"
    config.mask_time_prob = config.final_dropout = 0.0  # no randomness: the two models compute alike
    return Wav2Vec2ForCTC(config)


@pytest.mark.parametrize("norm", ["group", "layer"])  # wav2vec2-base's and the course model's encoders
def test_feature_encoder_as_matmuls_equals_the_module(norm):
    encoder = _wav2vec2(norm).wav2vec2.feature_extractor
    audio = torch.randn(2, 16000 + 77)
    with torch.no_grad():
        torch.testing.assert_close(feature_encoder_as_matmuls(encoder, audio), encoder(audio), rtol=1e-4, atol=1e-5)


def test_channel_norm_needs_one_group_per_channel():
    with pytest.raises(ValueError, match="one group per channel, not 2 groups of 8 channels"):
        channel_norm(torch.randn(1, 5, 8), torch.nn.GroupNorm(2, 8))


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_replaced_convolutions_keep_the_weights_the_loss_and_the_gradients(norm):
    plain, fast = _wav2vec2(norm), _wav2vec2(norm)
    keys = list(plain.state_dict())
    replace_convolutions(fast)
    assert list(fast.state_dict()) == keys  # checkpoints saved from it load into the plain model
    audio, labels = torch.randn(2, 12000), torch.randint(1, 12, (2, 5))
    losses = []
    for model in (plain, fast):
        loss = model(audio, labels=labels).loss
        loss.backward()
        losses.append(loss.item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    # float32 rounding, measured against the largest gradient (about 50, in the CTC head)
    scale = max(p.grad.abs().max().item() for p in plain.parameters() if p.grad is not None)
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-5 * scale, msg=name)


def test_convolutions_replaced_only_inside_the_block():
    model = _wav2vec2("group")
    encoder, conv = model.wav2vec2.feature_extractor, model.wav2vec2.encoder.pos_conv_embed.conv
    with convolutions_replaced(model):
        assert "forward" in vars(encoder) and "forward" in vars(conv)
    assert "forward" not in vars(encoder) and "forward" not in vars(conv)
    replace_convolutions(model)
    replaced = vars(encoder)["forward"]
    with convolutions_replaced(model):
        pass
    assert vars(encoder)["forward"] is replaced  # what was there before comes back


def test_transcribe_uses_the_models_own_modules_unless_fast(model, processor, monkeypatch):
    """By default the model computes as it was saved; ``fast=True`` swaps the convolutions for
    the call only, and gives the same texts."""
    encoder, pos_conv = model.wav2vec2.feature_extractor, model.wav2vec2.encoder.pos_conv_embed.conv
    calls = {"encoder": 0, "conv1d": 0}
    own_encoder_forward, own_conv1d_forward = type(encoder).forward, torch.nn.Conv1d.forward

    def encoder_forward(self, *args, **kwargs):
        calls["encoder"] += 1
        return own_encoder_forward(self, *args, **kwargs)

    def conv1d_forward(self, *args, **kwargs):
        calls["conv1d"] += 1
        return own_conv1d_forward(self, *args, **kwargs)

    monkeypatch.setattr(type(encoder), "forward", encoder_forward)
    monkeypatch.setattr(torch.nn.Conv1d, "forward", conv1d_forward)
    during = []  # the two modules' instance ``forward`` each time the feature encoder runs
    hook = encoder.register_forward_pre_hook(lambda module, args: during.append(
        (vars(encoder).get("forward"), vars(pos_conv).get("forward"))))
    speech = [tone(200 + 50 * i, 0.6 + 0.4 * i, 16000) for i in range(4)]
    try:
        plain = transcribe(model, processor, speech, batch_size=2)
        assert len(during) == 2 and during == [(None, None)] * 2  # two batches, the modules untouched
        # the modules' own code ran: the encoder's forward, its 7 convolutions and the positional one
        assert calls == {"encoder": 2, "conv1d": 2 * (len(encoder.conv_layers) + 1)}

        during.clear()
        calls.update(encoder=0, conv1d=0)
        fast = transcribe(model, processor, speech, batch_size=2, fast=True)
        assert len(during) == 2 and all(forward is not None for pair in during for forward in pair)
        assert calls == {"encoder": 0, "conv1d": 0}  # FFTs and matrix products instead
    finally:
        hook.remove()
    assert fast == plain
    assert "forward" not in vars(encoder) and "forward" not in vars(pos_conv)  # the caller's model is left as it was


@pytest.mark.gpu
def test_transcribe_fast_on_a_gpu_gives_the_same_texts(processor):
    model = load_model(processor, COURSE_CHECKPOINT, seed=0).eval().cuda()
    speech = [tone(200 + 50 * i, 0.6 + 0.4 * i, 16000) for i in range(4)]
    assert transcribe(model, processor, speech, batch_size=2, fast=True) == transcribe(model, processor, speech, batch_size=2)
