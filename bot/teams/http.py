"""``POST /api/messages``: where the Bot Connector delivers Teams activities, served by the same
Starlette application (and uvicorn process) as Slack's ``/slack/events``.

The Teams SDK's ``App`` brings its own FastAPI server and event loop and answers 500 to an
activity its models reject; kpibot keeps one server and checks each request in front of the
bot, as for Slack: the body's size (413, the rest never read), the Bearer token (401 when
missing or invalid; 503 when Microsoft's keys cannot be read), the JSON (400), then the
activity against the SDK's own models (400). Activity types kpibot does not handle are
acknowledged with 200 and ignored, as the Bot Framework expects. A failure inside a listener
is logged here with its traceback, and the user gets an apology (``TeamsBot.apologise``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from microsoft_teams.api import ActivityTypeAdapter
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.http_app import BODY_SECONDS, MAX_BODY_BYTES, read_body, refused
from bot.slack_requests import Refused
from bot.teams.auth import BotFrameworkAuth, KeysUnavailable, Unauthorized
from bot.teams.bot import TeamsBot

MESSAGES_PATH = "/api/messages"
# What kpibot listens to; any other activity (typing, reactions, meeting events…) gets 200.
HANDLED = frozenset({"message", "invoke", "conversationUpdate", "installationUpdate"})

logger = logging.getLogger(__name__)


def _refuse(status: int, reason: str) -> Response:
    logger.info("refused a request to %s: %d %s", MESSAGES_PATH, status, reason)
    return refused(status, reason)


def _activity(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise Refused(400, "expected an activity: a JSON object with a type")
    return data


def messages_route(
    bot: TeamsBot,
    auth: BotFrameworkAuth | None,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    body_seconds: float = BODY_SECONDS,
) -> Route:
    """The route; ``auth`` None accepts unauthenticated requests (local development only)."""

    async def messages(request: Request) -> Response:
        authorization = request.headers.get("authorization")
        if auth is not None and not (authorization or "").startswith("Bearer "):
            return _refuse(401, "no Bearer token")
        try:
            data = _activity(await read_body(request, max_body_bytes, body_seconds))
        except Refused as refusal:
            return _refuse(refusal.status, refusal.reason)
        if auth is not None:
            service_url = data.get("serviceUrl")
            try:
                await auth.check(
                    authorization, service_url if isinstance(service_url, str) else None
                )
            except Unauthorized as error:
                return _refuse(401, f"invalid token: {error}")
            except KeysUnavailable as error:
                logger.error("cannot check Teams tokens: %s", error)
                return JSONResponse({"error": "cannot check tokens now"}, 503)
        if data["type"] not in HANDLED:
            return Response(status_code=200)
        try:
            activity = ActivityTypeAdapter.validate_python(data)
        except ValidationError as error:
            return _refuse(400, f"not a valid activity: {error.error_count()} problem(s)")
        try:
            outcome = await bot.on_activity(activity)
        except Exception:  # the one place a listener's failure lands
            logger.exception("error handling a Teams %s activity", data["type"])
            outcome = await bot.apologise(activity)
        if outcome.body is None:
            return Response(status_code=outcome.status)
        return JSONResponse(outcome.body, outcome.status)

    return Route(MESSAGES_PATH, messages, methods=["POST"])
