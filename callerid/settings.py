"""One settings object, built by `load_settings()` and passed down. Nothing is read at import time.

Precedence everywhere: explicit argument > environment > default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_URL = "https://api.plivo.com"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    plivo_auth_id: str | None = Field(default=None, alias="PLIVO_AUTH_ID")
    plivo_auth_token: SecretStr | None = Field(default=None, alias="PLIVO_AUTH_TOKEN")
    plivo_api_url: str = Field(default=DEFAULT_API_URL, alias="PLIVO_API_URL")

    output_dir: Path = Field(default=Path("out"), alias="CALLERID_OUTPUT_DIR")
    database_url: str | None = Field(default=None, alias="CALLERID_DATABASE_URL")

    rate_limit_requests: int = Field(default=300, alias="CALLERID_RATE_LIMIT_REQUESTS")
    rate_limit_period_s: float = Field(default=5.0, alias="CALLERID_RATE_LIMIT_PERIOD_S")
    # A 429 means "wait": a request meeting 429s is retried until this long after its first try.
    rate_limited_deadline_s: float = Field(
        default=300.0, ge=0, alias="CALLERID_RATE_LIMITED_DEADLINE_S"
    )

    # The embedded sandbox's simulated phones: a voice call's code is "heard" by whoever answers.
    # read-back: that person texts it back to the inbox (an unattended run finishes); hold: it stays
    # heard only (/_sandbox/messages), and someone must type it (code page, UI form, otp submit).
    sandbox_calls: Literal["read-back", "hold"] = Field(
        default="read-back", alias="CALLERID_SANDBOX_CALLS"
    )

    @property
    def uses_sandbox(self) -> bool:
        """No Plivo credentials configured: everything runs against the local sandbox.

        Only when both are unset: `missing_credential` says what is wrong with half a pair."""
        return not (self.plivo_auth_id and self.plivo_auth_token)

    def missing_credential(self) -> str | None:
        """'PLIVO_AUTH_TOKEN is not set (PLIVO_AUTH_ID is)' for half a pair; None for both or
        neither (an empty variable counts as unset)."""
        has_id = bool(self.plivo_auth_id)
        has_token = bool(self.plivo_auth_token and self.plivo_auth_token.get_secret_value())
        if has_id and not has_token:
            return "PLIVO_AUTH_TOKEN is not set (PLIVO_AUTH_ID is)"
        if has_token and not has_id:
            return "PLIVO_AUTH_ID is not set (PLIVO_AUTH_TOKEN is)"
        return None

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.output_dir / 'ledger.sqlite3').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword arguments (field names) win over it."""
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)  # type: ignore[arg-type]
