"""Every error answer of the HTTP endpoint is JSON ``{"error": "<one line>"}``.

The deployment answers its own errors in JSON; this ASGI middleware runs in Ray Serve's HTTP proxy
and turns the proxy's own answers into JSON as well:

- a plain-text 404 of the proxy means that no application is routed (the endpoint is starting or
  shutting down: it routes every path itself): 503;
- a request that the proxy could not answer (the replica died while handling it: Ray's proxy then
  sends nothing, and the HTTP server a plain-text 500): a JSON 500;
- any other plain-text error (a 503 of an unavailable deployment, a 408 timeout): the same status,
  its text as the error.

Ray Serve (2.60) loads the proxy's middleware from the import path in the environment variable
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` of the proxy's process: :func:`ray_cluster
<nercc.serving.cluster.ray_cluster>` sets it to :func:`proxy_middlewares` for a local instance
(unless it is set already). A cluster joined with ``serving.address`` has the environment it was
started with: start it with that variable set for the same answers.

This module imports only the standard library (and Starlette, in :func:`proxy_middlewares`): the
proxy process imports it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["PROXY_CALLBACK", "PROXY_CALLBACK_ENV", "JsonErrors", "error_body", "proxy_middlewares"]

#: The environment variable with the import path of the proxy's middleware callback.
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"

#: The import path of :func:`proxy_middlewares`.
PROXY_CALLBACK = "nercc.serving.http_errors.proxy_middlewares"

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

#: The answer when no application is routed.
UNAVAILABLE = "the service is not available (starting or shutting down): retry later"

#: The answer when the proxy got no answer from the replica.
NO_ANSWER = "internal error: the request was not answered (its replica failed): retry"

#: Headers of a plain error kept in its JSON version.
KEPT_HEADERS = (b"retry-after",)


def proxy_middlewares() -> list[Any]:
    """The middleware of Ray Serve's HTTP proxy (called there, through ``PROXY_CALLBACK_ENV``)."""
    from starlette.middleware import Middleware

    return [Middleware(JsonErrors)]


def error_body(reason: str) -> bytes:
    """The JSON body ``{"error": reason}`` of an error answer, the reason on one line."""
    return json.dumps({"error": " ".join(str(reason).split())}).encode()


class JsonErrors:
    """ASGI middleware: error answers (status >= 400) that are not JSON are sent as JSON, and a
    request left unanswered gets a JSON 500 (see the module's docstring)."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Message, receive: Any, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = False
        held: Message | None = None  # the start of a plain error answer, sent as JSON instead
        chunks: list[bytes] = []

        async def relay(message: Message) -> None:
            nonlocal started, held
            kind = message.get("type")
            if kind == "http.response.start":
                started = True
                headers = dict(message.get("headers") or [])
                plain = not headers.get(b"content-type", b"").startswith(b"application/json")
                if message.get("status", 200) >= 400 and plain:
                    held = message
                    return
            elif kind == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    text = b"".join(chunks).decode(errors="replace").strip()
                    await _send_error(send, *_translate(held["status"], text), held)
                return
            await send(message)

        try:
            await self.app(scope, receive, relay)
        except Exception as error:
            if started and held is None:  # the client has a start already: nothing to mend
                raise
            # nothing sent yet (a plain error's start is held back, never sent): a JSON 500
            await _send_error(send, 500, f"internal error: {error}" if str(error) else NO_ANSWER)
            return
        if not started:
            await _send_error(send, 500, NO_ANSWER)


def _translate(status: int, text: str) -> tuple[int, str]:
    if status == 404:  # the endpoint answers every path itself: nothing is routed
        return 503, UNAVAILABLE
    return status, text or f"HTTP {status}"


async def _send_error(send: Send, status: int, reason: str, start: Message | None = None) -> None:
    body = error_body(reason)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if start is not None:
        headers += [(k, v) for k, v in start.get("headers") or [] if k.lower() in KEPT_HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
