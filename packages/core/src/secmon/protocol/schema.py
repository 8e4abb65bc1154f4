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
        try:
            return [item(v, path) for v in value]
        except InvalidMessage:  # rare: check again, naming the item's index in the error
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
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return record_converter(hint)
    raise TypeError(f"no converter for {hint!r}")


_RECORDS: dict[type, Converter] = {}
MAX_SHAPES = 1024  # distinct passing shapes a checker remembers; past that, it checks every map in full
_MISSING = object()
_SIMPLE = {int: "int", str: "str", bool: "bool", bytes: "bytes", float: "float"}


def _simple_check(hint: Any, var: str, where: str, indent: str) -> list[str] | None:
    """Inline source that checks (and for float, converts) ``var``; None if the hint is not simple."""
    optional = False
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (types.UnionType, typing.Union) and len(args) == 2 and type(None) in args:
        hint = next(a for a in args if a is not type(None))
        optional = True
    if hint not in _SIMPLE:
        return None
    name = _SIMPLE[hint] + (" or nil" if optional else "")
    guard = f"{var} is not None and " if optional else ""
    if hint is float:
        return [
            f"{indent}if {guard}type({var}) is not float:",
            f"{indent}    if type({var}) is int:",
            f"{indent}        {var} = float({var})",
            f"{indent}    else:",
            f"{indent}        _fail({where}, {name!r}, {var})",
        ]
    return [f"{indent}if {guard}type({var}) is not {hint.__name__}:", f"{indent}    _fail({where}, {name!r}, {var})"]


def record_converter(cls: type) -> Converter:
    """Converter for a dataclass carried as a map of its field names.

    The converter is generated as Python source once per class, with simple field
    checks inlined, because it runs for every field of every message received.
    """
    if cls in _RECORDS:
        return _RECORDS[cls]

    def late(value: Any, path: str) -> Any:  # stands in while the real one is built (self-nesting)
        return _RECORDS[cls](value, path)

    _RECORDS[cls] = late
    _RECORDS[cls] = _generate(cls, construct=True)
    return _RECORDS[cls]


def record_checker(cls: type) -> Converter:
    """Like ``record_converter``, but the map itself is returned, checked, instead of an object.

    For a daemon that only passes records on (the hub re-broadcasts auth events):
    the same checks and errors, no object built and none to encode again. Float
    fields sent as integers are made floats in the map; absent fields stay absent
    (a reader fills in their defaults). Only records of simple fields qualify.
    """
    check = _generate(cls, construct=False)
    known: set[tuple[tuple[Any, ...], tuple[type, ...]]] = set()

    def checker(value: Any, path: str) -> Any:
        # Whether a map of simple fields passes depends only on its keys and the types of its
        # values: a shape seen to pass unchanged passes again, checked by C code alone.
        if type(value) is dict:
            shape = (tuple(value), tuple(map(type, value.values())))
            if shape in known:
                return value
            check(value, path)
            if len(known) < MAX_SHAPES and shape == (tuple(value), tuple(map(type, value.values()))):
                known.add(shape)  # (not when a value had to be converted)
            return value
        return check(value, path)

    return checker


def _generate(cls: type, construct: bool) -> Converter:
    hints = typing.get_type_hints(cls)
    namespace: dict[str, Any] = {
        "_fail": _fail, "_MISSING": _MISSING, "InvalidMessage": InvalidMessage, "cls": cls,
    }  # fmt: skip
    body = [
        "def convert(value, path):",
        "    if type(value) is not dict:",
        f"        _fail(path, {'map (' + cls.__name__ + ')'!r}, value)",
        "    present = 0",
    ]
    names = []
    for index, f in enumerate(dataclasses.fields(cls)):
        var = f"v{index}"
        names.append(f"{f.name}={var}")
        where = f"path + {'.' + f.name!r}"
        body.append(f"    {var} = value.get({f.name!r}, _MISSING)")
        body.append(f"    if {var} is _MISSING:")
        if f.default is not dataclasses.MISSING:
            namespace[f"d{index}"] = f.default
            body.append(f"        {var} = d{index}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"d{index}"] = f.default_factory
            body.append(f"        {var} = d{index}()")
        else:
            body.append(f"        raise InvalidMessage(path + {': missing field ' + repr(f.name)!r})")
        body.append("    else:")
        body.append("        present += 1")
        check = _simple_check(hints[f.name], var, where, "        ")
        if check is None:
            if not construct:
                raise TypeError(f"{cls.__name__}.{f.name}: a checker handles simple fields only")
            namespace[f"c{index}"] = converter_for(hints[f.name])
            check = [f"        {var} = c{index}({var}, {where})"]
        elif not construct and _base(hints[f.name]) is float:
            check.append(f"        value[{f.name!r}] = {var}")
        body.extend(check)
    tag = getattr(cls, "TAG", None)
    if tag is not None:  # a message carried inside another (NoticeList) keeps its tag; it must be its own
        body.append(f"    if value.get('t', _MISSING) == {tag!r}:")
        body.append("        present += 1")
    body.append("    if present != len(value):")
    body.append("        known = {" + ", ".join(repr(f.name) for f in dataclasses.fields(cls)) + "}")
    body.append("        extra = sorted(str(k) for k in value if k not in known)")
    body.append("        raise InvalidMessage(f\"{path}: unknown field {', '.join(extra)}\")")
    body.append(f"    return cls({', '.join(names)})" if construct else "    return value")
    exec("\n".join(body), namespace)
    convert: Converter = namespace["convert"]
    return convert


def _base(hint: Any) -> Any:
    """``X`` for ``X | None``, else the hint itself."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (types.UnionType, typing.Union) and len(args) == 1 else hint
