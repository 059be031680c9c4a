"""The embedded sandbox's simulated phones: who enters a voice call's code (CALLERID_SANDBOX_CALLS).

read-back (default): the person who answers texts the heard code back, so the README's unattended
run of data/sample.csv (landlines go by call) finishes; hold: the code is only heard and a person
must type it (code page, UI form, `callerid otp submit`).
"""

from __future__ import annotations

import httpx
import pytest

from callerid.pipeline.environment import open_run
from callerid.pipeline.options import PipelineOptions
from callerid.settings import load_settings


@pytest.mark.parametrize(("value", "texted"), [(None, True), ("read-back", True), ("hold", False)])
async def test_the_embedded_sandbox_reads_call_codes_back_unless_told_to_hold(
    tmp_path, monkeypatch, value: str | None, texted: bool
) -> None:
    for name in ("PLIVO_AUTH_ID", "PLIVO_AUTH_TOKEN", "CALLERID_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    if value is None:
        monkeypatch.delenv("CALLERID_SANDBOX_CALLS", raising=False)
    else:
        monkeypatch.setenv("CALLERID_SANDBOX_CALLS", value)
    settings = load_settings(output_dir=tmp_path)
    async with open_run(settings, PipelineOptions(), run_id="calls-setting") as pipeline:
        assert pipeline.sandbox_url
        async with httpx.AsyncClient() as http:
            got = (await http.get(f"{pipeline.sandbox_url}/_sandbox/network")).json()
    assert got["text_heard_codes"] is texted
