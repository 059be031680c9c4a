"""The account's limiter under a Prefect server: installed once, found by every client."""

from __future__ import annotations

import logging
import uuid

import pytest

from callerid.plivo import limiter_for
from callerid.settings import Settings, load_settings
from tasks.account import account_limiter, install_shared_limiter


def _settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    auth_id = "MA" + uuid.uuid4().hex[:18].upper()  # a fresh account: the registry is per process
    monkeypatch.setenv("PLIVO_AUTH_ID", auth_id)
    monkeypatch.setenv("CALLERID_RATE_LIMIT_REQUESTS", "300")
    monkeypatch.setenv("CALLERID_RATE_LIMIT_PERIOD_S", "5")
    settings = load_settings()
    assert settings.plivo_auth_id == auth_id
    return settings


def auth_id(settings: Settings) -> str:
    assert settings.plivo_auth_id is not None
    return settings.plivo_auth_id


def test_installed_limiter_is_the_one_every_client_of_the_process_gets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _settings(monkeypatch)
    shared = install_shared_limiter(settings)
    assert limiter_for(auth_id(settings), 300, 5.0) is shared
    assert install_shared_limiter(settings) is shared
    assert account_limiter(settings, shared=True) is shared


def test_without_a_server_the_plain_limiter_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    settings = _settings(monkeypatch)
    plain = account_limiter(settings)
    assert plain is limiter_for(auth_id(settings))
    assert plain.max_requests == 300


def test_a_process_already_pacing_keeps_its_limiter_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(monkeypatch)
    plain = limiter_for(auth_id(settings), 300, 5.0)
    with caplog.at_level(logging.WARNING, logger="tasks.account"):
        assert install_shared_limiter(settings) is plain
    assert "does not share the global concurrency limit" in caplog.text
