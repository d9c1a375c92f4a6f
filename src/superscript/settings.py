"""One settings object for every part of SuperScript.

Values come from flags (the CLI passes them in, so they win), then from
``SUPERSCRIPT_*`` environment variables, then from the defaults of the contract.
The Temporal connection is read separately, from Temporal's own environment
configuration, so that ``TEMPORAL_ADDRESS`` and profiles work as everywhere else.
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from temporalio.envconfig import ClientConfigProfile

from superscript.contract import BUNDLED_SCRIPTS_DIR as BUNDLED_SCRIPTS_DIR


class Settings(BaseSettings):
    """Everything the API, the worker, the CLI and the dev server are configured by."""

    model_config = SettingsConfigDict(env_prefix="SUPERSCRIPT_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path(".superscript")
    database_url: str = ""
    scripts_dir: Path = BUNDLED_SCRIPTS_DIR
    temporal_port: int = Field(default=7233, ge=1, le=65535)
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535)
    task_queue: str = "superscript"
    api_token: SecretStr | None = None
    # NoDecode: the variable is "LOW-HIGH" text, not JSON.
    naive_delay: Annotated[tuple[float, float], NoDecode] = (0.2, 2.0)
    # How long a POST waits for an outcome before it answers 202 pending.
    result_wait_seconds: float = Field(default=30.0, gt=0)
    # ``superscript api`` hosts a worker on the task queue, sharing the API's Temporal client,
    # so fee workflows start eagerly (their first task runs in this process, no matching).
    api_worker: bool = True

    @field_validator("naive_delay", mode="before")
    @classmethod
    def _parse_delay(cls, value: Any) -> Any:
        """Accept ``"0.2-2.0"`` (a range) or ``"0.5"`` (a fixed delay) from the environment."""
        if isinstance(value, str):
            low, sep, high = value.partition("-")
            lo = float(low)
            hi = float(high) if sep else lo
            return (lo, hi)
        return value

    @field_validator("naive_delay")
    @classmethod
    def _check_delay(cls, value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        # "nan" and "inf" parse as floats but are no delay: inf would sleep forever.
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi < lo:
            raise ValueError("naive delay must be 'LOW-HIGH' seconds with 0 <= LOW <= HIGH")
        return value

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: Any) -> Any:
        # Surrounding whitespace (a trailing newline from `$(cat token-file)`) can never
        # be sent in a header, so it is no part of the token; a blank token is no token.
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'ledger.db').as_posix()}"
        return self

    @property
    def temporal_embedded(self) -> bool:
        """True when no outside Temporal cluster is configured, so ours is used.

        Configured means an address in Temporal's own environment configuration:
        ``TEMPORAL_ADDRESS`` or the address of the active profile in its config file.
        """
        return not ClientConfigProfile.load().address

    @property
    def host_is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def check_exposure(self) -> None:
        """Refuse to serve a non-loopback address without a token: scripts move money."""
        if not self.host_is_loopback and self.api_token is None:
            raise ValueError(
                f"refusing to bind {self.host}: set SUPERSCRIPT_API_TOKEN to serve beyond loopback"
            )


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the given (flag) values on top."""
    given = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**given)
