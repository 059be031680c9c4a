"""The webhook against captured-and-altered requests, over real HTTP.

The V3 signature joins sorted keys and values without separators, so a captured request can be
re-split under the same signature. Each attack below keeps the signature valid; none may store a
new message (a re-split that leaves MessageUUID as it was is a replay: stored once, see
test_inbox_webhook). And a huge body after the 413 is not read: the connection is closed."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from callerid.inbox import WebhookServer
from tests.inbox_support import ACCOUNT, all_messages, make_engine
from tests.integration.test_inbox_webhook import MAIN_TOKEN, TOKENS, headers_for, post, sms
from tests.integration.test_serving import answer_then_eof, send_huge_chunked_body


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")


@pytest.fixture
def hook(engine: sa.Engine) -> Iterator[WebhookServer]:
    with WebhookServer(engine, ACCOUNT, TOKENS, MAIN_TOKEN) as server:
        yield server


def resplit_uuid(params: dict[str, str]) -> dict[str, str]:
    """`MessageUUID=<uuid>PowerpackUUID`, PowerpackUUID (empty) dropped: a new MessageUUID."""
    altered = {k: v for k, v in params.items() if k != "PowerpackUUID"}
    altered["MessageUUID"] = params["MessageUUID"] + "PowerpackUUID" + params["PowerpackUUID"]
    return altered


def resplit_text_dropping_to(params: dict[str, str]) -> dict[str, str]:
    """`Text=<text>To<to>`, To dropped."""
    altered = {k: v for k, v in params.items() if k != "To"}
    altered["Text"] = params["Text"] + "To" + params["To"]
    return altered


@pytest.mark.parametrize("attack", [resplit_uuid, resplit_text_dropping_to])
def test_a_resplit_request_is_refused(
    hook: WebhookServer, engine: sa.Engine, attack: object
) -> None:
    params = sms()
    headers = headers_for(hook.url, params)
    assert post(hook.url, params, headers).status_code == 200
    altered = attack(params)  # type: ignore[operator]
    assert post(hook.url, altered, headers).status_code == 400  # the signature still holds
    assert [row.external_id for row in all_messages(engine)] == [params["MessageUUID"]]


@pytest.mark.parametrize(
    "message_uuid",
    [
        "u1",
        "4A9C2B1E-8F3D-4E6A-9B7C-1D2E3F405162",  # upper case
        "4a9c2b1e8f3d4e6a9b7c1d2e3f405162",  # no hyphens
        "{4a9c2b1e-8f3d-4e6a-9b7c-1d2e3f405162}",
        " 4a9c2b1e-8f3d-4e6a-9b7c-1d2e3f405162",
        "4a9c2b1e-8f3d-4e6a-9b7c-1d2e3f405162 ",
        "4a9c2b1e-8f3d-4e6a-9b7c-1d2e3f4051620",
        "4a9c2b1e-8f3d-4e6a-9b7c-1d2e3f405162PowerpackUUID",
    ],
)
def test_message_uuid_must_be_canonical(
    hook: WebhookServer, engine: sa.Engine, message_uuid: str
) -> None:
    params = sms(MessageUUID=message_uuid)
    response = post(hook.url, params, headers_for(hook.url, params))
    assert response.status_code == 400 and "MessageUUID" in response.text
    assert all_messages(engine) == []


@pytest.mark.parametrize("field", ["From", "To", "Text", "Type", "MessageUUID"])
def test_the_fields_plivo_always_sends_are_required(
    hook: WebhookServer, engine: sa.Engine, field: str
) -> None:
    params = {k: v for k, v in sms().items() if k != field}
    response = post(hook.url, params, headers_for(hook.url, params))
    assert response.status_code == 400 and field in response.text
    assert all_messages(engine) == []


def test_an_empty_text_is_still_a_message(hook: WebhookServer, engine: sa.Engine) -> None:
    params = sms(text="")
    assert post(hook.url, params, headers_for(hook.url, params)).status_code == 200
    assert len(all_messages(engine)) == 1


def test_after_413_a_huge_chunked_body_is_not_read(hook: WebhookServer) -> None:
    """Before: the server answered 413 at 16 KB, then read and dropped all 100 MB."""
    sent = [0]
    with socket.create_connection(("127.0.0.1", hook.port), timeout=10) as sock:
        path = b"/plivo/sms"
        head_sender = threading.Thread(
            target=send_huge_chunked_body, args=(sock, path, sent), kwargs={"form": True}
        )
        head_sender.start()
        answer = answer_then_eof(sock)
        head_sender.join(10)
        assert not head_sender.is_alive()
    assert answer.startswith(b"HTTP/1.1 413")
    assert sent[0] < 50 * 1024 * 1024
