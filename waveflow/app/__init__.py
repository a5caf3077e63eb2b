"""waveflow's Gradio demo (``waveflow demo``, or ``python -m waveflow.app``), the ``demo`` extra.

Built on :class:`waveflow.inference.Vocoder` only. Importing this package imports neither Gradio nor
matplotlib: :mod:`.args` (the options) is usable without the extra, and :func:`.server.run` says how to
install it when it is missing.

Modules: :mod:`.args` (options), :mod:`.server` (start-up and serving), :mod:`.ui` (the page, one function
per tab), :mod:`.handlers` (what the tabs do), :mod:`.inputs` (checking uploads), :mod:`.plots` (figures),
:mod:`.voices` (checkpoints as voices), :mod:`.examples` (example clips made offline at start-up),
:mod:`.metrics_view` (copy-synthesis scores as a table).
"""

from __future__ import annotations

from ..errors import WaveflowError

__all__ = ["DemoUnavailable"]


class DemoUnavailable(WaveflowError):
    """The demo cannot start: its dependencies are missing (the message says what to install)."""
