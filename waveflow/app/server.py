"""Starting and serving the demo: ``waveflow demo --checkpoint voice.pt`` (or ``python -m waveflow.app ...``).

Start-up, in order: a private temporary folder is made and every writer is pointed into it (Gradio's uploads
and results, matplotlib's cache, example clips); the voices are found and the first one is loaded (a broken
checkpoint fails here, not at the first click); example clips are spoken by the offline TTS engines; the
page is built and served through Gradio's queue, bound to 127.0.0.1 unless ``--host`` says otherwise, with
no share link unless ``--share``, and analytics off. On exit (Ctrl+C or SIGTERM) the folder is deleted.

Gradio is imported only after the environment points it into that folder (it reads its settings on import),
so this module imports without the ``demo`` extra; :func:`run` says how to install it when it is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path

from ..errors import run_command
from . import DemoUnavailable
from .args import DEFAULT_MAX_SECONDS, get_parser

log = logging.getLogger("waveflow.demo")

DEMO_MODULES = ("gradio", "matplotlib")  # the demo extra
QUEUE_SIZE = 32  # requests waiting beyond this are refused with "queue full" instead of piling up


def prepare_environment(workdir: Path) -> None:
    """Point every library that writes files into ``workdir``, and turn analytics off; before importing them.

    Gradio reads ``GRADIO_TEMP_DIR`` when it is imported (uploads, results and example copies go there);
    matplotlib writes its font cache under ``MPLCONFIGDIR``.
    """
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(workdir / "gradio" / "examples")
    os.environ.setdefault("MPLCONFIGDIR", str(workdir / "matplotlib"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    # espeak-ng connects to PulseAudio even when writing a file, and PulseAudio makes runtime folders in
    # ~/.config/pulse and $TMPDIR unless told where: the example clips must not leave those behind.
    os.environ.setdefault("PULSE_RUNTIME_PATH", str(workdir / "pulse"))
    os.environ.setdefault("PULSE_STATE_PATH", str(workdir / "pulse"))


def max_upload_bytes(max_seconds: float) -> int:
    """Uploads larger than a clip of ``max_seconds`` can be (96 kHz, 32-bit, stereo) are refused at once."""
    return int(max_seconds * 96_000 * 4 * 2) + 2_000_000


def launch(
    voices_dir: Path | None = None,
    checkpoints: list[Path] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    max_seconds: float = DEFAULT_MAX_SECONDS,
    concurrency: int = 1,
    share: bool = False,
    open_browser: bool = False,
    block: bool = True,
):
    """Build and serve the demo; with ``block`` (the default) serve until Ctrl+C/SIGTERM, then clean up.

    Returns:
        ``(app, url, workdir)`` when ``block`` is False (the caller must ``app.close()`` and remove
        ``workdir``); ``None`` after a blocking run.

    Raises:
        DemoUnavailable: Gradio or matplotlib is not installed. VoiceError: no usable voice.
        ValueError/OSError: a bad limit, or a checkpoint that cannot be loaded.
    """
    check_dependencies()
    if max_seconds <= 0:
        raise ValueError(f"--max-seconds must be positive, got {max_seconds}")
    if concurrency < 1:
        raise ValueError(f"--concurrency must be at least 1, got {concurrency}")
    workdir = Path(tempfile.mkdtemp(prefix="waveflow-demo-"))
    try:
        prepare_environment(workdir)
        app, url = _build_and_start(
            workdir, voices_dir, checkpoints, host, port, device, dtype, max_seconds, concurrency, share, open_browser
        )
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    if not block:
        return app, url, workdir
    try:
        _wait_for_stop()
    finally:
        print("stopping the demo", file=sys.stderr, flush=True)
        app.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return None


def _build_and_start(workdir, voices_dir, checkpoints, host, port, device, dtype, max_seconds, concurrency, share,
                     open_browser):
    from .examples import make_examples
    from .voices import VoiceBank, discover_voices

    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding to {host}: anyone who can reach this machine can use the demo (there is no "
              "login)", file=sys.stderr, flush=True)
    voices = discover_voices(voices_dir, checkpoints)
    bank = VoiceBank(voices, device=device, dtype=dtype)
    first = bank.get(bank.default)  # fail now, not at the first click, if the checkpoint is broken
    print(f"voices: {', '.join(bank.names)} ({device}, {dtype})", file=sys.stderr, flush=True)
    examples = make_examples(workdir / "examples", first.mel_config)

    import gradio as gr

    from .handlers import Handlers, Settings
    from .ui import build_app

    handlers = Handlers(bank, Settings(outputs=workdir / "outputs", max_seconds=max_seconds))
    app = build_app(handlers, examples, max_seconds, concurrency)
    app.queue(default_concurrency_limit=concurrency, max_size=QUEUE_SIZE)
    local_fonts = ["ui-sans-serif", "system-ui", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
    _, url, share_url = app.launch(
        server_name=host,
        server_port=port,
        share=share,
        inbrowser=open_browser,
        prevent_thread_lock=True,
        quiet=True,
        show_error=True,
        max_file_size=max_upload_bytes(max_seconds),
        allowed_paths=[str(workdir)],
        run_history=False,
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
        pwa=False,
        footer_links=["api", "settings"],
        # system fonts: the default theme would fetch web fonts, and this page makes no outside requests
        theme=gr.themes.Default(primary_hue="orange", font=local_fonts, font_mono=["ui-monospace", "monospace"]),
    )
    print(f"waveflow demo running on {url}" + (f" (public link: {share_url})" if share_url else "")
          + "  - press Ctrl+C to stop", file=sys.stderr, flush=True)
    return app, url


def _wait_for_stop() -> None:
    """Block until Ctrl+C or SIGTERM (a terminated demo still removes its temporary folder)."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


def check_dependencies() -> None:
    """Raise :class:`DemoUnavailable` naming what to install when the ``demo`` extra is missing."""
    missing = [name for name in DEMO_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise DemoUnavailable(f"the demo needs {' and '.join(missing)}: pip install \"waveflow[demo]\"")


def run(args: argparse.Namespace) -> int:
    """Serve the demo with the options of :func:`waveflow.app.args.add_arguments` until Ctrl+C/SIGTERM.

    ``args.voices`` and ``args.checkpoint`` may be absent (``waveflow quickstart`` sets only the server's
    options and passes its new voice as ``checkpoint``). Returns 0.

    Raises:
        DemoUnavailable: Gradio or matplotlib is not installed. VoiceError: no usable voice.
        ValueError/OSError: a bad option value or a checkpoint that cannot be loaded.
    """
    launch(voices_dir=getattr(args, "voices", None), checkpoints=list(getattr(args, "checkpoint", None) or []),
           host=args.host, port=args.port, device=args.device, dtype=args.dtype, max_seconds=args.max_seconds,
           concurrency=args.concurrency, share=args.share, open_browser=args.open)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m waveflow.app [options]``: the same options as ``waveflow demo``; errors to stderr, exit 1."""
    args = get_parser().parse_args(argv)
    return run_command(lambda: run(args))
