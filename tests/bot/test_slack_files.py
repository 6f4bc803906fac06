"""Sharing a file the way Slack documents it (``files_upload_v2``: files.getUploadURLExternal,
the upload URL, files.completeUploadExternal), against the fake Slack driven by the real
``WebClient``: what the fake records is what Slack would have received."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakes.slack_api import TOKEN, FakeSlack, Fault

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as running:
        yield running


def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake.url)


def test_upload_v2_shares_the_bytes_in_a_thread(fake: FakeSlack) -> None:
    web = client(fake)
    parent = web.chat_postMessage(channel="C1", text="digest")["ts"]
    done = web.files_upload_v2(
        channel="C1", thread_ts=parent, content=PNG, filename="chart.png", title="Q4",
        alt_txt="revenue against pace",
    )  # fmt: skip
    assert done["file"]["name"] == "chart.png" and done["file"]["title"] == "Q4"
    # the three documented steps, in order, the upload itself without a token
    asked, uploaded, completed = [c for c in fake.calls if c.method != "chat.postMessage"]
    assert (asked.method, uploaded.method, completed.method) == (
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal",
    )  # fmt: skip
    assert asked.body["length"] == str(len(PNG)) and asked.body["alt_txt"] == "revenue against pace"
    assert "authorization" not in uploaded.headers
    assert (completed.body["channel_id"], completed.body["thread_ts"]) == ("C1", parent)
    assert json.loads(completed.body["files"]) == [{"id": done["file"]["id"], "title": "Q4"}]
    [(message, upload)] = fake.shared_files("C1")
    assert upload.data == PNG and message.thread_ts == parent
    # the file message is listed in the thread with its file, as conversations.replies does
    replies = web.conversations_replies(channel="C1", ts=parent)["messages"]
    assert [m.get("files", [{}])[0].get("name") for m in replies] == [None, "chart.png"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"filename": "chart.png", "length": 0}, "missing_argument"),
        ({"length": 10}, "missing_argument"),
        ({"filename": "c.png", "length": 10, "alt_txt": "x" * 1001}, "alt_txt_too_large"),
    ],
)
def test_upload_url_refuses_what_slack_refuses(fake: FakeSlack, body: dict, error: str) -> None:
    with pytest.raises(SlackApiError) as raised:
        client(fake).api_call("files.getUploadURLExternal", params=body)
    assert raised.value.response["error"] == error


def test_completing_a_file_whose_bytes_never_arrived_or_twice_is_file_not_found(
    fake: FakeSlack,
) -> None:
    web = client(fake)
    announced = web.files_getUploadURLExternal(filename="c.png", length=3)
    files = [{"id": announced["file_id"], "title": "c"}]
    with pytest.raises(SlackApiError, match="file_not_found"):
        web.files_completeUploadExternal(files=files, channel_id="C1")
    web.files_upload_v2(channel="C1", content=PNG, filename="d.png", title="d")
    [(_, shared)] = fake.shared_files("C1")
    with pytest.raises(SlackApiError, match="file_not_found"):
        web.files_completeUploadExternal(files=[{"id": shared.id, "title": "d"}], channel_id="C1")
    assert len(fake.shared_files("C1")) == 1


def test_sharing_into_a_missing_channel_or_thread_fails_and_shares_nothing(
    fake: FakeSlack,
) -> None:
    web = client(fake)
    fake.unknown_channels.add("CGONE")
    with pytest.raises(SlackApiError, match="channel_not_found"):
        web.files_upload_v2(channel="CGONE", content=PNG, filename="c.png")
    with pytest.raises(SlackApiError, match="invalid_thread_ts"):
        web.files_upload_v2(channel="C1", thread_ts="1.000001", content=PNG, filename="c.png")
    assert fake.shared_files("C1") == [] and fake.shared_files("CGONE") == []


def test_upload_steps_take_scripted_faults_like_every_method(fake: FakeSlack) -> None:
    fake.fail("files.completeUploadExternal", Fault.api_error("not_in_channel"))
    with pytest.raises(SlackApiError, match="not_in_channel"):
        client(fake).files_upload_v2(channel="C1", content=PNG, filename="c.png")
    assert fake.shared_files("C1") == []
