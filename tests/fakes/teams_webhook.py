"""A fake Teams Workflows webhook (the trigger "When a Teams webhook request is received" of the
flow "Send webhook alerts to a channel") on 127.0.0.1, port 0, answering like the real one.

``fake.webhook_url`` is the flow's URL, signature included. A POST to it with the documented
body — ``{"type": "message", "attachments": [{"contentType":
"application/vnd.microsoft.card.adaptive", "content": <card>}]}`` — is answered 202 Accepted
with an empty body and the run's id in ``x-ms-workflow-run-id``; the card is then "posted"
(``cards``). A wrong signature is 401, an unknown flow 404, another method 405, a body over
28 KB 413, and a body that is not such a message, or whose card is not a valid Adaptive Card
1.4 (the official schema, ``shared/schemas/adaptivecards``), 400. Faults (429 with
Retry-After, 5xx, a pause past the client's timeout) are scripted with ``fail``, as for the
other fakes (``tests.fakes.http_fake``); a faulted request is recorded but posts nothing.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from tests.bot.teams.card_schema import schema_problems
from tests.fakes.http_fake import FakeServer, Request, Response

SIGNATURE = "fake-signature-3f9a"
FLOW_PATH = "/workflows/5e1c0a/triggers/manual/paths/invoke"
LIMIT = 28 * 1024


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


class WorkflowsWebhook(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, Any]] = []  # posted to the channel, in order
        self._runs = itertools.count(1)

    @property
    def webhook_url(self) -> str:
        query = f"api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIGNATURE}"
        return f"{self.url}{FLOW_PATH}?{query}"

    def handle(self, request: Request) -> Response:
        if request.path != FLOW_PATH:
            return _error(404, "WorkflowNotFound", "The workflow could not be found.")
        if request.method != "POST":
            return _error(405, "MethodNotAllowed", "The trigger accepts POST only.")
        if request.param("sig") != SIGNATURE:
            return _error(401, "DirectApiInvalidAuthorizationSignature", "Invalid signature.")
        if len(request.body) > LIMIT:
            return _error(413, "RequestEntityTooLarge", "The message is over 28 KB.")
        problem = self._problem(request.body)
        if problem is not None:
            return _error(400, "InvalidRequestContent", problem)
        self.cards.append(json.loads(request.body)["attachments"][0]["content"])
        run = f"08584{next(self._runs):015d}CU00"
        return Response(202, b"", {"x-ms-workflow-run-id": run})

    @staticmethod
    def _problem(body: bytes) -> str | None:
        try:
            message = json.loads(body)
        except ValueError:
            return "The request body is not JSON."
        if not isinstance(message, dict) or message.get("type") != "message":
            return 'The body must be {"type": "message", "attachments": [...]}.'
        attachments = message.get("attachments")
        if not isinstance(attachments, list) or len(attachments) != 1:
            return "One attachment is expected."
        attachment = attachments[0]
        if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
            return "The attachment must be an Adaptive Card."
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("version") != "1.4":
            return "The card must be an Adaptive Card of version 1.4."
        problems = schema_problems(card, "1.4")
        if problems:
            return f"The card is not valid: {problems[0]}"
        return None
