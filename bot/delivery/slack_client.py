"""The slack_sdk ``WebClient``s kpibot uses: token and base URL from the settings. Each call
path has one layer that retries it (see ``bot.delivery.retry``):

- ``slack_client``, for the Bolt app and the reads around it (users, views, answers to a
  ``/kpi``): slack_sdk's retry handlers, configured by ``delivery``;
- ``delivery_client``, for the messages sent through the outbox: no retry handler at all,
  since the outbox retries, looks up and gives up itself and ``delivery.max_retries`` must
  bound every call made for a message (with both layers retrying, a 429 storm made
  (1 + 5) × (1 + 5) = 36 calls for one message)."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.delivery.retry import slack_retry_handlers
from bot.settings import Settings


def slack_client(settings: Settings, timeout: int = 30) -> WebClient:
    return WebClient(
        token=settings.secrets.slack_bot_token,
        base_url=settings.slack_api_url or WebClient.BASE_URL,
        timeout=timeout,
        retry_handlers=slack_retry_handlers(settings.config.delivery),
    )


def delivery_client(settings: Settings, timeout: int = 30) -> WebClient:
    return WebClient(
        token=settings.secrets.slack_bot_token,
        base_url=settings.slack_api_url or WebClient.BASE_URL,
        timeout=timeout,
        retry_handlers=[],  # an empty list, not None: None means slack_sdk's default handler
    )
