#!/usr/bin/env python3
"""Make an offline LJSpeech-layout speech corpus with Debian's TTS engines.

A thin wrapper around :func:`waveflow.corpus.main`; run ``python scripts/make_voice_corpus.py --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    from waveflow.corpus import main
except ImportError:
    # Not installed (no `pip install -e .`): fall back to the checkout this script lives in.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from waveflow.corpus import main

if __name__ == "__main__":
    raise SystemExit(main())
