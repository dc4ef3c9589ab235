"""Helpers for the notebook course "Fine-tune Wav2Vec2 with CTC for speech recognition".

Modules in the order of the notebooks that teach them: ``data`` and ``audio`` (01), ``text``,
``preprocessing`` and ``checks`` (02), ``collator`` (03), ``metrics`` (04), ``modeling`` and
``training`` (05), ``inference`` (06), ``ngram`` and ``decoding`` (07), ``demo`` (08, needs gradio);
``cache`` rebuilds what earlier notebooks made, ``plots`` draws the pictures. Apart and opt-in:
``fast`` (speed work) and ``synth`` (the offline corpus generator).
"""

import warnings

# Without ipywidgets, tqdm falls back to text progress bars in notebooks, which work fine; its
# warning about that would only add noise (and a machine-specific path) to every notebook.
warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
