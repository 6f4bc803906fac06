"""A fake Slack Web API on 127.0.0.1, port 0, that behaves like the documented one for the
methods kpibot uses, records every request, and injects faults on demand.

Behaviour follows Slack's documentation: every answer is HTTP 200 with ``{"ok": false, "error":
...}`` for API errors, HTTP 429 with a ``Retry-After`` header when rate limited, bearer-token
auth (``not_authed`` without a token, ``invalid_auth`` for a token it does not know,
``not_allowed_token_type`` for a bot token where an app-level token belongs and the reverse),
``apps.connections.open`` (app-level token) answering with ``socket_url``, message timestamps
unique per channel, message metadata returned by ``conversations.history`` and
``conversations.replies`` with ``include_all_metadata``. Files are shared the way
``files_upload_v2`` does it: ``files.getUploadURLExternal`` (``filename`` and a non-zero
``length``) hands out an upload URL and a file id, the bytes are POSTed to that URL (no token),
and ``files.completeUploadExternal`` (``files`` as a JSON list of ``{"id", "title"}``, with
``channel_id`` and ``thread_ts``) shares them: a message of the bot carrying ``files`` (id, name,
title) lands in the channel or thread. Thread replies are left out of
``conversations.history`` (unless posted with ``reply_broadcast``) and are read with
``conversations.replies``: the thread's messages oldest first, the parent first,
cursor-paginated. ``response_url`` posts (Bolt's
``respond``) land on ``/response/<anything>``.

Faults are scripted per method: ``fake.fail("chat.postMessage", Fault.rate_limited(2))``
answers the next matching call with that fault, then behaves normally again. A per-channel rate
limit (``per_channel_interval``) enforces Slack's one message per second per channel.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-test-app-token"  # Socket Mode: only apps.connections.open takes it
BOT_USER, BOT_ID = "UBOT", "BBOT"  # who posts through the Web API


@dataclass(frozen=True)
class Fault:
    status: int = 200
    error: str | None = None  # Slack error code, e.g. channel_not_found
    retry_after: int | None = None
    drop: bool = False  # close the connection without answering
    after_effect: bool = False  # apply the call (post the message), then drop the connection

    @classmethod
    def rate_limited(cls, retry_after: int = 1) -> Fault:
        return cls(status=429, error="ratelimited", retry_after=retry_after)

    @classmethod
    def server_error(cls) -> Fault:
        return cls(status=500)

    @classmethod
    def dropped(cls) -> Fault:
        return cls(drop=True)

    @classmethod
    def lost_answer(cls) -> Fault:
        """The message is posted but the answer never reaches the caller."""
        return cls(drop=True, after_effect=True)

    @classmethod
    def api_error(cls, error: str) -> Fault:
        return cls(error=error)


@dataclass
class Call:
    method: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    thread_ts: str | None = None
    user: str = BOT_USER  # messages posted through the API are the bot's; see ``user_says``
    broadcast: bool = False  # a thread reply also shown in the channel (``reply_broadcast``)
    edits: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] | None = None  # shared files: id, name, title

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts


@dataclass
class Upload:
    """A file announced by ``files.getUploadURLExternal``; ``data`` once its bytes arrived."""

    id: str
    filename: str
    length: int
    alt_txt: str | None
    data: bytes | None = None
    shared: bool = False


class FakeSlack:
    """Start with ``with FakeSlack() as fake:``; ``fake.url`` is the Web API base URL
    (``.../api/``)."""

    def __init__(self, *, per_channel_interval: float = 0.0) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, list[Posted]] = defaultdict(list)
        self.responses: list[dict[str, Any]] = []  # bodies posted to response_url
        self.views: list[dict[str, Any]] = []
        self.ephemerals: list[dict[str, Any]] = []  # chat.postEphemeral bodies
        self.uploads: dict[str, Upload] = {}  # by file id
        self.socket_url: str | None = None  # what apps.connections.open hands out
        self.users_by_email: dict[str, str] = {}
        # Workspace members without an email on their profile (users.info answers without one).
        self.members: set[str] = set()
        self.archived: set[str] = set()
        self.unknown_channels: set[str] = set()
        self.per_channel_interval = per_channel_interval
        # Slack caps ``limit`` on conversations.replies (15 for some apps); tests lower it to
        # make callers paginate.
        self.replies_page_limit = 1000
        self._last_post: dict[str, float] = {}
        self._hold_after: int | None = None
        self._held = threading.Event()
        self._release = threading.Event()
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        return f"{self.base}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.base}/response/{name}"

    # -- scripting ---------------------------------------------------------------------------
    def fail(self, method: str, *faults: Fault) -> None:
        with self._lock:
            self._faults[method].extend(faults)

    def hold_after(self, posts: int) -> threading.Event:
        """Once ``posts`` messages are posted, the next ``chat.postMessage`` is posted but its
        answer is held back until ``release()``, then lost: the caller is stuck between send
        and mark, where a test can kill it. Returns an event set when that call arrives."""
        with self._lock:
            self._hold_after = posts
            self._held.clear()
            self._release.clear()
        return self._held

    def release(self) -> None:
        self._hold_after = None
        self._release.set()

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def posts(self, channel: str | None = None) -> list[Posted]:
        if channel is not None:
            return list(self.messages[channel])
        return [m for ms in self.messages.values() for m in ms]

    # -- API -----------------------------------------------------------------------------------
    def _apply(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = {
            "auth.test": lambda b: {"ok": True, "user_id": "UBOT", "bot_id": "BBOT",
                                    "team_id": "T1", "team": "Test"},
            "chat.postMessage": self._post,
            "chat.update": self._update,
            "chat.postEphemeral": self._post_ephemeral,
            "apps.connections.open": self._open_connection,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "users.lookupByEmail": self._lookup,
            "users.info": self._user_info,
            "views.publish": self._publish,
            "conversations.open": lambda b: {"ok": True, "channel": {"id": "D" + b["users"]}},
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }.get(method)  # fmt: skip
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(body)

    def _next_ts(self) -> str:
        # Like Slack's: the Unix time of the post (so that ``oldest`` filters work), made
        # unique by a counter in the fraction.
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _channel_error(self, channel: str) -> dict[str, Any] | None:
        if not channel or channel in self.unknown_channels:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.archived:
            return {"ok": False, "error": "is_archived"}
        return None

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel", ""))
        error = self._channel_error(channel)
        if error:
            return error
        if not body.get("text") and not body.get("blocks"):
            return {"ok": False, "error": "no_text"}
        blocks = body.get("blocks")
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        if blocks is not None and len(blocks) > 50:
            return {"ok": False, "error": "invalid_blocks"}
        metadata = body.get("metadata")
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        posted = Posted(
            channel=channel,
            ts=self._next_ts(),
            text=str(body.get("text", "")),
            blocks=blocks,
            metadata=metadata,
            thread_ts=body.get("thread_ts"),
            broadcast=bool(body.get("thread_ts")) and _flag(body.get("reply_broadcast")),
        )
        self.messages[channel].append(posted)
        return {"ok": True, "channel": channel, "ts": posted.ts, "message": {"text": posted.text}}

    def user_says(self, channel: str, user: str, text: str, thread_ts: str | None = None) -> str:
        """A message a person posted (the event itself is the test's to send); its ts."""
        posted = Posted(channel, self._next_ts(), text, None, None, thread_ts, user=user)
        with self._lock:
            self.messages[channel].append(posted)
        return posted.ts

    def _post_ephemeral(self, body: dict[str, Any]) -> dict[str, Any]:
        blocks = body.get("blocks")
        if isinstance(blocks, str):
            body = {**body, "blocks": json.loads(blocks)}
        self.ephemerals.append(body)
        return {"ok": True, "message_ts": self._next_ts()}

    def _open_connection(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.socket_url is None:
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": True, "url": self.socket_url}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel", ""))
        for message in self.messages.get(channel, []):
            if message.ts == body.get("ts"):
                message.edits.append(body)
                message.text = str(body.get("text", message.text))
                if "blocks" in body:
                    blocks = body["blocks"]
                    message.blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
                return {"ok": True, "channel": channel, "ts": message.ts}
        return {"ok": False, "error": "message_not_found"}

    def _history(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel", ""))
        error = self._channel_error(channel)
        if error:
            return error
        with_metadata = _flag(body.get("include_all_metadata"))
        oldest = float(body.get("oldest", 0) or 0)
        messages = self.messages.get(channel, [])
        out = []
        for m in reversed(messages):
            # Like Slack's: the channel's own messages, newest first; a thread reply only if
            # it was also broadcast to the channel.
            if float(m.ts) < oldest or (m.is_reply and not m.broadcast):
                continue
            item = _listed(m, with_metadata)
            replies = sum(1 for r in messages if r.is_reply and r.thread_ts == m.ts)
            if replies:
                item.update(thread_ts=m.ts, reply_count=replies)
            out.append(item)
        return {"ok": True, "messages": out, "has_more": False}

    def _replies(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = str(body.get("channel", ""))
        error = self._channel_error(channel)
        if error:
            return error
        messages = self.messages.get(channel, [])
        # ``ts`` may name the parent or any reply of the thread.
        named = next((m for m in messages if m.ts == body.get("ts")), None)
        if named is None:
            return {"ok": False, "error": "thread_not_found"}
        parent_ts = named.thread_ts if named.is_reply else named.ts
        parent = next((m for m in messages if m.ts == parent_ts), None)
        if parent is None:
            return {"ok": False, "error": "thread_not_found"}
        with_metadata = _flag(body.get("include_all_metadata"))
        oldest = float(body.get("oldest", 0) or 0)
        latest = float(body.get("latest", 0) or 0) or float("inf")
        # The parent first, then its replies oldest first (``oldest``/``latest`` filter the
        # replies). One sequence paginated by offset, so later pages do not repeat the parent.
        thread = [parent] + [
            m
            for m in messages
            if m.is_reply and m.thread_ts == parent.ts and oldest <= float(m.ts) <= latest
        ]
        start = int(str(body.get("cursor") or "offset:0").removeprefix("offset:"))
        limit = min(int(body.get("limit") or 1000), self.replies_page_limit)
        page = thread[start : start + limit]
        out = []
        for m in page:
            item = _listed(m, with_metadata)
            item["thread_ts"] = parent.ts
            out.append(item)
        more = start + limit < len(thread)
        answer: dict[str, Any] = {"ok": True, "messages": out, "has_more": more}
        if more:
            answer["response_metadata"] = {"next_cursor": f"offset:{start + limit}"}
        return answer

    def _lookup(self, body: dict[str, Any]) -> dict[str, Any]:
        email = str(body.get("email", ""))
        if email not in self.users_by_email:
            return {"ok": False, "error": "users_not_found"}
        user_id = self.users_by_email[email]
        return {"ok": True, "user": {"id": user_id, "profile": {"email": email}}}

    def _user_info(self, body: dict[str, Any]) -> dict[str, Any]:
        user_id = str(body.get("user", ""))
        emails = [e for e, u in self.users_by_email.items() if u == user_id]
        if emails:
            return {"ok": True, "user": {"id": user_id, "profile": {"email": emails[0]}}}
        if user_id in self.members:
            return {"ok": True, "user": {"id": user_id, "profile": {}}}
        return {"ok": False, "error": "user_not_found"}

    def _publish(self, body: dict[str, Any]) -> dict[str, Any]:
        view = body.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        self.views.append({"user_id": body.get("user_id"), "view": view})
        return {"ok": True, "view": {"id": f"V{len(self.views)}"}}

    def shared_files(self, channel: str) -> list[tuple[Posted, Upload]]:
        """The files shared in ``channel``, each with the message that carries it."""
        return [
            (m, self.uploads[f["id"]])
            for m in self.messages.get(channel, [])
            for f in m.files or ()
        ]

    def _upload_url(self, body: dict[str, Any]) -> dict[str, Any]:
        filename = str(body.get("filename") or "")
        length = int(str(body.get("length") or 0))
        if not filename or length <= 0:
            return {"ok": False, "error": "missing_argument"}
        alt_txt = body.get("alt_txt")
        if alt_txt is not None and len(str(alt_txt)) > 1000:
            return {"ok": False, "error": "alt_txt_too_large"}
        file_id = f"F{len(self.uploads) + 1:06d}"
        self.uploads[file_id] = Upload(file_id, filename, length, alt_txt)
        return {"ok": True, "upload_url": f"{self.base}/upload/v1/{file_id}", "file_id": file_id}

    def _receive_upload(self, file_id: str, data: bytes) -> int:
        """The upload URL: HTTP 200 once the announced bytes arrive, 404 for no such upload."""
        upload = self.uploads.get(file_id)
        if upload is None:
            return 404
        upload.data = data
        return 200

    def _complete_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            listed = json.loads(str(body.get("files") or ""))
        except json.JSONDecodeError:
            return {"ok": False, "error": "invalid_arguments"}
        if not isinstance(listed, list) or not listed:
            return {"ok": False, "error": "invalid_arguments"}
        uploads = [self.uploads.get(str(f.get("id"))) for f in listed]
        if any(u is None or u.data is None or u.shared for u in uploads):
            # Never announced, bytes never sent, or already completed.
            return {"ok": False, "error": "file_not_found"}
        done = [u for u in uploads if u is not None]
        titles = [str(f.get("title") or u.filename) for f, u in zip(listed, done, strict=True)]
        files = [
            {"id": u.id, "name": u.filename, "title": title, "size": len(u.data or b"")}
            for u, title in zip(done, titles, strict=True)
        ]
        channel = body.get("channel_id")
        if channel:
            error = self._channel_error(str(channel))
            if error:
                return error
            thread_ts = body.get("thread_ts")
            if thread_ts and not any(m.ts == thread_ts for m in self.messages[str(channel)]):
                return {"ok": False, "error": "invalid_thread_ts"}
            comment = str(body.get("initial_comment") or "")
            shared = [{k: f[k] for k in ("id", "name", "title")} for f in files]
            posted = Posted(
                str(channel), self._next_ts(), comment, None, None, thread_ts, files=shared
            )
            self.messages[str(channel)].append(posted)
        for u in done:
            u.shared = True
        return {"ok": True, "files": files}

    # -- HTTP --------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:  # keep test output clean
                return

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                parsed = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                if parsed.path.startswith("/upload/v1/"):
                    # The upload URL takes the raw bytes, without a token, like Slack's.
                    with fake._lock:
                        fake.calls.append(Call("upload", {}, headers, time.monotonic()))
                        status = fake._receive_upload(parsed.path.rsplit("/", 1)[-1], raw)
                    self._send_text(status, f"OK - {len(raw)}" if status == 200 else "Not Found")
                    return
                body = _decode(raw, self.headers.get("Content-Type", ""), parsed.query)
                if parsed.path.startswith("/response/"):
                    with fake._lock:
                        fake.responses.append(body)
                        fake.calls.append(Call("response_url", body, headers, time.monotonic()))
                    self._send(200, {"ok": True})
                    return
                method = parsed.path.removeprefix("/api/")
                with fake._lock:
                    fake.calls.append(Call(method, body, headers, time.monotonic()))
                    fault = fake._faults[method].popleft() if fake._faults[method] else None
                    if fault is None:
                        fault = _auth_fault(method, headers.get("authorization"))
                    if fault is None and method == "chat.postMessage":
                        fault = fake._rate_limit(str(body.get("channel", "")))
                    if fault is None or fault.after_effect:
                        result = fake._apply(method, body)
                    hold = (
                        fault is None
                        and method == "chat.postMessage"
                        and fake._hold_after is not None
                        and result.get("ok")
                        and sum(len(m) for m in fake.messages.values()) > fake._hold_after
                    )
                if hold:
                    # The answer is lost either way: the caller is usually dead by now.
                    fake._held.set()
                    fake._release.wait()
                    self.close_connection = True
                    return
                if fault is not None and fault.drop:
                    # Close without a response: the client sees a dropped connection.
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if fault is not None:
                    payload = {"ok": False, "error": fault.error or "internal_error"}
                    extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
                    self._send(fault.status, payload, extra)
                    return
                self._send(200, result)

            def _send_text(self, status: int, text: str) -> None:
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _send(
                self, status: int, payload: dict[str, Any], extra: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (extra or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def _rate_limit(self, channel: str) -> Fault | None:
        if self.per_channel_interval <= 0:
            return None
        now = time.monotonic()
        last = self._last_post.get(channel)
        if last is not None and now - last < self.per_channel_interval:
            wait = self.per_channel_interval - (now - last)
            return Fault.rate_limited(max(1, round(wait + 0.499)))
        self._last_post[channel] = now
        return None


def _auth_fault(method: str, authorization: str | None) -> Fault | None:
    """Slack's answers to a missing, unknown or wrong kind of token: apps.connections.open takes
    only the app-level token, every other method only the bot token."""
    token = (authorization or "").removeprefix("Bearer ").strip()
    expected = APP_TOKEN if method == "apps.connections.open" else TOKEN
    if not token:
        return Fault(error="not_authed")
    if token == expected:
        return None
    if token in (TOKEN, APP_TOKEN):
        return Fault(error="not_allowed_token_type")
    return Fault(error="invalid_auth")


def _flag(value: Any) -> bool:
    """A boolean argument: JSON ``true``, or ``1``/``true`` in a form or query string."""
    return value is True or str(value).lower() in ("1", "true")


def _listed(message: Posted, with_metadata: bool) -> dict[str, Any]:
    """A message as conversations.history and conversations.replies list it."""
    item: dict[str, Any] = {
        "type": "message",
        "ts": message.ts,
        "text": message.text,
        "user": message.user,
    }
    if message.user == BOT_USER:
        item["bot_id"] = BOT_ID
    if with_metadata and message.metadata:
        item["metadata"] = message.metadata
    if message.files:
        item["files"] = message.files
    return item


def _decode(raw: bytes, content_type: str, query: str) -> dict[str, Any]:
    body: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}
    if not raw:
        return body
    if "json" in content_type:
        body.update(json.loads(raw))
    else:
        body.update({k: v[0] for k, v in parse_qs(raw.decode()).items()})
    return body


def running() -> Iterator[FakeSlack]:
    """For a pytest fixture: ``fake = pytest.fixture(running)``."""
    with FakeSlack() as fake:
        yield fake
