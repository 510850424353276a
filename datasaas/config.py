"""Settings: the one place configuration is read, from ``DATASAAS_*`` environment variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Final

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from datasaas.storage.engine import PoolOptions

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/datasaas.db"
# The site ``serve --demo`` creates; here (not in ``datasaas.demo``, a tool beside the CLI) so
# the front doors can name it in their examples without importing the demo generator.
DEMO_SITE_ID: Final = "ds_demo"


class Settings(BaseSettings):
    """Runtime configuration; every field has a default that works with zero setup."""

    model_config = SettingsConfigDict(env_prefix="DATASAAS_", extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    geoip_db: Path | None = None
    redis_url: str | None = None
    trusted_proxies: str = ""
    rate_limit_per_minute: int = 600
    events_rate_limit_per_minute: int = 100
    auth_failures_per_minute: int = 30
    """Failed authentications allowed per client IP and minute before 429 (no lookup then)."""
    db_pool_size: int = 5
    db_max_overflow: int = 10
    db_pool_timeout: float = 10.0
    db_connect_timeout: float = 5.0
    db_statement_timeout: float = 30.0
    max_header_bytes: int = 16_384
    """Request line plus headers, per request; larger requests get 431 and are closed."""
    header_timeout: float = 10.0
    """Seconds a client has to send a request's headers before the connection is closed."""
    body_timeout: float = 30.0
    """Seconds a client has, once its headers are in, to send the whole body."""
    graphql_introspection: bool = True
    cors_origins: str = ""
    log_level: str = "info"

    @field_validator("geoip_db", "redis_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_cidrs(cls, value: str) -> str:
        for part in _split(value):
            ipaddress.ip_network(part, strict=False)
        return value

    @property
    def pool_options(self) -> PoolOptions:
        """The database pool's sizing and timeouts."""
        return PoolOptions(
            size=self.db_pool_size,
            max_overflow=self.db_max_overflow,
            timeout=self.db_pool_timeout,
            connect_timeout=self.db_connect_timeout,
            statement_timeout=self.db_statement_timeout,
        )

    @property
    def cors_origin_list(self) -> list[str]:
        """The origins allowed to call ``/api/v1`` and ``/graphql`` from a browser."""
        return [origin.rstrip("/") for origin in _split(self.cors_origins)]

    @property
    def trusted_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The parsed ``trusted_proxies`` CIDRs."""
        return [ipaddress.ip_network(part, strict=False) for part in _split(self.trusted_proxies)]


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
