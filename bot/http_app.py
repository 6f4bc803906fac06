"""HTTP mode: the Bolt app behind an ASGI application (``/slack/events``, ``/healthz``; the
Teams bot's ``/api/messages`` beside it when configured, ``bot.teams.http``), served by
uvicorn. Bolt's sync ``dispatch`` runs in a worker thread so that one slow request never
blocks the event loop.

A request to ``/slack/events`` is read at most ``max_body_bytes`` far (Slack's payloads are a
few kilobytes): a larger ``Content-Length``, or a streamed (chunked) body that grows past the
limit, is answered 413 at once and the connection closed, so the rest is never read into
memory. A body must also arrive whole within ``body_seconds`` (Slack's and Teams' arrive at
once): one that trickles in is answered 408 and the connection closed, so that a client
sending a byte now and then cannot hold a connection and a worker for as long as it likes.
Then ``bot.slack_requests.accept`` checks the signature and the body's shape; only
then does Bolt see the request, with the body ``accept`` read (``bolt_request_of``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

import uvicorn
from slack_bolt import App, BoltContext, BoltRequest
from slack_bolt.adapter.starlette.handler import to_starlette_response
from slack_bolt.request.internals import build_context
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.slack_requests import Accepted, Refused, accept

EVENTS_PATH = "/slack/events"
MAX_BODY_BYTES = 1024 * 1024
BODY_SECONDS = 10.0
# Refusals after which the connection is closed: the rest of the body is not read, nor waited for.
HANG_UP = frozenset({408, 413})

logger = logging.getLogger(__name__)


async def read_body(request: Request, limit: int, seconds: float = BODY_SECONDS) -> bytes:
    """The request body, or ``Refused(413)`` as soon as it is known to exceed ``limit``, or
    ``Refused(408)`` when it has not arrived whole ``seconds`` after the first read."""
    declared = request.headers.get("content-length", "")
    # The server has checked that Content-Length is digits; compare lengths before int() so
    # that a thousand-digit value costs nothing.
    if declared.isdigit() and (len(declared) > len(str(limit)) or int(declared) > limit):
        raise Refused(413, f"body larger than {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise Refused(413, f"body larger than {limit} bytes")
    except TimeoutError:
        raise Refused(408, f"body not received within {seconds:g} s") from None
    return bytes(body)


def slack_events_route(
    app: App,
    signing_secret: str,
    *,
    clock: Clock | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_seconds: float = BODY_SECONDS,
) -> Route:
    """``clock`` is the signature check's (Slack's documented example is five years old)."""
    verifier = SignatureVerifier(signing_secret, clock=clock or Clock())

    async def events(request: Request) -> Response:
        try:
            body = await read_body(request, max_body_bytes, body_seconds)
            accepted = accept(request.headers, body, verifier)
        except Refused as refusal:
            logger.info("refused a request to %s: %d %s", EVENTS_PATH, refusal.status, refusal)
            return refused(refusal.status, refusal.reason)
        bolt_request = bolt_request_of(accepted, request.url.query, request.headers)
        response = await run_in_threadpool(app.dispatch, bolt_request)
        return to_starlette_response(response)

    return Route(EVENTS_PATH, events, methods=["POST"])


def bolt_request_of(accepted: Accepted, query: str, headers: Mapping[str, str]) -> BoltRequest:
    """The request for Bolt, reading the body ``accept`` read. Bolt's own parser (1.30) takes
    any form whose text contains "payload" for an interactive payload and, finding no
    ``payload`` field, reads it as empty, which no listener matches: ``/kpi payload``, or any
    slash command from a channel or a user named so, was answered 404. The raw text stays
    (Bolt's signature check, off here, and its lazy listeners, unused, read it)."""
    bolt_headers: dict[str, str | Sequence[str]] = dict(headers)
    request = BoltRequest(body=accepted.text, query=query, headers=bolt_headers)
    if request.body != accepted.body:
        request.body = accepted.body
        request.context = build_context(BoltContext(), accepted.body)
    return request


def refused(status: int, reason: str) -> Response:
    """The answer to a refused request; closing the connection makes the server drop the rest
    of an oversized or trickling body instead of draining it."""
    close = {"Connection": "close"} if status in HANG_UP else None
    return JSONResponse({"error": reason}, status, headers=close)


async def healthz(_: Request) -> Response:
    return PlainTextResponse("ok")


def build_server(routes: Sequence[Route]) -> Starlette:
    """One ASGI application for the chat surfaces served over HTTP (Slack's ``/slack/events``,
    Teams' ``/api/messages``), and ``/healthz``."""
    return Starlette(routes=[*routes, Route("/healthz", healthz, methods=["GET"])])


def build_asgi(
    app: App,
    signing_secret: str,
    *,
    clock: Clock | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_seconds: float = BODY_SECONDS,
) -> Starlette:
    """Slack alone."""
    route = slack_events_route(
        app, signing_secret, clock=clock, max_body_bytes=max_body_bytes, body_seconds=body_seconds
    )
    return build_server([route])


def serve_http(asgi: Starlette, host: str, port: int) -> None:
    uvicorn.run(asgi, host=host, port=port, log_level="info")
