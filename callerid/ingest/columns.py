"""Header row to column roles: our six columns by name or synonym, the rest carried through."""

from __future__ import annotations

import re
from dataclasses import dataclass

from callerid.ingest.models import IngestInputError

# Our name -> accepted spellings, best first: with both `phone` and `number` present, `phone` wins.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "phone_number": (
        "phone_number",
        "phone",
        "number",
        "msisdn",
        "tel",
        "telephone",
        "telephone_number",
        "phone_no",
        "mobile",
        "mobile_number",
        "cell",
        "e164",
        "caller_id",
        "callerid",
    ),
    "alias": ("alias", "name", "label", "friendly_name", "display_name", "caller_id_name"),
    "country": ("country", "region", "country_code", "iso_country", "country_iso", "iso"),
    "channel": ("channel", "verification_channel", "otp_channel", "method"),
    "subaccount": ("subaccount", "sub_account", "subaccount_id", "subaccount_auth_id"),
    # Who holds the phone and is told when its code waits (issue 12).
    "owner": (
        "owner",
        "contact",
        "email",
        "notify",
        "owner_email",
        "contact_email",
        "email_address",
        "e_mail",
        "notify_email",
    ),
}
_SEPARATORS = re.compile(r"[^0-9a-z]+")
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060\u00ad"), None)


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Where each of our columns sits in a row, and the carried-through columns."""

    positions: dict[str, int]  # our name -> cell index
    headers: list[str]  # unique header names, one per cell, in file order
    extra: list[tuple[int, str]]  # (cell index, unique header) of columns we do not use

    @property
    def found(self) -> dict[str, str]:
        return {ours: self.headers[index] for ours, index in self.positions.items()}


def canonical(header: str) -> str:
    """`Phone Number`, `phone-number`, ` PHONE_NUMBER ` all become `phone_number`."""
    return _SEPARATORS.sub("_", header.translate(_INVISIBLE).strip().lower()).strip("_")


def map_columns(header_cells: list[str], *, path: str = "") -> ColumnMap:
    headers = _unique_headers(header_cells)
    keys = [canonical(cell) for cell in header_cells]
    positions: dict[str, int] = {}
    for ours, spellings in SYNONYMS.items():
        for spelling in spellings:
            if spelling in keys and keys.index(spelling) not in positions.values():
                positions[ours] = keys.index(spelling)
                break
    if "phone_number" not in positions:
        found = ", ".join(repr(h) for h in header_cells) or "none"
        raise IngestInputError(
            f"no phone number column; the first line must be a header naming one "
            f"({', '.join(SYNONYMS['phone_number'][:5])}, ...); columns found: {found}",
            path=path,
            columns_found=tuple(header_cells),
        )
    used = set(positions.values())
    extra = [(i, name) for i, name in enumerate(headers) if i not in used]
    return ColumnMap(positions=positions, headers=headers, extra=extra)


def _unique_headers(cells: list[str]) -> list[str]:
    """Blank headers get `column_N`; repeats get `_2`, `_3` so no carried cell is overwritten."""
    seen: set[str] = set()
    result: list[str] = []
    for index, cell in enumerate(cells, start=1):
        name = cell.strip() or f"column_{index}"
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        result.append(candidate)
    return result
