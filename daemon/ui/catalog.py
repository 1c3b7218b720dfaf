"""Message catalogues: gettext ``.po`` sources compiled in memory to ``.mo`` and read with the
standard library's :class:`gettext.GNUTranslations`.

The sources are ``daemon/ui/locale/{en,cy}/LC_MESSAGES/kiosk.po``. Message ids are symbolic
keys (``identify.title``), so English is a translation like Welsh and a missing or empty string
is detectable in either language. Compiling uses this module's own implementation of the
GNU ``.mo`` layout (the logic of CPython's ``Tools/i18n/msgfmt.py``, rewritten here), so no
extra dependency and no build step: the ``.po`` files are the only thing committed.

May import: the standard library and daemon.errors.
"""

from __future__ import annotations

import ast
import gettext
import io
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import ConfigError

LANGUAGES: tuple[str, ...] = ("en", "cy")
DOMAIN = "kiosk"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


class CatalogueError(ConfigError):
    """A catalogue is missing, malformed or incomplete; the UI cannot show every screen."""

    reason = "ui_catalogue"


def parse_po(text: str, *, source: str = "<po>") -> dict[str, str]:
    """Parse the subset of the PO format the kiosk uses: ``msgid``/``msgstr`` pairs with
    continuation lines, comments and the header entry. Plural forms and contexts are refused
    (the kiosk has none). Returns ``{msgid: msgstr}`` including the header (msgid ``""``).

    Raises CatalogueError with the line number on malformed input or a duplicate msgid.
    """
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    section = ""
    line_no = 0
    start = 0  # the line of the current entry's msgid

    def flush() -> None:
        nonlocal msgid, msgstr
        if msgid is None:
            return
        if msgstr is None:
            raise CatalogueError(
                f"{source}:{start}: msgid without msgstr; add a msgstr line",
            )
        key = "".join(msgid)
        if key in entries:
            raise CatalogueError(f"{source}:{start}: duplicate msgid {key!r}; keep one")
        entries[key] = "".join(msgstr)
        msgid = msgstr = None

    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("msgctxt", "msgid_plural", "msgstr[")):
            raise CatalogueError(
                f"{source}:{line_no}: contexts and plurals are not used by the kiosk; "
                "write one message per key",
            )
        if line.startswith("msgid "):
            flush()
            section = "id"
            start = line_no
            msgid = [_unquote(line[6:], source, line_no)]
        elif line.startswith("msgstr "):
            if msgid is None:
                raise CatalogueError(f"{source}:{line_no}: msgstr before msgid")
            section = "str"
            msgstr = [_unquote(line[7:], source, line_no)]
        elif line.startswith('"'):
            part = _unquote(line, source, line_no)
            if section == "id" and msgid is not None and msgstr is None:
                msgid.append(part)
            elif section == "str" and msgstr is not None:
                msgstr.append(part)
            else:
                raise CatalogueError(f"{source}:{line_no}: continuation line out of place")
        else:
            raise CatalogueError(f"{source}:{line_no}: not PO syntax: fix or remove the line")
    flush()
    return entries


def _unquote(token: str, source: str, line_no: int) -> str:
    token = token.strip()
    if len(token) < 2 or token[0] != '"' or token[-1] != '"':
        raise CatalogueError(f"{source}:{line_no}: expected a double-quoted string")
    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError) as exc:
        raise CatalogueError(f"{source}:{line_no}: bad string escape") from exc
    if not isinstance(value, str):
        raise CatalogueError(f"{source}:{line_no}: expected a string")
    return value


def compile_mo(entries: Mapping[str, str]) -> bytes:
    """Encode ``{msgid: msgstr}`` as a GNU ``.mo`` file (little-endian, revision 0, no hash
    table), with ids sorted as the format requires. Empty translations are kept out, as
    ``msgfmt`` does, so that they show up as missing."""
    items = sorted((k, v) for k, v in entries.items() if v or k == "")
    ids = b""
    strs = b""
    offsets: list[tuple[int, int, int, int]] = []
    for key, value in items:
        kb, vb = key.encode("utf-8"), value.encode("utf-8")
        offsets.append((len(ids), len(kb), len(strs), len(vb)))
        ids += kb + b"\0"
        strs += vb + b"\0"
    n = len(items)
    header_size = 7 * 4
    ids_start = header_size + n * 16
    strs_start = ids_start + len(ids)
    key_table: list[int] = []
    value_table: list[int] = []
    for id_off, id_len, str_off, str_len in offsets:
        key_table += [id_len, ids_start + id_off]
        value_table += [str_len, strs_start + str_off]
    out = io.BytesIO()
    out.write(
        struct.pack(
            "<7I", 0x950412DE, 0, n, header_size, header_size + n * 8, 0, header_size + n * 16
        )
    )
    out.write(struct.pack(f"<{2 * n}I", *key_table))
    out.write(struct.pack(f"<{2 * n}I", *value_table))
    out.write(ids)
    out.write(strs)
    return out.getvalue()


@dataclass(frozen=True)
class Catalogue:
    """The kiosk's translations, one :class:`gettext.GNUTranslations` per language.

    Thread-safe after construction (read-only). ``table(lang)`` is what the page receives.
    """

    translations: Mapping[str, gettext.GNUTranslations]
    keys: frozenset[str]

    @classmethod
    def load(cls, locale_dir: Path = LOCALE_DIR, languages: Iterable[str] = LANGUAGES) -> Catalogue:
        """Read and compile every language's ``kiosk.po``. Raises CatalogueError if a file is
        missing or malformed (not if a string is missing: see :meth:`problems`)."""
        translations: dict[str, gettext.GNUTranslations] = {}
        keys: set[str] = set()
        for lang in languages:
            path = locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise CatalogueError(
                    f"cannot read the {lang} message catalogue {path}; reinstall the kiosk UI",
                ) from exc
            entries = parse_po(text, source=str(path))
            keys.update(k for k in entries if k)
            translations[lang] = gettext.GNUTranslations(io.BytesIO(compile_mo(entries)))
        return cls(translations=translations, keys=frozenset(keys))

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.translations)

    def text(self, lang: str, key: str) -> str:
        """The translation of ``key`` in ``lang``, or ``""`` if it is missing (never the key
        itself, so a gap shows as a gap and the tests catch it)."""
        tr = self.translations.get(lang)
        if tr is None:
            return ""
        value = tr.gettext(key)
        return "" if value == key else value

    def table(self, lang: str) -> dict[str, str]:
        """Every key's text in ``lang`` (missing ones as ``""``)."""
        return {key: self.text(lang, key) for key in sorted(self.keys)}

    def problems(self) -> list[str]:
        """Every (language, key) whose text is missing or blank, as readable lines; empty when
        both languages are complete."""
        out: list[str] = []
        for lang in self.languages:
            for key in sorted(self.keys):
                if not self.text(lang, key).strip():
                    out.append(f"{lang}: {key} has no translation")
        return out
