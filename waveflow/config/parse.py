"""Reading YAML configs in bounded memory and depth, and quoting values briefly in messages.

Configs come from anyone (a shared recipe, a run folder, a ``key=value`` on the command line), so the text is
at most :data:`MAX_YAML_BYTES`, nested at most :data:`MAX_YAML_DEPTH` levels (deeper documents overflow the
parser's recursion), and anchors and aliases are allowed while the document they expand to holds at most
:data:`MAX_YAML_NODES` values: the expanded size is counted on the node graph, once per node, before anything
is built, so a "billion laughs" is refused in microseconds. Integer literals of more than :data:`MAX_INT_DIGITS`
digits are kept as :class:`HugeInteger` so that the config check names their key.
"""

from __future__ import annotations

import reprlib
from pathlib import Path
from typing import Any

import yaml

from ..errors import WaveflowError


class ConfigError(WaveflowError, ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


MAX_YAML_BYTES = 1 << 20  # the bundled configs are about 2 KB
MAX_YAML_DEPTH = 32  # a run config nests 3 levels
MAX_YAML_NODES = 100_000  # values of the document with every alias expanded
MAX_INT_DIGITS = 40  # int64 has 19 digits
INT_LIMIT = 2**63 - 1

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 4, 60, 60


def short(value: Any) -> str:
    """``repr(value)`` shortened for a message (nested and long values elided; never expands a structure)."""
    return _SHORT.repr(value)


class HugeInteger:
    """An integer literal of more than :data:`MAX_INT_DIGITS` digits, kept unconverted so the key can be named."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return f"<an integer of {sum(c.isdigit() for c in self.text):,} digits>"


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with a depth limit and huge integers left unconverted."""

    depth = 0
    where = ""

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"{self.where}nested more than {MAX_YAML_DEPTH} levels deep (line {mark.line + 1}, "
                                  f"column {mark.column + 1}); refused")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_yaml_int(self, node):
        if sum(c.isdigit() for c in node.value) > MAX_INT_DIGITS:
            return HugeInteger(node.value)
        return super().construct_yaml_int(node)


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values in ``node`` with every alias expanded (shared nodes counted each time), computed once per node."""
    if id(node) in sizes:
        return sizes[id(node)]
    sizes[id(node)] = MAX_YAML_NODES + 1  # a node met again inside itself (a recursive alias): too big
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    else:
        size = 1
    sizes[id(node)] = size = min(size, MAX_YAML_NODES + 1)
    return size


def parse_yaml(text: str, where: str = "") -> Any:
    """YAML text -> plain values, in bounded memory and depth (see the module docstring).

    Raises:
        ConfigError: text too long, nested too deep, aliases expanding too far, or not YAML (naming ``where``).
    """
    prefix = f"{where}: " if where else ""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{prefix}{len(text):,} characters; a config is at most {MAX_YAML_BYTES:,}")
    loader = _BoundedLoader(text)
    loader.where = prefix
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise ConfigError(f"{prefix}its aliases (&anchor/*alias) expand to more than {MAX_YAML_NODES:,} values; "
                              "refused (a YAML bomb?)")
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        text = str(e)
        raise ConfigError(f"{prefix}not valid YAML: {text[:500]}{'...' if len(text) > 500 else ''}") from None
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path`` with a clear error for missing files and bad syntax."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ConfigError(f"{path}: {size:,} bytes; a config file is at most {MAX_YAML_BYTES:,}")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config file ({e})") from None
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


