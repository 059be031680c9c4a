"""The inbox's Prefect tasks under the session's Prefect test server: the IMAP credentials come
from a Secret block (a real dovecot behind them), the drop folder is taken as one task run."""

from __future__ import annotations

import json
import uuid
from email.message import EmailMessage
from pathlib import Path

from prefect import flow

from callerid.inbox import store
from callerid.ledger import open_ledger
from callerid.sandbox import DEFAULT_AUTH_ID
from tasks.inbox import imap_config_from_secret, poll_mailbox_task, take_files_task
from tests.imap_server import PASSWORD, USER, dovecot


def test_imap_from_a_secret_block_and_the_drop_folder(prefect_api: str, tmp_path: Path) -> None:
    from prefect.blocks.system import Secret

    ledger_url = f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
    drop = tmp_path / "drop"
    drop.mkdir()
    line = {"from": "14155550125", "text": "code 5555", "received_at": "2026-11-27T03:00:00Z"}
    (drop / "gw.jsonl").write_text(json.dumps(line) + "\n")
    block = f"imap-{uuid.uuid4().hex[:8]}"
    with dovecot() as imap:
        settings = {
            "host": imap.host,
            "port": imap.imaps_port,
            "username": USER,
            "password": PASSWORD,
            "tls": "ssl",
            "cafile": imap.cafile,
        }
        Secret(value=settings).save(block, overwrite=True)
        config = imap_config_from_secret(block)
        assert (config.username, config.resolved_port) == (USER, imap.imaps_port)
        assert PASSWORD not in repr(config)
        mail = EmailMessage()
        mail["From"] = "14155550123@sms.example.com"
        mail["Subject"] = "SMS"
        mail.set_content("Your verification code is 4821")
        imap.deliver(bytes(mail))

        @flow
        def sources() -> tuple[int, int]:
            fetched = poll_mailbox_task(DEFAULT_AUTH_ID, ledger_url, secret_block=block)
            taken = take_files_task(str(drop), DEFAULT_AUTH_ID, ledger_url)
            return fetched, taken

        assert sources() == (1, 1)
    with open_ledger(ledger_url) as ledger, ledger.unit_of_work() as uow:
        rows = store.list_messages(uow.session)
    assert sorted((m.source, m.from_number) for m in rows) == [
        ("file", "14155550125"),
        ("imap", "+14155550123"),
    ]
