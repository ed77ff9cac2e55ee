"""The rules file: validation with the field at fault, secret references, the packaged files."""

from __future__ import annotations

from pathlib import Path

import pytest

from waybill_watch.notify import demo_rules_path, example_rules_path
from waybill_watch.notify.rules import EmailChannel, RulesError, load_rules

from .helpers import rules_from, write_rules

LOG_ONLY = """
[channels.console]
type = "log"

[[rules]]
channels = ["console"]
"""


def test_defaults_fill_rule_names_language_and_zone(tmp_path: Path) -> None:
    rules = rules_from(tmp_path, LOG_ONLY)
    rule = rules.rules[0]
    assert (rule.name, rule.language, rule.timezone) == ("rule-1", "zh", "Asia/Shanghai")
    assert rules.channels["console"].rate() is None


def test_packaged_demo_rules_load() -> None:
    rules = load_rules(demo_rules_path())
    assert [c.type for c in rules.channels.values()] == ["log"]


def test_packaged_example_has_every_channel_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in (
        "WECOM_OPS_ROBOT_URL",
        "DINGTALK_OPS_ROBOT_URL",
        "FEISHU_OPS_BOT_URL",
    ):
        monkeypatch.setenv(var, "https://robot.example/hook?key=k")
    for var in ("DINGTALK_OPS_SECRET", "FEISHU_OPS_SECRET", "SMTP_PASSWORD"):
        monkeypatch.setenv(var, "s3cret")
    secret = tmp_path / "hook-secret"
    secret.write_text("merchant-secret\n")
    text = example_rules_path().read_text().replace("/run/secrets/shop-42-webhook", str(secret))
    rules = load_rules(write_rules(tmp_path, text))
    assert {c.type for c in rules.channels.values()} == {
        "webhook",
        "wecom",
        "dingtalk",
        "feishu",
        "email",
        "log",
    }
    hook = rules.channels["shop-42-webhook"]
    assert hook.secret.get_secret_value() == "merchant-secret"  # type: ignore[union-attr]
    # the example's secrets are references, never inline values
    assert "env:" in example_rules_path().read_text()


def test_missing_env_reference_names_the_field_not_a_value(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as err:
        rules_from(
            tmp_path,
            """
            [channels.ops]
            type = "wecom"
            url = "env:WBW_TEST_UNSET_VARIABLE"

            [[rules]]
            channels = ["ops"]
            """,
        )
    assert "channels.ops.wecom.url" in str(err.value)
    assert "WBW_TEST_UNSET_VARIABLE is unset" in str(err.value)


def test_inline_secret_is_never_echoed_in_errors(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as err:
        rules_from(
            tmp_path,
            """
            [channels.ops]
            type = "wecom"
            url = "ftp://robot/send?key=TOPSECRETKEY"

            [[rules]]
            channels = ["ops"]
            """,
        )
    assert "http:// or https://" in str(err.value)
    assert "TOPSECRETKEY" not in str(err.value)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ('[[rules]]\nchannels = ["nope"]', "unknown channels ['nope']"),
        ('[[rules]]\nchannels = ["console"]\nmatch = { severity = "loud" }', "match.severity"),
        ('[[rules]]\nchannels = ["console"]\nlanguage = "fr"', "rules.0.language"),
        ('[[rules]]\nchannels = ["console"]\ndigest = "soon"', "rules.0.digest"),
        (
            '[[rules]]\nchannels = ["console"]\nquiet_hours = { start = "25:00", end = "08:00" }',
            "quiet_hours.start",
        ),
        (
            '[[rules]]\nchannels = ["console"]\nquiet_hours = { start = "22:00", end = "8:00",'
            ' zone = "Mars/Base" }',
            "quiet_hours",
        ),
        ('[[rules]]\nchannels = ["console"]\nunknown = 1', "rules.0.unknown"),
    ],
)
def test_invalid_rules_name_the_field(tmp_path: Path, body: str, where: str) -> None:
    with pytest.raises(RulesError) as err:
        rules_from(tmp_path, '[channels.console]\ntype = "log"\n' + body)
    assert where in str(err.value)


def test_plain_smtp_needs_an_explicit_allowance(tmp_path: Path) -> None:
    base = """
    [channels.mail]
    type = "email"
    host = "127.0.0.1"
    port = 2525
    security = "none"
    from = "a@example.com"
    to = ["b@example.com"]
    {extra}

    [[rules]]
    channels = ["mail"]
    """
    with pytest.raises(RulesError, match="allow_insecure"):
        rules_from(tmp_path, base.format(extra=""))
    rules = rules_from(tmp_path, base.format(extra="allow_insecure = true"))
    mail = rules.channels["mail"]
    assert isinstance(mail, EmailChannel) and mail.security == "none"


def test_file_reference_and_rate_override(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("  SECabc  \n")
    rules = rules_from(
        tmp_path,
        f"""
        [channels.ding]
        type = "dingtalk"
        url = "https://oapi.dingtalk.com/robot/send?access_token=t"
        secret = "file:{tmp_path / "secret"}"
        rate_per_minute = 6000
        burst = 50

        [[rules]]
        channels = ["ding"]
        """,
    )
    ding = rules.channels["ding"]
    assert ding.secret.get_secret_value() == "SECabc"  # type: ignore[union-attr]
    assert ding.rate() == (6000, 50)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="not found"):
        load_rules(tmp_path / "absent.toml")
    with pytest.raises(RulesError, match="not valid TOML"):
        load_rules(write_rules(tmp_path, "[channels\n"))
