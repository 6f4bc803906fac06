"""A picture in a Teams card: a chart card's ``Image`` names ``FILE_URL`` until it is sent, and
the notifiers (the bot's and the webhooks') put the message's PNG there as a ``data:`` URI, so
that the outbox keeps the bytes once (``message_files``), not inside the stored card.

Teams documents data URIs for the pictures a bot draws in its own process ("Send and receive
inline images"), and leaves base64 images out of a bot message's 100 KB limit; a Workflows
webhook's 28 KB include them (``bot.teams.cards.webhook_picture_budget``): there the picture
is shrunk to fit (``shrink_png``, with Pillow alone: a serving process draws no chart and does
not import matplotlib)."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

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


# A picture narrower than this is too small to read on a phone: better none.
MIN_WIDTH = 480


def shrink_png(png: bytes, budget: int) -> bytes | None:
    """``png`` in at most ``budget`` bytes: as it is when it fits; else in 16, then 8 colours (a
    chart has few: its two lines, text, axes), then narrower by a fifth at a time down to
    ``MIN_WIDTH`` pixels; None when even that is too large. Fewer colours come first because a
    narrower picture blurs its labels. The octree keeps the lines' blue and orange, which the
    default median cut merges into the greys of the antialiased text."""
    if len(png) <= budget:
        return png
    with Image.open(io.BytesIO(png)) as opened:
        image = opened.convert("RGB")
    while image.width >= MIN_WIDTH:
        for colours in (16, 8):
            out = io.BytesIO()
            fewer = image.quantize(colors=colours, method=Image.Quantize.FASTOCTREE)
            fewer.save(out, format="PNG", optimize=True)
            if out.tell() <= budget:
                return out.getvalue()
        size = (round(image.width * 0.8), round(image.height * 0.8))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return None
