"""The plumbing the fake CRM servers share: a threaded HTTP server on 127.0.0.1, port 0, that
records every request and hands it to the fake's ``handle``; and scripted faults (an HTTP
status with a body and headers, or a pause longer than the client's timeout) that answer the
next requests (to a given path, if the fault names one) instead of the API."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Fault:
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (longer than the client's timeout: a timeout)
    path: str | None = None  # only for requests to this path (else the next request)


class FakeServer:
    """Subclasses implement ``handle``; ``requests`` lists every request received."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                url = urlparse(self.path)
                request = Request(
                    self.command, url.path, parse_qs(url.query),
                    {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length),
                )  # fmt: skip
                response = fake._dispatch(request)
                body = response.body
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(response.status)
                    content_type = "text/xml" if isinstance(body, bytes) else "application/json"
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout it was meant to hit)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def fail(self, *faults: Fault) -> None:
        """Answer the next requests with these faults, in order."""
        with self._lock:
            self._faults.extend(faults)

    def _dispatch(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            fault = next((f for f in self._faults if f.path in (None, request.path)), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None:
            time.sleep(fault.delay)
            return Response(fault.status, fault.body, dict(fault.headers))
        return self.handle(request)

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
