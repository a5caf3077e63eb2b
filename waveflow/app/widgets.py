"""Pieces every tab of the page uses: what a tab needs to know (:class:`Page`), the shared input widgets, and
the one way a button is wired (through the shared concurrency limit, old results cleared on new input)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import gradio as gr

from .examples import ExampleSet
from .handlers import Handlers
from .inputs import AUDIO_TYPES

CONCURRENCY_ID = "vocoder"  # one limit shared by every tab: the model and the CPU/GPU are shared too
log = logging.getLogger("waveflow.demo")


@dataclass(frozen=True)
class Page:
    """What the tabs are built from: the handlers (and their voices), the example files, the server's limits."""

    handlers: Handlers
    examples: ExampleSet
    max_seconds: float
    concurrency: int = 1

    @property
    def voices(self) -> list[str]:
        return self.handlers.bank.names

    @property
    def first_clip(self) -> str | None:
        return str(self.examples.first_clip) if self.examples.first_clip else None

    def sigma(self, voice: str | None = None) -> float:
        """The sigma ``voice`` (default: the first) is vocoded at unless the user says otherwise: the model's
        recommendation, else the library's fallback, as :class:`~waveflow.inference.Vocoder` resolves it for the
        command line too."""
        return float(self.handlers.bank.get(voice).sigma)

    @property
    def limits(self) -> str:
        return (f"Clips: {', '.join(AUDIO_TYPES)}, any sample rate, mono or stereo (mixed down), at most "
                f"{self.max_seconds:g} s.")


def quiet_refusals(component):
    """``component`` (e.g. a ``gr.File`` with ``file_types``) with its refusals reaching the user as they are,
    without a traceback in the server's log: a wrong upload is the user's mistake, not the server's. Gradio
    raises them with ``print_exception=True`` while preprocessing, before any handler runs. (The instance's
    ``preprocess`` is wrapped: a subclass of a Gradio component would make Gradio write a ``.pyi`` file beside
    this module when it is imported.)"""
    preprocess = component.preprocess

    def wrapped(payload):
        try:
            return preprocess(payload)
        except gr.Error as e:
            log.info("refused upload: %s", e.message)
            raise gr.Error(e.message, title="Cannot use this input", print_exception=False) from None

    component.preprocess = wrapped
    return component


def plot(label: str) -> gr.Plot:
    # The figures carry their own titles; Gradio's label box would cover the first one.
    return gr.Plot(label=label, show_label=False, format="png")


def voice_dropdown(page: Page) -> gr.Dropdown:
    names = page.voices
    return gr.Dropdown(names, value=names[0], label="Voice (checkpoint)", interactive=len(names) > 1)


def clip_input(page: Page, **layout) -> gr.Audio:
    """The clip a tab works on, pre-filled with the first example so one click shows something."""
    return gr.Audio(value=page.first_clip, sources=["upload", "microphone"], type="filepath",
                    label="Your clip (upload or record)", **layout)


def sampling(page: Page, voice: gr.Dropdown | None = None, with_denoiser: bool = True) -> tuple:
    """``(sigma, denoiser strength or None, seed)`` inputs. Sigma starts at the first voice's recommendation
    (:meth:`Page.sigma`; also the API's default) and follows ``voice`` when another one is picked."""
    sigma = gr.Slider(0.0, 1.2, value=page.sigma(), step=0.05, label="sigma (noise level)",
                      info="Std of the latent noise; starts at the voice's own recommendation. 0 is the 'average' "
                           "voice, 1 is what the model was trained with.")
    if voice is not None and len(page.voices) > 1:
        voice.change(lambda name: page.sigma(name), voice, sigma, queue=False, show_progress="hidden",
                     api_visibility="private")
    denoise = None
    if with_denoiser:
        denoise = gr.Slider(0.0, 0.3, value=0.0, step=0.01, label="denoiser strength",
                            info="Removes the model's constant hum (NVIDIA's bias removal). 0 = off; 0.01-0.1 typical.")
    seed = gr.Number(value=0, precision=0, label="seed", info="Same seed, same audio.")
    return sigma, denoise, seed


def connect(page: Page, button: gr.Button, fn, inputs: list, outputs: list, api_name: str) -> None:
    """Run ``fn`` on a click (as API endpoint ``api_name``); a new first input clears the old results."""
    _clear_on_change(inputs[0], outputs)
    button.click(fn, inputs, outputs, api_name=api_name, concurrency_id=CONCURRENCY_ID,
                 concurrency_limit=page.concurrency)


def _clear_on_change(source, outputs: list) -> None:
    """New input, old results gone: results on screen always belong to the input beside them (also after a
    refused upload, whose error would otherwise appear next to the previous clip's results)."""
    source.change(lambda: [None] * len(outputs), None, outputs, queue=False, show_progress="hidden",
                  api_visibility="private")


def clip_examples(page: Page, target: gr.Audio, label: str) -> None:
    """The example clips (spoken offline at start-up) under a tab, if there are any."""
    clips = page.examples.clips
    if clips:
        gr.Examples([[str(path)] for _, path in clips], [target], label=label,
                    example_labels=[name for name, _ in clips], cache_examples=False)
