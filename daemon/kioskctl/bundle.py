"""``kioskctl bundle``: a diagnostics archive (tar.gz) an engineer can send to support, with
personal data removed.

What goes in: ``manifest.json``; ``doctor.json`` (the checks that need no hardware);
``figures.json`` (outbox stats, disk, versions); ``outbox-summary.txt`` (seq, state, type,
time, flags, parked reasons: the shape of the queue, never its content); ``config.toml`` with
secrets removed; ``logs/*.txt`` (journalctl of the kiosk units when available, the previous
boot's journal, plus any log files named on the command line), scrubbed.

``logs/previous-boot.txt`` is the boot before this one: after a watchdog reset or an update
whose trial failed, the boot that went wrong. The kiosk units, the boot-time units (self-test,
data partition, RAUC), systemd itself (``_PID=1``: unit failures, watchdog timeouts) and the
kernel. It needs the persistent journal on the data partition (systemd/journald.conf.d) and
finds the previous boot among this machine ID's, in the journal's own order (not the wall
clock, which a Pi without a clock source may have wrong). When there is none (a first boot, a
volatile journal, a root with another machine ID), it lists instead every boot kept on the
data partition under any machine ID, for ``journalctl -D /var/log/journal -b ID`` on site.

What could not be read (kioskctl run as a user who may not read the outbox, the roster, the
configuration, a log file or the kiosk units' journal) is listed in the manifest's
``omitted``; the command then says so and exits 1 (docs/kioskctl.md).

What never goes in: keys, the outbox database, the roster, photos (sealed or not),
templates, record payloads.

Scrubbing is belt and braces: (1) every value the kiosk knows to be personal — each record's
``person`` and every string in its ``answers``, and every roster reference — is removed
wherever it appears; (2) text that looks personal is removed by pattern (case references,
e-mail addresses, phone numbers, dates of birth, JWS and PEM blocks, long base64).

May import: the standard library, ``daemon.*``.
"""

from __future__ import annotations

import contextlib
import grp
import io
import json
import os
import platform
import re
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from daemon import __version__, bootslots, health
from daemon.errors import RecordError, StorageError
from daemon.kioskctl import access, checks_sys
from daemon.kioskctl.access import DataAccessError
from daemon.kioskctl.context import Context
from daemon.kioskctl.doctor import SYSTEM_CHECKS, UNIT_CHECKS, run_checks
from daemon.kioskctl.outboxcmd import format_rows, rows
from daemon.kioskctl.progress import Progress
from daemon.records import decode_unverified

REMOVED = "[removed]"
JOURNAL_UNITS = ("kiosk.service", "kiosk-sync.service", "kiosk-ui.service")
#: the units whose lines the previous boot's log keeps, besides PID 1's and the kernel's
BOOT_UNITS = (
    *JOURNAL_UNITS,
    "kiosk-boot-check.service",
    "kiosk-grow-data.service",
    "systemd-growfs@data.service",
    "rauc.service",
)
#: journalctl for logs/previous-boot.txt: the boot before this one; those units, or PID 1,
#: or the kernel ("+" is journalctl's OR between groups of matches)
PREVIOUS_BOOT = [
    "journalctl", "--no-pager", "-o", "short-iso", "-b", "-1", "-n", "20000",
    *(f"_SYSTEMD_UNIT={unit}" for unit in BOOT_UNITS), "+", "_PID=1", "+", "_TRANSPORT=kernel",
]  # fmt: skip
#: where the image keeps the persistent journal (one folder per machine ID)
JOURNAL_DIR = "/var/log/journal"
ALL_BOOTS = ["journalctl", "--no-pager", "-D", JOURNAL_DIR, "--list-boots"]
_DATE_TIME = re.compile(r"\b(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)\b")
NO_PREVIOUS_BOOT = (
    "(no earlier boot under this machine ID: the card's first boot, a volatile journal, or a\n"
    " root with another machine ID; see docs/systemd.md, Logging)\n"
)
#: configuration keys whose values are secrets or personal; removed from config.toml
SECRET_KEYS = re.compile(r"pin|password|secret|token|passphrase", re.IGNORECASE)
_MONTHS = (
    "jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    "|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?"
    "|ionawr|chwefror|mawrth|ebrill|mai|mehefin|gorffennaf|awst|medi|hydref|tachwedd|rhagfyr"
)
_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z ]+-----.*?-----END [A-Z ]+-----", re.DOTALL),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),  # JWS / JWT
    re.compile(r"\b[A-Z]{1,4}-?\d{5,}\b"),  # case references (CR-000123, X12345678)
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),  # e-mail
    # UK phone; not a run of digits inside a hex ID (a boot or machine ID: 5f040109235373e)
    re.compile(r"(?<![0-9A-Za-z])(?:\+44\s?|0)\d{3,4}[\s-]?\d{3}[\s-]?\d{3,4}(?![0-9A-Za-z])"),
    re.compile(r"\b(?:19|20)\d\d-[01]\d-[0-3]\d\b(?!T)"),  # bare dates (birth dates)
    # dates as people write them: 14/03/1985, 14-3-85, 14.03.1985 (with dots only with the
    # century, so that versions such as 1.4.12 stay readable)
    re.compile(r"(?<![\d/.-])[0-3]?\d([/-])[01]?\d\1(?:19|20)?\d\d(?![\d/.-])"),
    re.compile(r"(?<![\d/.-])[0-3]?\d\.[01]?\d\.(?:19|20)\d\d(?![\d/.-])"),
    # 14 March 1985, 14th Mar 1985, March 14, 1985, 14 Mawrth 1985 (Welsh)
    re.compile(
        rf"\b(?:[0-3]?\d(?:st|nd|rd|th)?\s+(?:{_MONTHS})\.?,?\s+(?:19|20)\d\d"
        rf"|(?:{_MONTHS})\.?\s+[0-3]?\d(?:st|nd|rd|th)?,?\s+(?:19|20)\d\d)\b",
        re.IGNORECASE,
    ),
    # UK postcodes (CF10 1AA, SW1A 2AA)
    re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[ABD-HJLNP-UW-Z]{2}\b", re.IGNORECASE),
    # National Insurance numbers (QQ 12 34 56 C)
    re.compile(r"\b[A-Z]{2}\s?\d\d\s?\d\d\s?\d\d\s?[A-D]\b", re.IGNORECASE),
    re.compile(r"[A-Za-z0-9+/=_-]{64,}"),  # long base64: templates, sealed blobs
]


#: credentials in headers and in key=value text: the value goes, the name stays readable
_CREDENTIALS = re.compile(
    r"(\b(?:bearer|basic)\s+"
    r"|(?<![a-z0-9])(?:pin|password|passwd|secret|token|passphrase|api_?key)[\"']?\s*[:=]\s*[\"']?)"
    r"(?!\[removed\])[^\s,;&\"']+",
    re.IGNORECASE,
)


class Scrubber:
    """Removes known personal values and personal-looking text from log and config text."""

    def __init__(self, known: Iterable[str] = ()) -> None:
        # longest first, so a value that contains another is removed whole
        self.known = sorted({k for k in known if len(k) >= 3}, key=len, reverse=True)
        self.removed = 0

    def __call__(self, text: str) -> str:
        for value in self.known:
            if value in text:
                self.removed += text.count(value)
                text = text.replace(value, REMOVED)
        text, n = _CREDENTIALS.subn(rf"\1{REMOVED}", text)
        self.removed += n
        for pattern in _PATTERNS:
            text, n = pattern.subn(REMOVED, text)
            self.removed += n
        return text


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def known_personal(ctx: Context, omitted: list[str] | None = None) -> set[str]:
    """Every person reference and answer text the kiosk holds (outbox and roster). What could
    not be read is said in ``omitted`` (the pattern scrubbing still applies)."""
    found: set[str] = set()
    omitted = [] if omitted is None else omitted
    try:
        outbox = checks_sys.open_outbox_readonly(ctx)
    except DataAccessError as exc:
        outbox = None
        omitted.append(f"outbox summary and figures: {exc.detail}")
    except StorageError:
        outbox = None
    if outbox is not None:
        with outbox:
            for _seq, _state, compact in outbox.all_compact():
                try:
                    _h, p, _si, _sig = decode_unverified(compact)
                except RecordError:  # a damaged row: nothing to learn from it
                    continue
                if isinstance(p.get("person"), str):
                    found.add(p["person"])
                found.update(_strings(p.get("answers", {})))
    roster = ctx.cfg.device.data_dir / "roster.json"
    try:
        data = json.loads(roster.read_text(encoding="utf-8"))
        for person in data.get("people", []):
            found.add(str(person.get("ref", "")))
            for q in person.get("messages", []) + person.get("questions", []):
                found.update(str(v) for k, v in q.items() if k in ("en", "cy"))
    except PermissionError:
        omitted.append(
            f"the roster's values from the scrubbing ({access.denied(roster)}; patterns still "
            "applied)"
        )
    except (OSError, ValueError, AttributeError, TypeError):
        pass
    return {f for f in found if f}


def redacted_config(path: Path, scrub: Scrubber, omitted: list[str] | None = None) -> str:
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        if omitted is not None:
            omitted.append(f"config.toml: {path} unreadable ({exc.__class__.__name__})")
        return f"# configuration unreadable: {exc.__class__.__name__}\n"
    lines = [f"# {path}, secrets and personal data removed by kioskctl bundle"]
    for name, section in table.items():
        if not isinstance(section, dict):
            continue
        lines.append(f"[{name}]")
        for k, v in section.items():
            shown = REMOVED if SECRET_KEYS.search(k) else scrub(json.dumps(v))
            lines.append(f"{k} = {shown}")
    return "\n".join(lines) + "\n"


def _journal(ctx: Context) -> str | None:
    argv = ["journalctl", "--no-pager", "-o", "short-iso", "--since", "-7d", "-n", "20000"]
    for unit in JOURNAL_UNITS:
        argv += ["-u", unit]
    got = ctx.parts.run(argv, 60.0)
    return None if got is None else got[1]


def _previous_boot(ctx: Context) -> str | None:
    """The previous boot's log; when journalctl finds none (it exits 1), a note and the boots
    kept under every machine ID; None without journalctl."""
    got = ctx.parts.run(list(PREVIOUS_BOOT), 60.0)
    if got is None:
        return None
    code, out = got
    if code == 0:
        return out
    boots = ctx.parts.run(list(ALL_BOOTS), 60.0)
    if boots is None or boots[0] != 0 or not boots[1].strip():
        return NO_PREVIOUS_BOOT
    # "2026-11-23 19:38:58" -> "2026-11-23T19:38:58": a timestamp, which the scrubber keeps,
    # not a bare date, which it removes (birth dates)
    listed = _DATE_TIME.sub(r"\1T\2", boots[1])
    return (
        f"{NO_PREVIOUS_BOOT}\nBoots kept in {JOURNAL_DIR} under any machine ID, in wall-clock "
        "order (read one with `journalctl -D /var/log/journal -b BOOT_ID`):\n" + listed
    )


def _may_read_journal() -> bool:
    """Root and the systemd-journal and adm groups read every unit's journal; others only
    their own (journalctl then says nothing of it on standard output)."""
    if os.geteuid() == 0:
        return True
    allowed = set()
    for name in ("systemd-journal", "adm"):
        with contextlib.suppress(KeyError):
            allowed.add(grp.getgrnam(name).gr_gid)
    return bool(allowed & {os.getegid(), *os.getgroups()})


def _add(tar: tarfile.TarFile, name: str, text: str, mtime: float) -> None:
    data = text.encode("utf-8")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(mtime)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def make_bundle(
    ctx: Context,
    out: Path,
    *,
    config_path: Path,
    log_files: Iterable[Path] = (),
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the archive to ``out``; return its manifest. Steps are reported to ``progress``."""
    log_files = list(log_files)
    now = ctx.clock.wall()
    omitted: list[str] = []
    scrub = Scrubber(known_personal(ctx, omitted))
    progress = progress or Progress("bundle", None, enabled=False)
    root = f"kiosk-bundle-{ctx.cfg.device.id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}"
    manifest: dict[str, Any] = {
        "device": ctx.cfg.device.id,
        "created": now,
        "kioskctl": __version__,
        "files": [],
        "excluded": ["keys", "outbox database", "roster", "photos", "templates", "payloads"],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:

        def add(name: str, text: str) -> None:
            _add(tar, f"{root}/{name}", text, now)
            manifest["files"].append(name)
            progress.advance()

        checks = run_checks(ctx, [*SYSTEM_CHECKS, *UNIT_CHECKS])
        add("doctor.json", scrub(json.dumps([asdict(c) for c in checks], indent=2)))
        reported = health.read(health.candidates(ctx.cfg.device.data_dir))
        figures: dict[str, Any] = {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "app": __version__,
            # what the running kiosk last reported, and its update slots (no personal data)
            "health": reported[1] if reported else None,
            "slots": bootslots.summary(),
        }
        summary = "(no outbox)"
        try:
            outbox = checks_sys.open_outbox_readonly(ctx)
        except StorageError as exc:  # a DataAccessError is already in `omitted`
            outbox = None
            summary = f"(outbox unreadable: {exc.reason})"
        if outbox is not None:
            with outbox:
                figures["outbox"] = asdict(outbox.stats())
                summary = format_rows(list(rows(outbox)))
        add("figures.json", json.dumps(figures, indent=2))
        add("outbox-summary.txt", scrub(summary))
        add("config.toml", redacted_config(config_path, scrub, omitted))
        journal = _journal(ctx)
        if journal is not None:
            add("logs/journal.txt", scrub(journal))
            if not _may_read_journal():
                omitted.append(
                    f"most of logs/journal.txt: {access.whoami()} may read only its own "
                    "journal (root or the systemd-journal group may read the kiosk units')"
                )
        previous = _previous_boot(ctx)
        if previous is not None:
            add("logs/previous-boot.txt", scrub(previous))
        for path in log_files:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                text = f"(unreadable: {exc.__class__.__name__})"
                omitted.append(f"logs/{path.name}.txt: {path} unreadable ({exc.strerror})")
            add(f"logs/{path.name}.txt", scrub(text))
        manifest["scrubbed_values"] = scrub.removed
        #: what should be here and is not (the command then exits 1, naming each)
        manifest["omitted"] = omitted
        _add(tar, f"{root}/manifest.json", json.dumps(manifest, indent=2), now)
    return manifest
