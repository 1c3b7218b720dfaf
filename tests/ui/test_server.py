"""The UI server on a real loopback socket: token, Host check, CSP, taps, events, shutdown."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from daemon.clock import FakeClock
from daemon.errors import KioskError
from daemon.ui.catalog import Catalogue
from daemon.ui.heartbeat import HeartbeatWatch
from daemon.ui.present import present, spell_datetime
from daemon.ui.preview import PreviewBridge
from daemon.ui.server import UiBindError, UiServer, create_ui_app, new_token, serve_ui


class Served:
    def __init__(self, server: UiServer, bridge: PreviewBridge, token: str) -> None:
        self.server, self.bridge, self.token = server, bridge, token
        self.base = f"http://127.0.0.1:{server.port}"
        self.url = server.url(token)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    bridge = PreviewBridge()
    token = new_token()
    (tmp_path / "cy").mkdir()
    (tmp_path / "cy" / "idle.wav").write_bytes(b"RIFF-test")
    app = create_ui_app(bridge, token=token, audio_dir=tmp_path)
    server = await serve_ui(app, 0)
    try:
        yield Served(server, bridge, token)
    finally:
        await server.close()


async def test_listens_on_loopback_only(served: Served) -> None:
    sock = served.server.server.servers[0].sockets[0]
    assert sock.getsockname()[0] == "127.0.0.1"
    with pytest.raises(UiBindError, match=r"listens on 127.0.0.1 only"):
        await serve_ui(create_ui_app(PreviewBridge(), token=new_token()), 0, host="0.0.0.0")
    with pytest.raises(UiBindError, match=r"choose another ui\.port"):
        await serve_ui(create_ui_app(PreviewBridge(), token=new_token()), served.server.port)


async def test_the_token_is_required_everywhere(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        ok = await client.get(served.url)
        assert ok.status_code == 200 and b"<main" in ok.content
        for path in [
            "/",
            "/k/",
            "/k/wrong-token-wrong-token/",
            f"/k/{served.token}x/",
            f"/k/{served.token[:-1]}/events",
            "/favicon.ico",
        ]:
            response = await client.get(served.base + path)
            assert response.status_code == 403, path
        bad_tap = await client.post(
            served.base + "/k/not-the-token-at-all/tap", json={"action": "start"}
        )
        assert bad_tap.status_code == 403
    assert served.bridge.taps == []


async def test_another_host_name_is_refused(served: Served) -> None:
    # A web page elsewhere resolving its own name to 127.0.0.1 (DNS rebinding).
    async with httpx.AsyncClient() as client:
        response = await client.get(served.url, headers={"host": "evil.example:80"})
    assert response.status_code == 403


async def test_every_response_carries_a_strict_csp(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        for name in ["", "app.js", "style.css", "favicon.svg", "health", "nope"]:
            response = await client.get(served.url + name)
            csp = response.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp, name
            assert response.headers["x-content-type-options"] == "nosniff"
        forbidden = await client.get(served.base + "/")
        assert "default-src 'self'" in forbidden.headers["content-security-policy"]


async def test_page_assets_reference_nothing_outside_the_machine(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        for name in ["", "app.js", "style.css"]:
            body = (await client.get(served.url + name)).text
            assert "http://" not in body and "https://" not in body and "//" + "cdn" not in body


async def _next_event(lines: AsyncIterator[str]) -> dict[str, object]:
    async for line in lines:
        if line.startswith("data: "):
            parsed: dict[str, object] = json.loads(line[6:])
            return parsed
    raise AssertionError("stream ended")


async def test_events_push_each_new_view_and_taps_reach_the_flow(served: Served) -> None:
    async with (
        httpx.AsyncClient(timeout=5) as client,
        client.stream("GET", served.url + "events") as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        first = await _next_event(lines)
        assert first["screen"] == "idle" and first["lang"] == "en"
        assert isinstance(first["text"], dict) and first["text"]["idle.title"] == "Check in here"
        assert isinstance(first["alt"], dict) and first["alt"]["idle.title"] == "Cofrestrwch yma"
        tap = await client.post(
            served.url + "tap", json={"action": "start", "data": {"lang": "cy"}}
        )
        assert tap.status_code == 204
        second = await _next_event(lines)
        assert second["screen"] == "identify" and second["lang"] == "cy"
        assert isinstance(second["text"], dict)
        assert second["text"]["identify.title"] == "Teipiwch eich cyfeirnod achos"
        assert second["alt"] == {}
    assert served.bridge.taps == [("start", {"lang": "cy"})]


async def test_the_first_event_carries_what_to_say_if_the_daemon_goes_away() -> None:
    """Sent while the daemon is here, since nothing can be asked of it once it has gone: the
    reception words in both languages (a person may read either), and when to show them."""
    token, cat = new_token(), Catalogue.load()
    server = await serve_ui(create_ui_app(PreviewBridge(), token=token, lost_after_s=7.5), 0)
    try:
        async with (
            httpx.AsyncClient(timeout=5) as client,
            client.stream("GET", server.url(token) + "events") as stream,
        ):
            lines = stream.aiter_lines()
            first = await _next_event(lines)
            assert first["lost"] == {
                "after_s": 7.5,
                **{
                    lang: {
                        k: cat.text(lang, k)
                        for k in ("reception.title", "reception.fault", "common.listen")
                    }
                    for lang in ("cy", "en")
                },
            }
            assert "not your fault" in str(first["lost"])  # the words for a machine fault
            tap = await client.post(
                server.url(token) + "tap", json={"action": "start", "data": {"lang": "en"}}
            )
            assert tap.status_code == 204
            assert "lost" not in await _next_event(lines)  # once per connection is enough
    finally:
        await server.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"action": "format_disk"}, 400),
        ({"action": "start", "data": {"lang": "fr"}}, 400),
        ({"action": "key", "data": {"digit": "12"}}, 400),
        ({"action": "key", "data": {"digit": {"nested": 1}}}, 400),
        ({"action": "help", "data": {f"f{i}": i for i in range(9)}}, 400),
        (["start"], 400),
    ],
)
async def test_malformed_taps_are_rejected(served: Served, body: object, status: int) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(served.url + "tap", json=body)
    assert response.status_code == status
    assert response.json()["reason"] == "ui_tap_rejected"
    assert served.bridge.taps == []


async def test_a_tap_made_on_a_screen_that_has_gone_is_dropped(served: Served) -> None:
    """A double tap, or a tap just as the screen changes, must not act on a screen the person
    has not seen yet; "help" and the other any-screen taps still count."""
    async with httpx.AsyncClient() as client:
        tap = served.url + "tap"
        start = {"action": "start", "data": {"lang": "en"}, "screen": "idle"}
        assert (await client.post(tap, json=start)).status_code == 204
        again = await client.post(tap, json=start)  # the same tap, bounced: idle has gone
        assert (again.status_code, again.json()) == (409, {"reason": "stale_tap"})
        stale_key = {"action": "key", "data": {"digit": "1"}, "screen": "idle"}
        assert (await client.post(tap, json=stale_key)).status_code == 409
        key = {"action": "key", "data": {"digit": "1"}, "screen": "identify"}
        assert (await client.post(tap, json=key)).status_code == 204
        help_ = await client.post(tap, json={"action": "help", "screen": "idle"})
        assert help_.status_code == 204
        bad = await client.post(tap, json={"action": "help", "screen": ["identify"]})
        assert bad.status_code == 400
    assert served.bridge.taps == [("start", {"lang": "en"}), ("key", {"digit": "1"}), ("help", {})]


async def test_a_tap_must_be_json(served: Served) -> None:
    # A plain HTML form elsewhere cannot send application/json without CORS preflight.
    async with httpx.AsyncClient() as client:
        response = await client.post(served.url + "tap", data={"action": "start"})
    assert response.status_code == 415


async def test_the_flow_refusing_a_tap_returns_its_reason(served: Served) -> None:
    class Refusing(PreviewBridge):
        async def tap(self, action: str, data: object) -> None:
            raise KioskError("the flow is busy; try again", reason="flow_busy")

    token = new_token()
    server = await serve_ui(create_ui_app(Refusing(), token=token), 0)
    try:
        async with httpx.AsyncClient() as client:
            response = await client.post(server.url(token) + "tap", json={"action": "help"})
        assert (response.status_code, response.json()) == (409, {"reason": "flow_busy"})
    finally:
        await server.close()


async def test_heartbeats_reach_the_daemon_and_health_reports_them() -> None:
    clock = FakeClock()
    watch = HeartbeatWatch(clock, stale_after_s=15, start_grace_s=30)
    bridge = PreviewBridge()
    token = new_token()
    server = await serve_ui(create_ui_app(bridge, token=token, watch=watch), 0)
    url = server.url(token)
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(url + "health")).json()["page_alive"] is True
            clock.advance(31)
            assert (await client.get(url + "health")).json()["page_alive"] is False
            assert (await client.post(url + "heartbeat", json={})).status_code == 204
            assert (await client.get(url + "health")).json() == {
                "page_alive": True,
                "heartbeat_age_s": 0.0,
            }
            clock.advance(16)
            assert (await client.get(url + "health")).json()["page_alive"] is False
        assert bridge.heartbeats == 1
    finally:
        await server.close()


async def test_audio_is_served_only_for_known_screens(served: Served) -> None:
    async with httpx.AsyncClient() as client:
        ok = await client.get(served.url + "audio/cy/idle.wav")
        assert (ok.status_code, ok.content) == (200, b"RIFF-test")
        assert ok.headers["content-type"] == "audio/wav"
        for path in ["audio/en/idle.wav", "audio/fr/idle.wav", "audio/cy/..%2Fx.wav"]:
            assert (await client.get(served.url + path)).status_code == 404, path


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (test_deps.sh)")
async def test_say_speaks_the_screen_shown_now_and_is_never_cached(served: Served) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        idle = await client.get(served.url + "say.wav?seq=1")
        assert idle.status_code == 200 and idle.headers["content-type"] == "audio/wav"
        assert idle.headers["cache-control"] == "no-store"  # an officer's message, perhaps
        assert idle.content[:4] == b"RIFF"
        await served.bridge.tap("start", {"lang": "cy"})  # the next screen, in Welsh
        identify = await client.get(served.url + "say.wav?seq=2")
        assert identify.status_code == 200 and identify.content != idle.content


async def test_without_a_speech_engine_say_answers_503_and_the_page_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("daemon.ui.speech.shutil.which", lambda _name: None)
    token = new_token()
    server = await serve_ui(create_ui_app(PreviewBridge(), token=token, audio_dir=tmp_path), 0)
    try:
        async with httpx.AsyncClient() as client:
            r = await client.get(server.url(token) + "say.wav")
            assert r.status_code == 503
    finally:
        await server.close()
    page = (Path(__file__).resolve().parents[2] / "daemon/ui/static/app.js").read_text()
    assert "audio.onerror" in page and "say.wav?seq=" in page


async def test_close_ends_open_event_streams_promptly(served: Served) -> None:
    async with (
        httpx.AsyncClient(timeout=5) as client,
        client.stream("GET", served.url + "events") as stream,
    ):
        await _next_event(stream.aiter_lines())
        assert served.server.state.streams == 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        await served.server.close()
        assert loop.time() - started < 3.0
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", served.server.port), 1):
        pass


def test_dates_are_spelled_from_the_catalogue() -> None:
    cat = Catalogue.load()
    assert spell_datetime("2026-11-30T10:30", "en", cat) == "Monday 30 November 2026 at 10:30"
    assert spell_datetime("2026-11-30T10:30", "cy", cat) == "Dydd Llun 30 Tachwedd 2026 am 10:30"
    assert spell_datetime("2027-03-04", "cy", cat) == "Dydd Iau 4 Mawrth 2027"
    assert spell_datetime("next Tuesday", "en", cat) == ""
    # The roster sends UTC; a person reads UK time (British Summer Time in July).
    assert spell_datetime("2026-07-01T09:00:00Z", "en", cat) == "Wednesday 1 July 2026 at 10:00"
    assert spell_datetime("2026-12-07T10:30:00Z", "cy", cat) == "Dydd Llun 7 Rhagfyr 2026 am 10:30"


def test_an_unknown_screen_becomes_see_reception_not_a_blank_page() -> None:
    msg = present({"screen": "warp_drive", "lang": "cy"}, Catalogue.load(), seq=1)
    assert (msg["screen"], msg["view"]["reason"], msg["lang"]) == ("see_reception", "fault", "cy")


def test_bilingual_view_fields_are_picked_in_the_current_language(
    caplog: pytest.LogCaptureFixture,
) -> None:
    view = {
        "screen": "questions",
        "lang": "cy",
        "question": {"id": "q", "text": {"en": "Moved?", "cy": "Symud?"}},
        "message": {"text": {"en": "Hello"}},
    }
    derived = present(view, Catalogue.load(), seq=1)["derived"]
    assert derived["question"] == "Symud?"
    # A roster text without Welsh is shown in English rather than not at all, and logged.
    assert derived["message"] == "Hello"
    assert "has no cy version" in caplog.text
