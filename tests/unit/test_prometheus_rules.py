"""The shipped Prometheus files (deploy/prometheus/): promtool accepts the rules and the scrape
config, the promtool unit tests (deploy/prometheus/tests/*.yml) pass, every alert is tested
both firing and not firing, and every alert carries a severity, a summary, a description and a
runbook link to a section of docs/operations.md.

promtool comes from Debian's ``prometheus`` package (.ci/run installs it). Without it these
tests fail under CI (``CI=true``) and are skipped, saying why, elsewhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "rules.yml"
ALERTS = PROM / "alerts.yml"
SCRAPE = PROM / "scrape.yml"
TESTS = sorted((PROM / "tests").glob("*.yml"))
OPERATIONS = ROOT / "docs" / "operations.md"
SEVERITIES = {"critical", "warning"}
JOBS = {"waybill-watch", "waybill-watch-cases", "waybill-watch-notify"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = (
            "promtool not found: install Debian's `prometheus` package "
            "(apt-get install --no-install-recommends prometheus; .ci/run does it as root)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def run(*args: str | Path, cwd: Path = PROM) -> str:
    done = subprocess.run(
        [promtool(), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alerts() -> list[dict[str, Any]]:
    return [rule for group in load(ALERTS)["groups"] for rule in group["rules"]]


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_missing_promtool_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="promtool not found"):
        promtool()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="promtool not found"):
        promtool()


def test_promtool_accepts_the_rule_files() -> None:
    output = run("check", "rules", RULES, ALERTS)
    assert output.count("SUCCESS") == 2, output


def test_promtool_unit_tests_pass() -> None:
    assert TESTS, "no promtool tests in deploy/prometheus/tests"
    output = run("test", "rules", *TESTS)
    assert "FAILED" not in output and output.count("SUCCESS") == len(TESTS), output


def test_promtool_accepts_a_config_made_of_the_shipped_files(tmp_path: Path) -> None:
    """scrape.yml is a complete ``scrape_configs`` section: with the rule files it makes a
    valid prometheus.yml (promtool also checks the rule files it names)."""
    config = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [str(RULES), str(ALERTS)],
        **load(SCRAPE),
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    output = run("check", "config", path, cwd=tmp_path)
    assert "SUCCESS" in output, output


def test_scrape_config_has_the_jobs_the_rules_and_dashboard_expect() -> None:
    jobs = {job["job_name"]: job for job in load(SCRAPE)["scrape_configs"]}
    assert set(jobs) == JOBS
    for job in jobs.values():
        assert job["metrics_path"] == "/metrics"
        assert job["static_configs"] and all(group["targets"] for group in job["static_configs"])


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    headings = {
        slug(line.lstrip("#"))
        for line in OPERATIONS.read_text(encoding="utf-8").splitlines()
        if line.startswith("### ")
    }
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alerts():
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        assert annotations["runbook_url"] == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in headings, f"docs/operations.md has no '### {name}' section"


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    silent: set[str] = set()
    for path in TESTS:
        spec = load(path)
        assert {"../rules.yml", "../alerts.yml"} & set(spec["rule_files"]), path
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts never tested firing"
    assert names - silent == set(), "alerts never tested silent"
    assert (firing | silent) - names == set(), "tests of alerts that do not exist"
