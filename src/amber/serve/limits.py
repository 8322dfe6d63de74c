"""An ASGI middleware in front of KServe's REST app: bounded request bodies (400), a bound
on requests in flight (429) and a per-request timeout (504), each answered with a JSON
``{"error": ...}`` as the protocol's other errors are."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from .metrics import METRICS

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Limits:
    def __init__(self, app: Any, max_request_bytes: int, max_in_flight: int,
                 timeout_s: float) -> None:
        self.app, self.max_bytes = app, max_request_bytes
        self.max_in_flight, self.timeout = max_in_flight, timeout_s
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            METRICS.rejected.labels(reason="busy").inc()
            await _error(send, 429, f"the server has {self.in_flight} requests in flight "
                         f"(--max-in-flight {self.max_in_flight}); retry later")
            return
        self.in_flight += 1
        METRICS.in_flight.inc()
        try:
            body = await self._read(scope, receive, send)
            if body is not None and await self._json_ok(scope, body, send):
                await self._run(scope, body, send)
        finally:
            self.in_flight -= 1
            METRICS.in_flight.dec()

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None after answering 400 when it exceeds the limit."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= self.max_bytes:
                chunks.append(chunk)
            elif chunks:
                chunks = []  # NOTE: the rest is read and dropped: clients expect to finish
            if not message.get("more_body", False):  # sending before they read the answer
                break
        if size > self.max_bytes:
            await self._too_large(send, size)
            return None
        return b"".join(chunks)

    async def _json_ok(self, scope: Scope, body: bytes, send: Send) -> bool:
        """A body without the binary-data extension's header is JSON (as Triton reads
        it, whatever its content type says): malformed JSON gets 400 here."""
        headers = dict(scope.get("headers", []))
        if b"inference-header-content-length" in headers:
            return True
        try:
            json.loads(body)
        except ValueError as e:
            METRICS.rejected.labels(reason="malformed").inc()
            await _error(send, 400, f"the request body is not valid JSON: {e}")
            return False
        headers[b"content-type"] = b"application/json"
        scope["headers"] = list(headers.items())
        return True

    async def _too_large(self, send: Send, size: int) -> None:
        METRICS.rejected.labels(reason="too_large").inc()
        await _error(send, 400, f"the request body has {size} bytes, more than the server "
                     f"accepts ({self.max_bytes} bytes, --max-request-bytes)")

    async def _run(self, scope: Scope, body: bytes, send: Send) -> None:
        started = False
        done = False

        async def replay() -> dict[str, Any]:
            nonlocal done
            if done:
                await asyncio.Event().wait()  # NOTE: the body was sent; wait for cancel
            done = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, replay, tracked), self.timeout)
        except TimeoutError:
            METRICS.rejected.labels(reason="timeout").inc()
            if not started:
                await _error(send, 504, f"the request took longer than {self.timeout:g} s "
                             f"(--timeout)")
