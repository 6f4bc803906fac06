"""A picture in a Teams card: a chart card's ``Image`` names ``FILE_URL`` until it is sent, and
the notifiers (the bot's and the webhooks') put the message's PNG there as a ``data:`` URI, so
that the outbox keeps the bytes once (``message_files``), not inside the stored card.

Teams documents data URIs for the pictures a bot draws in its own process ("Send and receive
inline images"), and leaves base64 images out of a bot message's 100 KB limit; a Workflows
webhook's 28 KB include them (``bot.teams.cards.webhook_picture_budget``)."""

from __future__ import annotations

import base64
from typing import Any

# The url of a chart card's Image until it is sent: the notifier puts the message's file there.
FILE_URL = "kpibot:file"
_DATA_URI = "data:image/png;base64,"


def with_file(card: dict[str, Any], file: bytes | None) -> dict[str, Any]:
    """``card`` as sent: the Image whose url is ``FILE_URL`` shows ``file`` (a PNG) as a data
    URI. Cards without a picture are returned as they are."""
    if file is None:
        return card
    uri = _DATA_URI + base64.b64encode(file).decode("ascii")
    body = [
        {**item, "url": uri}
        if item.get("type") == "Image" and item.get("url") == FILE_URL
        else item
        for item in card["body"]
    ]
    return {**card, "body": body}
