"""Validation of decoded MessagePack values against dataclass annotations.

Each message class is turned, once, into a list of per-field converters built
from its type hints. A converter takes the raw decoded value and returns the
typed value, or raises InvalidMessage naming the path of what was wrong. This
is the one boundary check: after it, daemons trust the types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

from .errors import InvalidMessage

Converter = Callable[[Any, str], Any]


def _fail(path: str, expected: str, value: Any) -> typing.NoReturn:
    raise InvalidMessage(f"{path}: expected {expected}, got {type(value).__name__}")


def _scalar(kind: type, name: str) -> Converter:
    def convert(value: Any, path: str) -> Any:
        # bool is an int subclass; a bool is never accepted where a number is meant.
        if type(value) is not kind:
            if kind is float and type(value) is int:
                return float(value)
            _fail(path, name, value)
        return value

    return convert


def _none(value: Any, path: str) -> None:
    if value is not None:
        _fail(path, "nil", value)


def _list(item: Converter) -> Converter:
    def convert(value: Any, path: str) -> list[Any]:
        if type(value) is not list:
            _fail(path, "array", value)
        return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]

    return convert


def _dict(item: Converter) -> Converter:
    def convert(value: Any, path: str) -> dict[str, Any]:
        if type(value) is not dict:
            _fail(path, "map", value)
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                _fail(f"{path} key", "str", k)
            out[k] = item(v, f"{path}.{k}")
        return out

    return convert


def _union(options: list[Converter], names: str) -> Converter:
    def convert(value: Any, path: str) -> Any:
        deeper: InvalidMessage | None = None
        for option in options:
            try:
                return option(value, path)
            except InvalidMessage as exc:
                # An option that matched the outer shape but failed inside names the real fault.
                if deeper is None and not str(exc).startswith(f"{path}: expected"):
                    deeper = exc
        if deeper is not None:
            raise deeper
        _fail(path, names, value)

    return convert


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def converter_for(hint: Any) -> Converter:
    """Build the converter for one type hint."""
    if hint is type(None) or hint is None:
        return _none
    if hint in (int, float, str, bool, bytes):
        return _scalar(hint, hint.__name__)
    if hint is Any:
        return lambda value, path: value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return _union([converter_for(a) for a in args], " or ".join(_describe(a) for a in args))
    if origin is list:
        return _list(converter_for(args[0]))
    if origin is dict:
        return _dict(converter_for(args[1]))
    if dataclasses.is_dataclass(hint):
        return record_converter(hint)
    raise TypeError(f"no converter for {hint!r}")


_RECORDS: dict[type, Converter] = {}


def record_converter(cls: type) -> Converter:
    """Converter for a dataclass carried as a map of its field names."""
    if cls in _RECORDS:
        return _RECORDS[cls]
    fields: list[tuple[str, Converter, bool]] = []

    def convert(value: Any, path: str) -> Any:
        if type(value) is not dict:
            _fail(path, f"map ({cls.__name__})", value)
        kwargs = {}
        for name, field_converter, required in fields:
            if name in value:
                kwargs[name] = field_converter(value[name], f"{path}.{name}")
            elif required:
                raise InvalidMessage(f"{path}: missing field {name!r}")
        if len(kwargs) != len(value):
            extra = sorted(str(k) for k in value if k not in kwargs)
            raise InvalidMessage(f"{path}: unknown field {', '.join(extra)}")
        return cls(**kwargs)

    _RECORDS[cls] = convert  # registered before recursion, so a record may nest itself
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        fields.append((f.name, converter_for(hints[f.name]), required))
    return convert
