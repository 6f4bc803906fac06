"""Answering in a channel thread: the answer for everyone in the thread, a refusal for the
asker alone."""

from __future__ import annotations

from typing import Any

from handlers.ports import SlackMessage


def answer_in_thread(
    client: Any, channel: str, user: str, thread: str, message: SlackMessage
) -> None:
    if message.refused:
        client.chat_postEphemeral(
            channel=channel, user=user, text=message.text, blocks=message.blocks, thread_ts=thread
        )
        return
    client.chat_postMessage(
        channel=channel, thread_ts=thread, text=message.text, blocks=message.blocks,
        unfurl_links=False,
    )  # fmt: skip
