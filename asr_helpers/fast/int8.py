"""int8 inference on CPU: an option measured by ``benchmarks/cpu_transcribe.py``, not the default."""

from __future__ import annotations

import copy
import warnings

import torch
from transformers import Wav2Vec2ForCTC


def quantize_dynamic_int8(model: Wav2Vec2ForCTC) -> Wav2Vec2ForCTC:
    """A copy of ``model`` for CPU inference whose linear layers compute in int8: an option, not the default.

    Dynamic quantization stores each ``nn.Linear`` weight as int8 (one scale per output channel)
    and quantizes activations on the fly; convolutions and layer norms stay float32. It makes the
    Transformer's matrix products faster on CPU and may change a few characters of the output
    (``benchmarks/cpu_transcribe.py`` measures both). Uses ``torch.ao.quantization``, which PyTorch
    has deprecated in favour of torchao but still ships; its deprecation warnings are silenced here.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            return quantize_dynamic(
                copy.deepcopy(model).eval().cpu(), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
            )
    except ImportError as error:  # a future PyTorch without torch.ao.quantization
        raise RuntimeError(f"int8 quantization needs torch.ao.quantization, missing in torch {torch.__version__}") from error
