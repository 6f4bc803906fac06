"""The outbox against the fake Slack Web API: every message once under rate limits, server
errors, dropped connections and lost answers; a crash between send and mark is resolved by
looking the message up (a thread reply in its thread); messages left pending are drained
later."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.delivery.errors import TransientDeliveryError
from bot.delivery.notifier import Delivered, Message
from bot.delivery.outbox import Drained, Outbox, OutboxNotifier, Reservation
from bot.scheduling.runtime import Runtime, build_runtime
from bot.store.delivery_models import PENDING, SENT, OutboxEntry
from tests.bot.delivery_support import keys_posted, runtime_for, settings_for, write_config
from tests.fakes.slack_api import FakeSlack, Fault


@pytest.fixture
def fake() -> FakeSlack:
    with FakeSlack() as running:
        yield running


def message(i: int, channel: str | None = None) -> Message:
    return Message(channel or f"C{i % 5}", f"message {i}", f"test:{i}")


def statuses(runtime: Runtime) -> dict[str, str]:
    with Session(runtime.engine) as session:
        return {e.key: e.status for e in session.scalars(select(OutboxEntry))}


def test_every_message_is_delivered_once_under_a_mix_of_faults(
    fake: FakeSlack, tmp_path: Path
) -> None:
    runtime = runtime_for(write_config(tmp_path), fake)
    fake.fail(
        "chat.postMessage",
        Fault.rate_limited(1),  # Slack did nothing: sent again after Retry-After
        Fault.server_error(),  # nothing posted, but the client cannot know: look, then send
        Fault.lost_answer(),  # posted, answer lost: looking finds it, nothing is re-sent
        Fault.dropped(),  # not posted, connection dropped: look, then send
        Fault.lost_answer(),
        Fault.server_error(),
        Fault.server_error(),
    )
    fake.fail("conversations.history", Fault.server_error(), Fault.dropped())

    delivered = [runtime.notifier.send(message(i)) for i in range(20)]

    assert sorted(keys_posted(fake)) == sorted(f"test:{i}" for i in range(20))
    assert set(statuses(runtime).values()) == {SENT}
    # What the caller got back is where the message really is, even when the answer was lost.
    by_ts = {(p.channel, p.ts) for p in fake.posts()}
    assert {(d.channel, d.ts) for d in delivered} == by_ts
    # The rate-limited call waited for Retry-After before trying again.
    posts = fake.calls_to("chat.postMessage")
    assert posts[1].at - posts[0].at >= 1.0


def test_sending_a_sent_key_again_returns_the_first_delivery(
    fake: FakeSlack, tmp_path: Path
) -> None:
    runtime = runtime_for(write_config(tmp_path), fake)
    first = runtime.notifier.send(message(1))
    again = runtime.notifier.send(message(1))
    assert again == first
    assert len(fake.posts()) == 1


def test_a_crash_between_send_and_mark_is_resolved_by_looking_before_resending(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    crashed = runtime_for(config, fake)
    # The dead process wrote the entry and posted, then died before marking it sent.
    assert crashed.notifier.outbox.reserve("send", message(1)).state is Reservation.NEW
    crashed.notifier.surfaces.send(message(1))
    # Its entry is also pending for a message it never managed to post.
    assert crashed.notifier.outbox.reserve("send", message(2)).state is Reservation.NEW

    restarted = runtime_for(config, fake)  # another owner; the claim lease is 1 s
    restarted.notifier.outbox.lease = restarted.notifier.outbox.lease * 0
    restarted.notifier.send(message(1))
    restarted.notifier.send(message(2))

    assert sorted(keys_posted(fake)) == ["test:1", "test:2"]
    assert len(fake.calls_to("conversations.history")) == 2
    assert set(statuses(restarted).values()) == {SENT}


def test_a_peer_sending_the_same_key_is_waited_for_not_duplicated(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    peer = runtime_for(config, fake)
    me = runtime_for(config, fake)
    assert peer.notifier.outbox.reserve("send", message(1)).state is Reservation.NEW
    waits: list[float] = []

    def peer_finishes(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            delivered = peer.notifier.surfaces.send(message(1))
            peer.notifier.outbox.mark_sent("test:1", delivered)

    me.notifier.sleep = peer_finishes
    result = me.notifier.send(message(1))
    assert len(fake.posts()) == 1
    assert result == Delivered(fake.posts()[0].channel, fake.posts()[0].ts)


def test_retries_are_bounded_and_the_drain_delivers_later(fake: FakeSlack, tmp_path: Path) -> None:
    config = write_config(tmp_path, delivery={"max_retries": 1})
    runtime = runtime_for(config, fake)
    fake.fail("chat.postMessage", *[Fault.dropped()] * 2)
    fake.fail("conversations.history", Fault.server_error())

    with pytest.raises(TransientDeliveryError):
        runtime.notifier.send(message(1))
    assert statuses(runtime) == {"test:1": PENDING}
    assert fake.posts() == []

    assert runtime.notifier.drain() == Drained(delivered=1)
    assert keys_posted(fake) == ["test:1"]
    assert runtime.notifier.drain() == Drained()


def test_a_rate_limit_storm_costs_one_call_per_attempt_with_the_outbox_waiting(
    fake: FakeSlack, tmp_path: Path
) -> None:
    """One layer retries: with the default max_retries of 5, six posts — not six per attempt
    of the outbox (36) as when slack_sdk retried 429s underneath it."""
    runtime = runtime_for(write_config(tmp_path, delivery={"max_retries": 5}), fake)
    waits: list[float] = []
    runtime.notifier.sleep = waits.append
    fake.fail("chat.postMessage", *[Fault.rate_limited(3)] * 50)

    with pytest.raises(TransientDeliveryError):
        runtime.notifier.send(message(1))

    assert [call.method for call in fake.calls] == ["chat.postMessage"] * 6
    assert len(waits) == 5 and min(waits) >= 3  # each retry after Slack's Retry-After
    assert statuses(runtime) == {"test:1": PENDING}  # for the next drain


def test_a_server_error_storm_looks_before_each_retry_and_stays_bounded(
    fake: FakeSlack, tmp_path: Path
) -> None:
    runtime = runtime_for(write_config(tmp_path, delivery={"max_retries": 3}), fake)
    runtime.notifier.sleep = lambda _: None
    fake.fail("chat.postMessage", *[Fault.server_error()] * 50)

    with pytest.raises(TransientDeliveryError):
        runtime.notifier.send(message(1))
    # A 5xx may have posted it: each retry looks first, then posts; 1 + 3 attempts.
    post, look = "chat.postMessage", "conversations.history"
    assert [call.method for call in fake.calls] == [post, look, post, look, post, look, post]

    # Lookups fail too: an attempt ends at its failed lookup, reads are not retried apart.
    fake.calls.clear()
    fake.fail("conversations.history", *[Fault.server_error()] * 50)
    assert runtime.notifier.drain() == Drained(still_pending=1)
    assert [call.method for call in fake.calls] == [look] * 4


def test_the_drain_gives_up_on_messages_older_than_the_limit(
    fake: FakeSlack, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    config = write_config(tmp_path, delivery={"give_up_after": "1h"})
    settings = settings_for(config, fake)
    later = datetime.now(UTC) + timedelta(hours=2)
    runtime = build_runtime(settings)
    runtime.notifier.outbox.reserve("send", message(1))
    runtime.notifier.outbox.release("test:1", "connection_error")
    future = build_runtime(settings, wall_clock=lambda: later)
    assert future.notifier.drain() == Drained(given_up=1)
    assert statuses(future) == {"test:1": "failed"}
    assert fake.posts() == []


def test_thread_replies_go_through_the_outbox(fake: FakeSlack, tmp_path: Path) -> None:
    runtime = runtime_for(write_config(tmp_path), fake)
    parent = runtime.notifier.send(message(1))
    reply = Message(parent.channel, "resolved", "test:1:resolved")
    first = runtime.notifier.reply(parent, reply)
    assert runtime.notifier.reply(parent, reply) == first
    replies = [p for p in fake.posts() if p.thread_ts == parent.ts]
    assert len(replies) == 1


def in_thread(fake: FakeSlack, parent: Delivered) -> list[str]:
    """The idempotency keys of the replies posted in ``parent``'s thread, in order."""
    return [
        str(((p.metadata or {}).get("event_payload") or {}).get("idempotency_key"))
        for p in fake.posts(parent.channel)
        if p.thread_ts == parent.ts
    ]


def test_a_reply_whose_answer_is_lost_is_looked_up_in_its_thread_not_resent(
    fake: FakeSlack, tmp_path: Path
) -> None:
    runtime = runtime_for(write_config(tmp_path), fake)
    parent = runtime.notifier.send(message(1))
    earlier = [Message(parent.channel, f"earlier {i}", f"test:1:earlier:{i}") for i in range(4)]
    for reply in earlier:
        runtime.notifier.reply(parent, reply)
    fake.replies_page_limit = 2  # the lookup has to page through the thread to find it
    fake.fail("chat.postMessage", Fault.lost_answer())

    reply = Message(parent.channel, "resolved", "test:1:resolved")
    delivered = runtime.notifier.reply(parent, reply)

    assert in_thread(fake, parent) == [m.idempotency_key for m in earlier] + ["test:1:resolved"]
    posted = fake.posts(parent.channel)[-1]
    assert delivered == Delivered(posted.channel, posted.ts)
    lookups = fake.calls_to("conversations.replies")
    assert len(lookups) > 1 and {c.body["ts"] for c in lookups} == {parent.ts}
    assert fake.calls_to("conversations.history") == []
    assert set(statuses(runtime).values()) == {SENT}


def test_a_reply_after_a_crash_between_send_and_mark_is_posted_once(
    fake: FakeSlack, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    crashed = runtime_for(config, fake)
    parent = crashed.notifier.send(message(1))
    posted = Message(parent.channel, "resolved", "test:1:resolved")
    never_posted = Message(parent.channel, "reopened", "test:1:reopened")
    # The dead process wrote both entries and posted the first reply, then died before
    # marking it sent; it never got to post the second.
    outbox = crashed.notifier.outbox
    assert outbox.reserve("reply", posted, parent.ts).state is Reservation.NEW
    crashed.notifier.surfaces.reply(parent, posted)
    assert outbox.reserve("reply", never_posted, parent.ts).state is Reservation.NEW

    restarted = runtime_for(config, fake)  # another owner; the claim lease is 1 s
    restarted.notifier.outbox.lease = restarted.notifier.outbox.lease * 0
    first = restarted.notifier.reply(parent, posted)
    second = restarted.notifier.reply(parent, never_posted)

    assert in_thread(fake, parent) == ["test:1:resolved", "test:1:reopened"]
    replies = [p for p in fake.posts(parent.channel) if p.thread_ts == parent.ts]
    assert [first, second] == [Delivered(p.channel, p.ts) for p in replies]
    assert len(fake.calls_to("conversations.replies")) == 2
    assert set(statuses(restarted).values()) == {SENT}


def test_the_drain_looks_for_a_pending_reply_in_its_thread(fake: FakeSlack, tmp_path: Path) -> None:
    runtime = runtime_for(write_config(tmp_path), fake)
    parent = runtime.notifier.send(message(1))
    reply = Message(parent.channel, "resolved", "test:1:resolved")
    # Posted, but the answer was lost every time and the retries ran out: left pending.
    runtime.notifier.outbox.reserve("reply", reply, parent.ts)
    runtime.notifier.surfaces.reply(parent, reply)
    runtime.notifier.outbox.release("test:1:resolved", "connection_error")

    assert runtime.notifier.drain() == Drained(delivered=1)
    assert in_thread(fake, parent) == ["test:1:resolved"]
    assert statuses(runtime)["test:1:resolved"] == SENT


def test_thread_replies_are_read_with_replies_not_history(fake: FakeSlack) -> None:
    from slack_sdk import WebClient

    from bot.delivery.slack import SlackNotifier, metadata_for
    from tests.fakes.slack_api import TOKEN

    client = WebClient(token=TOKEN, base_url=fake.url)
    slack = SlackNotifier(client)
    parent = slack.send(message(1))
    reply = slack.reply(parent, Message(parent.channel, "in thread", "test:1:reply"))
    shown = Message(parent.channel, "broadcast", "test:1:broadcast")
    client.chat_postMessage(
        channel=parent.channel, thread_ts=parent.ts, reply_broadcast=True,
        text=shown.text, metadata=metadata_for(shown),
    )  # fmt: skip

    history = client.conversations_history(channel=parent.channel)["messages"]
    assert [m["text"] for m in history] == ["broadcast", "message 1"]
    assert history[1]["reply_count"] == 2
    thread = client.conversations_replies(channel=parent.channel, ts=reply.ts)["messages"]
    assert [m["text"] for m in thread] == ["message 1", "in thread", "broadcast"]

    assert slack.find(parent.channel, "test:1:reply", None) is None
    assert slack.find(parent.channel, "test:1:reply", None, parent.ts) == reply
    # The parent is in the thread's answer, but it is not a reply to look for.
    assert slack.find(parent.channel, "test:1", None, parent.ts) is None


def test_updates_are_retried(fake: FakeSlack, tmp_path: Path) -> None:
    runtime = runtime_for(write_config(tmp_path), fake)
    parent = runtime.notifier.send(message(1))
    fake.fail("chat.update", Fault.server_error(), Fault.dropped())
    runtime.notifier.update(parent, Message(parent.channel, "edited", "test:1"))
    assert fake.posts()[0].text == "edited"


def test_outbox_notifier_is_a_notifier() -> None:
    from bot.delivery.notifier import Notifier

    def accepts(notifier: Notifier) -> None:
        assert callable(notifier.send)

    accepts(OutboxNotifier.__new__(OutboxNotifier))
    assert Outbox.__init__ is not None
