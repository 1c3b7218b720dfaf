"""Write the kiosk configuration back (``kioskctl provision``, ``kioskctl staff``), keeping
what the engineer wrote and who may read it.

- An existing file is edited in place with ``tomlkit`` (a round-trip TOML library): only the
  values that change are touched, so comments, blank lines and key order survive. The result
  must read back as exactly the table asked for and load as a configuration, or nothing is
  written.
- The new text goes to a temporary file in the same directory, which takes the original's
  owner, group and mode (``/etc/kiosk/kiosk.toml`` is 0640 root:kiosk: the kiosk user must
  still read it after root edits it, whatever root's umask), is fsynced and renamed over the
  original; the directory is fsynced. A new file is 0644 (it holds no secrets: keys live in
  their own 0600 files).

May import: the standard library, ``tomlkit``, ``daemon.config``, ``daemon.errors``.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import stat
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Comment, InlineTable, Table, Whitespace

from daemon.config import Config, parse_config
from daemon.errors import ConfigError, KioskError

HEADER = "# Written by kioskctl provision; see docs/configuration.md"
NEW_FILE_MODE = 0o644


class ConfigWriteError(KioskError):
    """The configuration could not be replaced; the file is unchanged."""

    reason = "config_write"


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
    """A new file's text (no earlier file to keep the layout of)."""
    lines = [HEADER, ""]
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


def _plain(v: Any) -> Any:
    """``v`` as TOML would read it back: paths as strings, tuples as lists."""
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def _unwrap(item: Any) -> Any:
    return item.unwrap() if hasattr(item, "unwrap") else item


def _new_table(row: dict[str, Any]) -> Table:
    t = tomlkit.table()
    for k, v in row.items():
        t[k] = v
    t.add(tomlkit.nl())  # a blank line before whatever follows
    return t


Trivia = Comment | Whitespace


def _pop_trailing_trivia(table: Table) -> list[Trivia]:
    """Take the comments and blank lines at the end of ``table``'s body. They stand between
    its last key and the next header, so they usually describe what follows it."""
    body = table.value.body
    trivia: list[Trivia] = []
    while body and body[-1][0] is None:
        last = body[-1][1]
        if not isinstance(last, Comment | Whitespace):
            break
        trivia.insert(0, last)
        body.pop()  # from the end: no keyed item moves
    return trivia


def _with_leading(trivia: list[Trivia], table: Table) -> Table:
    """A copy of ``table`` with ``trivia`` first in its body (just below its header)."""
    new = tomlkit.table()
    for note in trivia:
        new.add(note)
    for key, item in table.value.body:
        if key is not None:
            new.add(key, item)
        elif isinstance(item, Comment | Whitespace):
            new.add(item)
    return new


def _delete_table(aot: AoT, i: int, parent: Table | Container) -> None:
    """Delete ``aot[i]``, keeping the comments below it: they move to the end of the table
    before it, or, for the first one, just below the next one's header."""
    trivia = _pop_trailing_trivia(aot[i])
    del aot[i]
    if i > 0:
        for item in trivia:
            aot[i - 1].add(item)
    elif len(aot):
        aot[0] = _with_leading([t for t in trivia if isinstance(t, Comment)], aot[0])
        if trivia and isinstance(trivia[-1], Whitespace):
            aot[0].add(tomlkit.nl())
    else:
        for item in trivia:
            parent.add(item)


def _merge_aot(aot: AoT, rows: list[dict[str, Any]], parent: Table | Container) -> bool:
    """Remove the tables ``rows`` no longer has and append the new ones, keeping the others
    (and every comment) where they are. False when that cannot give ``rows`` (a change of
    order or of a row's values): the caller replaces the array instead."""
    old = [_unwrap(t) for t in aot]
    for i in reversed(range(len(old))):
        if old[i] not in rows:
            _delete_table(aot, i, parent)
    kept = [_unwrap(t) for t in aot]
    for row in rows:
        if row not in kept:
            aot.append(_new_table(row))
    return bool([_unwrap(t) for t in aot] == rows)


def _merge(container: Container | Table | InlineTable, new: dict[str, Any]) -> None:
    """Make ``container`` hold ``new``, touching only what differs."""
    for key in [k for k in container if k not in new]:
        old = container[key]
        if isinstance(old, AoT) and not isinstance(container, InlineTable):
            while len(old):  # one by one, so their comments stay
                _delete_table(old, len(old) - 1, container)
        del container[key]
    for key, value in new.items():
        if key in container:
            old = container[key]
            if _unwrap(old) == value:
                continue  # unchanged: keep its formatting and comments
            if isinstance(value, dict) and isinstance(old, Table | InlineTable):
                _merge(old, value)
                continue
            if (
                _is_table_array(value)
                and isinstance(old, AoT)
                and not isinstance(container, InlineTable)
                and _merge_aot(old, value, container)
            ):
                continue
        container[key] = value


def render(path: Path, table: dict[str, Any]) -> str:
    """The text ``path`` should hold for ``table``: the existing file edited in place (its
    comments and layout kept), or a new file."""
    wanted = _plain(table)
    try:
        current = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return dumps(wanted)
    try:
        doc = tomlkit.parse(current)
    except TOMLKitError as exc:
        raise ConfigError(
            f"{path} is not valid TOML ({exc}); fix the file, then run the command again"
        ) from exc
    _merge(doc, wanted)
    text = tomlkit.dumps(doc)
    if tomllib.loads(text) != wanted:  # never write something other than what was asked
        raise ConfigWriteError(
            f"kioskctl could not edit {path} without changing other settings (a kioskctl "
            "bug: report it); nothing was changed"
        )
    return text


def write_config(path: Path, table: dict[str, Any]) -> Config:
    """Validate ``table`` (raises ConfigError), then write it to ``path`` (see the module
    docstring: layout, owner, group and mode kept; atomic). Raises ConfigWriteError when the
    original's owner cannot be kept (run as root); the file is then unchanged."""
    text = render(path, table)
    cfg = parse_config(tomllib.loads(text))
    replace_keeping_owner(path, text.encode("utf-8"))
    return cfg


def _owner(st: os.stat_result | None) -> str:
    if st is None:
        return "?"
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group}"


def replace_keeping_owner(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, keeping its owner, group and mode (0644 for
    a new file): temp file in the same directory, fchown/fchmod, fsync, rename, fsync the
    directory. A symbolic link is followed (the link stays)."""
    if path.is_symlink():
        path = path.resolve()
    try:
        st: os.stat_result | None = path.stat()
    except FileNotFoundError:
        st = None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        try:
            if st is not None:
                mine = os.fstat(fd)
                if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
                    os.fchown(fd, st.st_uid, st.st_gid)
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
            else:
                os.fchmod(fd, NEW_FILE_MODE)  # not the umask's: the kiosk user must read it
        except PermissionError as exc:
            raise ConfigWriteError(
                f"cannot keep the owner ({_owner(st)}) and mode of {path} as this user, and "
                "the kiosk might then be unable to read it: run kioskctl as root (sudo); "
                "nothing was changed",
                reason="config_owner",
            ) from exc
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
