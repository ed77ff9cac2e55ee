"""The one typed settings object: environment variables, an optional config file, secret files.

Names fixed by the contract (§8) keep their exact spelling; everything else is prefixed
``WAYBILL_WATCH_``. Nested detection thresholds use ``__``, e.g.
``WAYBILL_WATCH_DETECTION__TRANSIT_STALL_HOURS=36``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from waybill_watch.domain.config import DetectionSettings
from waybill_watch.timefmt import DEFAULT_ZONE

CONFIG_ENV = "WAYBILL_WATCH_CONFIG"
SECRETS_DIR_ENV = "WAYBILL_WATCH_SECRETS_DIR"


class Settings(BaseSettings):
    """Runtime configuration of the worker, ingest, replay and demo."""

    model_config = SettingsConfigDict(
        env_prefix="WAYBILL_WATCH_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    # Kafka
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS", "kafka_bootstrap_servers"),
        description="Comma-separated brokers.",
    )
    topic_prefix: str = Field("", description="Prefix for every topic name.")
    partitions: int = Field(8, ge=1, description="Partitions of the topics the app creates.")
    raw_partitions: int | None = Field(
        None,
        ge=1,
        description="Partitions of tracking.raw (default: `partitions`, or 1 with the stream "
        "clock). With 1, envelopes are normalised exactly in arrival order, as replay reads them.",
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        description="Replication of the topics the app creates (its own and quix-streams' "
        "changelogs); unset: 3 when the cluster lists at least three brokers, else 1.",
    )
    min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="min.insync.replicas of the topics the app creates; unset: 2 with "
        "replication 3 or more, else 1. At most the replication factor.",
    )
    raw_retention_hours: float = Field(
        168.0,
        description="retention.ms of a tracking.raw the app creates, in hours (long enough to "
        "replay the capture; -1: forever). Existing topics keep theirs.",
    )
    app_id: str = Field("waybill-watch", description="Consumer group (after the topic prefix).")

    # Kafka client security (every client: worker, ingest, cases, notify, queries, admin)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients talk to the brokers."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism (required with SASL_SSL / SASL_PLAINTEXT)."
    )
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: FilePath | None = Field(
        None, description="PEM CA bundle that verifies the brokers (default: the system's)."
    )
    kafka_ssl_certfile: FilePath | None = Field(
        None, description="PEM client certificate (mutual TLS; with kafka_ssl_keyfile)."
    )
    kafka_ssl_keyfile: FilePath | None = Field(None, description="PEM key of the certificate.")
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Passphrase of an encrypted kafka_ssl_keyfile."
    )

    # Worker
    web_port: int = Field(6066, ge=0, le=65535)
    web_bind: str = "0.0.0.0"  # noqa: S104 - a server binds all interfaces unless told otherwise
    clock: Literal["wall", "stream"] = "wall"
    data_dir: Path = Field(Path(".run/worker"), description="State dir (RocksDB files).")
    tick_interval_seconds: float = Field(
        1.0, gt=0, description="How often each source's clock mark is sent downstream."
    )
    processing_guarantee: Literal["at-least-once", "exactly-once"] = Field(
        "exactly-once",
        description="exactly-once: each checkpoint is one Kafka transaction (outputs, state "
        "changelog, source offsets); it cost 8 % of at-least-once's throughput on the live "
        "benchmark (issue 8 makes it the default when it costs at most 30 %).",
    )
    commit_interval_seconds: float | None = Field(
        None,
        gt=0,
        description="Checkpoint interval; default 1 s at-least-once, 0.1 s exactly-once (its "
        "outputs are visible to read_committed consumers, the worker's next stage included, only "
        "when a checkpoint commits; Kafka Streams' defaults differ the same way).",
    )
    session_timeout_seconds: float = Field(
        45.0,
        gt=0,
        description="How long the consumer group waits for a worker that stopped heartbeating "
        "(a crash, SIGKILL) before its partitions move (to the worker's own restart too). "
        "Kafka's default; brokers accept 6 to 1800 s (group.min/max.session.timeout.ms).",
    )
    producer_linger_ms: int = Field(
        50,
        ge=0,
        le=1000,
        description="How long the worker's producer gathers records into a batch (librdkafka "
        "linger.ms): fewer, larger produce requests cost the broker far less CPU, each internal "
        "hop waits up to this long when traffic is light.",
    )
    rocksdb_write_buffer_mb: int = Field(
        64,
        ge=1,
        le=1024,
        description="RocksDB memtable size per store partition (quix-streams' default 64; up to "
        "3 per partition are held): with the block cache, what bounds a worker's memory "
        "(docs/operations.md, Sizing).",
    )
    rocksdb_block_cache_mb: int = Field(
        1024,
        ge=8,
        description="RocksDB block cache, one for the whole process (quix-streams' default "
        "1024), filled lazily as states are read.",
    )
    advertised_url: str | None = Field(
        None,
        description="This worker's HTTP address as other workers reach it (waybill queries are "
        "forwarded to the partition's owner); default http://<hostname>:<web_port>.",
    )
    log_level: str = "info"

    @property
    def checkpoint_seconds(self) -> float:
        """The checkpoint interval in effect (``commit_interval_seconds`` or its default)."""
        if self.commit_interval_seconds is not None:
            return self.commit_interval_seconds
        return 0.1 if self.processing_guarantee == "exactly-once" else 1.0

    # Ingest
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    body_timeout_seconds: float = Field(
        10.0, gt=0, description="A callback body not fully received within this answers 408."
    )
    header_timeout_seconds: float = Field(
        75.0,
        gt=0,
        description="A connection that delivers no complete request head within this (from "
        "its start or its previous answer) is closed; also the idle keep-alive timeout.",
    )
    #: Above one ingest replica's measured throughput from one address (~800 callbacks/s,
    #: ``benchmarks ingest``): the limit stops a flood, never an honest courier's peak.
    rate_limit_per_second: float = Field(
        2000.0, gt=0, description="Callbacks per second per (feed, client address); above: 429."
    )
    rate_limit_burst: int = Field(4000, ge=1, description="Token-bucket size of that limit.")
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or CIDR networks of proxies whose "
        "X-Forwarded-For is believed (the client is the last untrusted address in it).",
    )
    signature_tolerance_seconds: float = Field(
        300.0,
        gt=0,
        description="Own feeds: a signed timestamp further than this from now answers 401.",
    )
    require_signed_timestamp: bool = Field(
        False,
        description="Own feeds: refuse requests without X-Waybill-Watch-Timestamp and "
        "X-Waybill-Watch-Signature-V2 (401).",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        import ipaddress

        for part in value.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)  # ValueError: invalid setting
        return value

    allow_unsigned: bool = False
    default_timezone: str = DEFAULT_ZONE
    feed_timezones: dict[str, str] = Field(default_factory=dict)
    kdniao_ebusiness_id: str = Field("", description="Echoed in Kdniao acknowledgements.")

    # Secrets (environment or files in WAYBILL_WATCH_SECRETS_DIR named like the variables)
    kdniao_app_key: SecretStr | None = None
    kuaidi100_salt: SecretStr | None = None
    track17_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("WAYBILL_WATCH_17TRACK_KEY", "track17_key")
    )
    aftership_secret: SecretStr | None = None
    canonical_secret: SecretStr | None = None
    merchant_secret: SecretStr | None = None

    # Case service (`waybill-watch cases`, contract §9)
    database_url: SecretStr | None = Field(
        None,
        description="PostgreSQL URL of the case store (WAYBILL_WATCH_DATABASE_URL); `demo` and "
        "`make run` start a local server when it is unset.",
    )
    cases_port: int = Field(6067, ge=0, le=65535, description="HTTP port of the case service.")
    cases_group: str = Field(
        "waybill-watch-cases", description="Consumer group of the case service (after the prefix)."
    )
    api_tokens_file: Path | None = Field(
        None,
        description="JSON object: SHA-256 hex digest of each bearer token -> {role, merchant}.",
    )
    cases_playbooks: Path | None = Field(
        None, description="Playbook file (TOML); default: the packaged playbooks.toml."
    )
    cases_timer_interval_seconds: float = Field(
        1.0, gt=0, description="How often due reminders and overdue steps are looked for."
    )
    cases_session_secret: SecretStr | None = Field(
        None,
        description="Key that signs sign-in cookies; unset: a random key per start (everyone "
        "signs in again after a restart).",
    )
    cases_secure_cookies: bool = Field(
        False, description="Mark session cookies Secure (set behind HTTPS)."
    )

    # Notifications (`waybill-watch notify`, contract §9; docs/notify.md)
    notify_rules: Path | None = Field(
        None,
        description="Routing rules file (TOML): channels and rules (WAYBILL_WATCH_NOTIFY_RULES).",
    )
    notify_port: int = Field(
        6068, ge=0, le=65535, description="HTTP port of the notifier (/metrics, /healthz, /readyz)."
    )
    notify_group: str = Field(
        "waybill-watch-notify", description="Consumer group of the notifier (after the prefix)."
    )
    cases_public_url: str = Field(
        "http://127.0.0.1:6067",
        description="Base URL of the case board as people reach it; notifications link to "
        "{cases_public_url}/cases/{case_id}.",
    )
    notify_poll_interval_seconds: float = Field(
        1.0, gt=0, description="Longest a channel's sender waits before looking for due messages."
    )
    notify_retention_days: float = Field(
        30.0,
        gt=0,
        description="Delivered and dead messages are kept this long (they are the dedupe record "
        "against redelivered events), then deleted.",
    )

    detection: DetectionSettings = Field(default_factory=DetectionSettings)

    #: A config file chosen by the caller (``--config``); else ``WAYBILL_WATCH_CONFIG``.
    config_path: ClassVar[Path | None] = None

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("raw_retention_hours")
    @classmethod
    def _retention(cls, value: float) -> float:
        if value != -1 and value <= 0:
            raise ValueError("must be positive, or -1 to keep tracking.raw forever")
        return value

    @model_validator(mode="after")
    def _kafka_settings_fit(self) -> Settings:
        """Security settings that contradict each other fail at start, named (never echoed)."""
        problems: list[str] = []
        protocol = self.kafka_security_protocol
        sasl = protocol.startswith("SASL_")
        named = [
            f"WAYBILL_WATCH_KAFKA_SASL_{n.upper()}"
            for n in ("mechanism", "username", "password")
            if getattr(self, f"kafka_sasl_{n}") is None
        ]
        if sasl and named:
            problems.append(f"{protocol} needs {', '.join(named)}")
        if not sasl and self.kafka_sasl_mechanism is not None:
            problems.append(
                f"WAYBILL_WATCH_KAFKA_SASL_MECHANISM is set but the security protocol is "
                f"{protocol} (use SASL_SSL or SASL_PLAINTEXT)"
            )
        tls_files = (self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        if not protocol.endswith("SSL") and any(f is not None for f in tls_files):
            problems.append(
                f"WAYBILL_WATCH_KAFKA_SSL_* files are set but the security protocol is "
                f"{protocol} (use SSL or SASL_SSL)"
            )
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            problems.append(
                "mutual TLS needs both WAYBILL_WATCH_KAFKA_SSL_CERTFILE and "
                "WAYBILL_WATCH_KAFKA_SSL_KEYFILE"
            )
        rf, min_isr = self.replication_factor, self.min_insync_replicas
        if rf is not None and min_isr is not None and min_isr > rf:
            problems.append(
                f"WAYBILL_WATCH_MIN_INSYNC_REPLICAS ({min_isr}) exceeds "
                f"WAYBILL_WATCH_REPLICATION_FACTOR ({rf}): every acks=all write would fail"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_topic_safe(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("topic prefix may only use letters, digits, '.', '_' and '-'")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: explicit arguments > environment > secret files > config file."""
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        secrets_dir = os.environ.get(SECRETS_DIR_ENV)
        if secrets_dir:
            from pydantic_settings import SecretsSettingsSource

            sources.append(
                SecretsSettingsSource(settings_cls, secrets_dir=secrets_dir, case_sensitive=False)
            )
        chosen = getattr(settings_cls, "config_path", None)
        config = chosen or os.environ.get(CONFIG_ENV)
        if config:
            sources.append(config_source(settings_cls, Path(config)))
        return tuple(sources)

    def query_url(self) -> str:
        """The advertised URL of this worker's HTTP port (``advertised_url`` or the host's)."""
        if self.advertised_url:
            return self.advertised_url.rstrip("/")
        import socket

        return f"http://{socket.gethostname()}:{self.web_port}"

    def raw_topic_partitions(self) -> int:
        """Partitions for a new ``tracking.raw``: the stream clock needs one (see topics.py)."""
        if self.raw_partitions is not None:
            return self.raw_partitions
        return 1 if self.clock == "stream" else self.partitions

    def topic(self, name: str) -> str:
        """The full name of a contract topic, with the configured prefix."""
        return f"{self.topic_prefix}{name}"

    def feed_timezone(self, feed: str) -> str:
        """The zone naive times of ``feed`` are read in."""
        return self.feed_timezones.get(feed, self.default_timezone)

    def secret_for(self, feed: str) -> str | None:
        """The configured verification secret of ``feed``, if any."""
        field = {
            "kdniao": "kdniao_app_key",
            "kuaidi100": "kuaidi100_salt",
            "17track": "track17_key",
            "aftership": "aftership_secret",
            "canonical": "canonical_secret",
            "merchant": "merchant_secret",
        }.get(feed)
        value: SecretStr | None = getattr(self, field) if field else None
        return value.get_secret_value() if value is not None else None


def config_source(settings_cls: type[BaseSettings], path: Path) -> PydanticBaseSettingsSource:
    """A TOML or JSON config file as a settings source; a missing file is an error."""
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    if path.suffix == ".json":
        return JsonConfigSettingsSource(settings_cls, json_file=path)
    return TomlConfigSettingsSource(settings_cls, toml_file=path)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, optionally with a config file (e.g. ``replay --config``)."""
    if config_file is None:
        return Settings(**overrides)
    settings_cls = type("FileSettings", (Settings,), {"config_path": config_file})
    settings: Settings = settings_cls(**overrides)
    return settings


def error_detail(exc: BaseException) -> str:
    """``Class: message``, once (aiokafka's messages already start with their class name)."""
    text, name = str(exc), type(exc).__name__
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"


def settings_problem(exc: Exception) -> str:
    """Why settings could not be loaded, fit for one line: each invalid field with pydantic's
    message, never its input value (a value may be a secret; pydantic's own text echoes it)."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        # a model-level check (the Kafka security settings) has no field location
        fields = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
            for e in exc.errors()
        )
        return f"invalid settings ({fields})"
    # pydantic-settings' SettingsError names the field and source only; a config file error
    # names the file or a position in it.
    return f"cannot load settings ({error_detail(exc)})"
