"""Settings: contract env names, nested thresholds, config files and secret files."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from waybill_watch.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("WAYBILL_WATCH_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


def test_contract_defaults() -> None:
    s = Settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.topic_prefix == ""
    assert s.web_port == 6066
    assert s.clock == "wall"
    assert s.allow_unsigned is False
    assert s.secret_for("kdniao") is None
    assert s.detection.transit_stall_hours == 48
    assert s.detection.bulk_signing_threshold == 20


def test_contract_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("WAYBILL_WATCH_TOPIC_PREFIX", "shop42.")
    monkeypatch.setenv("WAYBILL_WATCH_WEB_PORT", "7000")
    monkeypatch.setenv("WAYBILL_WATCH_CLOCK", "stream")
    monkeypatch.setenv("WAYBILL_WATCH_KDNIAO_APP_KEY", "k")
    monkeypatch.setenv("WAYBILL_WATCH_KUAIDI100_SALT", "s")
    monkeypatch.setenv("WAYBILL_WATCH_17TRACK_KEY", "t")
    monkeypatch.setenv("WAYBILL_WATCH_AFTERSHIP_SECRET", "a")
    monkeypatch.setenv("WAYBILL_WATCH_CANONICAL_SECRET", "c")
    monkeypatch.setenv("WAYBILL_WATCH_MERCHANT_SECRET", "m")
    monkeypatch.setenv("WAYBILL_WATCH_ALLOW_UNSIGNED", "true")
    s = Settings()
    assert s.kafka_bootstrap_servers == "k1:9092,k2:9092"
    assert s.topic("anomalies") == "shop42.anomalies"
    assert s.web_port == 7000
    assert s.clock == "stream"
    assert [s.secret_for(f) for f in ("kdniao", "kuaidi100", "17track", "aftership")] == [
        "k",
        "s",
        "t",
        "a",
    ]
    assert (s.secret_for("canonical"), s.secret_for("merchant")) == ("c", "m")
    assert s.allow_unsigned is True


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYBILL_WATCH_KDNIAO_APP_KEY", "very-secret")
    assert "very-secret" not in repr(Settings())


def test_nested_threshold_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYBILL_WATCH_DETECTION__TRANSIT_STALL_HOURS", "36")
    assert Settings().detection.transit_stall_hours == 36


def test_config_file_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ww.toml"
    config.write_text("web_port = 7100\n[detection]\nno_first_scan_hours = 12\n")
    s = load_settings(config)
    assert (s.web_port, s.detection.no_first_scan_hours) == (7100, 12)
    monkeypatch.setenv("WAYBILL_WATCH_WEB_PORT", "7200")
    assert load_settings(config).web_port == 7200  # environment beats the file


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "absent.toml")


def test_secret_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "WAYBILL_WATCH_AFTERSHIP_SECRET").write_text("from-file")
    monkeypatch.setenv("WAYBILL_WATCH_SECRETS_DIR", str(tmp_path))
    assert Settings().secret_for("aftership") == "from-file"


def test_bad_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAYBILL_WATCH_CLOCK", "sundial")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.delenv("WAYBILL_WATCH_CLOCK")
    monkeypatch.setenv("WAYBILL_WATCH_TOPIC_PREFIX", "bad prefix/")
    with pytest.raises(ValidationError):
        Settings()


def test_deploy_example_config_lists_every_threshold_at_its_default() -> None:
    from waybill_watch.domain.config import DetectionSettings

    example = Path(__file__).resolve().parents[2] / "deploy/config/waybill-watch.example.toml"
    text = example.read_text()
    for name in DetectionSettings.model_fields:
        assert f"\n{name} = " in text, f"{name} missing from {example.name}"
    assert load_settings(example).detection == DetectionSettings()


# --- Kafka: topic layout and client security ---------------------------------------------


def test_kafka_topic_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (s.replication_factor, s.min_insync_replicas) == (None, None)  # from the cluster
    assert s.raw_retention_hours == 168
    monkeypatch.setenv("WAYBILL_WATCH_REPLICATION_FACTOR", "3")
    monkeypatch.setenv("WAYBILL_WATCH_MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("WAYBILL_WATCH_RAW_RETENTION_HOURS", "-1")
    s = Settings()
    assert (s.replication_factor, s.min_insync_replicas, s.raw_retention_hours) == (3, 2, -1)
    monkeypatch.setenv("WAYBILL_WATCH_RAW_RETENTION_HOURS", "0")
    with pytest.raises(ValidationError, match=r"-1 to keep tracking\.raw forever"):
        Settings()


def test_kafka_security_from_environment_and_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not parsed here")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "WAYBILL_WATCH_KAFKA_SASL_PASSWORD").write_text("from-file\n")
    monkeypatch.setenv("WAYBILL_WATCH_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("WAYBILL_WATCH_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")
    monkeypatch.setenv("WAYBILL_WATCH_KAFKA_SASL_MECHANISM", "scram-sha-256")
    monkeypatch.setenv("WAYBILL_WATCH_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("WAYBILL_WATCH_KAFKA_SSL_CAFILE", str(ca))
    s = Settings()
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    assert s.kafka_sasl_password is not None
    assert s.kafka_sasl_password.get_secret_value() == "from-file"  # newline stripped
    assert "from-file" not in repr(s)
    assert s.kafka_ssl_cafile == ca


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "SASL_SSL needs WAYBILL_WATCH_KAFKA_SASL_"),
        ({"KAFKA_SASL_MECHANISM": "PLAIN"}, "security protocol is PLAINTEXT"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "kafka_security_protocol"),
        ({"KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "kafka_ssl_cafile"),
        ({"REPLICATION_FACTOR": "1", "MIN_INSYNC_REPLICAS": "2"}, "every acks=all write"),
    ],
)
def test_contradicting_kafka_settings_are_named(
    env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from waybill_watch.settings import settings_problem

    for name, value in env.items():
        monkeypatch.setenv(f"WAYBILL_WATCH_{name}", value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert message in settings_problem(caught.value)


def test_mutual_tls_needs_both_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    monkeypatch.setenv("WAYBILL_WATCH_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("WAYBILL_WATCH_KAFKA_SSL_CERTFILE", str(cert))
    with pytest.raises(ValidationError, match="WAYBILL_WATCH_KAFKA_SSL_KEYFILE"):
        Settings()
