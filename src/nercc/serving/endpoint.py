"""HTTP through Ray Serve: ``POST /predict`` (one image, PNG or JSON) and ``GET /healthz``.

The deployment holds a :class:`~nercc.serving.frontend.Frontend` over worker actors started
beforehand; every request is one query, batched with its neighbours into coded groups. A body
that is not an image of the classifier's shape gets a 400 with a one-line reason; the deployment
keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from nercc.coding import CodingScheme
from nercc.serving.cluster import freeze_startup_heap
from nercc.serving.frontend import Frontend, QueryFailed
from nercc.serving.images import MAX_BODY_BYTES, parse_image
from nercc.stragglers import WaitPolicy

__all__ = ["PredictEndpoint", "http_endpoint"]

APP_NAME = "nercc"


class PredictEndpoint:
    """The Serve deployment's class: routes requests to a :class:`Frontend` built in its replica
    from ``frontend_args`` (workers, scheme, name, policy) and ``options`` (``max_wait_ms``,
    ``kill_every``, ``seed``, ...), taking images of ``image_shape`` (channels, height, width)."""

    def __init__(
        self, image_shape: tuple[int, int, int], *frontend_args: Any, **options: Any
    ) -> None:
        self.image_shape = tuple(image_shape)
        self.frontend = Frontend(*frontend_args, image_shape=self.image_shape, **options)
        freeze_startup_heap()

    async def __call__(self, request: Request) -> JSONResponse:
        path, method = request.url.path.rstrip("/") or "/", request.method
        if path == "/healthz":
            if method != "GET":
                return _error(405, f"use GET /healthz, got {method}")
            return JSONResponse(self.health())
        if path != "/predict":
            return _error(404, f"no route {method} {path}: use POST /predict or GET /healthz")
        if method != "POST":
            return _error(405, f"use POST /predict with an image body, got {method}")
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            return _error(413, f"body too large: {length} bytes, at most {MAX_BODY_BYTES}")
        body = await request.body()
        try:  # off the event loop: a large body must not stall the other requests
            image = await asyncio.to_thread(
                parse_image, body, request.headers.get("content-type"), self.image_shape
            )
        except ValueError as error:
            return _error(400, str(error))
        try:
            answer = await asyncio.wrap_future(self.frontend.submit(image))
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
            }
        )

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
    return JSONResponse({"error": reason}, status_code=status)


@contextlib.contextmanager
def http_endpoint(
    workers: list[Any],
    scheme: CodingScheme,
    name: str,
    policy: WaitPolicy,
    image_shape: tuple[int, int, int],
    host: str = "127.0.0.1",
    port: int = 8000,
    num_cpus: float = 0.1,
    shutdown: bool = True,
    **options: Any,
) -> Iterator[str]:
    """Serve ``POST /predict`` and ``GET /healthz`` at ``http://<host>:<port>`` for the duration of
    the block (Ray must be initialised); yields the base URL. ``options`` go to the
    :class:`Frontend` (``max_wait_ms``, ``kill_every``, ``seed``, ...).

    At the end the application is deleted, and Serve shut down when ``shutdown`` (a local
    instance; on a joined cluster, Serve may hold other people's applications)."""
    serve.start(http_options={"host": host, "port": port})
    try:
        deployment = serve.deployment(PredictEndpoint, name="predict").options(
            ray_actor_options={"num_cpus": num_cpus}, max_ongoing_requests=1024
        )
        app = deployment.bind(tuple(image_shape), workers, scheme, name, policy, **options)
        serve.run(app, name=APP_NAME, route_prefix="/")
        yield f"http://{host}:{port}"
    finally:
        with contextlib.suppress(Exception):
            serve.delete(APP_NAME)
        if shutdown:
            serve.shutdown()
