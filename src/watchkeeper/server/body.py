"""Request bodies: gzip-compressed bodies decompressed before the route sees them, and every body bounded in
size (413 past the bound, compressed or not: a small gzip bomb is refused as it inflates, not after)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY = 64 * 1024 * 1024


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: refuse bodies over ``max_body`` bytes (after decompression) with 413, and inflate
    ``Content-Encoding: gzip`` (or ``deflate``) request bodies."""

    def __init__(self, app: ASGIApp, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        encoding = headers.get(b"content-encoding", b"identity").decode("latin-1").strip().lower()
        if encoding not in ("identity", "gzip", "deflate"):
            await _reply(
                send, 415, f"Content-Encoding {encoding!r} is not supported (gzip, deflate, identity)"
            )
            return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _reply(
                send, 413, f"request body of {int(length)} bytes is over the limit of {self.max_body}"
            )
            return
        chunks: list[bytes] = []
        size = 0
        inflate = (
            zlib.decompressobj(wbits=31 if encoding == "gzip" else 15) if encoding != "identity" else None
        )
        more = True
        try:
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                data = message.get("body", b"")
                more = message.get("more_body", False)
                if inflate is not None:
                    data = inflate.decompress(data, self.max_body + 1 - size)
                    if inflate.unconsumed_tail:
                        size = self.max_body + 1
                size += len(data)
                if size > self.max_body:
                    await _reply(send, 413, f"request body is over the limit of {self.max_body} bytes")
                    return
                chunks.append(data)
            if inflate is not None and not inflate.eof:
                await _reply(send, 400, f"the {encoding} body is truncated")
                return
        except zlib.error as exc:
            await _reply(send, 400, f"the body is not valid {encoding}: {exc}")
            return
        body = b"".join(chunks)
        if inflate is not None:
            scope = dict(scope)
            scope["headers"] = [
                (k, v)
                for k, v in scope.get("headers", [])
                if k.lower() not in (b"content-encoding", b"content-length")
            ] + [(b"content-length", str(len(body)).encode())]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
