"""Helpers for tests that drive the demo as a user would: a demo server in a subprocess on a free localhost
port, tiny voices, and short clips. Used by tests/test_demo.py, test_browser.py and test_quickstart.py
(``from demo_server import DemoServer``: pytest puts tests/ on ``sys.path``, as for ``conftest``)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_COMMAND = [sys.executable, "-m", "waveflow", "demo"]  # or [sys.executable, "-m", "waveflow.app"]: same options


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_voice(path: Path, seed: int, name: str | None = None) -> Path:
    """A randomly initialised WaveGlow of the bundled tiny config's shape, saved as a voice."""
    from waveflow import WaveGlow, save_model
    from waveflow.train.config import load_run_config

    config = load_run_config("tiny")
    torch.manual_seed(seed)
    save_model(WaveGlow(config.model), path, config.mel, meta={"name": name} if name else None)
    return path


def speechlike(seconds: float, sample_rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A voiced, formant-shaped buzz with pauses: speech-like enough for a vocoder, made in microseconds."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = 130 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    x = sum(np.sin(k * phase) / k for k in range(1, 25)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)
    x = x * (np.sin(2 * np.pi * 2 * t) > -0.7) + 0.01 * rng.standard_normal(t.size)
    x = (0.3 * x / np.abs(x).max()).astype(np.float32)
    return np.stack([x, 0.8 * x], axis=1) if channels == 2 else x


class DemoServer:
    """``waveflow demo ARGS`` (or ``command`` + ARGS) in a subprocess; ``with DemoServer([...]) as url:`` waits
    until it answers.

    The child gets its own ``HOME`` and ``TMPDIR`` and runs in its own working folder (all under ``sandbox``)
    so a test can check that it writes nowhere else; output goes to ``sandbox/demo.log``.
    """

    def __init__(self, args: list[str], sandbox: Path, port: int | None = None, timeout: float = 180.0,
                 command: list[str] | None = None, env: dict[str, str] | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.sandbox = sandbox
        self.home, self.tmp, self.cwd = sandbox / "home", sandbox / "tmp", sandbox / "cwd"
        self.log_path = sandbox / "demo.log"
        base = command or DEMO_COMMAND
        self.command = [*base, *args, "--port", str(self.port)]
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None
        self.extra_env = dict(env or {})

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRADIO_", "MPL"))}
        # No PYTHONPATH: the installed package holds the demo by itself (a wheel install must work too).
        env.update(HOME=str(self.home), TMPDIR=str(self.tmp), PYTHONUNBUFFERED="1", **self.extra_env)
        return env

    def __enter__(self) -> str:
        for folder in (self.home, self.tmp, self.cwd):
            folder.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, env=self.environment(), stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the demo exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    if response.status == 200:
                        return self.url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"the demo did not answer on {self.url} within {self.timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: the demo closes the server and deletes its temporary folder
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if getattr(self, "_log", None):
            self._log.close()
        return self.proc.returncode if self.proc else None

    def __exit__(self, *exc) -> None:
        self.stop()
