"""The house: sub-packages by role, dependencies pointing one way, and a light ``import waveflow``.

Read from the code's own imports (``ast``, every import including those inside functions), so the layout in
DESIGN.md cannot drift from the code unnoticed.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "waveflow"

# Layers from the ground up: a module may import modules of lower layers, and modules of its own
# sub-package (no circles there either). The package's face (waveflow/__init__.py, __main__.py) stands on top.
LAYERS = [
    {"errors", "version", "progress"},
    {"config", "safeload"},
    {"audio", "mel"},
    {"mel_io", "metrics", "flows", "corpus"},
    {"models"},
    {"checkpoints", "kernels", "configs", "voices"},
    {"inference", "train"},
    {"jobs"},
    {"app"},
    {"cli"},
    {"__init__", "__main__"},
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the waveflow modules ``path`` imports (``from . import x`` counts as ``pkg.x``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "waveflow"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "waveflow":
                continue
            if node.module or not node.level:  # `from . import x` imports the module x, not its package's face
                found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # `from .x import y` may name a module y
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def room(module: str) -> str:
    """``waveflow.inference.vocoder`` -> ``inference``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_room_has_a_layer():
    rooms = {room(m) for m in graph()}
    assert rooms <= set(LEVEL), f"modules outside the layer table: {sorted(rooms - set(LEVEL))}"


def test_no_import_runs_back_up():
    upward = []
    for module, targets in graph().items():
        for target in targets:
            a, b = room(module), room(target)
            if a != b and LEVEL[b] >= LEVEL[a]:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the layer order (DESIGN.md):\n" + "\n".join(sorted(upward))


def test_no_import_circles():
    g = graph()
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_import_waveflow_is_light():
    code = ("import sys, waveflow; heavy = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'accelerate', 'gradio', 'matplotlib', 'tensorboard'}); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_no_source_file_is_huge():
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    big = {p: n for p, n in sizes.items() if n > 330}
    assert not big, f"split these by role (DESIGN.md: ~300 lines a file): {big}"
