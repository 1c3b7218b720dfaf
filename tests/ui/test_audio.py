"""Spoken prompts: every screen in English and Welsh, made offline by espeak-ng."""

from __future__ import annotations

import re
import shutil
import wave
from pathlib import Path

import pytest

from daemon.ui.audio import AudioPromptError, generate, prompt_text, wav_seconds
from daemon.ui.bridge import Screen
from daemon.ui.catalog import LOCALE_DIR, Catalogue

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed: run hil/test_deps.sh"
)


def test_every_screen_has_a_prompt_in_both_languages(tmp_path: Path) -> None:
    """Each screen, and the cover shown when the daemon cannot be reached ("lost")."""
    prompts = generate(tmp_path)
    assert {(p.lang, p.screen) for p in prompts} == {
        (lang, s) for lang in ("en", "cy") for s in [*(s.value for s in Screen), "lost"]
    }
    for p in prompts:
        assert p.path == tmp_path / p.lang / f"{p.screen}.wav"
        with wave.open(str(p.path)) as w:
            assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        # About 150 words a minute: a prompt of 8+ words lasts seconds, not a click.
        assert 2.0 < p.seconds < 30.0, (p.lang, p.screen, p.seconds)
    # The Welsh voice really speaks the Welsh words: different audio from the English.
    en = (tmp_path / "en" / "idle.wav").read_bytes()
    assert en != (tmp_path / "cy" / "idle.wav").read_bytes()


def test_rerun_only_redoes_changed_words(tmp_path: Path) -> None:
    generate(tmp_path / "out")
    assert not any(p.regenerated for p in generate(tmp_path / "out"))
    shutil.copytree(LOCALE_DIR, tmp_path / "locale")
    cy = tmp_path / "locale" / "cy" / "LC_MESSAGES" / "kiosk.po"
    cy.write_text(cy.read_text(encoding="utf-8").replace("Modd staff.", "Modd staff yn unig."))
    again = generate(tmp_path / "out", Catalogue.load(tmp_path / "locale"))
    assert [(p.lang, p.screen) for p in again if p.regenerated] == [("cy", "staff")]


def test_a_missing_prompt_text_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    shutil.copytree(LOCALE_DIR, tmp_path / "locale")
    en = tmp_path / "locale" / "en" / "LC_MESSAGES" / "kiosk.po"
    text = en.read_text(encoding="utf-8")
    en.write_text(re.sub(r'(msgid "audio.photo"\nmsgstr )"[^"]*"', r'\1""', text))
    with pytest.raises(AudioPromptError, match=r"no audio.photo text in the en catalogue"):
        generate(tmp_path / "out", Catalogue.load(tmp_path / "locale"))


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    with pytest.raises(AudioPromptError, match="not a readable WAV"):
        wav_seconds(bad)


def test_the_lost_cover_speaks_the_words_it_shows(tmp_path: Path) -> None:
    """ "lost" is not a screen with an audio.* text of its own: it says what the cover shows,
    in each language, so the spoken and written words cannot drift apart."""
    cat = Catalogue.load()
    for lang in ("cy", "en"):
        text = prompt_text(cat, lang, "lost")
        assert text.startswith(cat.text(lang, "reception.title") + ". ")
        assert text.endswith(cat.text(lang, "reception.fault"))
