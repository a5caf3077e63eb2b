"""The page: an introduction, the four tabs of :mod:`.tabs`, and a footer saying what runs where."""

from __future__ import annotations

import gradio as gr

from .examples import ExampleSet
from .handlers import Handlers
from .tabs import TABS
from .widgets import Page

INTRO = """\
# waveflow — a WaveGlow vocoder you can poke at

A **vocoder** turns a *mel spectrogram* (the picture of sound a text-to-speech model predicts) into a waveform.
WaveGlow is a **normalizing flow**: an invertible network that maps audio to Gaussian noise and back, so it can
both *generate* audio from noise and *measure* how likely a recording is. Every tab below starts with an example
already loaded: **press the orange button** to run it, then try your own files.
"""


def build_app(handlers: Handlers, examples: ExampleSet, max_seconds: float, concurrency: int = 1) -> gr.Blocks:
    """The whole page, its buttons wired to ``handlers``; serve it with ``app.queue()`` then ``app.launch()``."""
    page = Page(handlers, examples, max_seconds, concurrency)
    with gr.Blocks(title="waveflow demo", analytics_enabled=False) as app:
        gr.Markdown(INTRO)
        with gr.Tabs():
            for tab in TABS:
                tab(page)
        gr.Markdown(footer(page))
    return app


def footer(page: Page) -> str:
    bank = page.handlers.bank
    names = ", ".join(f"**{n}**" for n in bank.names)
    return (
        f"<small>Voices: {names} · device {bank.device}, {bank.dtype} · clips up to {page.max_seconds:g} s · "
        "waveflow runs locally: nothing you upload leaves this machine, and it is deleted when the demo stops."
        "</small>"
    )
