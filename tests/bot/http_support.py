"""HTTP mode's test seam: the real app under uvicorn on 127.0.0.1, port 0, in a thread, and
the client side (signed posts, raw socket exchanges) that the HTTP, conversation and serve tests
share."""

from __future__ import annotations

import hashlib
import hmac
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from bot.http_app import EVENTS_PATH, build_asgi
from tests.bot.slack_world import SECRET, World, make_world
from tests.fakes.slack_api import FakeSlack

FORM = "application/x-www-form-urlencoded"


class Server:
    def __init__(self, asgi: Any) -> None:
        # log_config=None: uvicorn's loggers propagate to pytest's, so that tests see any
        # "Exception in ASGI application".
        config = uvicorn.Config(
            asgi, host="127.0.0.1", port=0, log_config=None, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def sign(body: bytes, content_type: str = FORM, timestamp: str | None = None) -> dict[str, str]:
    """Slack's signature over the raw bytes (computed by hand, so that a body that is not
    UTF-8 can be signed too)."""
    stamp = str(int(time.time())) if timestamp is None else timestamp
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest}",
    }


def raw_exchange(base: str, head: bytes, chunks: Iterable[bytes]) -> tuple[bytes, int]:
    """Send ``head`` then ``chunks`` over a plain socket until the server answers; return the
    whole answer (read until the server closes) and the number of body bytes sent."""
    address = urlsplit(base)
    sent = 0
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there: stop sending
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        answer = b""
        while True:
            try:
                part = sock.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                return answer, sent
            answer += part
    return answer, sent


def request_head(headers: dict[str, str]) -> bytes:
    lines = [f"POST {EVENTS_PATH} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@contextmanager
def serving(tmp_path: Path, **world_options: Any) -> Iterator[tuple[World, str]]:
    """A world (fake Slack, store, app) served over HTTP: the world and the server's base URL."""
    with FakeSlack() as fake:
        world = make_world(tmp_path, fake, **world_options)
        with Server(build_asgi(world.app, SECRET)) as base:
            yield world, base
        world.service.engine.dispose()
