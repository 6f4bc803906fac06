"""A local Socket Mode server (WebSocket on 127.0.0.1, port 0) that speaks Slack's protocol as
documented (https://docs.slack.dev/apis/events-api/using-socket-mode): the app gets its URL
from ``apps.connections.open`` (the fake Web API hands out ``url``), the server greets each
connection with ``hello``, then sends envelopes (``events_api``, ``slash_commands``,
``interactive``) carrying an ``envelope_id``, and records the acknowledgements the app sends
back (``{"envelope_id": ..., "payload": ...}``)."""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve


class FakeSocketMode:
    def __init__(self) -> None:
        self.acks: dict[str, dict[str, Any]] = {}
        self.hellos = 0
        self._ids = itertools.count(1)
        self._connections: list[ServerConnection] = []
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._server: Server = serve(self._session, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeSocketMode:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._thread.join(5)

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket=test"

    def _session(self, connection: ServerConnection) -> None:
        connection.send(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": "A1"},
                }
            )
        )
        with self._lock:
            self.hellos += 1
            self._connections.append(connection)
        self._connected.set()
        try:
            for raw in connection:
                ack = json.loads(raw)
                with self._lock:
                    self.acks[str(ack["envelope_id"])] = ack
        except ConnectionClosed:
            return

    def wait_connected(self, timeout: float = 10.0) -> None:
        if not self._connected.wait(timeout):
            raise AssertionError("the app never connected")

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        """Send an envelope of ``kind`` (``events_api``, ``slash_commands``, ``interactive``)
        on the latest connection; returns its envelope id."""
        envelope_id = f"env-{next(self._ids)}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        with self._lock:
            connection = self._connections[-1]
        connection.send(json.dumps(envelope))
        return envelope_id

    def wait_ack(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if envelope_id in self.acks:
                    return self.acks[envelope_id]
            if time.monotonic() > deadline:
                raise AssertionError(f"no acknowledgement of {envelope_id}")
            time.sleep(0.01)
