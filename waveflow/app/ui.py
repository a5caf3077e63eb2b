"""The page: four tabs, each with its input on the left (pre-filled with an example, so one click on the
button shows something) and its results on the right. Layout only; the work is in :mod:`demo.handlers`."""

from __future__ import annotations

import gradio as gr

from .examples import ExampleSet
from .handlers import FLOW_SECONDS, FLOW_SIGMAS, MAX_COMPARE, Handlers
from .inputs import AUDIO_TYPES, MEL_SCALES, MEL_TYPES
from .metrics_view import METRIC_HEADERS

CONCURRENCY_ID = "vocoder"  # one limit shared by every tab: the model and the CPU/GPU are shared too

INTRO = """\
# waveflow — a WaveGlow vocoder you can poke at

A **vocoder** turns a *mel spectrogram* (the picture of sound a text-to-speech model predicts) into a waveform.
WaveGlow is a **normalizing flow**: an invertible network that maps audio to Gaussian noise and back, so it can
both *generate* audio from noise and *measure* how likely a recording is. Every tab below starts with an example
already loaded: **press the orange button** to run it, then try your own files.
"""


def _plot(label: str) -> gr.Plot:
    # The figures carry their own titles; Gradio's label box would cover the first one.
    return gr.Plot(label=label, show_label=False, format="png")


def _clear_on_change(source, outputs: list) -> None:
    """New input, old results gone: results on screen always belong to the input beside them (also after a
    refused upload, whose error would otherwise appear next to the previous clip's results)."""
    source.change(lambda: [None] * len(outputs), None, outputs, queue=False, show_progress="hidden",
                  api_visibility="private")


def _voice_dropdown(handlers: Handlers) -> gr.Dropdown:
    names = handlers.bank.names
    return gr.Dropdown(names, value=names[0], label="Voice (checkpoint)", interactive=len(names) > 1)


def _sampling(with_denoiser: bool = True) -> tuple:
    sigma = gr.Slider(0.0, 1.2, value=0.6, step=0.05, label="sigma (noise level)",
                      info="Std of the latent noise. 0.6 is the usual choice; 0 is the 'average' voice, 1 is what "
                           "the model was trained with.")
    denoise = None
    if with_denoiser:
        denoise = gr.Slider(0.0, 0.3, value=0.0, step=0.01, label="denoiser strength",
                            info="Removes the model's constant hum (NVIDIA's bias removal). 0 = off; 0.01-0.1 typical.")
    seed = gr.Number(value=0, precision=0, label="seed", info="Same seed, same audio.")
    return sigma, denoise, seed


def build_app(handlers: Handlers, examples: ExampleSet, max_seconds: float, concurrency: int = 1) -> gr.Blocks:
    clip_examples = [[str(p)] for _, p in examples.clips]
    clip_labels = [label for label, _ in examples.clips]
    first_clip = str(examples.first_clip) if examples.first_clip else None
    voices = handlers.bank.names
    limits = (f"Clips: {', '.join(AUDIO_TYPES)}, any sample rate, mono or stereo (mixed down), at most "
              f"{max_seconds:g} s.")

    with gr.Blocks(title="waveflow demo", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        with gr.Tabs():
            # ---------------------------------------------------------------- vocode a mel
            with gr.Tab("Vocode a mel", id="mel"):
                gr.Markdown("Upload log-mel spectrograms as a TTS model writes them (`(80, frames)` `.npy` / `.pt`, "
                            "Tacotron2 scale) and hear them. Several files are vocoded one after another.")
                with gr.Row():
                    with gr.Column(scale=2, min_width=300):
                        mel_files = gr.File(
                            value=[str(examples.first_mel)] if examples.first_mel else None,
                            file_count="multiple", file_types=list(MEL_TYPES), label="Mel file(s)",
                        )
                        mel_voice = _voice_dropdown(handlers)
                        mel_scale = gr.Dropdown(list(MEL_SCALES), value=next(iter(MEL_SCALES)), label="Mel scale",
                                                info="How the file's values were logged.")
                        mel_sigma, mel_denoise, mel_seed = _sampling()
                        mel_button = gr.Button("Vocode", variant="primary", elem_id="mel-button")
                    with gr.Column(scale=3):
                        mel_audio = gr.Audio(label="Vocoded audio (first file)", type="filepath", interactive=False, elem_id="mel-audio")
                        mel_stats = gr.Markdown()
                        mel_plot = _plot("Input mel spectrogram(s)")
                        mel_outputs = gr.File(label="All vocoded files (.wav)", file_count="multiple", interactive=False)
                mel_inputs = [mel_files, mel_voice, mel_scale, mel_sigma, mel_denoise, mel_seed]
                mel_event_outputs = [mel_audio, mel_outputs, mel_plot, mel_stats]
                _clear_on_change(mel_files, mel_event_outputs)
                mel_button.click(handlers.vocode_mel, mel_inputs, mel_event_outputs, api_name="vocode_mel",
                                 concurrency_id=CONCURRENCY_ID, concurrency_limit=concurrency)
                if examples.mels:
                    gr.Examples([[[str(p)]] for _, p in examples.mels], [mel_files], label="Example mels (click one)",
                                example_labels=[label for label, _ in examples.mels], cache_examples=False)

            # ---------------------------------------------------------------- copy synthesis
            with gr.Tab("Copy synthesis", id="copy"):
                gr.Markdown("Audio → mel → vocoder → audio. The closer the two sound, the better the vocoder. "
                            + limits)
                with gr.Row():
                    with gr.Column(scale=2, min_width=300):
                        cs_input = gr.Audio(value=first_clip, sources=["upload", "microphone"], type="filepath",
                                            label="Your clip (upload or record)", elem_id="cs-input")
                        cs_voice = _voice_dropdown(handlers)
                        cs_sigma, cs_denoise, cs_seed = _sampling()
                        cs_button = gr.Button("Resynthesise", variant="primary", elem_id="cs-button")
                    with gr.Column(scale=3):
                        cs_stats = gr.Markdown()
                        with gr.Row():
                            cs_original = gr.Audio(label="Original (mono, at the voice's rate)", type="filepath",
                                                   interactive=False)
                            cs_vocoded = gr.Audio(label="Vocoded", type="filepath", interactive=False, elem_id="cs-vocoded")
                        cs_plot = _plot("Spectrograms")
                        cs_metrics = gr.Dataframe(headers=METRIC_HEADERS, label="Copy-synthesis metrics",
                                                  interactive=False, wrap=True, column_widths=["32%", "12%", "56%"])
                cs_inputs = [cs_input, cs_voice, cs_sigma, cs_denoise, cs_seed]
                cs_outputs = [cs_original, cs_vocoded, cs_plot, cs_metrics, cs_stats]
                _clear_on_change(cs_input, cs_outputs)
                cs_button.click(handlers.copy_synthesis, cs_inputs, cs_outputs, api_name="copy_synthesis",
                                concurrency_id=CONCURRENCY_ID, concurrency_limit=concurrency)
                if clip_examples:
                    gr.Examples(clip_examples, [cs_input], label="Example clips (offline TTS voices)",
                                example_labels=clip_labels, cache_examples=False)

            # ---------------------------------------------------------------- compare voices
            with gr.Tab("Compare voices", id="compare"):
                gr.Markdown("The same clip through several voices (checkpoints) at once, with the same noise."
                            + ("" if len(voices) > 1 else " Only one voice is loaded: start the demo with "
                               "`--voices DIR` or several `--checkpoint` files to compare models."))
                with gr.Row():
                    with gr.Column(scale=2, min_width=300):
                        cmp_input = gr.Audio(value=first_clip, sources=["upload", "microphone"], type="filepath",
                                             label="Your clip (upload or record)")
                        cmp_voices = gr.CheckboxGroup(voices, value=voices[:MAX_COMPARE],
                                                      label=f"Voices (up to {MAX_COMPARE})")
                        cmp_sigma, _, cmp_seed = _sampling(with_denoiser=False)
                        cmp_button = gr.Button("Compare", variant="primary", elem_id="cmp-button")
                    with gr.Column(scale=3):
                        with gr.Row():
                            cmp_players = [
                                gr.Audio(label=f"{i + 1}. {voices[i]}" if i < len(voices) else f"voice {i + 1}",
                                         type="filepath", interactive=False, visible=i < min(len(voices), MAX_COMPARE),
                                         min_width=200)
                                for i in range(MAX_COMPARE)
                            ]
                        cmp_table = gr.Dataframe(
                            headers=["voice", "sample rate", "parameters", "real-time factor", "log-mel distance",
                                     "MCD (dB)"],
                            label="Side by side (distances to the original: lower is closer)", interactive=False,
                        )
                        cmp_plot = _plot("Spectrograms")
                cmp_inputs = [cmp_input, cmp_voices, cmp_sigma, cmp_seed]
                _clear_on_change(cmp_input, [*cmp_players, cmp_plot, cmp_table])
                cmp_button.click(handlers.compare_voices, cmp_inputs, [*cmp_players, cmp_plot, cmp_table],
                                 api_name="compare_voices", concurrency_id=CONCURRENCY_ID, concurrency_limit=concurrency)
                if clip_examples:
                    gr.Examples(clip_examples, [cmp_input], label="Example clips", example_labels=clip_labels,
                                cache_examples=False)

            # ---------------------------------------------------------------- inside the flow
            with gr.Tab("Inside the flow", id="flow"):
                gr.Markdown(
                    "Run the flow **forwards** on your clip: audio → latent `z`. Training pushes `z` towards a "
                    "standard Gaussian; the log-determinants of the steps say how much each step stretched the "
                    "audio, and together they give the exact likelihood (NLL). Then run it **backwards** from "
                    f"noise at several sigmas. (The first {FLOW_SECONDS:g} s of the clip are analysed.)"
                )
                with gr.Row():
                    fl_input = gr.Audio(value=first_clip, sources=["upload", "microphone"], type="filepath",
                                        label="Your clip (upload or record)", scale=3)
                    with gr.Column(scale=2, min_width=260):
                        fl_voice = _voice_dropdown(handlers)
                        fl_seed = gr.Number(value=0, precision=0, label="seed (for the samples)")
                        fl_button = gr.Button("Look inside", variant="primary", elem_id="flow-button")
                fl_summary = gr.Markdown(elem_id="flow-summary")
                gr.Markdown("### What the flow made of the clip")
                fl_latent = _plot("Latent z against a standard Gaussian")
                fl_steps = _plot("Log-determinant of each flow step")
                gr.Markdown("### Samples of the same mel at several sigmas")
                with gr.Row():
                    fl_samples = [gr.Audio(label=f"sigma = {s:g}", type="filepath", interactive=False, min_width=160)
                                  for s in FLOW_SIGMAS]
                fl_samples_plot = _plot("Spectrograms of the samples")
                fl_outputs = [fl_summary, fl_latent, fl_steps, *fl_samples, fl_samples_plot]
                _clear_on_change(fl_input, fl_outputs)
                fl_button.click(handlers.inside_flow, [fl_input, fl_voice, fl_seed], fl_outputs,
                                api_name="inside_flow", concurrency_id=CONCURRENCY_ID, concurrency_limit=concurrency)
                if clip_examples:
                    gr.Examples(clip_examples, [fl_input], label="Example clips", example_labels=clip_labels,
                                cache_examples=False)

        gr.Markdown(_footer(handlers, max_seconds))
    return app


def _footer(handlers: Handlers, max_seconds: float) -> str:
    bank = handlers.bank
    names = ", ".join(f"**{n}**" for n in bank.names)
    return (
        f"<small>Voices: {names} · device {bank.device}, {bank.dtype} · clips up to {max_seconds:g} s · "
        "waveflow runs locally: nothing you upload leaves this machine, and it is deleted when the demo stops."
        "</small>"
    )
