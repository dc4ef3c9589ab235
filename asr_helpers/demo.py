"""A web page to talk to a trained model (notebook 08, ``python -m asr_helpers demo``): record or
upload audio, and read the transcript, its words with their times, and where they lie in the recording.

It needs gradio, an optional extra (``pip install 'asr_helpers[demo]'``; Colab has it). The page
loads with no internet: no analytics, and the theme names system fonts, so the browser fetches
nothing from outside. The transcription is the package's one route,
:func:`asr_helpers.inference.transcribe`, reached through one function, :func:`decode`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import soundfile as sf
import torch
from transformers import Wav2Vec2ForCTC, Wav2Vec2Processor

from asr_helpers.audio import AudioDecodeError, load_audio
from asr_helpers.beam_search import BeamSearchDecoder
from asr_helpers.checks import ConvGeometry
from asr_helpers.data import CORPUS_DIR, UNSEEN_DIR
from asr_helpers.decoding import Word
from asr_helpers.inference import CHUNK_LENGTH_S, load_trained, transcribe, windows
from asr_helpers.plots import plot_words
from asr_helpers.preprocessing import COURSE_BASE_VOICES, COURSE_CHECKPOINT

MAX_SECONDS = 600.0
"""Longer recordings are refused: past ten minutes a demo is the wrong tool (``transcribe`` takes any length)."""

EXAMPLES = [CORPUS_DIR / "test" / f"test_{n:04d}.flac" for n in (0, 1, 2)] + [
    UNSEEN_DIR / name for name in ("flac-16k/flac-16k_07.flac", "phone-wav-8k/phone-wav-8k_00.wav", "mp3-24k/mp3-24k_03.mp3")
]
"""Three test files of the course corpus (new voices, familiar sentences) and three of the unseen set (new sentences, formats and rates)."""

THEME = gr.themes.Default(font=["ui-sans-serif", "system-ui", "Segoe UI", "Roboto", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Consolas", "monospace"])
"""Fonts the browser already has: a web font would be a request to the outside, and an offline page can hang on it."""

FIGURE_SECONDS = 60.0
"""The figure shows at most the first minute: longer, its words would not be readable, and drawing them would take seconds."""

COURSE_BASE_LIMITS = (
    "Like every course-base model (the offline course's architecture, 3.5 M parameters), it has only heard "
    f"**synthetic voices** ({COURSE_BASE_VOICES}), and "
    "the course fine-tunes it on bank requests in the **telephone band** "
    "(8 kHz). It transcribes speech like the examples below; **real voices, yours included, will mostly fail**."
)


@dataclass(frozen=True)
class Transcript:
    """What the page shows for one recording: greedy words, beam + LM words (``None`` without an LM), the 16 kHz audio."""

    greedy: list[Word]
    beam: list[Word] | None
    audio: np.ndarray


def decode(model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor, array: np.ndarray,
           decoder: BeamSearchDecoder | None) -> tuple[list[Word], list[Word] | None]:
    """The demo's one call into the package's transcription (:func:`~asr_helpers.inference.transcribe`):
    greedy timed words and, with a decoder, the beam search's (a second pass over the model), as
    ``python -m asr_helpers transcribe --timestamps`` gives them; long recordings go through the
    model in overlapping windows."""
    searches = [None] if decoder is None else [None, decoder]
    results = [transcribe(model, processor, [array], decoder=search)[0] for search in searches]
    for result in results:
        if isinstance(result, AudioDecodeError):
            raise result
    return results[0].words, results[1].words if decoder is not None else None


class Transcriber:
    """A loaded model (and LM) turned into the page's function: a file in, a :class:`Transcript` out."""

    def __init__(self, model_dir: Path, model: Wav2Vec2ForCTC, processor: Wav2Vec2Processor, decoder: BeamSearchDecoder | None = None):
        self.model_dir, self.model, self.processor, self.decoder = model_dir, model, processor, decoder

    @classmethod
    def load(cls, model_dir: str | Path, lm_path: str | Path | None, device: str | torch.device) -> Transcriber:
        """A model saved by ``train`` on ``device`` (decided by the caller) and, with ``lm_path`` (an ARPA file), the beam search with that LM."""
        if lm_path is not None and not Path(lm_path).is_file():
            raise FileNotFoundError(f"{lm_path}: no language model here (make one with `python -m asr_helpers lm --out {lm_path}`)")
        model, processor = load_trained(model_dir, device)
        decoder = BeamSearchDecoder.for_model(model, processor, lm_path) if lm_path is not None else None
        return cls(Path(model_dir), model, processor, decoder)

    def __call__(self, path: str | Path, progress: Callable[..., None] | None = None) -> Transcript:
        """Transcribe one file; bad audio raises :class:`AudioDecodeError` naming the file by its name and the problem."""
        array = self.read(path)
        with self._windows_counted(len(array), progress) if progress is not None else nullcontext():
            greedy, beam = decode(self.model, self.processor, array, self.decoder)
        return Transcript(greedy, beam, array)

    def read(self, path: str | Path) -> np.ndarray:
        """The file at the model's rate, or an error in the user's terms (the file's name, not a server's temporary path)."""
        name = Path(path).name
        try:
            seconds = sf.info(str(path)).duration
        except (sf.LibsndfileError, RuntimeError):
            seconds = 0.0  # not audio, empty, missing: load_audio says which
        if seconds > MAX_SECONDS:
            raise AudioDecodeError(f"{name}: too long ({seconds / 60:.1f} min; the demo takes up to {MAX_SECONDS / 60:.0f} min, "
                                   "`python -m asr_helpers transcribe` any length)")
        try:
            return load_audio(str(path), self.processor.feature_extractor.sampling_rate,
                              min_samples=ConvGeometry.of(self.model.config).min_samples)
        except AudioDecodeError as error:
            raise AudioDecodeError(str(error).replace(str(path), name)) from None

    @contextmanager
    def _windows_counted(self, samples: int, progress: Callable[..., None]) -> Iterator[None]:
        """Report each window the model has run on, out of the windows ``frame_logits`` cuts the recording into."""
        rate = self.processor.feature_extractor.sampling_rate
        passes = 1 if self.decoder is None else 2  # greedy, then the beam search: two passes over the model
        total, done = passes * len(windows(samples, self.model, self.processor)), 0
        desc = f"{samples / rate:.0f} s of audio in {CHUNK_LENGTH_S:g} s windows"

        def count(_module: torch.nn.Module, _args: tuple, output) -> None:
            nonlocal done
            done += len(output.logits)  # a batch of windows
            progress((done, total), desc=desc, unit="windows")

        progress((0, total), desc=desc, unit="windows")
        handle = self.model.register_forward_hook(count)
        try:
            yield
        finally:
            handle.remove()


def word_table(words: Sequence[Word]) -> pd.DataFrame:
    """One row per word with its start and end in seconds, to the frame (20 ms)."""
    return pd.DataFrame({"word": [w.word for w in words], "start (s)": [round(w.start, 2) for w in words],
                         "end (s)": [round(w.end, 2) for w in words]})


def describe_model(model_dir: Path, model: Wav2Vec2ForCTC) -> tuple[str, Path | None]:
    """What the page says the model was trained on, and its model card: the folder's ``README.md``,
    else, for a model of course-base's architecture (what ``train`` saves offline), course-base's card."""
    base = json.loads((COURSE_CHECKPOINT / "config.json").read_text())
    course_base = all(getattr(model.config, key) == base[key] for key in ("hidden_size", "num_hidden_layers", "conv_dim"))
    limits = f" {COURSE_BASE_LIMITS}" if course_base else ""
    card = model_dir / "README.md"
    if card.is_file():
        title = next((line[2:] for line in card.read_text().splitlines() if line.startswith("# ")), model_dir.name)
        return f"Its model card: *{title}*.{limits}", card
    if course_base:
        return f"It is course-base fine-tuned by the course (this folder has no card of its own).{limits}", COURSE_CHECKPOINT / "README.md"
    return "This folder has no model card (`README.md`): what the model was trained on is not recorded here.", None


def respond(transcriber: Transcriber, path: str | None, progress: Callable[..., None] | None = None) -> tuple:
    """What the page's button does: the greedy text, the beam + LM text (empty without an LM), the word
    table and the figure. Bad input becomes one :class:`gr.Error`, a message on the page, never a traceback."""
    if not path:
        raise gr.Error("No audio: record something or upload a file first.", print_exception=False)
    try:
        result = transcriber(path, progress)
    except AudioDecodeError as error:
        raise gr.Error(str(error), print_exception=False) from None
    shown = result.beam if result.beam is not None else result.greedy
    fig = _figure(result.audio, transcriber.processor.feature_extractor.sampling_rate, shown)
    return " ".join(w.word for w in result.greedy), " ".join(w.word for w in result.beam or []), word_table(shown), fig


def _figure(audio: np.ndarray, rate: int, words: Sequence[Word]):
    """The recording with its words marked, up to :data:`FIGURE_SECONDS` (the title says when it is cut)."""
    seconds = len(audio) / rate
    title = f"the first {FIGURE_SECONDS:g} s of {seconds:.0f} s" if seconds > FIGURE_SECONDS else ""
    fig = plot_words(audio[: int(FIGURE_SECONDS * rate)], rate, [w for w in words if w.start < FIGURE_SECONDS], title)
    plt.close(fig)  # gradio draws it once; pyplot must not keep every request's figure
    return fig


def build_page(transcriber: Transcriber) -> gr.Blocks:
    """The page around ``transcriber``: audio in, transcripts, a word table and a figure out, examples below,
    the model card folded at the bottom. Its one event is the API endpoint ``/transcribe``."""
    model_dir = transcriber.model_dir
    about, card = describe_model(model_dir, transcriber.model)
    gr.set_static_paths([str(CORPUS_DIR), str(UNSEEN_DIR)])  # the examples, wherever the package is installed
    lm = transcriber.decoder is not None
    with gr.Blocks(title="Wav2Vec2 CTC demo", analytics_enabled=False) as page:
        gr.Markdown(f"## Speech recognition with a fine-tuned Wav2Vec2\n**Model:** `{model_dir}` on "
                    f"{transcriber.model.device}, greedy decoding{' and beam search with an n-gram LM' if lm else ''}. "
                    f"{about}" + (f" Model card: `{card}` (below)." if card else ""))
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Record or upload (any format, any rate, up to 10 min)")
        button = gr.Button("Transcribe", variant="primary", elem_id="transcribe")
        with gr.Row():
            greedy = gr.Textbox(label="Greedy", elem_id="greedy")
            beam = gr.Textbox(label="Beam search + LM", elem_id="beam", visible=lm)
        table = gr.Dataframe(label=f"Words ({'beam search + LM' if lm else 'greedy'}) and their times", elem_id="words",
                             headers=["word", "start (s)", "end (s)"], interactive=False)
        figure = gr.Plot(label="The recording, the words marked", elem_id="figure")
        gr.Examples([[str(path)] for path in EXAMPLES], inputs=audio, example_labels=[p.name for p in EXAMPLES])
        if card:
            with gr.Accordion(f"Model card ({card})", open=False):
                gr.Markdown(card.read_text())

        def on_click(path: str | None, progress: gr.Progress = gr.Progress()) -> tuple:
            return respond(transcriber, path, progress)

        button.click(on_click, inputs=audio, outputs=[greedy, beam, table, figure], api_name="transcribe")
    return page


def build_app(model_dir: str | Path, lm_path: str | Path | None, device: str | torch.device) -> gr.Blocks:
    """The demo page for the model in ``model_dir`` (and the LM in ``lm_path``), on ``device``; serve it with :func:`launch`."""
    return build_page(Transcriber.load(model_dir, lm_path, device))


def launch(app: gr.Blocks, **options) -> None:
    """``app.launch`` on this machine only (127.0.0.1, no share link), with the offline theme; ``options`` go to gradio."""
    app.launch(**{"server_name": "127.0.0.1", "share": False, "theme": THEME, **options})
