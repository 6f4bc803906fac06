"""Who may post to ``/api/messages``: the Bot Framework's signed JWT, checked with the Teams
SDK's ``TokenValidator`` (signature against the keys the OpenID metadata names, issuer,
audience = our app id, expiry, and the ``serviceurl`` claim against the activity's
``serviceUrl``).

The keys' location is read from the OpenID metadata document (its ``jwks_uri``), once and then
again every ``METADATA_TTL``, as the Bot Framework's authentication guide asks; the SDK's own
factory guesses it from the metadata URL instead. The metadata URL is configurable so that the
tests serve their own keys on 127.0.0.1.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import jwt
from microsoft_teams.apps.auth import TokenValidator
from microsoft_teams.apps.auth.token_validator import JwtValidationOptions

logger = logging.getLogger(__name__)

OPENID_METADATA_URL = "https://login.botframework.com/v1/.well-known/openidconfiguration"
BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
# Microsoft rolls its signing keys about daily; a day-old key list would still hold them.
METADATA_TTL = 24 * 3600.0


class Unauthorized(Exception):
    """The request carries no valid Bot Framework token (401)."""


class KeysUnavailable(Exception):
    """The OpenID metadata could not be read: nothing can be checked now (503)."""


@dataclass(frozen=True)
class Caller:
    """What a valid token says: the connector's service URL and the token's claims."""

    service_url: str
    claims: Mapping[str, Any]


class BotFrameworkAuth:
    def __init__(
        self,
        app_id: str,
        *,
        metadata_url: str = OPENID_METADATA_URL,
        issuer: str = BOT_FRAMEWORK_ISSUER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app_id = app_id
        self.metadata_url = metadata_url
        self.issuer = issuer
        self._clock = clock
        self._validator: TokenValidator | None = None
        self._read_at = 0.0

    def _current_validator(self) -> TokenValidator:
        if self._validator is None or self._clock() - self._read_at > METADATA_TTL:
            try:
                response = httpx.get(self.metadata_url, timeout=10)
                response.raise_for_status()
                jwks_uri = str(response.json()["jwks_uri"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as error:
                raise KeysUnavailable(f"OpenID metadata {self.metadata_url}: {error}") from None
            options = JwtValidationOptions(
                valid_issuers=[self.issuer],
                valid_audiences=[self.app_id],
                jwks_uri=jwks_uri,
            )
            self._validator, self._read_at = TokenValidator(options), self._clock()
        return self._validator

    async def check(self, authorization: str | None, service_url: str | None) -> Caller:
        """The caller of a request with this ``Authorization`` header whose activity names
        ``service_url``; ``Unauthorized`` when the token is missing or invalid."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("no Bearer token")
        if not service_url:
            raise Unauthorized("the activity has no serviceUrl")
        validator = self._current_validator()
        try:
            claims = await validator.validate_token(
                authorization.removeprefix("Bearer "), service_url
            )
        except jwt.PyJWKClientConnectionError as error:
            # The key list itself could not be fetched: not the token's fault.
            raise KeysUnavailable(str(error)) from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as error:  # e.g. an unknown key id
            raise Unauthorized(str(error)) from None
        return Caller(service_url, claims)
