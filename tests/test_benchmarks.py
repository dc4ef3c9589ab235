"""The benchmark scripts' own arithmetic and variants, checked on CPU (their timings need a GPU)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "benchmarks")]

import layer_kernels  # noqa: E402
import train_throughput  # noqa: E402


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
