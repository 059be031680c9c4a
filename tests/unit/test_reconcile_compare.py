"""The comparison and the plan: every category, the scope rules, and what each flag adds."""

from __future__ import annotations

import pickle

import pytest

from callerid.reconcile.compare import compare, counts, plan
from callerid.reconcile.models import (
    Action,
    ActionKind,
    Category,
    Desired,
    Known,
    Listed,
    Scope,
)

SA1, SA2 = "SASANDBOXSUBACCT0001", "SASANDBOXSUBACCT0002"


def _categories(findings: tuple) -> dict[str, list[str]]:  # type: ignore[type-arg]
    out: dict[str, list[str]] = {}
    for f in findings:
        out.setdefault(f.phone_number, []).append(f.category.value)
    return out


def test_every_category_from_ledger_and_account() -> None:
    listed = [
        Listed("+14155550001", alias="ok"),
        Listed("+14155550002", alias="renamed"),
        Listed("+14155550003", alias="x", subaccount=SA2),
        Listed("+14155550009", alias="stranger"),
        Listed("+14155550010", alias="both", subaccount=SA2),
    ]
    known = [
        Known("+14155550001", "verified", alias="ok"),
        Known("+14155550002", "verified", alias="original"),
        Known("+14155550003", "already_verified", alias="x", subaccount=SA1),
        Known("+14155550004", "verified", alias="gone"),
        Known("+14155550005", "initiated"),
        Known("+14155550006", "failed"),
        Known("+14155550010", "verified", alias="b", subaccount=SA1),
    ]
    got = _categories(compare(listed, known))
    assert got == {
        "+14155550001": ["verified"],
        "+14155550002": ["alias_drift"],
        "+14155550003": ["subaccount_drift"],
        "+14155550004": ["lost"],
        "+14155550005": ["pending"],
        "+14155550006": ["failed"],
        "+14155550009": ["extra"],
        "+14155550010": ["alias_drift", "subaccount_drift"],
    }


def test_desired_csv_wins_over_the_ledger_and_none_means_no_opinion() -> None:
    listed = [Listed("+14155550001", alias="a"), Listed("+14155550002", alias="b")]
    known = [Known("+14155550001", "verified", alias="a"), Known("+14155550002", "verified")]
    desired = [
        Desired("+14155550001", alias="wanted"),
        Desired("+14155550002", alias=None),
        Desired("+14155550003", alias="new"),
    ]
    findings = compare(listed, known, desired)
    assert _categories(findings) == {
        "+14155550001": ["alias_drift"],
        "+14155550002": ["verified"],
        "+14155550003": ["missing"],
    }
    assert findings[0].expected_alias == "wanted" and findings[0].listed_alias == "a"


def test_a_number_only_the_desired_csv_knows_is_not_extra() -> None:
    findings = compare([Listed("+14155550001", alias="a")], [], [Desired("+14155550001")])
    assert [f.category for f in findings] == [Category.VERIFIED]


def test_listed_number_with_a_pending_ledger_row_is_verified_and_shows_the_status() -> None:
    (finding,) = compare([Listed("+14155550001")], [Known("+14155550001", "initiated")])
    assert finding.category is Category.VERIFIED and finding.ledger_status == "initiated"


def test_scope_leaves_numbers_of_other_subaccounts_unjudged() -> None:
    known = [
        Known("+14155550001", "verified", subaccount=SA1),
        Known("+14155550002", "verified", subaccount=SA2),
    ]
    findings = compare([], known, scope=Scope("MA", subaccount=SA1))
    assert _categories(findings) == {"+14155550001": ["lost"]}


def test_plan_merges_both_drifts_and_adds_deletes_and_requeues_only_when_asked() -> None:
    listed = [Listed("+14155550001", alias="x", subaccount=SA2), Listed("+14155550009")]
    known = [
        Known("+14155550001", "verified", alias="y", subaccount=SA1),
        Known("+14155550004", "verified"),
    ]
    findings = compare(listed, known)
    update = Action(ActionKind.UPDATE, "+14155550001", alias="y", subaccount=SA1)
    assert [(a.kind, a.phone_number, a.alias, a.subaccount) for a in plan(findings)] == [
        (update.kind, update.phone_number, "y", SA1)
    ]
    full = plan(findings, prune=True, requeue_lost=True)
    assert [(a.kind, a.phone_number) for a in full] == [
        (ActionKind.UPDATE, "+14155550001"),
        (ActionKind.REQUEUE, "+14155550004"),
        (ActionKind.DELETE, "+14155550009"),
    ]


def test_counts_list_every_category_even_when_zero() -> None:
    c = counts(compare([Listed("+14155550009")], []))
    assert set(c) == {cat.value for cat in Category}
    assert c["extra"] == 1 and sum(c.values()) == 1


@pytest.mark.parametrize(
    "value",
    [
        Listed("+14155550001", alias="a"),
        Action(ActionKind.DELETE, "+14155550001", reason=Category.EXTRA),
        compare([Listed("+14155550001")], [])[0],
    ],
)
def test_values_survive_pickle(value: object) -> None:
    assert pickle.loads(pickle.dumps(value)) == value
