"""Values of a reconciliation: the three views of an account and what comparing them finds.

Three views of the same numbers meet here:

* `Listed`: what the account says (the list endpoint) - the truth;
* `Known`: what the ledger believes (one row per number of this account);
* `Desired`: what the user wants (a CSV in the import format), optional.

Comparing them yields one `Finding` per number and category, and a plan of `Action`s that `apply`
(and `prune`, and `requeue_lost`) would carry out. Everything here is a frozen value that pickles,
so Prefect tasks can pass it between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Category(StrEnum):
    """Closed set of what a number can be found to be (one number may carry both drifts)."""

    VERIFIED = "verified"  # listed, known, and as desired
    EXTRA = "extra"  # listed, but neither the ledger nor the desired CSV knows it
    LOST = "lost"  # verified in the ledger, no longer listed
    ALIAS_DRIFT = "alias_drift"  # listed with another alias than desired
    SUBACCOUNT_DRIFT = "subaccount_drift"  # listed under another subaccount than desired
    PENDING = "pending"  # in the ledger, verification not finished, not listed
    FAILED = "failed"  # the ledger gave up on it (failed), not listed
    MISSING = "missing"  # in the desired CSV, neither listed nor in the ledger


class ActionKind(StrEnum):
    UPDATE = "update"  # POST the desired alias and/or subaccount
    DELETE = "delete"  # an extra, only with prune
    REQUEUE = "requeue"  # a lost number back to `queued` in the ledger, only when asked
    RECORD = "record"  # the ledger takes what the account already lists as desired (ledger only)


class Outcome(StrEnum):
    PLANNED = "planned"  # dry run: this is exactly what would change
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Listed:
    phone_number: str  # E.164
    alias: str | None = None
    subaccount: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Known:
    phone_number: str
    status: str  # callerid.ledger.models.NumberStatus value
    alias: str | None = None
    subaccount: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Desired:
    phone_number: str
    alias: str | None = None  # None: no opinion (the import format leaves alias optional)
    subaccount: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    phone_number: str
    category: Category
    listed_alias: str | None = None
    expected_alias: str | None = None
    listed_subaccount: str | None = None
    expected_subaccount: str | None = None
    ledger_status: str | None = None
    # A desired CSV names this listed number and the ledger does not hold the expected
    # alias/subaccount (or has no row for it): `apply` writes them to the ledger.
    ledger_behind: bool = False


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    phone_number: str
    alias: str | None = None  # UPDATE: the new alias, None = leave as is
    subaccount: str | None = None  # UPDATE: the new subaccount, None = leave as is
    reason: Category | None = None
    # UPDATE / RECORD: what the ledger is to hold afterwards (None = keep the ledger's value);
    # `adopt`: the ledger has no row for the number yet (it gets one, already_verified).
    ledger_alias: str | None = None
    ledger_subaccount: str | None = None
    adopt: bool = False

    @property
    def writes_ledger(self) -> bool:
        return self.adopt or self.ledger_alias is not None or self.ledger_subaccount is not None

    def describe(self) -> str:
        if self.kind is ActionKind.UPDATE:
            parts = []
            if self.alias is not None:
                parts.append(f"alias -> {self.alias!r}")
            if self.subaccount is not None:
                parts.append(f"subaccount -> {self.subaccount}")
            tail = " (ledger too)" if self.writes_ledger else ""
            return f"update {self.phone_number}: " + ", ".join(parts) + tail
        if self.kind is ActionKind.RECORD:
            parts = []
            if self.ledger_alias is not None:
                parts.append(f"alias {self.ledger_alias!r}")
            if self.ledger_subaccount is not None:
                parts.append(f"subaccount {self.ledger_subaccount or '(main account)'}")
            what = ", ".join(parts) or "the number"
            verb = "add to" if self.adopt else "record in"
            return f"{verb} the ledger {self.phone_number}: {what} (as the account lists it)"
        if self.kind is ActionKind.DELETE:
            return f"delete {self.phone_number} (listed, unknown)"
        return f"requeue {self.phone_number} (verified in the ledger, no longer listed)"


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: Action
    outcome: Outcome
    error: str | None = None
    refused: bool = False  # failed with an answer that says the account did not change


@dataclass(frozen=True, slots=True)
class Scope:
    """Which part of the account was listed; numbers outside it are not judged."""

    account: str
    subaccount: str | None = None
    country: str | None = None

    @property
    def is_partial(self) -> bool:
        return self.subaccount is not None or self.country is not None

    def covers(self, subaccount: str | None, country: str | None) -> bool:
        if self.subaccount is not None and subaccount != self.subaccount:
            return False
        return not (self.country is not None and country is not None and country != self.country)
