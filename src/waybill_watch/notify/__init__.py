"""``waybill-watch notify``: anomaly and case events routed by rules to webhooks, chat robots
and e-mail, each (event, channel) delivered once (docs/notify.md).

``core`` decides (pure), ``render`` and ``channels/`` say it in each platform's format,
``store``/``pg`` keep the outbox, ``runtime`` moves records and messages.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_rules_path() -> Path:
    """The packaged example rules file: one channel of every type, documented field by field."""
    return Path(str(resources.files("waybill_watch.notify") / "rules.example.toml"))


def demo_rules_path() -> Path:
    """Packaged rules that send every event to a ``log`` channel (no network, no secrets):
    ``waybill-watch notify --rules "$(python -c 'from waybill_watch.notify import
    demo_rules_path; print(demo_rules_path())')"``, or ``waybill-watch notify --demo``."""
    return Path(str(resources.files("waybill_watch.notify") / "rules.demo.toml"))
