"""The local touchscreen UI server: Starlette over uvicorn, on 127.0.0.1 only.

Routes (all under ``/k/<token>/``, where ``token`` is the per-boot secret the daemon made and
passed to Chromium in the start URL; any other path, a wrong token or a Host header other
than 127.0.0.1/localhost gets 403):

- ``GET  /``            the page (index.html), ``app.js``, ``style.css``
- ``GET  events``       server-sent events: one ``data:`` line per view (see present.py);
                        a comment every 15 s keeps the line alive. The first event of a
                        connection also carries ``lost``: what the page shows, in both
                        languages, once it has failed to reach the daemon for
                        ``lost.after_s`` (it comes back by itself when the daemon does);
                        the page fetches the cover's spoken words (``audio/<lang>/lost.wav``)
                        then, and keeps them, to play them when Listen is touched on it
- ``POST tap``          ``{"action": .., "data": {..}}`` → the flow; 204, 400 (bad tap),
                        409 (the flow refused; body has the error ``reason``)
- ``POST heartbeat``    the page is alive; 204
- ``GET  health``       ``{"page_alive": bool, "heartbeat_age_s": float|null}`` for the shell
- ``GET  audio/<lang>/<screen>.wav``  the spoken prompt (404 if not generated); ``lost`` too
- ``GET  say.wav``          the screen shown now spoken, its own words included (503 without
  espeak-ng; the page then plays the fixed prompt)

Every response carries a strict Content-Security-Policy (``default-src 'self'``, no inline
script or style) so the page can make no request off the machine. Access logging is off (the
token is in every path).

May import: starlette, uvicorn, the standard library and daemon.*.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from daemon.clock import SystemClock
from daemon.errors import ConfigError, KioskError
from daemon.ui.audio import INSTALLED_DIR, LOST, LOST_KEYS, AudioPromptError
from daemon.ui.bridge import (
    ANY_SCREEN_ACTIONS,
    LANGS,
    Screen,
    TapRejected,
    UiBridge,
    check_tap,
)
from daemon.ui.catalog import Catalogue
from daemon.ui.heartbeat import HeartbeatWatch
from daemon.ui.present import present
from daemon.ui.speech import Speaker, spoken_text

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
AUDIO_DIR = INSTALLED_DIR  # made by install-kiosk.sh; the demo and tests pass their own
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
ALLOWED_HOSTS = frozenset({"127.0.0.1", "localhost"})
KEEPALIVE_S = 15.0
MAX_TAP_BYTES = 2048
LOOPBACK = "127.0.0.1"
#: how long the page may fail to reach the daemon (kiosk.service crashed, or stopped on a
#: configuration or device error) before it stops saying "please wait" and tells the person,
#: in Welsh and English, that it is not their fault and to go to reception
LOST_AFTER_S = 60.0
#: the catalogue strings the page keeps for that, in both languages: sent with the first
#: event of each connection, since nothing can be asked of a daemon that is gone (the words
#: shown, :data:`daemon.ui.audio.LOST_KEYS`, and the Listen button's)
LOST_WORDS = (*LOST_KEYS, "common.listen")

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
    Awaitable[None],
]


class UiBindError(ConfigError):
    """The UI server was asked to listen somewhere other than 127.0.0.1, or the port is
    taken. Fix ``[ui]`` in kiosk.toml (the UI never listens on the LAN)."""

    reason = "ui_bind"


def new_token() -> str:
    """A fresh per-boot token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


class _Guard:
    """ASGI middleware: token, Host check and security headers on every response."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.prefix = f"/k/{token}/"

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        host = b""
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value
        hostname = host.decode("latin-1").rsplit(":", 1)[0] if host else ""
        ok_path = hmac.compare_digest(path[: len(self.prefix)].encode(), self.prefix.encode())
        if scope["type"] != "http" or not ok_path or hostname not in ALLOWED_HOSTS:
            await _forbidden(send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _forbidden(send: Callable[[Any], Awaitable[None]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 403,
            "headers": [(b"content-type", b"text/plain"), *SECURITY_HEADERS],
        }
    )
    await send({"type": "http.response.body", "body": b"Forbidden\n"})


@dataclass
class UiState:
    """What the running app holds; ``closing`` ends every event stream (for shutdown)."""

    bridge: UiBridge
    catalogue: Catalogue
    watch: HeartbeatWatch
    closing: asyncio.Event
    streams: int = 0
    seq: int = 0
    #: ``{"after_s": .., "cy": {key: text}, "en": {..}}`` (:data:`LOST_WORDS`)
    lost: dict[str, Any] | None = None


def create_ui_app(
    bridge: UiBridge,
    *,
    token: str,
    static_dir: Path = STATIC_DIR,
    audio_dir: Path = AUDIO_DIR,
    catalogue: Catalogue | None = None,
    watch: HeartbeatWatch | None = None,
    lost_after_s: float = LOST_AFTER_S,
) -> Starlette:
    """Build the UI as an ASGI app. Reads the static files and catalogues now (raises
    CatalogueError / ConfigError if they are missing). ``watch`` defaults to one on the system
    clock; pass your own to share it with the daemon's health probe. ``lost_after_s``: how
    long the page waits, unable to reach the daemon, before it sends the person to reception
    (shorter in tests). The returned app's ``state.ui`` is the :class:`UiState`; wrap-free:
    the token guard is built in."""
    if len(token) < 16:
        raise ConfigError("the UI token must be at least 16 characters; use new_token()")
    catalogue = catalogue or Catalogue.load()
    files: dict[str, bytes] = {}
    for name in STATIC_FILES:
        try:
            files[name] = (static_dir / name).read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"UI file {name} is missing from {static_dir}; reinstall the kiosk UI",
            ) from exc
    state = UiState(
        bridge=bridge,
        catalogue=catalogue,
        watch=watch or HeartbeatWatch(SystemClock()),
        closing=asyncio.Event(),
        lost={
            "after_s": lost_after_s,
            **{lang: {k: catalogue.text(lang, k) for k in LOST_WORDS} for lang in sorted(LANGS)},
        },
    )

    async def static(request: Request) -> Response:
        name = request.path_params.get("name", "index.html")
        if name not in files:
            return Response("Not found\n", status_code=404, media_type="text/plain")
        return Response(files[name], media_type=STATIC_FILES[name])

    async def events(request: Request) -> Response:
        return StreamingResponse(
            _event_stream(state),
            media_type="text/event-stream",
            headers={"x-accel-buffering": "no"},
        )

    async def tap(request: Request) -> Response:
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return JSONResponse({"reason": "ui_tap_rejected"}, status_code=415)
        body = await request.body()
        if len(body) > MAX_TAP_BYTES:
            return JSONResponse({"reason": "ui_tap_rejected"}, status_code=413)
        try:
            parsed = json.loads(body)
            if not isinstance(parsed, dict):
                raise TapRejected("a tap is a JSON object; reload the kiosk page")
            action, data = check_tap(parsed.get("action"), parsed.get("data"))
            seen = parsed.get("screen")
            if seen is not None and not isinstance(seen, str):
                raise TapRejected("a tap's screen is a screen name; reload the kiosk page")
        except (ValueError, TapRejected) as exc:
            reason = exc.reason if isinstance(exc, TapRejected) else "ui_tap_rejected"
            return JSONResponse({"reason": reason}, status_code=400)
        if seen is not None and action not in ANY_SCREEN_ACTIONS:
            shown = state.bridge.current_view().get("screen")
            if seen != shown:
                # made on a screen that has gone: a double tap, or a tap just as the screen
                # changed, must not act on the next screen the person has not read yet
                log.debug("dropped a %s tap made on %s (now %s)", action, seen, shown)
                return JSONResponse({"reason": "stale_tap"}, status_code=409)
        try:
            await state.bridge.tap(action, data)
        except KioskError as exc:
            log.warning("the flow refused a %s tap: %s", action, exc.reason)
            return JSONResponse({"reason": exc.reason}, status_code=409)
        return Response(status_code=204)

    async def heartbeat(request: Request) -> Response:
        state.watch.beat()
        state.bridge.ui_heartbeat()
        return Response(status_code=204)

    async def health(request: Request) -> Response:
        return JSONResponse(
            {"page_alive": not state.watch.stale(), "heartbeat_age_s": state.watch.age_s()}
        )

    async def audio(request: Request) -> Response:
        lang = request.path_params["lang"]
        screen = request.path_params["screen"]
        if lang not in LANGS or screen not in {*(s.value for s in Screen), LOST}:
            return Response("Not found\n", status_code=404, media_type="text/plain")
        path = audio_dir / lang / f"{screen}.wav"
        try:
            data = path.read_bytes()
        except OSError:
            return Response("Not found\n", status_code=404, media_type="text/plain")
        return Response(data, media_type="audio/wav")

    speaker = Speaker()

    async def say(request: Request) -> Response:
        """The screen shown now, spoken: its prompt and its own words (daemon/ui/speech.py).
        Built from the current view, not from anything the page sends."""
        msg = present(state.bridge.current_view(), state.catalogue, seq=state.seq)
        text = spoken_text(msg, state.catalogue)
        try:
            data = await asyncio.to_thread(speaker.wav, text, str(msg["lang"]))
        except AudioPromptError as exc:  # the page falls back to the fixed prompt
            log.warning("spoken words unavailable: %s", exc.reason)
            return Response("Not available\n", status_code=503, media_type="text/plain")
        return Response(data, media_type="audio/wav")  # no-store: the guard says so for all

    p = "/k/{token}/"
    app = Starlette(
        routes=[
            Route(p, static, methods=["GET"]),
            Route(p + "events", events, methods=["GET"]),
            Route(p + "tap", tap, methods=["POST"]),
            Route(p + "heartbeat", heartbeat, methods=["POST"]),
            Route(p + "health", health, methods=["GET"]),
            Route(p + "audio/{lang}/{screen}.wav", audio, methods=["GET"]),
            Route(p + "say.wav", say, methods=["GET"]),
            Route(p + "{name}", static, methods=["GET"]),
        ]
    )
    app.state.ui = state
    app.add_middleware(_GuardFactory, token=token)
    return app


class _GuardFactory(_Guard):
    """Starlette's add_middleware calls ``cls(app, **kwargs)``."""


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def _event_stream(state: UiState) -> AsyncIterator[bytes]:
    """One connection's events: the current view, then one per state change, until the
    client goes (Starlette cancels us) or the server closes (``state.closing``)."""
    updates = state.bridge.subscribe()
    state.streams += 1
    pending: asyncio.Future[dict[str, Any]] | None = None
    closing: asyncio.Future[Any] = asyncio.ensure_future(state.closing.wait())
    try:
        state.seq += 1
        first = present(state.bridge.current_view(), state.catalogue, seq=state.seq)
        yield _sse({**first, "lost": state.lost})
        while not state.closing.is_set():
            if pending is None:
                pending = asyncio.ensure_future(anext(updates))
            waiting: set[asyncio.Future[Any]] = {pending, closing}
            done, _ = await asyncio.wait(
                waiting, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED
            )
            if pending in done:
                try:
                    view = pending.result()
                except StopAsyncIteration:
                    return
                pending = None
                state.seq += 1
                yield _sse(present(view, state.catalogue, seq=state.seq))
            elif not done:
                yield b": keepalive\n\n"
    finally:
        state.streams -= 1
        closing.cancel()
        if pending is not None:
            pending.cancel()
        aclose = getattr(updates, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: SIGTERM belongs to the daemon's own loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class UiServer:
    """A running UI server. ``port`` is the real port (useful when 0 was asked)."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int
    state: UiState

    def url(self, token: str) -> str:
        """The start URL to give Chromium."""
        return f"http://{LOOPBACK}:{self.port}/k/{token}/"

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop serving: end the event streams, stop uvicorn, wait up to ``timeout_s``.
        Idempotent."""
        self.state.closing.set()
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.task), timeout=timeout_s)
        if not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def serve_ui(app: Starlette, port: int, *, host: str = LOOPBACK) -> UiServer:
    """Serve ``app`` on 127.0.0.1:``port`` (0 = any free port) in a task of the running loop;
    returns once the socket is listening. ``host`` exists only to be refused: anything but
    127.0.0.1 raises UiBindError, as does a port already in use."""
    if host != LOOPBACK:
        raise UiBindError(
            f"the kiosk UI listens on {LOOPBACK} only, not {host!r}; remove ui.host from the "
            "configuration",
        )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
    except OSError as exc:
        sock.close()
        raise UiBindError(
            f"cannot listen on {LOOPBACK}:{port} ({exc.strerror}); stop whatever uses the port "
            "or choose another ui.port",
        ) from exc
    sock.listen(64)
    sock.setblocking(False)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        ws="none",
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise UiBindError("the UI server stopped while starting; see the log")
        await asyncio.sleep(0.005)
    state: UiState = app.state.ui
    return UiServer(server=server, task=task, port=sock.getsockname()[1], state=state)
