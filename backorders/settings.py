"""One typed settings object, read from environment variables (and `.env` when present)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NOTIFY_SECRET = "change-me: signs opt-out links and push bodies"
DEFAULT_API_KEY_PEPPER = "change-me: keys the hashes of API keys"


class DefaultSecret(RuntimeError):
    """A server outside the embedded stack would run with a secret everyone knows."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # External servers. When unset, `make run` starts embedded ones and sets these for its children.
    database_url: str = "postgresql://postgres@127.0.0.1:54320/backorders"
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    task_queue: str = "backorders"
    # Temporal over TLS: a CA to trust (files, PEM) when the server's certificate is not
    # signed by a public one; a client certificate and key for mTLS; the name the
    # server's certificate carries when it differs from the address's host. Temporal
    # Cloud takes either mTLS or an API key (which implies TLS).
    temporal_tls: bool = False
    temporal_tls_ca: Path | None = None
    temporal_tls_cert: Path | None = None
    temporal_tls_key: Path | None = None
    temporal_tls_server_name: str | None = None
    temporal_api_key: SecretStr | None = None

    # Embedded stack (used only by `make run` when DATABASE_URL / TEMPORAL_ADDRESS are unset).
    data_dir: Path = Path(".data")
    embedded_pg_port: int = 54320
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    api_host: str = "127.0.0.1"
    api_port: int = 8000

    # Database pool: per process, so API processes and workers may differ
    # (`API_DB_POOL_SIZE`, `WORKER_DB_POOL_SIZE`; unset: `DB_POOL_SIZE`). A managed
    # PostgreSQL usually wants TLS: `DATABASE_SSLMODE=verify-full` (or `?sslmode=` in the
    # URL), with `DATABASE_SSLROOTCERT` for a private CA.
    db_pool_size: int = 10
    api_db_pool_size: int | None = None
    worker_db_pool_size: int | None = None
    database_sslmode: str | None = None
    database_sslrootcert: Path | None = None
    db_max_overflow: int = 10
    db_statement_timeout_ms: int = 30_000

    # Simulated warehouse step durations, in seconds.
    warehouse_pick_seconds: float = 2.0
    warehouse_pack_seconds: float = 2.0
    warehouse_carrier_seconds: float = 3.0

    # Outbox hand-off from PostgreSQL to the line workflows.
    outbox_poll_seconds: float = 1.0
    outbox_batch_size: int = 500
    outbox_concurrency: int = 64
    outbox_max_attempts: int = 25
    outbox_inline_limit: int = 100
    outbox_inline_grace_seconds: float = 10.0
    # How long a request waits to hand its messages to Temporal itself before leaving
    # them to the relay (keep below the grace period): a client never hangs on an outage.
    outbox_inline_timeout_seconds: float = 3.0

    # A line workflow continues as new past this many history events (Temporal's own
    # suggestion also triggers it); only very large lines received in many lots get there.
    line_history_limit: int = 10_000

    # Worker tuning.
    worker_max_concurrent_activities: int = 200
    worker_max_concurrent_workflow_tasks: int = 100
    # Long polls the worker keeps open for workflow tasks (the SDK's default is 5). With
    # 5, a thousand-line burst's tasks waited on the server until their sticky queues
    # timed out (0.19 full replays per line); with 20, none, and in interleaved runs on
    # one set of servers the lifecycle went from 22.0 and 21.8 lines/s to 26.3 and 28.9.
    worker_max_workflow_task_polls: int = 20
    # Each cached workflow holds ~110 KB (measured, `make bench` scale); lines wait for
    # days, so the cache holds the busy ones and an evicted line replays its short
    # history when its signal comes. Keeps worker memory flat however many lines wait.
    worker_max_cached_workflows: int = 2_000
    # How long a workflow task waits on the queue of the worker that has its workflow
    # cached before any worker may take it (and replay the whole history first). A
    # thousand lines woken at once queue their tasks for longer than the SDK's 10 s on
    # 2 cores: with 10 s every sampled line's history had 2 task timeouts and 10 tasks
    # (the bare ceiling's 8), and its server CPU per line was 11 ms higher; with 30 s,
    # none. The price: tasks already queued for a killed worker wait this long before
    # another worker takes them (the server routes new ones elsewhere after 10 s
    # without polls); the fault test's killed worker's lines took 36 s rather than 16 s.
    worker_sticky_queue_timeout_seconds: float = 30.0
    # On shutdown, let running activities finish this long before cancelling them.
    worker_graceful_shutdown_seconds: float = 20.0

    # Notifications (F11-F16). A channel without credentials falls back to the log
    # channel: the message is kept in the store and logged, so everything works offline.
    public_base_url: str = "http://127.0.0.1:8000"
    notify_secret: SecretStr = SecretStr(DEFAULT_NOTIFY_SECRET)
    sendgrid_api_key: SecretStr | None = None
    sendgrid_host: str = "https://api.sendgrid.com"
    notify_sender: str = "backorders@example.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    push_webhook_url: str | None = None
    # Standard Webhooks secret (`whsec_<base64>`) our push webhook is signed with; when
    # unset, the bytes of NOTIFY_SECRET are the key.
    push_webhook_secret: SecretStr | None = None
    notify_send_attempts: int = 5
    notify_max_retry_seconds: float = 60.0
    # While a line waits: a status update this often; escalation to the account team
    # after this long, at once for these tiers.
    notify_status_update_hours: float = 7 * 24
    notify_escalate_after_hours: float = 7 * 24
    notify_escalate_tiers: list[str] = ["platinum", "gold"]
    notify_digest_hour: int = 8
    """Local hour (customer's time zone) at which a daily digest goes out."""
    notify_excluded_segments: list[str] = []
    staff_sales: list[str] = ["sales@example.com"]
    staff_purchasing: list[str] = ["purchasing@example.com"]
    staff_account_team: list[str] = ["accounts@example.com"]
    staff_alert_cooldown_hours: float = 24.0

    # Days from a purchase order's arrival until its units can ship to a waiting line.
    eta_handling_days: int = 2
    # Honest dates: a waiting line's likely and latest dates shift its purchase order's
    # promise by these quantiles of the supplier's past delays (`domain.delays`).
    eta_likely_quantile: float = 0.5
    eta_latest_quantile: float = 0.9

    # Forecasting (F21). Recomputed on a Temporal Schedule (cron, UTC; empty: no
    # schedule) as one workflow with an activity per batch of SKUs.
    forecast_schedule_cron: str = "0 3 * * *"
    forecast_batch_size: int = 250
    forecast_history_weeks: int = 104
    forecast_horizon_weeks: int = 12
    # Processes the models run in beside a worker or API process (0: a thread of its
    # own instead), so model fitting never stalls the event loop.
    forecast_processes: int = 1
    # Replenishment suggestions: the service level safety stock is held for, the weeks
    # of demand an order covers beyond the reorder point, and the lead time assumed
    # when neither the supplier's receipts nor the product say.
    forecast_service_level: float = 0.95
    forecast_review_weeks: float = 4.0
    forecast_default_lead_time_days: int = 14
    # Purchasing hears of a SKU predicted to stock out within its lead time plus this.
    forecast_shortage_horizon_days: int = 14

    # Access control. API keys are stored as HMAC-SHA256 under this pepper, so a leaked
    # table alone cannot be used; changing it invalidates every key.
    api_key_pepper: SecretStr = SecretStr(DEFAULT_API_KEY_PEPPER)
    # Requests per key (per client address for routes without a key), in the `limits`
    # notation ("600/minute", "20/second;600/minute"). The memory store counts per API
    # process; a shared store (redis://, memcached://) counts across processes.
    api_rate_limit: str = "600/minute"
    api_rate_limit_storage: str = "memory://"
    api_max_body_bytes: int = 1_048_576

    # Pending hand-offs above which intake stops delivering its own workflow starts and
    # leaves them to the relays, so a burst is answered at the speed of PostgreSQL.
    intake_queue_backlog: int = 200
    # How often each worker looks for dead intakes whose transient cause is due a retry.
    intake_retry_poll_seconds: float = 5.0

    # Dashboard (F19). A sign-in lasts this long; the key's revocation ends it sooner.
    dashboard_session_hours: float = 12.0
    # "Needing alternative sourcing": no open purchase order covers the line, or it has
    # waited longer than this.
    dashboard_sourcing_after_days: int = 14
    # How often an open dashboard page refreshes its numbers.
    dashboard_refresh_seconds: float = 10.0
    # Where the Temporal UI is, for links from a line to its workflow; empty: the
    # embedded UI on this machine (http://127.0.0.1:TEMPORAL_UI_PORT).
    temporal_ui_url: str = ""
    # Set by `make run` for its children: the embedded stack on one laptop may run with
    # the default secrets; any other server refuses to.
    embedded_stack: bool = False

    log_level: str = "INFO"
    # "json": one JSON object a line with the request, order, line, workflow and
    # receipt ids it concerns (for a log pipeline); "text": for people at a terminal.
    log_format: str = "text"

    # Metrics (Prometheus). The API serves /metrics to ops keys, or to this token
    # (`Authorization: Bearer <token>`) so a scraper needs no API key; each worker serves
    # the SDK's metrics and its own on this address (empty: none).
    metrics_token: SecretStr | None = None
    worker_metrics_address: str = ""
    metrics_top_skus: int = 20
    """SKUs shown one by one in the waiting gauges (the rest only in the totals)."""
    metrics_cache_seconds: float = 5.0
    """The ledger's gauges are read at most this often per API process."""
    # Tracing (OpenTelemetry, OTLP exporter configured by the standard OTEL_* variables).
    tracing: bool = False

    @field_validator("database_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        """Accept plain libpq URLs and use the psycopg 3 driver for them."""
        for prefix in ("postgresql://", "postgres://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix):]
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in ("text", "json"):
            raise ValueError('LOG_FORMAT is "text" or "json"')
        return value

    @field_validator("database_sslmode")
    @classmethod
    def _sslmode(cls, value: str | None) -> str | None:
        modes = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
        if value is not None and value not in modes:
            raise ValueError(f"DATABASE_SSLMODE is one of {', '.join(modes)}")
        return value

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together (mTLS)")
        return self

    def pool_size(self, role: str) -> int:
        """The pool size for an "api" or a "worker" process."""
        own = {"api": self.api_db_pool_size, "worker": self.worker_db_pool_size}[role]
        return own if own is not None else self.db_pool_size

    @property
    def database_tls(self) -> dict[str, str]:
        """libpq's TLS parameters, for every connection we open (engine, direct pool,
        migrations); a `?sslmode=` in DATABASE_URL works too."""
        params = {}
        if self.database_sslmode:
            params["sslmode"] = self.database_sslmode
        if self.database_sslrootcert:
            params["sslrootcert"] = str(self.database_sslrootcert)
        return params

    @property
    def temporal_uses_tls(self) -> bool:
        return bool(self.temporal_tls or self.temporal_tls_ca or self.temporal_tls_cert
                    or self.temporal_tls_server_name or self.temporal_api_key)

    @field_validator("eta_likely_quantile", "eta_latest_quantile")
    @classmethod
    def _quantile(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError("a quantile is strictly between 0 and 1")
        return value

    @field_validator("forecast_service_level")
    @classmethod
    def _service_level(cls, value: float) -> float:
        if not 0.5 <= value < 1:
            raise ValueError("a service level is at least 0.5 and below 1")
        return value

    @field_validator("forecast_horizon_weeks")
    @classmethod
    def _horizon(cls, value: int) -> int:
        if not 1 <= value <= 52:
            raise ValueError("the forecast horizon is 1 to 52 weeks")
        return value

    @model_validator(mode="after")
    def _likely_not_after_latest(self) -> Settings:
        if self.eta_likely_quantile > self.eta_latest_quantile:
            raise ValueError("ETA_LIKELY_QUANTILE must not exceed ETA_LATEST_QUANTILE")
        return self

    def check_secrets(self) -> None:
        """Refuse to serve with a published default secret outside the embedded stack:
        opt-out links and push bodies would be forgeable, key hashes unkeyed."""
        if self.embedded_stack:
            return
        defaults = [name for name, value, default in (
            ("NOTIFY_SECRET", self.notify_secret, DEFAULT_NOTIFY_SECRET),
            ("API_KEY_PEPPER", self.api_key_pepper, DEFAULT_API_KEY_PEPPER),
        ) if value.get_secret_value() == default or len(value.get_secret_value()) < 16]
        if defaults:
            raise DefaultSecret(
                f"{' and '.join(defaults)}: the published default value, or shorter than 16 "
                "characters; set a long random value (for example "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) before "
                "starting a server outside `make run`")

    @property
    def temporal_ui(self) -> str:
        return (self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}").rstrip("/")

    @property
    def libpq_url(self) -> str:
        """The same URL without the SQLAlchemy driver suffix, for psycopg and psql."""
        return self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)


@lru_cache
def get_settings() -> Settings:
    return Settings()
