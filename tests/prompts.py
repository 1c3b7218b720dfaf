"""Stand-in spoken prompts for tests of what checks them (``kioskctl doctor``): a second of
silence per prompt, every name and language daemon/ui/audio.py makes. The real ones need
espeak-ng and are tested in tests/ui/test_audio.py and, installed, tests/system."""

from __future__ import annotations

import wave
from pathlib import Path

from daemon.ui.audio import VOICES, prompt_names

RATE = 8000


def silent_prompts(folder: Path) -> Path:
    for lang in VOICES:
        (folder / lang).mkdir(parents=True, exist_ok=True)
        for name in prompt_names():
            with wave.open(str(folder / lang / f"{name}.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(b"\0\0" * RATE)
    return folder
