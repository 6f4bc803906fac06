"""HTTP mode: the Bolt app behind an ASGI application (``/slack/events``, ``/healthz``), served
by uvicorn. Bolt's sync ``dispatch`` runs in a worker thread so that one slow request never
blocks the event loop."""

from __future__ import annotations

from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

EVENTS_PATH = "/slack/events"


def build_asgi(app: App) -> Starlette:
    async def events(request: Request) -> Response:
        body = await request.body()
        response = await run_in_threadpool(app.dispatch, to_bolt_request(request, body))
        return to_starlette_response(response)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route(EVENTS_PATH, events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def serve_http(app: App, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(build_asgi(app), host=host, port=port, log_level="info")
