"""A fake Bot Framework on 127.0.0.1, port 0: the three Microsoft services a Teams bot talks
to, each answering as documented for what kpibot sends, and recording every request.

- OpenID metadata (login.botframework.com): ``GET /v1/.well-known/openidconfiguration`` names
  ``jwks_uri``; ``GET /v1/.well-known/keys`` serves the public half of a test RSA key (with
  ``endorsements: ["msteams"]``). ``token(...)`` signs the Bearer token the Bot Connector would
  send with an activity (``iss`` https://api.botframework.com, ``aud`` the bot's app id,
  ``serviceurl``), and can sign it wrong on purpose.
- Entra ID's token endpoint (login.microsoftonline.com): ``POST /{tenant}/oauth2/v2.0/token``
  with the client-credentials grant and the scope https://api.botframework.com/.default gives
  ``{"token_type": "Bearer", "expires_in": 3599, "access_token": …}``; a wrong client id or
  secret is HTTP 401 ``invalid_client`` (AADSTS7000215).
- The Bot Connector (smba.trafficmanager.net, the activity's ``serviceUrl``):
  ``POST /v3/conversations/{id}/activities`` (send; with ``replyToId``, a reply) and
  ``POST …/activities/{activityId}`` (reply) answer 201 ``{"id": …}``;
  ``PUT …/activities/{activityId}`` answers 200 ``{"id": activityId}`` (404
  ``ActivityNotFound`` for an unknown one); ``GET /v3/conversations/{id}/members/{userId}``
  answers the member (``email``, ``userPrincipalName``, ``aadObjectId``…) or 404
  ``MemberNotFoundInConversation``. A missing or unknown bot token is 401; an unknown
  conversation 404 ``ConversationNotFound``; a conversation the bot was removed from 403
  ``BotNotInConversationRoster``. Errors are ``{"error": {"code": …, "message": …}}``.
  Rate limits and outages are scripted with ``fail(Fault(429, headers={"Retry-After": …}))``.
"""

from __future__ import annotations

import functools
import itertools
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.fakes.http_fake import FakeServer, Request, Response

APP_ID = "00000000-0000-4000-8000-00000000b07a"
APP_SECRET = "test-teams-client-secret"
TENANT_ID = "11111111-1111-4111-8111-111111111111"
ISSUER = "https://api.botframework.com"
KEY_ID = "kpibot-test-key"
SCOPE = "https://api.botframework.com/.default"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"

_ACTIVITIES = re.compile(r"/v3/conversations/([^/]+)/activities(?:/([^/]+))?")
_MEMBER = re.compile(r"/v3/conversations/([^/]+)/members/([^/]+)")


@functools.cache
def signing_key() -> rsa.RSAPrivateKey:
    """One test key per test run (generating RSA keys takes a moment)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def other_key() -> rsa.RSAPrivateKey:
    """A key the fake does not publish: tokens it signs have a bad signature."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Member:
    id: str  # the Teams user id (29:…)
    aad_object_id: str
    name: str
    email: str

    def json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "aadObjectId": self.aad_object_id,
            "email": self.email,
            "userPrincipalName": self.email,
            "tenantId": TENANT_ID,
            "userRole": "user",
        }


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


class FakeBotFramework(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.members: dict[str, Member] = {}  # by Teams user id
        self.conversations: set[str] = set()  # known conversation ids ("" = any)
        self.removed: set[str] = set()  # conversations the bot was removed from
        # (conversation id, activity id) → the activity as last posted or updated
        self.activities: dict[tuple[str, str], dict[str, Any]] = {}
        self.issued: set[str] = set()
        self._ids = itertools.count(1)

    # --- test controls -------------------------------------------------------------------------

    @property
    def service_url(self) -> str:
        return self.url + "/"

    @property
    def metadata_url(self) -> str:
        return self.url + "/v1/.well-known/openidconfiguration"

    def add_member(self, member: Member) -> None:
        self.members[member.id] = member

    def token(
        self,
        *,
        audience: str = APP_ID,
        issuer: str = ISSUER,
        expires_in: int = 3600,
        service_url: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        """A Bot Connector token for an activity, as the Bot Framework signs them."""
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": audience,
            "serviceurl": service_url or self.service_url,
            "nbf": now - 60,
            "iat": now - 60,
            "exp": now + expires_in,
        }
        return jwt.encode(claims, key or signing_key(), algorithm="RS256", headers={"kid": KEY_ID})

    def posted(self, conversation_id: str | None = None) -> list[Request]:
        """The activities kpibot sent (new ones and replies), in order."""
        return [
            r
            for r in self.requests
            if r.method == "POST"
            and (m := _ACTIVITIES.fullmatch(r.path)) is not None
            and conversation_id in (None, m.group(1))
        ]

    def updated(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PUT"]

    # --- the services --------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/v1/.well-known/openidconfiguration":
            return Response(200, {
                "issuer": ISSUER,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": self.url + "/v1/.well-known/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            })  # fmt: skip
        if request.method == "GET" and request.path == "/v1/.well-known/keys":
            public = RSAAlgorithm.to_jwk(signing_key().public_key(), as_dict=True)
            jwk = {**public, "kid": KEY_ID, "use": "sig", "endorsements": ["msteams"]}
            return Response(200, {"keys": [jwk]})
        if request.method == "POST" and request.path.endswith("/oauth2/v2.0/token"):
            return self._token(request)
        if not request.path.startswith("/v3/"):
            return _error(404, "NotFound", "no such endpoint")
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.issued:
            return _error(401, "Unauthorized", "Authorization has been denied for this request.")
        if (member := _MEMBER.fullmatch(request.path)) and request.method == "GET":
            return self._member(*member.groups())
        if activities := _ACTIVITIES.fullmatch(request.path):
            return self._activities(request, *activities.groups())
        return _error(404, "NotFound", "no such endpoint")

    def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        if (
            form.get("grant_type") != "client_credentials"
            or form.get("client_id") != APP_ID
            or form.get("client_secret") != APP_SECRET
        ):
            return Response(401, {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.",
            })  # fmt: skip
        if form.get("scope") != SCOPE:
            return Response(400, {"error": "invalid_scope", "error_description": "AADSTS70011"})
        token = f"bot-token-{next(self._ids)}"
        self.issued.add(token)
        return Response(200, {
            "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
            "access_token": token,
        })  # fmt: skip

    def _known(self, conversation_id: str) -> Response | None:
        if conversation_id.split(";")[0] in self.removed:
            return _error(403, "BotNotInConversationRoster", "The bot is not part of the "
                          "conversation roster.")  # fmt: skip
        # A channel's thread is the conversation "<channel id>;messageid=<root id>".
        if self.conversations and conversation_id.split(";")[0] not in self.conversations:
            return _error(404, "ConversationNotFound", "Conversation not found.")
        return None

    def _member(self, conversation_id: str, user_id: str) -> Response:
        if (refusal := self._known(conversation_id)) is not None:
            return refusal
        member = self.members.get(user_id)
        if member is None:
            return _error(404, "MemberNotFoundInConversation", "The member was not found.")
        return Response(200, member.json())

    def _activities(
        self, request: Request, conversation_id: str, activity_id: str | None
    ) -> Response:
        if (refusal := self._known(conversation_id)) is not None:
            return refusal
        body = request.json()
        if not isinstance(body, dict) or "type" not in body:
            return _error(400, "BadArgument", "The activity is missing its type.")
        if request.method == "PUT" and activity_id is not None:
            if (conversation_id, activity_id) not in self.activities:
                return _error(404, "ActivityNotFound", "The activity was not found.")
            self.activities[conversation_id, activity_id] = body
            return Response(200, {"id": activity_id})
        if request.method == "POST":
            new_id = f"1{next(self._ids):012d}"
            self.activities[conversation_id, new_id] = body
            return Response(201, {"id": new_id})
        return _error(405, "MethodNotAllowed", request.method)
