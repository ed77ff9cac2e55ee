"""The SOP as data: per anomaly type, the steps a case brings and when each is due.

Operators change the ladder without code: ``WAYBILL_WATCH_CASES_PLAYBOOKS`` names a TOML file
in the layout of the packaged ``playbooks.toml`` (which is the default and documents every
field). A file that does not validate stops the service at start with the field at fault.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from waybill_watch.durations import Duration
from waybill_watch.models.anomaly import AnomalyType

STEP_CODE = r"^[a-z][a-z0-9_]{0,63}$"


class PlaybookError(ValueError):
    """A playbook file that cannot be used, with the field at fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepSpec(_Strict):
    """One step of a playbook."""

    step: str = Field(pattern=STEP_CODE)
    title: str
    due: Duration = Field(description="Due this long after the episode joined the case.")
    remind: Duration | None = Field(
        None, description="step_due fires this long before due (default: the playbook's)."
    )
    help: str = ""


class Playbook(_Strict):
    """What a case does for one anomaly type."""

    title: str
    steps: list[StepSpec] = Field(default_factory=list)
    remind: Duration = Field(timedelta(hours=1), description="Default reminder lead.")
    auto_close: bool = Field(
        True, description="Close the case when every episode in it has resolved."
    )

    @model_validator(mode="after")
    def _distinct_steps(self) -> Playbook:
        codes = [s.step for s in self.steps]
        if len(codes) != len(set(codes)):
            raise ValueError(f"a step code appears twice: {codes}")
        return self


class Playbooks(_Strict):
    """Every anomaly type's playbook and the outcome codes people may choose."""

    outcomes: dict[str, str] = Field(description="Case outcome code → label.")
    step_outcomes: dict[str, str] = Field(description="Step outcome code → label.")
    playbooks: dict[AnomalyType, Playbook]

    @model_validator(mode="after")
    def _complete(self) -> Playbooks:
        from typing import get_args

        missing = sorted(set(get_args(AnomalyType)) - set(self.playbooks))
        if missing:
            raise ValueError(f"no playbook for anomaly types {missing}")
        for code in [*self.outcomes, *self.step_outcomes]:
            if not re.match(STEP_CODE, code):
                raise ValueError(f"outcome code {code!r} must match {STEP_CODE}")
        return self

    def for_type(self, anomaly_type: str) -> Playbook:
        """The playbook of ``anomaly_type``."""
        return self.playbooks[anomaly_type]  # type: ignore[index]

    def step_spec(self, anomaly_type: str, step: str) -> StepSpec | None:
        """The spec of ``step`` in ``anomaly_type``'s playbook, if it has one."""
        return next((s for s in self.for_type(anomaly_type).steps if s.step == step), None)


def default_path() -> Path:
    """The packaged playbooks (the defaults documented in the README)."""
    return Path(str(resources.files("waybill_watch.cases") / "playbooks.toml"))


def load_playbooks(path: Path | None = None) -> Playbooks:
    """Read and validate a playbook file; ``None`` reads the packaged defaults."""
    path = path or default_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PlaybookError(f"playbook file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PlaybookError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return Playbooks.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PlaybookError(f"{path}: {where}: {first['msg']}") from exc
