"""The slack_sdk ``WebClient`` kpibot uses everywhere: token and base URL from the settings,
retry handlers from ``delivery`` (see ``bot.delivery.retry`` for which calls are retried)."""

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
