"""Strict mapping → frozen dataclass conversion, collecting every problem as ``key.path: message``.

A config section is a frozen dataclass. Each field may carry metadata made with :func:`setting`:
a one-line description (shown by ``validate-config --explain``), numeric bounds and choices.
Supported field types: str, int, float, bool, ``Literal[...]``, ``X | None``, ``int | str``,
``list[str]``, ``tuple[int, int]`` and nested section dataclasses (optional ones too).

Unknown keys are errors, never warnings: a typo such as ``delay_msec`` would otherwise leave a
reject pulse at its default on a real line.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

_MISSING = dataclasses.MISSING


class _Bad:
    """A value that failed to convert (None is a legitimate value for optional settings)."""


BAD = _Bad()


def setting(default: Any = _MISSING, doc: str = "", *, min: float | None = None, max: float | None = None,
            min_exclusive: bool = False, factory: Any = _MISSING) -> Any:
    """A dataclass field with a description and optional bounds."""
    meta = {"doc": doc, "min": min, "max": max, "min_exclusive": min_exclusive}
    if factory is not _MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Problems:
    """Collects ``key.path: message`` lines."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def __bool__(self) -> bool:
        return bool(self.items)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "nothing"
    if get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if _is_union(tp):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if dataclasses.is_dataclass(tp):
        return "a table"
    origin = get_origin(tp)
    if origin in (list, tuple):
        return f"a list of {_type_name(get_args(tp)[0])}"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(tp, str(tp))


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _convert(value: Any, tp: Any, path: str, problems: Problems) -> Any:
    """Check ``value`` against ``tp``; return the converted value, or BAD after recording a problem."""
    origin = get_origin(tp)
    if _is_union(tp):
        options = [a for a in get_args(tp) if a is not type(None)]
        for opt in options:  # first option whose *type* matches, without recording problems
            trial = Problems()
            out = _convert(value, opt, path, trial)
            if not trial:
                return out
        if len(options) == 1:
            return _convert(value, options[0], path, problems)
        problems.add(path, f"expected {_type_name(tp)}, got {value!r}")
        return BAD
    if origin is Literal:
        if value not in get_args(tp):
            problems.add(path, f"must be one of {', '.join(repr(a) for a in get_args(tp))}, not {value!r}")
            return BAD
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.add(path, f"expected a table, got {value!r}")
            return BAD
        return build(tp, value, path, problems)
    if origin in (list, tuple):
        if not isinstance(value, list):
            problems.add(path, f"expected {_type_name(tp)}, got {value!r}")
            return BAD
        args = get_args(tp)
        if origin is tuple and Ellipsis not in args and len(value) != len(args):
            problems.add(path, f"expected {len(args)} values, got {len(value)}")
            return BAD
        item_types = args if origin is tuple and Ellipsis not in args else [args[0]] * len(value)
        out = [_convert(v, t, f"{path}[{i}]", problems) for i, (v, t) in enumerate(zip(value, item_types))]
        return BAD if any(v is BAD for v in out) else tuple(out)
    if tp is bool:
        if not isinstance(value, bool):
            problems.add(path, f"expected true or false, got {value!r}")
            return BAD
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.add(path, f"expected an integer, got {value!r}")
            return BAD
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.add(path, f"expected a number, got {value!r}")
            return BAD
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            problems.add(path, f"expected a string, got {value!r}")
            return BAD
        return value
    raise TypeError(f"unsupported config field type {tp!r} at {path}")  # a programming error, not user input


def _check_bounds(value: Any, meta: dict, path: str, problems: Problems) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and (value <= lo if meta.get("min_exclusive") else value < lo):
        problems.add(path, f"must be {'>' if meta.get('min_exclusive') else '>='} {lo}, got {value}")
    if hi is not None and value > hi:
        problems.add(path, f"must be <= {hi}, got {value}")


def build(cls: type, data: dict, path: str, problems: Problems) -> Any:
    """Build section ``cls`` from ``data``, recording every problem.

    Returns BAD only when the object cannot be made (a missing or mistyped value); unknown keys and
    failed checks are recorded but the object is still made, so checks that span sections still run
    and the user sees every problem at once.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            problems.add(_join(path, key), f"unknown key (expected one of: {', '.join(sorted(fields))})")
    kwargs = {}
    bad = False
    for name, f in fields.items():
        p = _join(path, name)
        if name not in data:
            if f.default is _MISSING and f.default_factory is _MISSING:
                problems.add(p, "is required")
                bad = True
            continue
        value = _convert(data[name], hints[name], p, problems)
        if value is BAD:
            bad = True
            continue
        _check_bounds(value, dict(f.metadata), p, problems)
        kwargs[name] = value
    if bad:
        return BAD
    obj = cls(**kwargs)
    check = getattr(obj, "problems", None)
    if callable(check):
        for sub, msg in check():
            problems.add(_join(path, sub), msg)
    return obj


def describe(cls: type, path: str = "") -> list[tuple[str, str, str, str]]:
    """(key.path, type, default, description) for every setting, nested sections included."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        p = _join(path, f.name)
        tp = hints[f.name]
        inner = [a for a in get_args(tp) if dataclasses.is_dataclass(a)] if _is_union(tp) else []
        sub = tp if dataclasses.is_dataclass(tp) else (inner[0] if inner else None)
        if sub is not None:
            rows.extend(describe(sub, p))
            continue
        if f.default is not _MISSING:
            default = repr(f.default)
        elif f.default_factory is not _MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        rows.append((p, _type_name(tp), default, f.metadata.get("doc", "")))
    return rows
