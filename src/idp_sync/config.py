"""Configuration from environment variables (pydantic-settings).

With nothing set, everything runs on the embedded default under ``./.idp-sync/``:
SQLite for data and Celery's SQLAlchemy transport on SQLite as the broker.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of idp-sync. Names are the environment variables (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    data_dir: Path = Field(default=Path(".idp-sync"), alias="IDP_SYNC_DATA_DIR")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    broker_url: str | None = Field(default=None, alias="BROKER_URL")
    # Prefix of every broker key, so that several deployments (or test runs) share a Redis.
    broker_key_prefix: str = Field(default="", alias="IDP_SYNC_BROKER_KEY_PREFIX")
    api_key: str | None = Field(default=None, alias="IDP_SYNC_API_KEY")
    public_url: str = Field(default="http://127.0.0.1:8000", alias="IDP_SYNC_PUBLIC_URL")

    # Pipeline
    sweeper_interval_seconds: float = Field(default=30.0, alias="IDP_SYNC_SWEEPER_INTERVAL")
    sweeper_threshold_seconds: float = Field(default=60.0, alias="IDP_SYNC_SWEEPER_THRESHOLD")
    job_batch_size: int = Field(default=5000, alias="IDP_SYNC_JOB_BATCH_SIZE", ge=1)
    # Batches of a job written at once on PostgreSQL (each one connection), while the next
    # one is read and resolved: the server's cores work on writes in parallel.
    job_writers: int = Field(default=2, alias="IDP_SYNC_JOB_WRITERS", ge=1, le=8)
    job_lease_seconds: float = Field(default=120.0, alias="IDP_SYNC_JOB_LEASE_SECONDS")
    publish_timeout_seconds: float = Field(default=2.0, alias="IDP_SYNC_PUBLISH_TIMEOUT")

    reconcile_interval_seconds: float = Field(
        default=86400.0, alias="IDP_SYNC_RECONCILE_INTERVAL_SECONDS"
    )
    sequencer_interval_seconds: float = Field(default=5.0, alias="IDP_SYNC_SEQUENCER_INTERVAL")
    event_retention_days: int = Field(default=30, alias="IDP_SYNC_EVENT_RETENTION_DAYS", ge=1)

    worker_metrics_port: int | None = Field(default=None, alias="IDP_SYNC_WORKER_METRICS_PORT")
    log_format: str = Field(default="json", alias="IDP_SYNC_LOG_FORMAT")  # json | text
    log_level: str = Field(default="INFO", alias="IDP_SYNC_LOG_LEVEL")

    # Webhooks
    webhook_allow_private_destinations: bool = Field(
        default=False, alias="IDP_SYNC_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS"
    )
    webhook_retry_period_seconds: float = Field(
        default=3 * 24 * 3600.0, alias="IDP_SYNC_WEBHOOK_RETRY_PERIOD_SECONDS", gt=0
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, alias="IDP_SYNC_WEBHOOK_TIMEOUT_SECONDS", gt=0
    )
    webhook_backoff_base_seconds: float = Field(
        default=30.0, alias="IDP_SYNC_WEBHOOK_BACKOFF_BASE_SECONDS", gt=0
    )
    webhook_backoff_max_seconds: float = Field(
        default=4 * 3600.0, alias="IDP_SYNC_WEBHOOK_BACKOFF_MAX_SECONDS", gt=0
    )

    # SSO (issue 5): the client id of /sso/authorize and /sso/token, registered redirect URIs
    client_id: str = Field(default="client_idp_sync", alias="IDP_SYNC_CLIENT_ID")
    redirect_uris: str = Field(default="", alias="IDP_SYNC_REDIRECT_URIS")  # comma-separated
    saml_clock_skew_seconds: int = Field(
        default=120, alias="IDP_SYNC_SAML_CLOCK_SKEW_SECONDS", ge=0, le=300
    )
    saml_max_response_bytes: int = Field(
        default=256 * 1024, alias="IDP_SYNC_SAML_MAX_RESPONSE_BYTES", ge=1024
    )
    # Sign-ins the ACS validates at once in one process. Validation is CPU under the GIL;
    # more threads than this only contend for it (8 at once cost ~1.7x the CPU of 2).
    acs_threads: int = Field(default=2, alias="IDP_SYNC_ACS_THREADS", ge=1, le=64)

    # HTTP
    idempotency_ttl_hours: int = Field(default=24, alias="IDP_SYNC_IDEMPOTENCY_TTL_HOURS")
    api_key_cache_seconds: float = Field(default=30.0, alias="IDP_SYNC_API_KEY_CACHE_SECONDS")

    @property
    def is_embedded(self) -> bool:
        """True when no external database is configured (SQLite under data_dir)."""
        return self.database_url is None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return _normalise_db_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'idp-sync.sqlite').resolve()}"

    @property
    def effective_broker_url(self) -> str:
        if self.broker_url:
            return self.broker_url
        return f"sqla+sqlite:///{(self.data_dir / 'broker.sqlite').resolve()}"

    def ensure_data_dir(self) -> None:
        if self.is_embedded or not self.broker_url:
            self.data_dir.mkdir(parents=True, exist_ok=True)


def _normalise_db_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the common ``postgresql://`` form."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
