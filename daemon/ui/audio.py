"""Spoken prompts for every screen in English and Welsh, generated offline with espeak-ng.

The words are the catalogue's ``audio.<screen>`` strings (daemon/ui/locale), spoken with the
``en-gb`` and ``cy`` voices into ``<out>/<lang>/<screen>.wav`` (mono 16-bit PCM, 22,050 Hz).
One more, ``<out>/<lang>/lost.wav`` (:data:`LOST`), speaks the words of the cover shown when
the daemon cannot be reached (:data:`LOST_KEYS`: go to reception, this is not your fault): the
page fetches it while the daemon is still there, and the shell's own page plays the file.
A ``manifest.json`` beside them records the text and voice of each file, so a second run only
redoes prompts whose words changed. The files are build output, not sources: installing the
kiosk into its root file system (firmware/rootfs/install-kiosk.sh) runs
``python -m daemon.ui.audio --out`` :data:`INSTALLED_DIR`, so they come with the software they
speak for (an update brings its own), and the UI server is given that folder
(``create_ui_app(..., audio_dir=DIR)``).

Runs espeak-ng as a subprocess (a few milliseconds per prompt, 30 s timeout each). Never runs
at import.

May import: the standard library and daemon.ui.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import ConfigError
from daemon.ui.bridge import Screen
from daemon.ui.catalog import Catalogue

VOICES: dict[str, str] = {"en": "en-gb", "cy": "cy"}
WORDS_PER_MINUTE = 150  # a little slower than espeak-ng's default 175, for clarity
TIMEOUT_S = 30.0
MIN_SECONDS = 0.5
#: where install-kiosk.sh puts the prompts: beside the venv the kiosk runs from
#: (``/opt/kiosk/share/probation-kiosk/audio`` on a device), in the slot's root file system
INSTALLED_DIR = Path(sys.prefix) / "share" / "probation-kiosk" / "audio"
#: the prompt of the cover the page shows when it cannot reach the daemon, and of the page the
#: shell shows while kiosk.service does not answer: those screens' own words, spoken
LOST = "lost"
LOST_KEYS = ("reception.title", "reception.fault")


class AudioPromptError(ConfigError):
    """A spoken prompt could not be made or is unusable; install espeak-ng (hil/test_deps.sh)
    and run ``python -m daemon.ui.audio --out DIR`` again."""

    reason = "ui_audio"


@dataclass(frozen=True)
class Prompt:
    lang: str
    screen: str
    path: Path
    seconds: float
    regenerated: bool


def prompt_names() -> Iterator[str]:
    """Every prompt made for each language: one per screen, and :data:`LOST`."""
    yield from (s.value for s in Screen)
    yield LOST


def sentence(text: object) -> str:
    """``text`` on one line, ending as a sentence, so the voice pauses after it."""
    words = " ".join(str(text or "").split())
    if words and words[-1] not in ".?!:":
        words += "."
    return words


def prompt_text(catalogue: Catalogue, lang: str, screen: str) -> str:
    """The words of one prompt; raises AudioPromptError when the catalogue has none."""
    if screen == LOST:  # the words shown on the cover, as shown (a title, then why)
        text = " ".join(sentence(catalogue.text(lang, key)) for key in LOST_KEYS).strip()
    else:
        text = catalogue.text(lang, f"audio.{screen}").strip()
    if not text:
        raise AudioPromptError(
            f"no audio.{screen} text in the {lang} catalogue; add it to kiosk.po",
        )
    return text


def wav_seconds(path: Path) -> float:
    """Duration of a WAV file in seconds; raises AudioPromptError if it is not a mono PCM
    WAV of at least :data:`MIN_SECONDS`."""
    try:
        with wave.open(str(path), "rb") as w:
            frames, rate, channels = w.getnframes(), w.getframerate(), w.getnchannels()
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioPromptError(f"{path.name} is not a readable WAV file; regenerate it") from exc
    seconds = frames / rate if rate else 0.0
    if channels != 1 or seconds < MIN_SECONDS:
        raise AudioPromptError(f"{path.name} is empty or malformed; regenerate it")
    return seconds


def _speak(text: str, voice: str, out: Path, espeak: str) -> None:
    try:
        subprocess.run(
            [espeak, "-v", voice, "-s", str(WORDS_PER_MINUTE), "-w", str(out), "--stdin"],
            input=text.encode("utf-8"),
            capture_output=True,
            timeout=TIMEOUT_S,
            check=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise AudioPromptError(f"espeak-ng took over {TIMEOUT_S:.0f} s for one prompt") from exc
    except subprocess.CalledProcessError as exc:
        raise AudioPromptError(
            f"espeak-ng failed for voice {voice} (exit {exc.returncode}); check the voice is "
            "installed (espeak-ng --voices)",
        ) from exc


def generate(out_dir: Path, catalogue: Catalogue | None = None) -> list[Prompt]:
    """Make every (language, screen) prompt under ``out_dir``; skips ones whose words and
    voice are unchanged since the last run. Returns them all. Raises AudioPromptError (no
    espeak-ng, a missing text, a bad file)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise AudioPromptError("espeak-ng is not installed; run hil/test_deps.sh as root")
    catalogue = catalogue or Catalogue.load()
    manifest_path = out_dir / "manifest.json"
    try:
        manifest: dict[str, str] = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    prompts: list[Prompt] = []
    for lang, voice in VOICES.items():
        (out_dir / lang).mkdir(parents=True, exist_ok=True)
        for screen in prompt_names():
            text = prompt_text(catalogue, lang, screen)
            key = f"{lang}/{screen}"
            digest = hashlib.sha256(f"{voice}\0{WORDS_PER_MINUTE}\0{text}".encode()).hexdigest()
            path = out_dir / lang / f"{screen}.wav"
            fresh = manifest.get(key) != digest or not path.exists()
            if fresh:
                tmp = path.with_suffix(".tmp")
                _speak(text, voice, tmp, espeak)
                tmp.replace(path)
                manifest[key] = digest
            prompts.append(Prompt(lang, screen, path, wav_seconds(path), fresh))
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return prompts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m daemon.ui.audio", description="Generate the kiosk's spoken prompts."
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for <lang>/<screen>.wav")
    args = parser.parse_args(argv)
    try:
        prompts = generate(args.out)
    except AudioPromptError as exc:
        print(f"audio: {exc}", file=sys.stderr)
        return 1
    made = sum(p.regenerated for p in prompts)
    total = sum(p.seconds for p in prompts)
    print(f"audio: {len(prompts)} prompts ({made} regenerated, {total:.0f} s) in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
