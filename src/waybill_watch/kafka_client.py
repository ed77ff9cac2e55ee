"""How every Kafka client of the project connects: bootstrap servers, TLS and SASL.

One place turns the typed settings (``WAYBILL_WATCH_KAFKA_*``, ``KAFKA_BOOTSTRAP_SERVERS``)
into what each client library takes, so no client is configured twice:

* aiokafka (ingest producer, case service, notifier, topic admin): keyword arguments,
  :meth:`KafkaConnection.aiokafka_options` (an ``ssl.SSLContext`` from the CA file and, for
  mutual TLS, the client certificate);
* confluent-kafka / librdkafka (the waybill owner lookup): a config dict,
  :meth:`KafkaConnection.librdkafka_config`;
* quix-streams (the worker's consumer, producer and topic admin): a ``ConnectionConfig``,
  :meth:`KafkaConnection.quix_connection`, made from that same dict.

Both libraries verify the broker's certificate and its host name (aiokafka always; librdkafka
since 2.0 by default, ``ssl.endpoint.identification.algorithm=https``).

aiokafka reports a client that could not connect to any bootstrap server as "Unable to
bootstrap from [...]" whatever the reason; :func:`start_client` looks again when that happens
and raises :class:`KafkaSecurityError` naming the real cause when it is a rejected login or a
failed TLS handshake, so a wrong password fails at start with one clear line, not a retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import SecretStr

if TYPE_CHECKING:
    from quixstreams.kafka import ConnectionConfig

    from waybill_watch.settings import Settings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

#: How long :func:`diagnose` waits for one bootstrap server.
DIAGNOSE_TIMEOUT_S = 10.0

_CREDENTIALS = (
    "WAYBILL_WATCH_KAFKA_SASL_USERNAME / WAYBILL_WATCH_KAFKA_SASL_PASSWORD / "
    "WAYBILL_WATCH_KAFKA_SASL_MECHANISM"
)
_TLS = "WAYBILL_WATCH_KAFKA_SSL_CAFILE and that the bootstrap host names are in the certificate"


class KafkaSecurityError(KafkaError):
    """A broker answered but refused the client's login, or the TLS handshake failed: a
    setting to fix, never worth retrying."""

    retriable = False
    invalid_metadata = False


@dataclass(frozen=True, slots=True)
class KafkaConnection:
    """Where the brokers are and how to authenticate to them (``repr`` hides the secrets)."""

    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None

    @classmethod
    def from_settings(cls, settings: Settings, *, bootstrap: str | None = None) -> KafkaConnection:
        """The connection of ``settings`` (``bootstrap`` overrides its bootstrap servers)."""
        return cls(
            bootstrap_servers=bootstrap or settings.kafka_bootstrap_servers,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=settings.kafka_sasl_password,
            ssl_cafile=settings.kafka_ssl_cafile,
            ssl_certfile=settings.kafka_ssl_certfile,
            ssl_keyfile=settings.kafka_ssl_keyfile,
            ssl_key_password=settings.kafka_ssl_key_password,
        )

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that verifies the broker (the CA file, else the system's CAs)
        and, with a certificate file, presents it (mutual TLS)."""
        from aiokafka.helpers import create_ssl_context

        password = self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
        return create_ssl_context(
            cafile=self.ssl_cafile,
            certfile=self.ssl_certfile,
            keyfile=self.ssl_keyfile,
            # never None with a certificate: OpenSSL would prompt on the terminal for the
            # passphrase of an encrypted key instead of failing
            password=password if password is not None or self.ssl_certfile is None else "",
        )

    def security_options(self) -> dict[str, Any]:
        """aiokafka's security keyword arguments (clients and ``aiokafka.conn.create_conn``)."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return options

    def aiokafka_options(self) -> dict[str, Any]:
        """Keyword arguments of an aiokafka producer, consumer or admin client."""
        return {"bootstrap_servers": self.bootstrap_servers, **self.security_options()}

    def librdkafka_config(self) -> dict[str, Any]:
        """The librdkafka (confluent-kafka) connection properties, secrets in plain text."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.uses_sasl:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            if self.sasl_password is not None:
                config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.uses_tls:
            optional = {
                "ssl.ca.location": self.ssl_cafile,
                "ssl.certificate.location": self.ssl_certfile,
                "ssl.key.location": self.ssl_keyfile,
            }
            config.update({k: str(v) for k, v in optional.items() if v is not None})
            if self.ssl_key_password is not None:
                config["ssl.key.password"] = self.ssl_key_password.get_secret_value()
        return config

    def quix_connection(self) -> ConnectionConfig:
        """quix-streams' ``broker_address`` (consumer, producer and topic admin)."""
        from quixstreams.kafka import ConnectionConfig

        return ConnectionConfig.from_librdkafka_dict(self.librdkafka_config())


def kafka_connection(settings: Settings, *, bootstrap: str | None = None) -> KafkaConnection:
    """Shorthand for :meth:`KafkaConnection.from_settings`."""
    return KafkaConnection.from_settings(settings, bootstrap=bootstrap)


def as_connection(target: str | KafkaConnection) -> KafkaConnection:
    """A bare ``host:port[,...]`` string is a PLAINTEXT connection (tests, local tools)."""
    return target if isinstance(target, KafkaConnection) else KafkaConnection(target)


def split_servers(bootstrap: str) -> list[tuple[str, int]]:
    """``"a:1,b:2"`` → ``[("a", 1), ("b", 2)]`` (malformed entries are skipped)."""
    hosts: list[tuple[str, int]] = []
    for entry in bootstrap.split(","):
        host, sep, port = entry.strip().rpartition(":")
        if sep and host and port.isdigit():
            hosts.append((host.strip("[]"), int(port)))
    return hosts


async def diagnose(connection: KafkaConnection) -> KafkaSecurityError | None:
    """Connect to each bootstrap server once, as a client would, and say whether a rejected
    login or a failed TLS handshake is why clients cannot start (``None``: something else,
    e.g. nothing listens, or every server accepted this time)."""
    from aiokafka.conn import create_conn
    from aiokafka.errors import (
        IllegalSaslStateError,
        SaslAuthenticationFailed,
        UnsupportedSaslMechanismError,
    )

    try:
        options = connection.security_options()
    except (OSError, ValueError) as exc:  # an unreadable CA file, a key that does not match
        return KafkaSecurityError(f"cannot set up TLS ({exc}); check {_TLS}")
    for host, port in split_servers(connection.bootstrap_servers):
        where = f"{host}:{port}"
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host, port, request_timeout_ms=int(DIAGNOSE_TIMEOUT_S * 1000), **options
                ),
                DIAGNOSE_TIMEOUT_S,
            )
        except (SaslAuthenticationFailed, IllegalSaslStateError) as exc:
            return KafkaSecurityError(
                f"Kafka at {where} rejected the {connection.sasl_mechanism} login of "
                f"{connection.sasl_username!r} ({_detail(exc)}); check {_CREDENTIALS}"
            )
        except UnsupportedSaslMechanismError as exc:
            return KafkaSecurityError(
                f"Kafka at {where} does not accept {connection.sasl_mechanism} "
                f"({_detail(exc)}); check WAYBILL_WATCH_KAFKA_SASL_MECHANISM"
            )
        except ssl.SSLError as exc:
            return KafkaSecurityError(
                f"TLS handshake with Kafka at {where} failed ({_detail(exc)}); check {_TLS}"
            )
        except (OSError, KafkaError, TimeoutError, ValueError):
            continue  # not a security problem of this server; try the next one
        with contextlib.suppress(Exception):
            conn.close()
    return None


async def start_client(client: Any, connection: KafkaConnection) -> None:
    """``await client.start()`` for an aiokafka producer, consumer or admin client; when
    it could not bootstrap, :class:`KafkaSecurityError` if :func:`diagnose` finds the cause
    (the client is left to its caller to stop, as after any failed start)."""
    try:
        await client.start()
    except KafkaConnectionError as exc:
        cause = await diagnose(connection)
        if cause is None:
            raise
        raise cause from exc


def _detail(exc: BaseException) -> str:
    """``Class: message``, once (aiokafka's messages already name their class)."""
    text, name = str(exc), type(exc).__name__
    if not text:
        return name
    return text if name in text else f"{name}: {text}"
