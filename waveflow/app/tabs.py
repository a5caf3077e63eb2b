"""The four tabs, one function each: input on the left (pre-filled with an example, so one click on the
button shows something), results on the right. Layout only; the work is in :mod:`.handlers`."""

from __future__ import annotations

import gradio as gr

from .handlers import FLOW_SECONDS, FLOW_SIGMAS, MAX_COMPARE
from .inputs import MEL_SCALES, MEL_TYPES
from .metrics_view import METRIC_HEADERS
from .widgets import Page, clip_examples, clip_input, connect, plot, quiet_refusals, sampling, voice_dropdown

COMPARE_HEADERS = ["voice", "sample rate", "parameters", "real-time factor", "log-mel distance", "MCD (dB)"]


# ---------------------------------------------------------------------------------------------- vocode a mel
def mel_tab(page: Page) -> None:
    """Uploaded log-mel files -> audio, a picture of the mels, and timings."""
    with gr.Tab("Vocode a mel", id="mel"):
        gr.Markdown("Upload log-mel spectrograms as a TTS model writes them (`(80, frames)` `.npy` / `.pt`, "
                    "Tacotron2 scale) and hear them. Several files are vocoded one after another.")
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                inputs, button = _mel_inputs(page)
            with gr.Column(scale=3):
                outputs = _mel_outputs()
        connect(page, button, page.handlers.vocode_mel, inputs, outputs, "vocode_mel")
        mels = page.examples.mels
        if mels:
            gr.Examples([[[str(path)]] for _, path in mels], [inputs[0]], label="Example mels (click one)",
                        example_labels=[name for name, _ in mels], cache_examples=False)


def _mel_inputs(page: Page) -> tuple[list, gr.Button]:
    first_mel = page.examples.first_mel
    files = quiet_refusals(gr.File(value=[str(first_mel)] if first_mel else None, file_count="multiple",
                                   file_types=list(MEL_TYPES), label="Mel file(s)"))
    voice = voice_dropdown(page)
    scale = gr.Dropdown(list(MEL_SCALES), value=next(iter(MEL_SCALES)), label="Mel scale",
                        info="How the file's values were logged.")
    sigma, denoise, seed = sampling(page, voice)
    button = gr.Button("Vocode", variant="primary", elem_id="mel-button")
    return [files, voice, scale, sigma, denoise, seed], button


def _mel_outputs() -> list:
    """``[first audio, all wavs, mel picture, stats]`` (the handler's order; built in the page's order)."""
    audio = gr.Audio(label="Vocoded audio (first file)", type="filepath", interactive=False, elem_id="mel-audio")
    stats = gr.Markdown()
    picture = plot("Input mel spectrogram(s)")
    wavs = gr.File(label="All vocoded files (.wav)", file_count="multiple", interactive=False)
    return [audio, wavs, picture, stats]


# ---------------------------------------------------------------------------------------------- copy synthesis
def copy_synthesis_tab(page: Page) -> None:
    """A clip -> its mel -> the vocoder: both clips, their spectrograms, and copy-synthesis metrics."""
    with gr.Tab("Copy synthesis", id="copy"):
        gr.Markdown("Audio → mel → vocoder → audio. The closer the two sound, the better the vocoder. "
                    + page.limits)
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                clip = clip_input(page, elem_id="cs-input")
                voice = voice_dropdown(page)
                sigma, denoise, seed = sampling(page, voice)
                button = gr.Button("Resynthesise", variant="primary", elem_id="cs-button")
            with gr.Column(scale=3):
                outputs = _copy_synthesis_outputs()
        connect(page, button, page.handlers.copy_synthesis, [clip, voice, sigma, denoise, seed], outputs,
                "copy_synthesis")
        clip_examples(page, clip, "Example clips (offline TTS voices)")


def _copy_synthesis_outputs() -> list:
    """``[original, vocoded, spectrograms, metrics, stats]`` (the handler's order)."""
    stats = gr.Markdown()
    with gr.Row():
        original = gr.Audio(label="Original (mono, at the voice's rate)", type="filepath", interactive=False)
        vocoded = gr.Audio(label="Vocoded", type="filepath", interactive=False, elem_id="cs-vocoded")
    spectrograms = plot("Spectrograms")
    metrics = gr.Dataframe(headers=METRIC_HEADERS, label="Copy-synthesis metrics", interactive=False, wrap=True,
                           column_widths=["32%", "12%", "56%"])
    return [original, vocoded, spectrograms, metrics, stats]


# ---------------------------------------------------------------------------------------------- compare voices
def compare_tab(page: Page) -> None:
    """The same clip through several voices, with the same noise, side by side."""
    with gr.Tab("Compare voices", id="compare"):
        gr.Markdown("The same clip through several voices (checkpoints) at once, with the same noise."
                    + ("" if len(page.voices) > 1 else " Only one voice is loaded: start the demo with "
                       "`--voices DIR` or several `--checkpoint` files to compare models."))
        with gr.Row():
            with gr.Column(scale=2, min_width=300):
                clip = clip_input(page)
                voices = gr.CheckboxGroup(page.voices, value=page.voices[:MAX_COMPARE],
                                          label=f"Voices (up to {MAX_COMPARE})")
                sigma, _, seed = sampling(page, with_denoiser=False)
                button = gr.Button("Compare", variant="primary", elem_id="cmp-button")
            with gr.Column(scale=3):
                outputs = _compare_outputs(page.voices)
        connect(page, button, page.handlers.compare_voices, [clip, voices, sigma, seed], outputs, "compare_voices")
        clip_examples(page, clip, "Example clips")


def _compare_outputs(voices: list[str]) -> list:
    """``[player 1..MAX_COMPARE, spectrograms, table]``; players beyond the loaded voices start hidden."""
    with gr.Row():
        players = [
            gr.Audio(label=f"{i + 1}. {voices[i]}" if i < len(voices) else f"voice {i + 1}", type="filepath",
                     interactive=False, visible=i < min(len(voices), MAX_COMPARE), min_width=200)
            for i in range(MAX_COMPARE)
        ]
    table = gr.Dataframe(headers=COMPARE_HEADERS, interactive=False,
                         label="Side by side (distances to the original: lower is closer)")
    spectrograms = plot("Spectrograms")
    return [*players, spectrograms, table]


# ---------------------------------------------------------------------------------------------- inside the flow
def flow_tab(page: Page) -> None:
    """The flow forwards on a clip (latent, log-determinants, NLL), then backwards at several sigmas."""
    with gr.Tab("Inside the flow", id="flow"):
        gr.Markdown(
            "Run the flow **forwards** on your clip: audio → latent `z`. Training pushes `z` towards a "
            "standard Gaussian; the log-determinants of the steps say how much each step stretched the "
            "audio, and together they give the exact likelihood (NLL). Then run it **backwards** from "
            f"noise at several sigmas. (The first {FLOW_SECONDS:g} s of the clip are analysed.)"
        )
        with gr.Row():
            clip = clip_input(page, scale=3)
            with gr.Column(scale=2, min_width=260):
                voice = voice_dropdown(page)
                seed = gr.Number(value=0, precision=0, label="seed (for the samples)")
                button = gr.Button("Look inside", variant="primary", elem_id="flow-button")
        outputs = _flow_outputs()
        connect(page, button, page.handlers.inside_flow, [clip, voice, seed], outputs, "inside_flow")
        clip_examples(page, clip, "Example clips")


def _flow_outputs() -> list:
    """``[summary, latent plot, log-det plot, sample per sigma..., samples' spectrograms]``."""
    summary = gr.Markdown(elem_id="flow-summary")
    gr.Markdown("### What the flow made of the clip")
    latent = plot("Latent z against a standard Gaussian")
    steps = plot("Log-determinant of each flow step")
    gr.Markdown("### Samples of the same mel at several sigmas")
    with gr.Row():
        samples = [gr.Audio(label=f"sigma = {s:g}", type="filepath", interactive=False, min_width=160)
                   for s in FLOW_SIGMAS]
    samples_plot = plot("Spectrograms of the samples")
    return [summary, latent, steps, *samples, samples_plot]


TABS = (mel_tab, copy_synthesis_tab, compare_tab, flow_tab)
