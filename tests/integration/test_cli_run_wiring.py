"""`callerid run`'s options reach the flow in one place: every option of the command is either a
CLI-only option or a parameter of `bulk_verify` (under its own name or its one listed rename),
and the end-of-run line says what the run did."""

from __future__ import annotations

import inspect
from pathlib import Path

from callerid.cli.run import CLI_ONLY, FLOW_NAMES, flow_parameters, outcome_line, run_command


def test_every_run_option_is_a_flow_parameter_or_cli_only() -> None:
    from flows.bulk_verify import bulk_verify

    flow_params = set(inspect.signature(bulk_verify.fn).parameters)
    options = {name: None for name in inspect.signature(run_command).parameters}
    options["csv_path"] = Path("numbers.csv")
    params = flow_parameters(options, run_id="r-1")
    assert set(params) <= flow_params, set(params) - flow_params
    assert params["csv_path"] == "numbers.csv" and params["run_id"] == "r-1"
    assert set(FLOW_NAMES) <= set(options) and set(options) >= CLI_ONLY
    assert {FLOW_NAMES.get(o, o) for o in options if o not in CLI_ONLY} <= set(params)


def test_outcome_line_says_what_the_run_did() -> None:
    counts = {"verified": 45, "rejected": 11}
    rerun = outcome_line({"counts": counts, "not_verified": 0}, {"verified": 0})
    assert rerun == "45 already verified, nothing sent; 11 row(s) rejected (see rejects.csv)"
    first = outcome_line({"counts": counts, "not_verified": 0}, {"initiating": 45, "verified": 45})
    assert first.startswith("45 verified: 45 by this run (45 verification(s) sent), 0 already")
    mixed = outcome_line(
        {"counts": {"verified": 40, "already_verified": 5}, "not_verified": 0},
        {"initiating": 42, "verified": 40},
    )
    assert mixed == "45 verified: 40 by this run (42 verification(s) sent), 5 already verified"
    failed = outcome_line(
        {"counts": {"verified": 3, "failed": 2}, "not_verified": 2}, {"initiating": 7}
    )
    assert "2 number(s) did not verify" in failed and "3 verified" in failed
