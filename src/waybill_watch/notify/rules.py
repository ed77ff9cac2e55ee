"""The routing rules file (``WAYBILL_WATCH_NOTIFY_RULES``, TOML): channels and rules.

Validated whole at start; a file that does not validate stops the notifier with the field at
fault (exit 2). Secrets (robot URLs carry their key, signing secrets, SMTP passwords) are
given as ``env:VAR`` or ``file:/path`` references and resolved here, once; an unresolvable
reference is an error naming the field, never echoing a value. The packaged
``rules.example.toml`` documents every field.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from waybill_watch.durations import Duration
from waybill_watch.models.anomaly import AnomalyStatus, AnomalyType, Scope, Severity
from waybill_watch.models.case_event import CaseEventKind

Language = Literal["zh", "en"]
EventKind = Literal["anomaly", "case"]
ChannelType = Literal["webhook", "wecom", "dingtalk", "feishu", "email", "log"]

NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

#: Client-side limits from each platform's documented rate limit (reference §1.1), as token
#: buckets ``(per minute, burst)`` sized so that no window of the documented length can hold
#: more than the limit: burst + rate x window <= limit. DingTalk and WeCom: 20 per minute per
#: robot (4 + 16 = 20); Feishu: 5/s and 100/min per bot (3 + 1.5 = 4.5/s, 3 + 90 = 93/min).
#: Webhooks and SMTP have no platform limit; theirs only keep a burst from flooding a receiver.
DEFAULT_RATES: dict[str, tuple[float, int] | None] = {
    "dingtalk": (16.0, 4),
    "wecom": (16.0, 4),
    "feishu": (90.0, 3),
    "webhook": (600.0, 20),
    "email": (60.0, 10),
    "log": None,
}


class RulesError(ValueError):
    """A rules file that cannot be used, with the field at fault."""


def resolve_secret(value: Any) -> Any:
    """``env:VAR`` → the variable's value, ``file:/path`` → the file's text (stripped);
    anything else as given. The error names the reference, never a value."""
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        return value
    if value.startswith("env:"):
        name = value[4:]
        found = os.environ.get(name)
        if not found:
            raise ValueError(f"environment variable {name} is unset or empty")
        return found
    if value.startswith("file:"):
        path = Path(value[5:])
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path} ({exc.strerror})") from None
        if not text:
            raise ValueError(f"secret file {path} is empty")
        return text
    return value


def _listify(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _time_of_day(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            raise ValueError("not a time of day (write e.g. '22:00')") from None
    return value


Secret = Annotated[SecretStr, BeforeValidator(resolve_secret)]
TimeOfDay = Annotated[time, BeforeValidator(_time_of_day)]


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None
    return name


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# -- channels ---------------------------------------------------------------------------


class ChannelBase(_Strict):
    """What every channel has: retries, timeout and its client-side rate limit."""

    type: ChannelType
    max_attempts: int = Field(8, ge=1, le=100, description="Tries before the DLQ.")
    retry_base: Duration = Field(timedelta(seconds=2), description="First backoff ceiling.")
    retry_cap: Duration = Field(timedelta(minutes=10), description="Longest backoff.")
    timeout: Duration = Field(timedelta(seconds=10), description="One attempt's time limit.")
    rate_per_minute: float | None = Field(
        None, gt=0, description="Token bucket refill (default: the platform's documented limit)."
    )
    burst: int | None = Field(None, ge=1, description="Token bucket size.")

    def rate(self) -> tuple[float, int] | None:
        """``(per minute, burst)`` in effect, or ``None`` for no limit."""
        default = DEFAULT_RATES[self.type]
        if self.rate_per_minute is None and self.burst is None:
            return default
        per_minute = self.rate_per_minute or (default[0] if default else 600.0)
        burst = self.burst or (default[1] if default else 1)
        return per_minute, burst


class _HttpChannel(ChannelBase):
    url: Secret = Field(description="Endpoint; a robot's URL carries its key: use env:/file:.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class WebhookChannel(_HttpChannel):
    """A merchant's or team's HTTPS endpoint: JSON, HMAC-SHA256 signed with a timestamp."""

    type: Literal["webhook"]
    secret: Secret = Field(description="HMAC-SHA256 key the receiver verifies with.")


class WeComChannel(_HttpChannel):
    """WeCom (企业微信) group robot: markdown; the key in the URL is its only credential."""

    type: Literal["wecom"]


class DingTalkChannel(_HttpChannel):
    """DingTalk (钉钉) custom robot: markdown; 加签 signs the URL with ``secret``."""

    type: Literal["dingtalk"]
    secret: Secret | None = Field(None, description="The robot's 加签 secret (SEC...).")
    keyword: str | None = Field(None, description="A security keyword to put in every message.")


class FeishuChannel(_HttpChannel):
    """Feishu/Lark (飞书) custom bot: interactive card; 签名校验 signs the body with ``secret``."""

    type: Literal["feishu"]
    secret: Secret | None = Field(None, description="The bot's signing secret.")
    keyword: str | None = Field(None, description="A security keyword to put in every message.")


class EmailChannel(ChannelBase):
    """SMTP: STARTTLS (587) or implicit TLS (465) with authentication; plain SMTP only when
    ``allow_insecure`` says so (a local test server)."""

    type: Literal["email"]
    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    allow_insecure: bool = Field(False, description="Permit security = 'none' (tests only).")
    username: str | None = None
    password: Secret | None = None
    sender: str = Field(alias="from", description="The From address.")
    to: list[str] = Field(min_length=1)
    cc: list[str] = Field(default_factory=list)
    ca_file: Path | None = Field(None, description="CA bundle to trust (a private CA).")
    subject_prefix: str = "[waybill-watch] "

    @model_validator(mode="after")
    def _secure(self) -> EmailChannel:
        if self.security == "none" and not self.allow_insecure:
            raise ValueError(
                "security = 'none' sends mail (and any password) in clear: use 'starttls' or "
                "'tls', or set allow_insecure = true for a local test server"
            )
        if self.username and self.password is None:
            raise ValueError("username given without password")
        return self


class LogChannel(ChannelBase):
    """The process log (and optionally a file): the demo's channel, and a safe default."""

    type: Literal["log"]
    file: Path | None = Field(None, description="Also append each message here.")


ChannelConfig = Annotated[
    WebhookChannel | WeComChannel | DingTalkChannel | FeishuChannel | EmailChannel | LogChannel,
    Field(discriminator="type"),
]


# -- rules ------------------------------------------------------------------------------


class Match(_Strict):
    """Every field given must match; a field the event does not have (``status`` of a case
    event, ``case_event`` of an anomaly) never matches. A single string is a list of one."""

    kind: Annotated[list[EventKind] | None, BeforeValidator(_listify)] = None
    type: Annotated[list[AnomalyType] | None, BeforeValidator(_listify)] = None
    severity: Annotated[list[Severity] | None, BeforeValidator(_listify)] = None
    status: Annotated[list[AnomalyStatus] | None, BeforeValidator(_listify)] = None
    merchant: Annotated[list[str] | None, BeforeValidator(_listify)] = None
    courier: Annotated[list[str] | None, BeforeValidator(_listify)] = None
    scope: Annotated[list[Scope] | None, BeforeValidator(_listify)] = None
    case_event: Annotated[list[CaseEventKind] | None, BeforeValidator(_listify)] = None


class QuietHours(_Strict):
    """Local hours in which non-critical events are held; sent when they end."""

    start: TimeOfDay
    end: TimeOfDay
    zone: str

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are the same time")
        return self


def _warnings_only() -> list[Severity]:
    return ["warning"]


class Rule(_Strict):
    """Events that ``match`` go to ``channels`` in ``language``."""

    name: str = Field(pattern=NAME)
    match: Match = Field(default_factory=Match)
    channels: list[str] = Field(min_length=1)
    language: Language
    timezone: str = Field(description="Zone of the times in the messages.")
    quiet_hours: QuietHours | None = None
    digest: Duration | None = Field(
        None, description="Window batching digest_severities events into one message."
    )
    digest_severities: Annotated[list[Severity], BeforeValidator(_listify)] = Field(
        default_factory=_warnings_only
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("digest")
    @classmethod
    def _window(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and not timedelta(seconds=1) <= value <= timedelta(days=1):
            raise ValueError("a digest window is between 1s and 1d")
        return value


class Defaults(_Strict):
    """What a rule takes when it does not say."""

    language: Language = "zh"
    timezone: str = "Asia/Shanghai"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _check_zone(value)


class Rules(_Strict):
    """The whole file."""

    defaults: Defaults = Field(default_factory=Defaults)
    channels: dict[str, ChannelConfig] = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        """A rule without a name, language or zone takes the file's defaults."""
        if not isinstance(data, dict):
            return data
        found = data.get("defaults")
        defaults: dict[str, Any] = found if isinstance(found, dict) else {}
        language = defaults.get("language", "zh")
        zone = defaults.get("timezone", "Asia/Shanghai")
        rules = data.get("rules")
        if isinstance(rules, list):
            filled = []
            for i, rule in enumerate(rules):
                if isinstance(rule, dict):
                    rule = {"name": f"rule-{i + 1}", "language": language, "timezone": zone, **rule}
                    quiet = rule.get("quiet_hours")
                    if isinstance(quiet, dict):
                        rule["quiet_hours"] = {"zone": rule["timezone"], **quiet}
                filled.append(rule)
            data = {**data, "rules": filled}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Rules:
        for name in self.channels:
            if not re.match(NAME, name):
                raise ValueError(f"channel name {name!r} must match {NAME}")
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"two rules share a name: {names}")
        for rule in self.rules:
            unknown = [c for c in rule.channels if c not in self.channels]
            if unknown:
                raise ValueError(f"rule {rule.name!r} names unknown channels {unknown}")
        return self


def load_rules(path: Path) -> Rules:
    """Read and validate a rules file; ``RulesError`` names the file and the field at fault."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RulesError(f"rules file not found: {path}") from exc
    except OSError as exc:
        raise RulesError(f"cannot read rules file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Rules.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise RulesError(f"{path}: {where}: {first['msg']}") from None
