"""Values the ingest step hands to the rest of the pipeline: accepted rows, rejects, warnings.

Every value here is a frozen dataclass or a StrEnum so that it crosses process and Prefect task
boundaries unchanged; the exceptions hold plain values and survive a pickle round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class RejectReason(StrEnum):
    """The closed set of reasons a row is not imported (design.md, "Inputs")."""

    EMPTY = "empty"
    UNPARSEABLE = "unparseable"
    DAMAGED_NUMBER = "damaged_number"
    INVALID_COUNTRY = "invalid_country"
    NOT_A_NUMBER = "not_a_number"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    INVALID_FOR_REGION = "invalid_for_region"
    HAS_EXTENSION = "has_extension"
    DUPLICATE = "duplicate"
    BAD_CHANNEL = "bad_channel"
    BAD_ALIAS = "bad_alias"
    BAD_SUBACCOUNT = "bad_subaccount"
    BAD_OWNER = "bad_owner"  # the owner cell is not one email address


class Channel(StrEnum):
    """How Plivo delivers the OTP. An accepted row's channel is always `sms` or `call`."""

    SMS = "sms"
    CALL = "call"


# The default channel rule, as an option or a row's cell: a voice call for a number phonenumbers
# classifies as a fixed line (it cannot receive an SMS), an SMS for every other type.
AUTO_CHANNEL = "auto"


class NumberType(StrEnum):
    """phonenumbers' PhoneNumberType, by name (an accepted number is never `unknown`)."""

    FIXED_LINE = "fixed_line"
    MOBILE = "mobile"
    FIXED_LINE_OR_MOBILE = "fixed_line_or_mobile"
    TOLL_FREE = "toll_free"
    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    VOIP = "voip"
    PERSONAL_NUMBER = "personal_number"
    PAGER = "pager"
    UAN = "uan"
    VOICEMAIL = "voicemail"
    UNKNOWN = "unknown"


class WarningKind(StrEnum):
    """Things worth a person's look that do not stop a row."""

    FIXED_LINE_SMS = "fixed_line_sms"  # a landline cannot receive the SMS: suggest `call`
    COUNTRY_MISMATCH = "country_mismatch"  # the country cell disagrees with a +CC number
    ASSUMED_PLUS = "assumed_plus"  # digits only read as international: the `+` was lost
    CONFLICTING_DUPLICATE = "conflicting_duplicate"  # same number, different alias/channel/...


@dataclass(frozen=True, slots=True)
class AcceptedRow:
    line: int  # 1-based line in the file (the header is line 1), or the spreadsheet row number
    raw: str
    e164: str
    national: str
    region: str
    number_type: NumberType
    alias: str | None
    channel: Channel  # resolved: the row's own, else the default (`auto`: by number type)
    subaccount: str | None
    extra: dict[str, str] = field(default_factory=dict)
    owner: str | None = None  # the email address of the person who holds the phone


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    raw: str
    reason: RejectReason
    message: str
    duplicate_of_line: int | None = None
    # The row's other cells exactly as written, so a rejects file can be fixed and re-imported.
    alias: str = ""
    country: str = ""
    channel: str = ""
    subaccount: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    owner: str = ""


@dataclass(frozen=True, slots=True)
class RowWarning:
    line: int
    raw: str
    kind: WarningKind
    message: str


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Every data row ends in exactly one of `accepted` / `rejected`."""

    accepted: list[AcceptedRow]
    rejected: list[RejectedRow]
    warnings: list[RowWarning]
    data_rows: int
    blank_lines: int
    columns: dict[str, str]  # our name -> header as found in the file
    extra_columns: list[str]  # headers carried through untouched, in file order
    encoding: str = "utf-8"  # for a spreadsheet: its format (`xlsx`, `xls`, `ods`, ...)
    delimiter: str = ","  # "" for a spreadsheet
    sheet: str | None = None  # the sheet read, for a spreadsheet

    def __post_init__(self) -> None:
        if len(self.accepted) + len(self.rejected) != self.data_rows:
            raise AssertionError(
                f"ingest lost rows: {len(self.accepted)} accepted + {len(self.rejected)} "
                f"rejected != {self.data_rows} data rows"
            )

    def counts_by_reason(self) -> dict[RejectReason, int]:
        counts: dict[RejectReason, int] = {}
        for row in self.rejected:
            counts[row.reason] = counts.get(row.reason, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


class IngestInputError(Exception):
    """The file cannot be ingested at all: unreadable, undecodable, or no phone column."""

    def __init__(self, message: str, *, path: str = "", columns_found: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.path = path
        self.columns_found = columns_found

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only state would be lost by Exception's default pickling (it replays args).
        return (_rebuild_input_error, (type(self), self.message, self.path, self.columns_found))

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def _rebuild_input_error(
    cls: type[IngestInputError], message: str, path: str, columns_found: tuple[str, ...]
) -> IngestInputError:
    return cls(message, path=path, columns_found=columns_found)


class IngestOptionError(IngestInputError, ValueError):
    """A run-level option (default region, channel, subaccount, owner, encoding, sheet) is not
    usable.

    An `IngestInputError` too, so a caller that catches that one reports a bad option as
    cleanly as a bad file."""
