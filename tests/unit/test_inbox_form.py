"""The person's form: one optional field per number, the code pattern in the JSON schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from callerid.inbox.form import describe, otp_form_model, summary, typed_codes

NUMBERS = ["+14155550123", "+442079460958", "+14155550123"]


def test_schema_has_one_optional_patterned_field_per_number() -> None:
    schema = otp_form_model(NUMBERS).model_json_schema()
    props = schema["properties"]
    assert list(props) == ["code_14155550123", "code_442079460958"]  # duplicates folded, in order
    assert schema.get("required", []) == []
    for position, prop in enumerate(props.values()):
        assert prop["type"] == "string" and prop["pattern"] == r"^\d{4,8}$"
        assert prop["position"] == position and "default" not in prop
    assert props["code_442079460958"]["title"] == "+44 20 7946 0958"
    assert schema["additionalProperties"] is False


def test_answers_map_back_to_numbers() -> None:
    model = otp_form_model(NUMBERS)
    answer = model(code_14155550123="4821")
    assert typed_codes(answer) == {"+14155550123": "4821"}
    assert typed_codes({"code_442079460958": "12345678", "code_14155550123": None}) == {
        "+442079460958": "12345678"
    }
    for bad in ("12ab", "123", "123456789"):
        with pytest.raises(ValidationError):
            model(code_14155550123=bad)
    with pytest.raises(ValidationError):
        model(code_19999999999="4821")


def test_description_and_summary_never_show_codes() -> None:
    text = describe(NUMBERS[:2], datetime(2026, 1, 1, 12, 15, tzinfo=UTC))
    assert "+14155550123" in text and "12:15:00 UTC" in text and "callerid otp submit" in text
    assert summary({"+14155550123": "4821"}) == "+14155550123=****"
