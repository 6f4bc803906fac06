"""What a button says: its value (or the chosen option's) and the message it was clicked on."""

from __future__ import annotations

from typing import Any

from handlers.ports import MessageRef, MessageUpdate, SlackMessage


def button_value(body: dict[str, Any]) -> str:
    action = body["actions"][0]
    selected = action.get("selected_option")
    return str(selected["value"] if selected else action.get("value", ""))


def clicked_on(body: dict[str, Any]) -> MessageRef:
    container = body.get("container") or {}
    return MessageRef(str(container.get("channel_id", "")), str(container.get("message_ts", "")))


def show(client: Any, respond: Any, outcome: MessageUpdate | SlackMessage | None) -> None:
    """The alert message replaced by its new rendering, or a refusal for the clicker alone."""
    if isinstance(outcome, SlackMessage):
        respond(text=outcome.text, blocks=outcome.blocks, response_type="ephemeral")
    elif outcome is not None:
        client.chat_update(
            channel=outcome.channel, ts=outcome.ts, text=outcome.text, blocks=outcome.blocks
        )
