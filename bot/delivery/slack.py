"""The Slack surface's ``Notifier``: chat.postMessage, chat.update and thread replies through a
slack_sdk ``WebClient``; a message's ``body`` is its Block Kit blocks (``bot.slack_render``).
Every message carries its idempotency key in Slack message metadata, so that after a crash the
outcome can be checked before anything is re-sent.

A message whose body is ``{"file": {"title", "alt_txt"}}`` (the digest's chart, a
``conversation.views.Chart``) is shared as a file with ``files_upload_v2`` instead: its bytes are
the message's ``file``. Files carry no metadata: the file is named after the idempotency key
(``file_name``), and that name is what ``find`` looks for.

Kept minimal on purpose: the outbox wraps around it and owns every retry
(``bot.delivery.outbox``), so its client has no retry handler of its own (``delivery_client``)."""

from __future__ import annotations

import re
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackRequestError

from bot.delivery.notifier import Delivered, Message
from bot.delivery.retry import CallFailure, FailureKind, SurfaceCallError

EVENT_TYPE = "kpibot_message"


def metadata_for(message: Message) -> dict[str, Any]:
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {**message.metadata, "idempotency_key": message.idempotency_key},
    }


def file_name(idempotency_key: str) -> str:
    """The name a file is shared under: its idempotency key, made a file name."""
    return re.sub(r"[^A-Za-z0-9]+", "-", idempotency_key).strip("-") + ".png"


def _file(message: Message) -> dict[str, str] | None:
    body = message.body
    return body.get("file") if isinstance(body, dict) and message.file is not None else None


class SlackNotifier:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def _share(self, channel: str, message: Message, file: dict[str, str], thread_ts: str | None
               ) -> Delivered:  # fmt: skip
        try:
            response = self.client.files_upload_v2(
                channel=channel,
                thread_ts=thread_ts,
                content=message.file,
                filename=file_name(message.idempotency_key),
                title=file["title"],
                alt_txt=file["alt_txt"],
            )
        except SlackRequestError as error:
            # The upload URL refused the bytes: nothing was shared, try again.
            raise SurfaceCallError(CallFailure(FailureKind.AMBIGUOUS, "upload_failed")) from error
        return Delivered(channel, str(response["file"]["id"]))

    def _content(self, message: Message) -> dict[str, Any]:
        content: dict[str, Any] = {"text": message.text, "metadata": metadata_for(message)}
        if message.body is not None:
            content["blocks"] = message.body
        return content

    def send(self, message: Message) -> Delivered:
        file = _file(message)
        if file is not None:
            return self._share(message.channel, message, file, None)
        response = self.client.chat_postMessage(
            channel=message.channel, unfurl_links=False, **self._content(message)
        )
        return Delivered(str(response["channel"]), str(response["ts"]))

    def update(self, delivered: Delivered, message: Message) -> Delivered:
        response = self.client.chat_update(
            channel=delivered.channel, ts=delivered.ts, **self._content(message)
        )
        return Delivered(str(response["channel"]), str(response["ts"]))

    def reply(self, delivered: Delivered, message: Message) -> Delivered:
        file = _file(message)
        if file is not None:
            return self._share(delivered.channel, message, file, delivered.ts)
        response = self.client.chat_postMessage(
            channel=delivered.channel,
            thread_ts=delivered.ts,
            unfurl_links=False,
            **self._content(message),
        )
        return Delivered(str(response["channel"]), str(response["ts"]))

    # -- lookup by idempotency key, for the outbox after a crash (issue 4) ------------------
    def find(
        self,
        channel: str,
        idempotency_key: str,
        oldest: float | None,
        thread_ts: str | None = None,
    ) -> Delivered | None:
        """The message carrying ``idempotency_key`` in its metadata, posted in ``channel`` since
        ``oldest`` (a Unix time), if any. For a user id, the DM with that user is searched.

        With ``thread_ts``, the replies in that thread are searched instead: Slack leaves thread
        replies out of ``conversations.history`` (unless also broadcast to the channel), so
        only ``conversations.replies`` can tell whether a reply already landed."""
        if channel[:1] in ("U", "W"):
            opened = self.client.conversations_open(users=channel)
            channel = str(opened["channel"]["id"])
        since = f"{oldest:.6f}" if oldest is not None else "0"
        name = file_name(idempotency_key)
        cursor: str | None = None
        while True:
            if thread_ts is None:
                page = self.client.conversations_history(
                    channel=channel,
                    oldest=since,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            else:
                # Slack may cap ``limit`` lower than asked (15 for some apps): the cursor loop
                # below copes with any page size.
                page = self.client.conversations_replies(
                    channel=channel,
                    ts=thread_ts,
                    oldest=since,
                    include_all_metadata=True,
                    limit=200,
                    cursor=cursor,
                )
            messages: list[dict[str, Any]] = page.get("messages", [])
            for item in messages:
                if thread_ts is not None and item.get("ts") == thread_ts:
                    # The thread's parent comes first in the answer; it is not the reply sought.
                    # Matched by ts rather than position, as it is left out of later pages.
                    continue
                payload = (item.get("metadata") or {}).get("event_payload") or {}
                shared = {f.get("name") for f in item.get("files") or ()}
                if payload.get("idempotency_key") == idempotency_key or name in shared:
                    return Delivered(channel, str(item["ts"]))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
