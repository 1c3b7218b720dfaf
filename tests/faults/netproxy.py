"""A fault-injecting TCP proxy on loopback, between the kiosk's sync client and the API.

Each new connection draws one behaviour from a seeded plan: pass through, reset before or
after the request, drop the connection part-way through the response, stall (until the
client's timeout), trickle bytes slowly, or answer garbage instead of a TLS handshake. TLS is
end to end (the proxy never sees plaintext), so what the client experiences is exactly what a
flaky network does to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field

BEHAVIOURS = ("pass", "reset_early", "reset_late", "drop_mid_response", "stall", "slow", "garbage")


@dataclass
class FaultPlan:
    """Weights of each behaviour; ``pass`` should dominate or nothing gets through."""

    weights: dict[str, float] = field(
        default_factory=lambda: {
            "pass": 0.55,
            "reset_early": 0.08,
            "reset_late": 0.1,
            "drop_mid_response": 0.1,
            "stall": 0.04,
            "slow": 0.08,
            "garbage": 0.05,
        }
    )
    stall_s: float = 3.0
    seed: int = 1


class FaultProxy:
    def __init__(self, target_port: int, plan: FaultPlan | None = None) -> None:
        self.target_port = target_port
        self.plan = plan or FaultPlan()
        self.rng = random.Random(self.plan.seed)
        self.seen: Counter[str] = Counter()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def _choose(self) -> str:
        names = list(self.plan.weights)
        return self.rng.choices(names, weights=[self.plan.weights[n] for n in names])[0]

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        behaviour = self._choose()
        self.seen[behaviour] += 1
        sw: asyncio.StreamWriter | None = None
        try:
            if behaviour == "reset_early":
                self._reset(cw)
                return
            if behaviour == "garbage":
                await cr.read(1024)
                cw.write(b"HTTP/1.1 200 OK\r\n\r\nnot tls at all" * 3)
                await cw.drain()
                return
            sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
            up = asyncio.create_task(self._pipe(cr, sw, behaviour, upstream=True))
            down = asyncio.create_task(self._pipe(sr, cw, behaviour, upstream=False))
            try:
                await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for p in (up, down):
                    p.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await p
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (sw, cw):
                if w is not None:
                    w.transport.abort()
            self._tasks.discard(task)

    async def _pipe(
        self, r: asyncio.StreamReader, w: asyncio.StreamWriter, behaviour: str, *, upstream: bool
    ) -> None:
        moved = 0
        budget = self.rng.randint(200, 4000)
        # even a healthy connection does not live for ever (NAT and proxy time-outs)
        lifetime = self.rng.randint(100_000, 400_000)
        while data := await r.read(4096):
            if not upstream:
                if behaviour == "stall" and moved > 0:
                    await asyncio.sleep(self.plan.stall_s)
                    self._reset(w)
                    return
                if behaviour == "drop_mid_response" and moved + len(data) > budget:
                    w.write(data[: max(0, budget - moved)])
                    await w.drain()
                    self._reset(w)
                    return
                if behaviour == "reset_late" and moved > budget:
                    self._reset(w)
                    return
                if behaviour == "slow":
                    for i in range(0, len(data), 512):
                        w.write(data[i : i + 512])
                        await w.drain()
                        await asyncio.sleep(0.01)
                    moved += len(data)
                    continue
            if behaviour in ("pass", "slow") and moved > lifetime:
                self.seen["lifetime_reset"] += 1
                self._reset(w)
                return
            w.write(data)
            await w.drain()
            moved += len(data)
