"""The screen spoken with its own words (daemon/ui/speech.py): what a person who cannot read
the screen hears when they touch "Listen", built from the real flow's views, in English and
Welsh; and the sound itself, from espeak-ng, into memory."""

from __future__ import annotations

import io
import shutil
import wave

import pytest

from daemon.flow import events as ev
from daemon.ui.audio import AudioPromptError
from daemon.ui.catalog import Catalogue
from daemon.ui.present import present
from daemon.ui.speech import Speaker, spoken_text
from tests.flow.kit import ALICE, DECLINED, PLAIN, STANDARD_ANSWERS, Run

CAT = Catalogue.load()


def said(run: Run) -> str:
    return spoken_text(present(run.view, CAT, seq=1), CAT)


def test_a_question_is_read_out_with_its_answers_in_the_persons_language() -> None:
    for lang, question, yes in (
        ("en", "Did you go to your course this week?", "Yes"),
        ("cy", "Aethoch chi i'ch cwrs yr wythnos hon?", "Ydw"),
    ):
        run = Run()
        run.identify(ALICE, lang=lang)
        run.send(ev.FingerResult, matched=True, score=150, threshold=60)
        run.photo()
        while (qid := run.view["question"]["id"]) != "course_attended":
            run.send(ev.Answer, question=qid, value=STANDARD_ANSWERS[qid])
        text = said(run)
        assert text.startswith(CAT.text(lang, "audio.questions"))
        assert question in text
        assert yes in text  # the answers to choose from are said too
        assert CAT.text("en" if lang == "cy" else "cy", "audio.questions") not in text


def test_the_officers_message_the_answers_and_the_appointment_are_read_out() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=150, threshold=60)
    run.photo()
    run.answer_all()
    assert "Bring your payslips." in said(run)
    run.read_messages()
    assert "Did you go to your course this week?" in said(run)  # confirm: each answer
    run.send(ev.Finish)
    run.commit_ok()
    text = said(run)
    assert "Room 2, ground floor" in text and "7 December" in text and "10:30" in text


def test_someone_who_declined_fingerprints_hears_that_this_is_their_way_in_their_language() -> None:
    for lang in ("en", "cy"):
        run = Run()
        run.identify(DECLINED, lang=lang)
        text = said(run)
        assert text.startswith(CAT.text(lang, "audio.photo"))
        assert CAT.text(lang, "photo.by_choice") in text
        assert CAT.text(lang, "fallback.no_template") not in text  # no "not yet"
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=150, threshold=60)
    assert CAT.text("en", "photo.by_choice") not in said(run)  # only theirs


def test_someone_struggling_hears_where_to_get_help_now() -> None:
    run = Run()
    run.identify(ALICE)
    run.send(ev.FingerResult, matched=True, score=150, threshold=60)
    run.photo()
    run.answer_all({"wellbeing": "struggling"})
    run.read_messages()
    run.send(ev.Finish)
    run.commit_ok()
    assert run.screen == "see_reception"
    text = said(run)
    assert "NHS 111" in text and "116 123" in text and "999" in text
    assert text.index("116 123") < text.index("Room 2")  # help first, then the appointment


def test_reception_says_why_and_whether_the_visit_was_recorded() -> None:
    run = Run()
    run.to_confirm(PLAIN)
    run.send(ev.Finish)
    run.send(ev.CommitFailed, commit_id=run.last_commit().commit_id, reason="disk_full")
    text = said(run)
    assert CAT.text("en", "reception.commit_failed") in text
    assert CAT.text("en", "reception.recorded") not in text  # never a false "recorded"
    flagged = Run()
    flagged.to_confirm(ALICE, police_contact="yes")
    flagged.send(ev.Finish)
    flagged.commit_ok()
    text = said(flagged)
    assert CAT.text("en", "reception.recorded") in text and "Room 2, ground floor" in text


def test_a_full_disk_is_explained_at_once_in_welsh_and_never_as_recorded() -> None:
    run = Run()
    run.send(ev.DiskSpace, level="full")
    run.send(ev.Start, lang="cy")
    text = said(run)
    assert text.startswith(CAT.text("cy", "audio.see_reception"))
    assert CAT.text("cy", "reception.disk_full") in text
    assert "Nid eich bai chi yw hyn" in text  # not your fault
    assert CAT.text("cy", "reception.recorded") not in text


needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs espeak-ng (hil/test_deps.sh installs it)"
)


def _seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 1
        return w.getnframes() / w.getframerate()


@needs_espeak
def test_the_words_become_a_wav_with_a_true_length_in_memory() -> None:
    speaker = Speaker()
    short = speaker.wav("Your next appointment.", "en")
    long = speaker.wav("Your next appointment is on Monday the seventh of December.", "en")
    assert short[:4] == b"RIFF" and 0.5 < _seconds(short) < _seconds(long) < 10
    assert len(long) == 44 + int(_seconds(long) * 22050) * 2  # sizes filled in: a duration
    assert speaker.wav("Your next appointment.", "en") is short  # said again: from memory
    assert _seconds(speaker.wav("Mae eich apwyntiad nesaf ddydd Llun.", "cy")) > 0.5


def test_without_espeak_the_speaker_says_so() -> None:
    speaker = Speaker()
    speaker._espeak = None
    with pytest.raises(AudioPromptError, match="espeak-ng is not installed"):
        speaker.wav("anything", "en")
