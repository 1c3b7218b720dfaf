"""Speaking what is on the screen now, for people who read poorly: the screen's prompt and then
its own words (the question and its answers, the officer's message, the next appointment, why
the person is sent to reception and whether their visit was recorded).

The fixed prompts are made offline (daemon/ui/audio.py); these words change with each person,
so they are spoken on demand, when the person touches "Listen": espeak-ng writes the sound to
a pipe, never to a file, and the last few are kept in memory only. Nothing here is logged: the
words can be an officer's message.

May import: the standard library and daemon.ui.
"""

from __future__ import annotations

import collections
import hashlib
import io
import shutil
import subprocess
import threading
import wave
from collections.abc import Mapping
from typing import Any

from daemon.ui.audio import TIMEOUT_S, VOICES, WORDS_PER_MINUTE, AudioPromptError
from daemon.ui.audio import sentence as _sentence
from daemon.ui.catalog import Catalogue

CACHE = 16
MAX_CHARS = 2000  # an officer's message is short; this bounds espeak-ng's work


def spoken_text(msg: Mapping[str, Any], catalogue: Catalogue) -> str:
    """The words for the screen in ``msg`` (what daemon.ui.present.present made), in its
    language: the screen's prompt, then what only this screen, for this person, says."""
    lang = str(msg.get("lang", "en"))
    screen = str(msg.get("screen", ""))
    view: Mapping[str, Any] = msg.get("view") or {}
    derived: Mapping[str, Any] = msg.get("derived") or {}

    def t(key: str) -> str:
        return catalogue.text(lang, key)

    parts = [t(f"audio.{screen}")]
    if screen == "questions":
        parts.append(str(derived.get("question", "")))
        options = [str(o.get("text", "")) for o in derived.get("options") or []]
        if options:
            parts.append(", ".join(options))
    elif screen == "messages":
        parts.append(str(derived.get("message", "")))
    elif screen == "confirm":
        for row in derived.get("answers") or []:
            parts.append(f"{row.get('question', '')} {row.get('answer', '')}")
    elif screen == "fallback":
        parts.append(t(f"fallback.{view.get('reason', '')}"))
    elif screen == "photo" and view.get("by_choice"):
        parts.append(t("photo.by_choice"))
    elif screen == "see_reception":
        parts.append(t(f"reception.{view.get('reason', '')}"))
        if view.get("checked_in"):
            parts.append(t("reception.recorded"))
    if view.get("signpost"):  # where to get help now: said before the appointment
        key = f"signpost.{view['signpost']}"
        parts += [t(f"{key}.{part}") for part in ("title", "nhs", "samaritans", "emergency")]
    if screen in ("done", "see_reception") and derived.get("appointment"):
        parts += [t("done.next"), str(derived["appointment"]), str(derived.get("place", ""))]
    if screen in ("done", "see_reception") and view.get("receipt"):
        # letter by letter, so it can be written down: "7, K, 2, M, 9, Q, X, D"
        parts += [t("done.receipt"), ", ".join(c for c in str(view["receipt"]) if c != "-")]
    text = " ".join(_sentence(p) for p in parts if str(p or "").strip())
    return text[:MAX_CHARS]


class Speaker:
    """espeak-ng into memory. Thread-safe; call :meth:`wav` from a worker thread."""

    def __init__(self, espeak: str | None = None) -> None:
        self._espeak = espeak or shutil.which("espeak-ng")
        self._cache: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._espeak is not None

    def wav(self, text: str, lang: str) -> bytes:
        """``text`` spoken with ``lang``'s voice, as a WAV file's bytes."""
        if self._espeak is None:
            raise AudioPromptError("espeak-ng is not installed; spoken words are unavailable")
        voice = VOICES.get(lang, VOICES["en"])
        key = hashlib.sha256(f"{voice}\0{text}".encode()).hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        try:
            done = subprocess.run(
                [self._espeak, "-v", voice, "-s", str(WORDS_PER_MINUTE), "--stdin", "--stdout"],
                input=text.encode("utf-8"),
                capture_output=True,
                timeout=TIMEOUT_S,
                check=True,
            )
        except (subprocess.TimeoutExpired, subprocess.CalledProcessError, OSError) as exc:
            raise AudioPromptError(f"espeak-ng could not speak ({exc.__class__.__name__})") from exc
        data = _sized(done.stdout)
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > CACHE:
                self._cache.popitem(last=False)
        return data


def _sized(streamed: bytes) -> bytes:
    """espeak-ng writing to a pipe cannot seek back to fill in the WAV's sizes; write them, so
    the browser knows the duration."""
    try:
        with wave.open(io.BytesIO(streamed), "rb") as src:
            params = src.getparams()
            frames = src.readframes(src.getnframes())
    except (EOFError, wave.Error) as exc:
        raise AudioPromptError("espeak-ng gave no usable sound") from exc
    out = io.BytesIO()
    with wave.open(out, "wb") as dst:
        dst.setnchannels(params.nchannels)
        dst.setsampwidth(params.sampwidth)
        dst.setframerate(params.framerate)
        dst.writeframes(frames)
    return out.getvalue()
