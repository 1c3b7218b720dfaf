"""Turn TOML tables into frozen dataclasses, with errors that name the key, the value and
what is allowed.

Used by daemon/config.py for every section, including the driver settings dataclasses that
live with their drivers. Supported field types: ``str``, ``int``, ``float``, ``bool``,
``pathlib.Path``, ``Literal[...]``, ``X | None``, ``tuple[X, ...]`` and nested dataclasses.
A dataclass may validate ranges in ``__post_init__`` by raising ``ValueError("<key>: ...")``.

May import: the standard library, ``daemon.errors``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

from daemon.errors import ConfigError

T = TypeVar("T")


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"a list of {_describe(get_args(tp)[0])}"
    if tp is Path:
        return "a path (string)"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, str(tp)
    )


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    bad = ConfigError(
        f"{where} = {value!r} is not allowed: expected {_describe(tp)}. "
        "Fix the configuration file and restart."
    )
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        table_type = options[0] if len(options) == 1 else None
        is_table = isinstance(table_type, type) and dataclasses.is_dataclass(table_type)
        if is_table and isinstance(value, dict):  # an optional table: name the bad key in it
            return build(table_type, value, where)  # type: ignore[arg-type]
        for opt in options:
            try:
                return _convert(opt, value, where)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        if value in get_args(tp) and type(value) in {type(a) for a in get_args(tp)}:
            return value
        raise bad
    if origin is tuple:
        if not isinstance(value, list):
            raise bad
        (inner, *_rest) = get_args(tp)
        return tuple(_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return build(tp, value, where)  # type: ignore[arg-type]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if tp is Path:
        if isinstance(value, str) and value:
            return Path(value)
        raise bad
    raise ConfigError(f"{where}: unsupported field type {tp!r} (a bug in the kiosk)")


def build(cls: type[T], table: dict[str, Any], where: str) -> T:
    """Build dataclass ``cls`` from ``table``; ``where`` names the table (e.g. ``"api"``)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(table) - set(fields))
    if unknown and not where:  # the top level holds the sections
        sections = ", ".join(f"[{name}]" for name in sorted(fields))
        raise ConfigError(
            f"unknown section [{unknown[0]}]; the sections are {sections}. Fix the "
            "configuration file and restart."
        )
    if unknown:
        raise ConfigError(
            f"unknown key {where}.{unknown[0]}; allowed keys in [{where}]: "
            f"{', '.join(sorted(fields))}. Fix the configuration file and restart."
        )
    kwargs: dict[str, Any] = {}
    for name, field in fields.items():
        key = f"{where}.{name}" if where else name
        if name in table:
            kwargs[name] = _convert(hints[name], table[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {key} ({_describe(hints[name])})")
    try:
        return cls(**kwargs)
    except ValueError as exc:
        raise ConfigError(
            f"{where}.{exc}. Fix the configuration file and restart."
            if where
            else f"{exc}. Fix the configuration file and restart."
        ) from exc
