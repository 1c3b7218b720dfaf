"""Write the kiosk configuration back as TOML (tables of scalars and lists, and arrays of such
tables like ``[[staff.members]]``: all daemon/config.py accepts), atomically, after checking it
loads.

May import: the standard library, ``daemon.config``, ``daemon.errors``.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from daemon.config import Config, parse_config
from daemon.errors import ConfigError


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v))  # a TOML basic string is JSON-compatible for these values
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} to the configuration (a kioskctl bug)")


def dumps(table: dict[str, Any]) -> str:
    lines = ["# Written by kioskctl provision; see docs/configuration.md", ""]
    for name, section in table.items():
        if not isinstance(section, dict):
            lines.insert(2, f"{name} = {_value(section)}")
            continue
        lines.append(f"[{name}]")
        arrays = {k: v for k, v in section.items() if _is_table_array(v)}
        lines.extend(f"{k} = {_value(v)}" for k, v in section.items() if k not in arrays)
        lines.append("")
        for key, rows in arrays.items():  # e.g. [[staff.members]]
            for row in rows:
                lines.append(f"[[{name}.{key}]]")
                lines.extend(f"{k} = {_value(v)}" for k, v in row.items())
                lines.append("")
    return "\n".join(lines)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list | tuple) and bool(v) and all(isinstance(x, dict) for x in v)


def write_config(path: Path, table: dict[str, Any]) -> Config:
    """Validate ``table`` (raises ConfigError), then write it to ``path`` atomically with mode
    0644 (it holds no secrets: keys live in their own 0600 files)."""
    text = dumps(table)
    cfg = parse_config(tomllib.loads(text))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return cfg
