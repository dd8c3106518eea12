"""The one settings object: every knob of the service, read from OUTBOUND_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
# The topic catalog and the schemas ship inside the package (service/topics and service/schemas link to
# the top-level folders in the source tree), so an installed service never reads the source tree.
PACKAGE = Path(__file__).resolve().parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OUTBOUND_", extra="ignore")

    # Kafka
    broker: str = Field("kafka://127.0.0.1:19092", description="faust broker URL(s), ';'-separated")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    ssl_cafile: Path | None = None
    topic_prefix: str = ""
    replication_factor: int = Field(1, ge=1)
    # The partition count of the co-partitioned topics and the tables' changelogs (every topic the
    # catalog gives 6: service/catalog.py, partitions_for). At most one worker per partition is busy, so
    # it bounds how far a deployment scales out. Chosen once, when the deployment's topics are created:
    # keys and table state are placed by it, so `topics apply` refuses a count that differs later.
    partitions: int = Field(6, ge=1, le=1000)
    topic_catalog: Path = PACKAGE / "topics" / "catalog.json"
    schemas_dir: Path = PACKAGE / "schemas"

    # Faust worker
    app_id: str = "recipe-outbound"
    data_dir: Path = ROOT / ".local" / "data"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    broker_wait_seconds: float = 20.0
    # How long the group waits for a worker that stopped heartbeating (killed, not stopped) before its
    # partitions go to the others: the bound on how long a crash holds up its partitions.
    broker_session_timeout_seconds: float = Field(60.0, ge=6.0, le=300.0)
    # A stable name for this worker (the pod's name in a StatefulSet): the group knows it again when it
    # comes back, and hands its partitions straight back to it, without a rebalance of the others.
    # Empty: a new member on every start (a crash holds its partitions for the session timeout).
    instance_id: str = Field("", max_length=249, pattern=r"^[A-Za-z0-9._-]*$")
    api_token: SecretStr = SecretStr("")  # operate scope (triggers), which includes read
    api_read_token: SecretStr = SecretStr("")  # read scope: look-ups only
    # The URL other workers reach this one at (table routing); empty: http://<web_host>:<web_port>.
    canonical_url: str = ""
    # Where the CLI's `status` and `trigger --dry-run` find a worker's API; empty: http://127.0.0.1:<web_port>.
    api_url: str = ""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # /health/live fails when the event loop was blocked longer than this in the last minute.
    liveness_loop_block_seconds: float = Field(10.0, gt=0)

    # Input limits
    max_event_bytes: int = Field(1_000_000, ge=1024)

    # Secrets: comma-separated Fernet keys, newest first (MultiFernet rotation).
    secret_keys: SecretStr = SecretStr("")

    # Operator-only switches, each logged as a warning at start when on. Tenant destinations on
    # loopback, private or other non-public addresses (local testing only: never in production).
    allow_private_destinations: bool = False
    allow_http_hooks: bool = False
    local_delivery_root: Path = ROOT / ".local" / "deliveries"

    # Fetching recipe files: only from these hosts (comma-separated host or host:port).
    asset_hosts: str = ""
    # The asset hosts are the operator's own list: they may be private (an in-cluster file server) when
    # this is on, without letting any tenant destination be.
    allow_private_asset_hosts: bool = False
    max_file_bytes: int = Field(2 * 1024**3, ge=1)
    fetch_timeout_seconds: float = 60.0
    spool_dir: Path = ROOT / ".local" / "spool"

    # Delivering
    delivery_concurrency: int = Field(8, ge=1, le=256, description="attempts running at once per worker")
    integration_concurrency: int = Field(2, ge=1, le=256, description="attempts at once per integration")
    rate_margin_seconds: float = Field(
        0.15, ge=0, le=5, description="how much closer a receiver may see paced requests than they were started"
    )
    destination_timeout_seconds: float = 120.0
    # Messages an agent holds at once (working, waiting for a slot or for a retry's due time).
    max_messages_in_flight: int = Field(2000, ge=1)
    # At stop, running deliveries get this long to finish; the rest are done again after restart.
    shutdown_grace_seconds: float = Field(20.0, ge=0)

    # Order links waiting for their recipe: how long at most, and how often the limit is checked.
    pending_link_ttl_seconds: float = Field(7 * 24 * 3600.0, gt=0)
    pending_link_check_seconds: float = Field(600.0, gt=0)

    # Retries (seed: two retries after the first attempt)
    max_attempts: int = Field(3, ge=1, le=10)
    retry_delays_seconds: str = "30,120"
    retry_after_cap_seconds: float = Field(3600.0, ge=0, description="a destination's Retry-After is capped here")
    # An integration is turned off when this many deliveries in a row failed for good over at least this
    # long (service/planning/health.py); a hook answering 410 Gone turns it off at once.
    auto_disable_after_failures: int = Field(20, ge=1)
    auto_disable_after_hours: float = Field(24.0, ge=0)
    # A worker reports an integration's successes to its health owner at most this often.
    health_success_report_seconds: float = Field(30.0, ge=0)

    # SMTP for e-mail integrations and notifications
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_from: str = "recipe-outbound@localhost"
    # E-mail deliveries carry their files as attachments: larger ones fail for good (SFTP or S3 suit them).
    max_email_bytes: int = Field(20 * 1024**2, ge=1024)
    smtp_cafile: Path | None = None
    smtp_connections: int = Field(2, ge=1, le=32, description="connections to the relay kept open at once")
    # A notification the relay does not take is tried again, with backoff, for this long; then it is lost.
    notification_retry_seconds: float = Field(3600.0, ge=0)

    def bootstrap_servers(self) -> str:
        """The broker URL(s) without the kafka:// scheme, as aiokafka wants them."""
        return ",".join(url.split("://", 1)[-1] for url in self.broker.split(";"))

    def allowed_asset_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.asset_hosts.split(",") if h.strip())

    def open_switches(self) -> list[str]:
        """The operator switches that loosen the network policy and are on, said plainly."""
        said = {
            "allow_private_destinations": "tenant destinations may be on loopback, private, non-public addresses",
            "allow_private_asset_hosts": "the configured asset hosts may be on non-public addresses",
            "allow_http_hooks": "catch hooks may be plain http",
        }
        return [f"OUTBOUND_{name.upper()} is on: {what}" for name, what in said.items() if getattr(self, name)]

    def retry_delays(self) -> list[float]:
        return [float(d) for d in self.retry_delays_seconds.split(",") if d.strip()]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
