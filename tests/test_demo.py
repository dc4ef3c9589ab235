"""The demo page (``asr_helpers.demo``, ``python -m asr_helpers demo``) used as a user uses it: its
API called by ``gradio_client`` on a local server, and the page itself in a real headless Chromium
(Debian's ``chromium`` driven by Playwright, no browser download), uploading a file and recording
through Chromium's fake microphone. The browser tests are marked ``browser`` and skipped, with the
reason, where no ``chromium`` is on the PATH; ``.ci/run`` installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import Wav2Vec2ForCTC

gr = pytest.importorskip("gradio", reason="the demo needs gradio: pip install 'asr_helpers[demo]'")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from asr_helpers import demo  # noqa: E402
from asr_helpers.__main__ import main  # noqa: E402
from asr_helpers.audio import load_audio  # noqa: E402
from asr_helpers.beam_search import BeamSearchDecoder  # noqa: E402
from asr_helpers.data import CORPUS_DIR  # noqa: E402
from asr_helpers.inference import load_trained, transcribe  # noqa: E402
from asr_helpers.metrics import character_error_rate  # noqa: E402
from asr_helpers.modeling import small_config  # noqa: E402
from asr_helpers.preprocessing import COURSE_CHECKPOINT  # noqa: E402

CHROMIUM = shutil.which("chromium")
SPOKEN = CORPUS_DIR / "test" / "test_0000.flac"  # "what's my account balance"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def table_rows(words) -> list[list]:
    """The page's word table as the package's words give it: times to the frame."""
    return [[w.word, round(w.start, 2), round(w.end, 2)] for w in words]


@pytest.fixture(scope="module")
def serve(tmp_path_factory) -> Iterator:
    """``serve(model_dir, lm_path)``: the demo app launched on 127.0.0.1 at a free port, and a client
    for it; every app is closed at the end. Uploads go to a temporary folder."""
    apps = []

    def start(model_dir: Path, lm_path: Path | None = None) -> Client:
        app, port = demo.build_app(model_dir, lm_path, "cpu"), free_port()
        demo.launch(app, server_port=port, prevent_thread_lock=True, quiet=True)
        apps.append(app)
        return Client(f"http://127.0.0.1:{port}/", verbose=False)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        yield start
        for app in apps:
            app.close()


@pytest.fixture(scope="module")
def client(serve, model_dir) -> Client:
    return serve(model_dir)


def test_api_gives_the_words_and_times_of_transcribe(client, model, processor):
    greedy, beam, table, figure = client.predict(handle_file(str(SPOKEN)), api_name="/transcribe")
    words = transcribe(model, processor, [load_audio(str(SPOKEN))])[0].words
    assert greedy == " ".join(w.word for w in words) == " ".join(transcribe(model, processor, [SPOKEN])[0].text.split())
    assert beam == ""  # no LM
    assert table["headers"] == ["word", "start (s)", "end (s)"] and table["data"] == table_rows(words)
    assert figure["type"] == "matplotlib" and figure["plot"].startswith("data:image/")


def test_api_with_an_lm_gives_greedy_and_beam_side_by_side(serve, model_dir, model, processor, arpa):
    greedy, beam, table, _ = serve(model_dir, arpa).predict(handle_file(str(SPOKEN)), api_name="/transcribe")
    array = load_audio(str(SPOKEN))
    beam_words = transcribe(model, processor, [array], decoder=BeamSearchDecoder.for_model(model, processor, arpa))[0].words
    assert greedy == " ".join(w.word for w in transcribe(model, processor, [array])[0].words)
    assert beam == " ".join(w.word for w in beam_words) and table["data"] == table_rows(beam_words)


def _long_silence(path: Path) -> Path:
    sf.write(path, np.zeros(601 * 1000, dtype=np.int16), 1000)  # 10 min 1 s, 1.2 MB: only the header is read
    return path


@pytest.mark.parametrize("name,make,message", [
    ("notes.txt", lambda p: p.write_text("not audio at all"), "notes.txt: not a readable audio file (Format not recognised.)"),
    ("empty.wav", lambda p: p.write_bytes(b""), "empty.wav: empty file"),
    ("click.wav", lambda p: sf.write(p, np.zeros(160, dtype=np.float32), 16_000), "click.wav: too short (10 ms; the model needs at least 25 ms)"),
    ("lecture.wav", _long_silence, "lecture.wav: too long (10.0 min; the demo takes up to 10 min, `python -m asr_helpers transcribe` any length)"),
])
def test_api_refuses_bad_input_with_one_message(client, tmp_path, name, make, message):
    make(tmp_path / name)
    with pytest.raises(AppError) as raised:
        client.predict(handle_file(str(tmp_path / name)), api_name="/transcribe")
    assert str(raised.value) == message


def test_api_without_audio_asks_for_some(client):
    with pytest.raises(AppError, match=r"^No audio: record something or upload a file first\.$"):
        client.predict(None, api_name="/transcribe")


def test_long_recording_goes_through_the_model_in_windows_with_progress(model_dir, model, processor, tmp_path):
    """45 s: four 20 s windows (``inference.chunk_spans``), each reported, and the words of the whole recording."""
    clips = [load_audio(str(path)) for path in sorted((CORPUS_DIR / "test").glob("*.flac"))[:30]]
    array = np.concatenate(clips)[: 45 * 16_000]
    assert len(array) == 45 * 16_000
    sf.write(tmp_path / "long.wav", array, 16_000, subtype="FLOAT")  # the same samples back
    reports = []
    result = demo.Transcriber.load(model_dir, None, "cpu")(tmp_path / "long.wav", lambda done, **_: reports.append(done))
    assert reports[0] == (0, 4) and reports[-1] == (4, 4) and len(reports) >= 2
    assert result.greedy == transcribe(model, processor, [array])[0].words and result.beam is None


def test_figure_of_a_long_recording_shows_its_first_minute(model_dir, tmp_path):
    sf.write(tmp_path / "long.wav", np.zeros(90 * 8_000, dtype=np.float32), 8_000)
    _, _, _, figure = demo.respond(demo.Transcriber.load(model_dir, None, "cpu"), str(tmp_path / "long.wav"))
    wave = figure.axes[0]
    assert wave.get_title() == "the first 60 s of 90 s" and wave.lines[0].get_xdata()[-1] == pytest.approx(60, abs=1e-3)


def test_page_says_what_the_model_heard(model_dir, tmp_path):
    shipped, card = demo.describe_model(COURSE_CHECKPOINT, load_trained(COURSE_CHECKPOINT, "cpu")[0])
    assert shipped.startswith("Its model card: *course-base: a small Wav2Vec2 CTC model") and card == COURSE_CHECKPOINT / "README.md"
    fine_tuned, card = demo.describe_model(model_dir, load_trained(model_dir, "cpu")[0])  # what `train` saves: no card
    assert card == COURSE_CHECKPOINT / "README.md"
    for text in (shipped, fine_tuned):
        assert "**synthetic voices**" in text and "**telephone band**" in text and "**real voices, yours included, will mostly fail**" in text
    other, card = demo.describe_model(tmp_path, Wav2Vec2ForCTC(small_config(30, 0)))
    assert card is None and "not recorded" in other


def test_cli_demo_says_what_is_wrong_in_one_line(tmp_path, capsys):
    assert main(["demo", "--model", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'nothing'}: no trained model here (run `python -m asr_helpers train` first)\n"
    assert main(["demo", "--model", str(COURSE_CHECKPOINT), "--lm", str(tmp_path / "lm.arpa")]) == 2
    assert capsys.readouterr().err.endswith(f"error: {tmp_path / 'lm.arpa'}: no language model here "
                                            f"(make one with `python -m asr_helpers lm --out {tmp_path / 'lm.arpa'}`)\n")


def test_latency_benchmark_times_each_path_after_a_warm_up(model_dir, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    import demo_latency

    threads = torch.get_num_threads()
    try:
        assert demo_latency.main(["--model", str(model_dir), "--seconds", "2", "--repeats", "2", "--no-http", "--out", str(tmp_path)]) == 0
    finally:
        torch.set_num_threads(threads)  # the benchmark sets 2 for its process
    summary = json.loads(next(tmp_path.glob("demo_latency-*.json")).read_text())
    assert summary["clip_seconds"] == 2 and summary["threads"] == 2
    assert [run["warmup"] for run in summary["runs"]] == [True, True, False, False, False, False]
    assert summary["method"]["runs_in_order"][2:] == ["respond (the page's function)", "transcriber only (no table, no figure)",
                                                       "transcriber only (no table, no figure)", "respond (the page's function)"]
    assert {name: spread["n"] for name, spread in summary["results"].items()} == {
        "respond (the page's function)": 2, "transcriber only (no table, no figure)": 2}


# --- in a real browser, against `python -m asr_helpers demo` ---------------------------------------


@pytest.fixture(scope="module")
def page_url(tmp_path_factory) -> Iterator[str]:
    """``python -m asr_helpers demo`` serving the shipped course-base (a real model: it spells speech) on a free port."""
    port, temp = free_port(), tmp_path_factory.mktemp("gradio-cli")
    log = (temp / "demo.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "asr_helpers", "demo", "--model", str(COURSE_CHECKPOINT),
                               "--port", str(port), "--device", "cpu"], env={**os.environ, "GRADIO_TEMP_DIR": str(temp)},
                              stdout=log, stderr=subprocess.STDOUT)
    url, deadline = f"http://127.0.0.1:{port}/", time.monotonic() + 120
    try:
        while True:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the demo command did not serve {url}: {(temp / 'demo.log').read_text()[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """Headless Chromium whose microphone plays a WAV file: course test 0000 between short silences."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (in requirements.txt)")
    spoken = load_audio(str(SPOKEN))
    wav = tmp_path_factory.mktemp("microphone") / "spoken.wav"
    sf.write(wav, np.concatenate([np.zeros(8_000, np.float32), spoken, np.zeros(24_000, np.float32)]), 16_000)
    with sync_api.sync_playwright() as playwright:
        browser_ = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={wav}%noloop"])
        yield browser_
        browser_.close()


@pytest.fixture(scope="module")
def course_base_words() -> list[list]:
    model, processor = load_trained(COURSE_CHECKPOINT, "cpu")
    return table_rows(transcribe(model, processor, [load_audio(str(SPOKEN))])[0].words)


def open_page(chromium, url: str):
    """A new tab on the demo, every request it makes recorded."""
    page = chromium.new_page()
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto(url)
    page.wait_for_selector("#transcribe")
    return page


def audio_uploaded(page) -> None:
    """Wait until the audio box holds a file on the server (it offers it for download): a click before that sends no audio."""
    page.get_by_label("Download").wait_for(timeout=60_000)


def transcript_shown(page, timeout_ms: int = 60_000) -> str:
    page.wait_for_function("document.querySelector('#greedy textarea').value.length > 0", timeout=timeout_ms)
    return page.locator("#greedy textarea").input_value()


def in_browser(test):
    """Marked ``browser`` and ``slow`` (the page is served by the command line, in a subprocess); skipped without chromium."""
    for mark in (pytest.mark.browser, pytest.mark.slow,
                 pytest.mark.skipif(CHROMIUM is None, reason="no chromium on the PATH (Debian: apt-get install chromium; .ci/run installs it)")):
        test = mark(test)
    return test


@in_browser
def test_browser_upload_shows_transcript_and_word_times(chromium, page_url, course_base_words):
    page = open_page(chromium, page_url)
    assert "real voices, yours included, will mostly fail" in page.inner_text("body")
    page.locator("input[type=file]").first.set_input_files(str(SPOKEN))
    audio_uploaded(page)
    page.click("#transcribe")
    assert transcript_shown(page) == " ".join(row[0] for row in course_base_words)
    cell = '#words [data-testid="cell-{}-{}"]'.format  # row, column, as gradio's table marks its cells
    page.wait_for_selector(cell(len(course_base_words) - 1, 2))
    shown = [[page.inner_text(cell(row, column)).strip() for column in range(3)] for row in range(len(course_base_words))]
    assert shown == [[w, f"{s:g}", f"{e:g}"] for w, s, e in course_base_words]
    assert page.locator(cell(len(course_base_words), 0)).count() == 0
    assert page.locator("#figure img").count() == 1
    outside = [url for url in page.requests if urlsplit(url).scheme not in ("blob", "data") and urlsplit(url).hostname != "127.0.0.1"]
    assert outside == [] and len(page.requests) > 10, "the page must load and work offline"


@in_browser
def test_browser_microphone_recording_is_transcribed(chromium, page_url, course_base_words):
    """Chromium's fake microphone plays the WAV once (silence around it); the page records it through the
    browser's capture (with its gain control), at 44.1 kHz, peak-normalised, and transcribes it nearly as it
    transcribes the file itself: "WALK MIECOUNT BALIN" against "WHAT'S MY ACCOUNT BALINC" (CER 0.375; the
    espeak-ng-only course-base of 379b9f6 got 0.19). Silence would be 1.0."""
    page = open_page(chromium, page_url)
    page.get_by_label("Record audio").click()
    page.locator("button.record-button").click()
    page.wait_for_timeout(4_000)  # the WAV lasts 3.4 s
    page.locator("button.stop-button").click()
    audio_uploaded(page)
    page.click("#transcribe")
    heard, spoken = transcript_shown(page), " ".join(row[0] for row in course_base_words)
    assert character_error_rate([heard], [spoken]) < 0.5, (heard, spoken)


@in_browser
def test_browser_bad_input_gets_one_message_on_the_page(chromium, page_url, tmp_path):
    sf.write(tmp_path / "click.wav", np.zeros(160, dtype=np.float32), 16_000)
    page = open_page(chromium, page_url)
    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "click.wav"))
    audio_uploaded(page)
    page.click("#transcribe")
    toast = page.get_by_text("click.wav: too short (10 ms; the model needs at least 25 ms)")
    toast.wait_for(timeout=60_000)
    assert "Traceback" not in page.inner_text("body")
