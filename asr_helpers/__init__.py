"""Helpers for the notebook course "Fine-tune Wav2Vec2 with CTC for speech recognition".

One module per notebook topic: ``data`` (01), ``preprocessing`` (02), ``collator`` (03),
``metrics`` (04), ``modeling`` and ``training`` (05), ``inference`` (06); ``synth`` makes the
offline corpus and ``plots`` draws the pictures.
"""

import warnings

# Without ipywidgets, tqdm falls back to text progress bars in notebooks, which work fine; its
# warning about that would only add noise (and a machine-specific path) to every notebook.
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
