"""The HTTP endpoint's answers without Ray: every error JSON with its status, the body limit
enforced while reading, the bind check, and the proxy's middleware."""

from __future__ import annotations

import asyncio
import json
import pickle
import socket
from concurrent.futures import Future

import numpy as np
import pytest

pytest.importorskip("ray", reason="the serve extra (ray[serve]) is installed by make test")

from starlette.requests import Request  # noqa: E402

from nercc.coding import NeRCC  # noqa: E402
from nercc.serving import images  # noqa: E402
from nercc.serving.address import check_bind  # noqa: E402
from nercc.serving.endpoint import PredictEndpoint, read_body  # noqa: E402
from nercc.serving.frontend import (  # noqa: E402
    Answer,
    NonFiniteOutputs,
    QueryFailed,
    non_finite_reason,
)
from nercc.serving.http_errors import NO_ANSWER, UNAVAILABLE, JsonErrors  # noqa: E402
from nercc.utils.errors import ConfigError  # noqa: E402
from tests.processes import fresh_python

SHAPE = (1, 2, 2)
PIXELS = b"[[0.5, 0.25], [0, 1]]"
LIMIT = 1000


class Body:
    """An ASGI ``receive`` giving ``chunks`` (then, when ``endless``, 100-byte chunks forever);
    ``taken`` counts the chunks read."""

    def __init__(self, chunks: list[bytes], endless: bool = False) -> None:
        self.chunks, self.endless, self.taken = list(chunks), endless, 0

    async def __call__(self) -> dict:
        self.taken += 1
        assert self.taken < 10_000, "read far past the limit"
        if self.taken <= len(self.chunks):
            more = self.endless or self.taken < len(self.chunks)
            return {"type": "http.request", "body": self.chunks[self.taken - 1], "more_body": more}
        if self.endless:
            return {"type": "http.request", "body": b" " * 100, "more_body": True}
        return {"type": "http.disconnect"}


def request(method: str, path: str, body: Body | None = None, headers=()) -> Request:
    scope = {
        "type": "http", "method": method, "path": path, "query_string": b"", "root_path": "",
        "scheme": "http", "server": ("127.0.0.1", 8000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }  # fmt: skip
    return Request(scope, body or Body([b""]))


class FakeFrontend:
    """Answers every image with ``outcome``: logits, or an exception raised by the future (or by
    ``submit`` when ``on_submit``)."""

    def __init__(self, outcome, on_submit: bool = False, down=()) -> None:
        self.outcome, self.on_submit, self.images = outcome, on_submit, []
        self.down = set(down)
        self.name, self.scheme = "nercc", NeRCC(2, 4)

    def workers_down(self):
        return set(self.down)

    def submit(self, image):
        self.images.append(image)
        if self.on_submit:
            raise self.outcome
        future: Future = Future()
        if isinstance(self.outcome, BaseException):
            future.set_exception(self.outcome)
        else:
            logits = np.asarray(self.outcome, dtype=np.float32)
            answer = Answer(logits, int(np.argmax(logits)), "nercc", (0, 1), (), 3, 0)
            future.set_result(answer)
        return future


def endpoint(frontend=None, closing: bool = False) -> PredictEndpoint:
    """A PredictEndpoint over ``frontend`` (no Ray: its constructor builds a real Frontend)."""
    made = object.__new__(PredictEndpoint)
    made.image_shape, made.max_body_bytes, made.closing = SHAPE, LIMIT, closing
    made.frontend = frontend or FakeFrontend([0.1, 0.9])
    return made


def answer(made: PredictEndpoint, req: Request) -> tuple[int, dict]:
    response = asyncio.run(made(req))
    assert response.headers["content-type"] == "application/json"
    return response.status_code, json.loads(response.body)


JSON = [("Content-Type", "application/json")]


def test_a_json_body_is_answered():
    made = endpoint()
    status, body = answer(made, request("POST", "/predict", Body([PIXELS]), JSON))
    assert status == 200 and body["class"] == 1 and body["underdetermined"] is False
    np.testing.assert_array_equal(made.frontend.images[0], [[[0.5, 0.25], [0, 1]]])


def test_an_endless_chunked_body_is_cut_at_the_limit():
    body = Body([PIXELS], endless=True)
    status, error = answer(endpoint(), request("POST", "/predict", body, JSON))
    assert status == 413 and error == {
        "error": f"body too large: more than {LIMIT} bytes, at most {LIMIT}"
    }
    assert body.taken <= LIMIT // 100 + 2  # stopped once past the limit


def test_a_body_longer_than_its_content_length_is_cut_at_the_limit():
    body = Body([b" " * 400] * 10)
    headers = [*JSON, ("Content-Length", "10")]
    status, error = answer(endpoint(), request("POST", "/predict", body, headers))
    assert status == 413 and "more than 1000 bytes" in error["error"] and body.taken == 3


def test_a_declared_length_over_the_limit_is_refused_before_reading():
    body = Body([PIXELS])
    headers = [*JSON, ("Content-Length", str(LIMIT + 1))]
    status, error = answer(endpoint(), request("POST", "/predict", body, headers))
    assert status == 413 and error["error"] == f"body too large: 1001 bytes, at most {LIMIT}"
    assert body.taken == 0


def test_read_body_reads_up_to_the_limit():
    chunks = [b"x" * 500, b"y" * 500]
    assert asyncio.run(read_body(request("POST", "/", Body(chunks)), LIMIT)) == b"".join(chunks)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[[true, 0.5], [0.5, 0.5]]", "pixel values must be numbers, got true"),
        (b"[[0.5, 0.5], [false, 0.5]]", "pixel values must be numbers, got false"),
        (b'[[0.5, "0.5"], [0.5, 0.5]]', 'pixel values must be numbers, got the string "0.5"'),
        (b"[[0.5, null], [0.5, 0.5]]", "pixel values must be numbers, got null"),
        (b"[[NaN, 0.5], [0.5, 0.5]]", "must be finite and in [0, 1], got non-finite values"),
        (b"[[Infinity, 0.5], [0.5, 0.5]]", "must be finite and in [0, 1], got non-finite values"),
        (b"[[0.5, 0.5], [0.5, -Infinity]]", "must be finite and in [0, 1], got non-finite"),
    ],
)
def test_only_finite_numbers_are_pixels(body, message):
    made = endpoint()
    status, error = answer(made, request("POST", "/predict", Body([body]), JSON))
    assert status == 400 and message in error["error"]
    assert made.frontend.images == []


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("GET", "/nowhere", 404, "no route GET /nowhere: use POST /predict or GET /healthz"),
        ("GET", "/predict", 405, "use POST /predict with an image body, got GET"),
        ("POST", "/healthz", 405, "use GET /healthz, got POST"),
    ],
)
def test_other_routes_and_methods(method, path, status, message):
    assert answer(endpoint(), request(method, path)) == (status, {"error": message})


@pytest.mark.parametrize(
    ("frontend", "status", "message"),
    [
        (FakeFrontend([np.nan, 0.5]), 500, "internal error: ValueError: Out of range float"),
        (FakeFrontend(NonFiniteOutputs("group 3: the model returned non-finite outputs")), 502,
         "group 3: the model returned non-finite outputs"),
        (FakeFrontend(QueryFailed("group 3: input 0 lost")), 503, "group 3: input 0 lost"),
        (FakeFrontend(RuntimeError("the frontend is closed"), on_submit=True), 503,
         "shutting down: the query was not taken"),
        (FakeFrontend(KeyError("boom")), 500, "internal error: KeyError: 'boom'"),
    ],
)  # fmt: skip
def test_failures_are_json_with_their_status(frontend, status, message):
    code, error = answer(endpoint(frontend), request("POST", "/predict", Body([PIXELS]), JSON))
    assert code == status and error["error"].startswith(message), error


def test_a_closing_endpoint_takes_no_query():
    made = endpoint(closing=True)
    status, error = answer(made, request("POST", "/predict", Body([PIXELS]), JSON))
    assert (status, error) == (503, {"error": "shutting down: the query was not taken"})
    assert answer(made, request("GET", "/healthz")) == (503, {"error": "shutting down"})
    assert made.frontend.images == []


def test_healthz_is_503_once_every_worker_is_known_down():
    assert answer(endpoint(FakeFrontend([0.1, 0.9])), request("GET", "/healthz"))[0] == 200
    some = endpoint(FakeFrontend([0.1, 0.9], down={0, 2, 3}))
    status, body = answer(some, request("GET", "/healthz"))
    assert status == 200 and body["status"] == "ok"  # one worker still answers
    every = endpoint(FakeFrontend([0.1, 0.9], down={0, 1, 2, 3}))
    status, body = answer(every, request("GET", "/healthz"))
    assert (status, body) == (503, {"error": "every worker is down (4 of 4): retry later"})


def test_a_large_limit_lets_the_parser_take_a_body_over_eight_mib():
    """The parser takes the endpoint's limit, not its own 8 MiB default."""
    made = endpoint()
    made.max_body_bytes = images.MAX_BODY_BYTES + 64
    body = PIXELS + b" " * (images.MAX_BODY_BYTES + 1 - len(PIXELS))  # valid JSON, 8 MiB + 1
    status, result = answer(made, request("POST", "/predict", Body([body]), JSON))
    assert status == 200, result


def test_the_errors_pickle():
    for error in (NonFiniteOutputs("group 1: bad"), QueryFailed("group 1: lost")):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)


# -- the bind check -------------------------------------------------------------------------
def test_a_port_in_use_is_refused_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as refused:
            check_bind("127.0.0.1", port)
    assert str(refused.value) == (f"serving.port: 127.0.0.1:{port} is already in use, got {port}")
    assert pickle.loads(pickle.dumps(refused.value)).args == refused.value.args


def test_a_free_port_and_one_left_in_time_wait_pass():
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server closes first: its side waits in TIME_WAIT
            client.recv(1)
    check_bind("127.0.0.1", port)  # the HTTP server (SO_REUSEADDR) could listen here


def test_a_host_that_is_not_here_is_refused():
    with pytest.raises(ConfigError, match=r"serving.host: not an address of this machine"):
        check_bind("192.0.2.1", 8000)  # TEST-NET-1: never a local address


# -- the proxy's middleware -----------------------------------------------------------------
def run_app(app) -> tuple[int, dict, list]:
    sent: list = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(JsonErrors(app)({"type": "http", "path": "/predict"}, receive, send))
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = dict(starts[0]["headers"])
    decoded = json.loads(body) if headers.get(b"content-type") == b"application/json" else body
    return starts[0]["status"], decoded, starts[0]["headers"]


def plain(status: int, text: bytes, headers=()):
    async def app(scope, receive, send):
        start = [(b"content-type", b"text/plain"), *headers]
        await send({"type": "http.response.start", "status": status, "headers": start})
        await send({"type": "http.response.body", "body": text[:5], "more_body": True})
        await send({"type": "http.response.body", "body": text[5:]})

    return app


def test_the_proxys_not_found_means_unavailable():
    status, body, _ = run_app(plain(404, b"Path '/predict' not found. Ping http://.../-/routes"))
    assert (status, body) == (503, {"error": UNAVAILABLE})


def test_a_request_the_proxy_left_unanswered_is_a_json_500():
    async def silent(scope, receive, send):  # what Ray's proxy does when the replica died
        return None

    assert run_app(silent)[:2] == (500, {"error": NO_ANSWER})

    async def raising(scope, receive, send):
        raise RuntimeError("replica died")

    assert run_app(raising)[:2] == (500, {"error": "internal error: replica died"})


def test_an_app_that_raises_after_a_held_plain_error_start_gets_a_json_500():
    async def app(scope, receive, send):  # a plain error's start (held back), then a crash
        start = [(b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 503, "headers": start})
        raise RuntimeError("the replica died")

    assert run_app(app)[:2] == (500, {"error": "internal error: the replica died"})


def test_an_app_that_raises_after_a_sent_start_is_not_answered_twice():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("midway")

    with pytest.raises(RuntimeError, match="midway"):
        run_app(app)


def test_other_plain_errors_keep_their_status_and_text():
    status, body, headers = run_app(plain(503, b"Service\nunavailable", [(b"retry-after", b"2")]))
    assert (status, body) == (503, {"error": "Service unavailable"})
    assert (b"retry-after", b"2") in headers


def test_json_answers_and_successes_pass_unchanged():
    async def app(scope, receive, send):
        start = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 413, "headers": start})
        await send({"type": "http.response.body", "body": b'{"error": "too large"}'})

    assert run_app(app)[:2] == (413, {"error": "too large"})
    assert run_app(plain(200, b"hello world"))[:2] == (200, b"hello world")


def test_the_middleware_module_imports_neither_torch_nor_the_codes():
    code = (
        "import sys; import nercc.serving.http_errors as m; m.proxy_middlewares(); "
        "print(sorted(n for n in ('torch', 'nercc.coding', 'ray') if n in sys.modules))"
    )
    assert fresh_python(code) == "[]"


def test_non_finite_estimates_name_their_cause():
    outputs = np.array([[1.0, 2.0], [np.nan, 0.0], [3.0, 4.0]])
    assert non_finite_reason(7, outputs, (0, 1, 2)).endswith(
        "workers [1] of [0, 1, 2] answered non-finite logits"
    )
    reason = non_finite_reason(7, outputs[[0, 2]], (0, 1))
    assert reason == (
        "group 7: the decoded estimates are not finite (overflow) although every answer was: "
        "workers [0, 1]"
    )
