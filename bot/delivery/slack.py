"""The Slack surface's ``Notifier``: chat.postMessage, chat.update and thread replies through a
slack_sdk ``WebClient``; a message's ``body`` is its Block Kit blocks (``bot.slack_render``).
Every message carries its idempotency key in Slack message metadata, so that after a crash the
outcome can be checked before anything is re-sent.

Kept minimal on purpose: the outbox wraps around it and owns every retry
(``bot.delivery.outbox``), so its client has no retry handler of its own (``delivery_client``)."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient

from bot.delivery.notifier import Delivered, Message

EVENT_TYPE = "kpibot_message"


def metadata_for(message: Message) -> dict[str, Any]:
    return {
        "event_type": EVENT_TYPE,
        "event_payload": {**message.metadata, "idempotency_key": message.idempotency_key},
    }


class SlackNotifier:
    def __init__(self, client: WebClient) -> None:
        self.client = client

    def _content(self, message: Message) -> dict[str, Any]:
        content: dict[str, Any] = {"text": message.text, "metadata": metadata_for(message)}
        if message.body is not None:
            content["blocks"] = message.body
        return content

    def send(self, message: Message) -> Delivered:
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
                if payload.get("idempotency_key") == idempotency_key:
                    return Delivered(channel, str(item["ts"]))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
