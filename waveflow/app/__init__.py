"""waveflow's Gradio demo (``waveflow demo``). Built on :class:`waveflow.inference.Vocoder` only.

Modules: :mod:`demo.app` (start-up and serving), :mod:`demo.ui` (the page), :mod:`demo.handlers` (what the
tabs do), :mod:`demo.inputs` (checking uploads), :mod:`demo.plots` (figures), :mod:`demo.voices` (checkpoints
as voices), :mod:`demo.examples` (example clips made offline at start-up).
"""
