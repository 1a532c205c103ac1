"""HTTP through Ray Serve: ``POST /predict`` (one image, PNG or JSON) and ``GET /healthz``.

The deployment holds a :class:`~nercc.serving.frontend.Frontend` over worker actors started
beforehand; every request is one query, batched with its neighbours into coded groups.

Every answer that is not a 200 is JSON ``{"error": "<one line>"}``: 400 for a body that is not an
image of the classifier's shape (booleans, strings and non-finite values are not pixels), 413 for a
body over the limit (counted while it is read, chunked or not: the replica stops reading past the
limit, though Ray Serve's HTTP proxy still buffers what the client sends), 404 and 405 for other
routes and methods, 502 when the decoded logits are not finite (the model answered NaN or inf, or
decoding overflowed), 503 while the endpoint shuts down or no worker can compute a query
(``GET /healthz`` too, once the frontend knows every worker is down: a call to each failed and no
probe has answered since), 500 for anything else. The proxy's own answers are turned into JSON by
:class:`~nercc.serving.http_errors.JsonErrors` (on a local instance started by
:func:`~nercc.serving.cluster.ray_cluster`). The deployment keeps serving after any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from ray import serve
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from nercc.coding import CodingScheme
from nercc.serving.cluster import freeze_startup_heap
from nercc.serving.frontend import Frontend, NonFiniteOutputs, QueryFailed
from nercc.serving.hedging import hedge_note
from nercc.serving.images import MAX_BODY_BYTES, parse_image
from nercc.serving.plan import ENDPOINT_CPUS
from nercc.stragglers import WaitPolicy

__all__ = ["BodyTooLarge", "PredictEndpoint", "http_endpoint", "read_body"]

log = logging.getLogger(__name__)

APP_NAME = "nercc"

#: Seconds that the shutdown waits for the replica to answer what it holds.
DRAIN_TIMEOUT_S = 30.0


class BodyTooLarge(ValueError):
    """A request body over the limit (413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body of ``request``, read chunk by chunk; past ``limit`` bytes it stops reading.

    Raises
    ------
    BodyTooLarge
        The declared Content-Length, or the bytes received so far (a chunked body, or one longer
        than declared), exceed ``limit``.
    """
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body too large: {declared} bytes, at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body too large: more than {limit} bytes, at most {limit}")
        chunks.append(chunk)
    return b"".join(chunks)


class PredictEndpoint:
    """The Serve deployment's class: routes requests to a :class:`Frontend` built in its replica
    from ``frontend_args`` (workers, scheme, name, policy) and ``options`` (``max_wait_ms``,
    ``kill_every``, ``seed``, ``first_group``, ...), taking images of ``image_shape``
    (channels, height, width) in bodies of at most ``max_body_bytes``."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        *frontend_args: Any,
        max_body_bytes: int = MAX_BODY_BYTES,
        **options: Any,
    ) -> None:
        self.image_shape = tuple(image_shape)
        self.max_body_bytes = max_body_bytes
        self.closing = False
        self.frontend = Frontend(*frontend_args, image_shape=self.image_shape, **options)
        freeze_startup_heap()

    async def __call__(self, request: Request) -> JSONResponse:
        try:
            return await self._route(request)
        except Exception as error:  # a JSON 500, never the server's plain-text one
            log.exception("request %s %s failed", request.method, request.url.path)
            return _error(500, f"internal error: {type(error).__name__}: {error}")

    async def _route(self, request: Request) -> JSONResponse:
        path, method = request.url.path.rstrip("/") or "/", request.method
        if path == "/healthz":
            if method != "GET":
                return _error(405, f"use GET /healthz, got {method}")
            if self.closing:
                return _error(503, "shutting down")
            down = self.frontend.workers_down()
            if down and len(down) >= self.frontend.scheme.num_workers:
                return _error(
                    503, f"every worker is down ({len(down)} of {len(down)}): retry later"
                )
            return JSONResponse(self.health())
        if path != "/predict":
            return _error(404, f"no route {method} {path}: use POST /predict or GET /healthz")
        if method != "POST":
            return _error(405, f"use POST /predict with an image body, got {method}")
        if self.closing:
            return _error(503, "shutting down: the query was not taken")
        try:
            body = await read_body(request, self.max_body_bytes)
        except BodyTooLarge as error:
            return _error(413, str(error))
        except ClientDisconnect:
            return _error(400, "the client disconnected before sending the whole body")
        try:  # off the event loop: a large body must not stall the other requests
            image = await asyncio.to_thread(
                parse_image,
                body,
                request.headers.get("content-type"),
                self.image_shape,
                self.max_body_bytes,
            )
        except ValueError as error:
            return _error(400, str(error))
        try:
            future = self.frontend.submit(image)
        except RuntimeError:  # closed
            return _error(503, "shutting down: the query was not taken")
        try:
            answer = await asyncio.wrap_future(future)
        except NonFiniteOutputs as error:
            return _error(502, str(error))
        except QueryFailed as error:
            return _error(503, str(error))
        return JSONResponse(
            {
                "class": answer.prediction,
                "logits": [float(v) for v in answer.logits],
                "scheme": answer.scheme,
                "workers": list(answer.workers),
                "failed_workers": list(answer.failed),
                "group": answer.group,
                "underdetermined": answer.underdetermined,
                "flagged_workers": list(answer.flagged),
                "excluded_workers": list(answer.excluded),
            }
        )

    async def drain(self) -> dict[str, Any]:
        """Take no more queries (they get 503), answer those taken; return the frontend's
        counts: ``underdetermined_groups`` (decoded from fewer answers than inputs),
        ``flagged_by_worker`` (groups in which a screening decoder dropped each worker's
        answer), ``exclusions`` (``[group, worker]`` of each exclusion for lying) and
        ``hedging`` (:meth:`Frontend.hedge_summary`: empty but for hedged requests)."""
        self.closing = True
        await asyncio.to_thread(self.frontend.close)
        return {
            "underdetermined_groups": self.frontend.underdetermined_groups,
            "flagged_by_worker": self.frontend.flagged_by_worker,
            "exclusions": [list(pair) for pair in self.frontend.exclusions],
            "hedging": self.frontend.hedge_summary(),
        }

    def health(self) -> dict[str, Any]:
        scheme = self.frontend.scheme
        return {
            "status": "ok",
            "scheme": self.frontend.name,
            "num_inputs": scheme.num_inputs,
            "num_workers": scheme.num_workers,
            "image_shape": list(self.image_shape),
        }

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.frontend.close()


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(reason.split())}, status_code=status)


@contextlib.contextmanager
def http_endpoint(
    workers: list[Any],
    scheme: CodingScheme,
    name: str,
    policy: WaitPolicy,
    image_shape: tuple[int, int, int],
    host: str = "127.0.0.1",
    port: int = 8000,
    num_cpus: float = ENDPOINT_CPUS,
    shutdown: bool = True,
    max_body_bytes: int = MAX_BODY_BYTES,
    stats: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[str]:
    """Serve ``POST /predict`` and ``GET /healthz`` at ``http://<host>:<port>`` for the duration of
    the block (Ray must be initialised); yields the base URL. ``options`` go to the
    :class:`Frontend` (``max_wait_ms``, ``kill_every``, ``seed``, ``first_group`` (the first
    group's number: workers seed their delays by group), ...).

    At the end the replica stops taking queries (503) and answers those it holds, the
    application is deleted (the proxy then answers 503), and Serve is shut down when
    ``shutdown`` (a local instance; on a joined cluster, Serve may hold other people's
    applications). ``stats``, when given, receives the frontend's counts at the end (see
    :meth:`PredictEndpoint.drain`)."""
    serve.start(http_options={"host": host, "port": port})
    try:
        deployment = serve.deployment(PredictEndpoint, name="predict").options(
            ray_actor_options={"num_cpus": num_cpus}, max_ongoing_requests=1024
        )
        app = deployment.bind(
            tuple(image_shape), workers, scheme, name, policy, max_body_bytes=max_body_bytes,
            **options,
        )  # fmt: skip
        serve.run(app, name=APP_NAME, route_prefix="/")
        yield f"http://{host}:{port}"
    finally:
        with contextlib.suppress(Exception):
            handle = serve.get_app_handle(APP_NAME)
            counts = handle.drain.remote().result(timeout_s=DRAIN_TIMEOUT_S)
            if stats is not None:
                stats.update(counts)
            few = counts["underdetermined_groups"]
            if few:
                log.info(f"note: {few} groups were decoded from fewer answers than inputs (K)")
            flags = {w: c for w, c in enumerate(counts["flagged_by_worker"]) if c}
            if flags:
                named = ", ".join(f"worker {w}: {c}" for w, c in flags.items())
                log.info(f"note: groups whose {name} decoder dropped answers, by worker: {named}")
            for group, worker in counts["exclusions"]:
                log.info(f"note: worker {worker} was excluded for lying after group {group}")
            if counts["hedging"]:
                log.info(f"note: {name}: {hedge_note(counts['hedging'])}")
        with contextlib.suppress(Exception):
            serve.delete(APP_NAME)
        if shutdown:
            serve.shutdown()
