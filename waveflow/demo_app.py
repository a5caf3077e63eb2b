"""Bridge from the ``waveflow demo`` command to the Gradio app in the source tree's ``demo/`` folder.

The demo is not part of the installed library (it sits above everything in the dependency graph and needs
the ``demo`` extra), so ``waveflow demo`` finds it beside the package: in a source checkout, with or without
``pip install -e .``, ``demo/`` is the sibling of ``waveflow/``. The repository root is put first on
``sys.path`` only for this command, and the imported ``demo`` package is checked to be that folder, so an
unrelated package named ``demo`` can never be run by mistake. A wheel install has no ``demo/`` folder; the
error says how to get one.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SOURCE_ROOT = Path(__file__).resolve().parents[1]


class DemoUnavailable(RuntimeError):
    """The demo cannot start: its code or its dependencies are missing (the message says how to fix it)."""


def load_demo_app() -> ModuleType:
    """Import ``demo.app`` from the source tree this ``waveflow`` package belongs to."""
    missing = [name for name in ("gradio", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise DemoUnavailable(
            f"the demo needs {' and '.join(missing)}: pip install -e '.[demo]' (from the waveflow checkout)"
        )
    app_file = SOURCE_ROOT / "demo" / "app.py"
    if not app_file.is_file():
        raise DemoUnavailable(
            f"the demo's code is not installed with the package (no {app_file}); run it from a source "
            "checkout: git clone the waveflow repository, then pip install -e '.[demo]'"
        )
    if str(SOURCE_ROOT) not in sys.path:
        sys.path.insert(0, str(SOURCE_ROOT))
    module = importlib.import_module("demo.app")
    if Path(module.__file__).resolve() != app_file:
        raise DemoUnavailable(f"another package named 'demo' shadows waveflow's ({module.__file__}); uninstall it")
    return module
