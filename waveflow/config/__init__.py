"""Typed dataclass configs: YAML loading, ``key=value`` overrides and validation with clear errors.

Every config in waveflow is a dataclass. :func:`from_dict` builds one from plain data (a YAML file, a
checkpoint) and refuses unknown keys and wrong types *before* anything expensive starts, naming the key.
Dataclasses validate their own invariants in ``__post_init__`` and raise :class:`ConfigError`.

Configs may come from anyone, so reading them is bounded (:func:`~.parse.parse_yaml`): a size limit, a depth
limit, aliases allowed only while the document they expand to stays small (a 600-byte "billion laughs" expands to
billions of values), integers of more digits than any setting needs named by key instead of Python's own
complaint. Every number must be finite and fit in 64 bits, and a value quoted in a message is shortened
(:func:`~.parse.short`), so no message expands a structure.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .parse import INT_LIMIT, ConfigError, HugeInteger, load_yaml, parse_yaml, short

T = TypeVar("T")

__all__ = ["ConfigError", "HugeInteger", "apply_overrides", "bundled_configs", "find_config", "from_dict",
           "load_yaml", "parse_yaml", "plain", "require", "short", "to_dict", "to_yaml"]


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (only str/int/float/bool/None/list/dict) of a config dataclass."""
    return dataclasses.asdict(config)


def plain(value: Any) -> Any:
    """Tuples to lists, recursively (YAML and JSON friendly)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def to_yaml(config: Any) -> str:
    """A config dataclass as YAML that :func:`load_yaml` reads back."""
    return yaml.safe_dump(plain(to_dict(config)), sort_keys=False)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widen to float, lists to tuples)."""
    origin = typing.get_origin(tp)
    if isinstance(value, HugeInteger):
        raise ConfigError(f"{where}: {value!r} is far too large for any setting (at most {INT_LIMIT:,})")
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        tagged = _tagged(args)
        if tagged and isinstance(value, Mapping):  # a tagged union of dataclasses: `type` picks the class
            name = value.get("type", next(iter(tagged)))
            if name not in tagged:
                raise ConfigError(f"{where}.type: expected one of {list(tagged)}, got {short(name)}")
            return from_dict(tagged[name], value, where)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {short(value)} matches none of {tp}")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: expected one of {list(choices)}, got {short(value)}")
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {short(value)}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {short(value)}")
        return from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {type(value).__name__} {short(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {short(value)}")
        if abs(value) > INT_LIMIT:
            raise ConfigError(f"{where}: {value:.3e} is far too large for any setting (at most {INT_LIMIT:,})")
        return value
    if tp is float:
        return _finite(value, where)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {short(value)}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {short(value)}")
    return value


def _tagged(args: tuple) -> dict[str, type] | None:
    """``{type name: class}`` when every member of a union is a dataclass with a ``type`` field whose default
    names it (the first member is the default), else ``None``."""
    out = {}
    for arg in args:
        field = dataclasses.is_dataclass(arg) and {f.name: f for f in dataclasses.fields(arg)}.get("type")
        if not field or not isinstance(field.default, str):
            return None
        out[field.default] = arg
    return out


def _finite(value: Any, where: str) -> float:
    """A config float: a finite number (inf and NaN would train, or vocode, to nothing and still exit 0)."""
    number = value
    if isinstance(value, str):  # YAML 1.1 reads 5e-4 (no dot) as a string: accept what float() reads
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a number, got str {short(value)}") from None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {short(value)}")
    try:
        number = float(number)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{where}: expected a finite number, got {short(value)}")
    return number


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build the dataclass ``cls`` from ``data``, refusing unknown keys and wrong types.

    Args:
        cls: a dataclass type.
        data: plain values; missing keys take the dataclass defaults.
        where: dotted prefix used in error messages (e.g. ``"model"``).

    Raises:
        ConfigError: naming the offending key, what was expected and what was given.
    """
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]!s} (known keys{' of ' + where if where else ''}: "
            f"{', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], f"{where}.{name}" if where else name)
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required key {(where + '.') if where else ''}{missing[0]}")
    return cls(**kwargs)


def apply_overrides(data: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings to a nested dict (values parsed as YAML scalars).

    ``model.n_flows=6`` sets ``data["model"]["n_flows"] = 6``; ``train.resume=auto`` a string;
    ``data.files=[a.wav, b.wav]`` a list. Unknown keys are caught later by :func:`from_dict`.
    """
    out: dict[str, Any] = _deep_copy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value, e.g. train.max_steps=1000")
        try:
            value = parse_yaml(raw) if raw.strip() else None
        except ConfigError as e:
            if "not valid YAML" not in str(e):  # too long, too deep, a bomb
                raise ConfigError(f"override {key.strip()}: {e}") from None
            value = raw  # not YAML: taken as text
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def bundled_configs() -> list[str]:
    """Names of the configs shipped in the package: WaveGlow's by their short names (``tiny``, ``small``,
    ``256``, ``starter``), the other families' by their file names (``waveflow-tiny``, ``waveflow-64``, ...)."""
    folder = importlib.resources.files("waveflow.configs")
    names = [f.name[: -len(".yaml")] for f in folder.iterdir() if f.name.endswith(".yaml")]
    return sorted(n.removeprefix("waveglow-") for n in names)


def find_config(name_or_path: str | Path) -> Path:
    """A config file by path, or a bundled config by name: ``tiny`` or ``waveglow-tiny``, ``waveflow-64``
    (package data).

    A path that exists wins over a bundled name, so a user's own ``tiny.yaml`` is never shadowed.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    name = path.name.removesuffix(".yaml")
    if len(path.parts) == 1 or path.parent.name == "configs":  # "tiny", "configs/waveglow-tiny.yaml"
        folder = importlib.resources.files("waveflow.configs")
        for candidate in (f"{name}.yaml", f"waveglow-{name}.yaml"):
            bundled = folder.joinpath(candidate)
            if bundled.is_file() and name != "__init__":
                return Path(str(bundled))
    raise ConfigError(f"{name_or_path}: config file not found (bundled configs: {', '.join(bundled_configs())}; "
                      "or give the path of a YAML file)")
