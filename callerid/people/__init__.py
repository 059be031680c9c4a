"""People: the owners of the numbers, told when a code waits for them, and the page they type it on.

    owners.py   the owner column, kept per number in the ledger
    links.py    HMAC-signed links naming owner, numbers and expiry; CSRF tokens
    keys.py     the signing key (CALLERID_LINK_SECRET, or generated once into the ledger)
    waves.py    who needs a person now; one message per owner per wave
    mail.py     SMTP from CALLERID_SMTP_URL: one connection per wave, retried with backoff
    records.py  what was sent to whom and when (and what could not be); reminders due
    lane.py     the lane beside the verification loop that sends waves and reminders
    announce.py the terminal's line per wave (the run writes waiting.jsonl, `callerid run` prints)
    page.py     GET/POST /codes/<link> on the inbox server
    limits.py   the page's rate limit per link, counted in the ledger (shared by every server)
    outcomes.py what the page says about each number

No Prefect here: `tasks/people.py` and `flows/bulk_verify.py` decide when, and tell the operator.
"""

from callerid.people.lane import ASK_PERSON_AFTER, PeopleLane, WaveReport
from callerid.people.links import Link, LinkRefusedError, link_id, sign, verify
from callerid.people.mail import Mail, SmtpConfigError, SmtpMailer, SmtpSettings, parse_smtp_url
from callerid.people.owners import assign_owners, owners_of_rows, valid_owner
from callerid.people.page import CodePage, add_code_page

__all__ = [
    "ASK_PERSON_AFTER",
    "CodePage",
    "Link",
    "LinkRefusedError",
    "Mail",
    "PeopleLane",
    "SmtpConfigError",
    "SmtpMailer",
    "SmtpSettings",
    "WaveReport",
    "add_code_page",
    "assign_owners",
    "link_id",
    "owners_of_rows",
    "parse_smtp_url",
    "sign",
    "valid_owner",
    "verify",
]
