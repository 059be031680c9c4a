"""The OTP inbox: every source writes inbound messages into one table; one matcher reads it.

Sources: `webhook` (Plivo inbound-SMS webhooks, `WebhookServer` / `create_webhook_app`),
`filedrop` (CSV/JSONL files), `imap` (an SMS-to-email mailbox), `manual` (a person, via the
Prefect UI or the CLI). `store` holds the table's queries; `matcher` turns new messages into codes.
"""

from __future__ import annotations

from callerid.inbox.db import SessionScope, session_scope
from callerid.inbox.filedrop import FileResult, RejectedLine, RejectReason, take_files
from callerid.inbox.imap import ImapConfig, ImapError, ImapSettings, TlsMode, poll_mailbox
from callerid.inbox.manual import submit_code
from callerid.inbox.matcher import classify, match_new_messages, match_rows, numbers_with_codes
from callerid.inbox.models import (
    AssignmentError,
    InboundMessage,
    InboxError,
    InvalidCodeError,
    InvalidNumberError,
    MatchedCode,
    MessageNotFoundError,
    MessageSource,
    StoredMessage,
)
from callerid.inbox.server import WebhookServer
from callerid.inbox.text import normalise_number, read_text
from callerid.inbox.webhook import DEFAULT_PATH, create_webhook_app
from callerid.inbox.webhook_auth import Credentials, Verdict, check_signature

__all__ = [
    "DEFAULT_PATH",
    "AssignmentError",
    "Credentials",
    "FileResult",
    "ImapConfig",
    "ImapError",
    "ImapSettings",
    "InboundMessage",
    "InboxError",
    "InvalidCodeError",
    "InvalidNumberError",
    "MatchedCode",
    "MessageNotFoundError",
    "MessageSource",
    "RejectReason",
    "RejectedLine",
    "SessionScope",
    "StoredMessage",
    "TlsMode",
    "Verdict",
    "WebhookServer",
    "check_signature",
    "classify",
    "create_webhook_app",
    "match_new_messages",
    "match_rows",
    "normalise_number",
    "numbers_with_codes",
    "poll_mailbox",
    "read_text",
    "session_scope",
    "submit_code",
    "take_files",
]
