"""The form a person fills in while a flow waits for codes (plain pydantic; Prefect wraps it).

One optional field per waiting number, validated by the pattern `^\\d{4,8}$` in the JSON schema,
so the Prefect server refuses a malformed code before the flow resumes (prefect-notes §1). Fields
carry no `default` in the schema: a field left empty is simply absent from the answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, create_model

from callerid.masking import mask_otp

CODE_PATTERN = r"^\d{4,8}$"
_PREFIX = "code_"


def field_name(e164: str) -> str:
    return _PREFIX + e164.lstrip("+")


def number_of(field: str) -> str:
    return "+" + field.removeprefix(_PREFIX)


def pretty(e164: str) -> str:
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _without_defaults(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


def otp_form_model(numbers: Iterable[str]) -> type[BaseModel]:
    """A model with one optional `code_<digits>` field per number, in the given order."""
    fields: dict[str, Any] = {}
    for position, e164 in enumerate(dict.fromkeys(numbers)):
        schema = {
            "type": "string",
            "pattern": CODE_PATTERN,
            "title": pretty(e164),
            "description": f"The 4-8 digit code {e164} received (leave empty if none yet)",
            "position": position,
        }
        annotated = Annotated[str | None, WithJsonSchema(schema)]
        fields[field_name(e164)] = (annotated, Field(default=None, pattern=CODE_PATTERN))
    config = ConfigDict(extra="forbid", json_schema_extra=_without_defaults)
    model: type[BaseModel] = create_model("OtpCodes", __config__=config, **fields)
    return model


def typed_codes(answer: BaseModel | Mapping[str, Any]) -> dict[str, str]:
    """E.164 -> code for every field the person filled in."""
    values = answer.model_dump() if isinstance(answer, BaseModel) else dict(answer)
    return {
        number_of(name): str(value).strip()
        for name, value in values.items()
        if name.startswith(_PREFIX) and value not in (None, "")
    }


def describe(numbers: Iterable[str], deadline: datetime | None = None) -> str:
    """Markdown shown above the form."""
    listed = "\n".join(f"- `{e164}` ({pretty(e164)})" for e164 in numbers)
    until = f" until {deadline:%H:%M:%S} UTC" if deadline else ""
    return (
        "**Enter the verification codes these numbers received** (4-8 digits each).\n\n"
        f"{listed}\n\n"
        f"Leave a field empty if that code has not arrived. The run waits{until}; codes that "
        "reach the inbox meanwhile (SMS webhook, mailbox, file drop, or "
        "`callerid otp submit NUMBER CODE`) resume it on their own."
    )


def summary(codes: Mapping[str, str]) -> str:
    """For logs: which numbers got a code, never the codes."""
    return ", ".join(f"{e164}={mask_otp(code)}" for e164, code in sorted(codes.items()))
