#!/usr/bin/env python3
"""Audit the locked dependency set (requirements/dev.lock) for known vulnerabilities.

Run by `make audit` and by .ci/run as its own step. It runs pip-audit on the lock itself
(`-r LOCK --require-hashes --disable-pip`: the exact pins, nothing resolved or installed) against
the vulnerability services in turn (PyPI's, then OSV) until one answers, and then:

* no service answers (DNS, connection, proxy or TLS failure, HTTP 5xx, time-out, or PyPI answering
  404 for every package, which pip-audit would otherwise report as "No known vulnerabilities
  found") -> prints `audit skipped: service unreachable (<error>)` and exits 0: a CI machine
  without that service must not go red for it;
* a vulnerability that has a fixed version and is not accepted in requirements/audit-ignore.txt
  -> prints it and exits 1. Policy: with a lock nothing upgrades by itself, and a fixed version
  means the remedy is one command (`make lock LOCK_FLAGS='--upgrade-package NAME'`), so CI fails
  until it is taken or the advisory is accepted, with a reason, in the ignore file;
* a vulnerability with no fixed version yet -> printed, exit 0: nothing to upgrade to, and failing
  every build until upstream releases would only teach people to ignore the audit;
* pip-audit itself failing for another reason (unreadable lock, missing hash, ...) -> exit 2.

Options (environment): AUDIT_TIMEOUT seconds per service (default 240), AUDIT_SERVICES
(default "pypi,osv"), AUDIT_OSV_URL (another OSV API, e.g. a mirror), PIP_AUDIT (the pip-audit
command; default: this Python's pip_audit module).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LOCK = ROOT / "requirements" / "dev.lock"
DEFAULT_IGNORE = ROOT / "requirements" / "audit-ignore.txt"

# What a service that cannot be reached looks like in pip-audit's output (requests/urllib3
# exceptions in a traceback, or pip-audit's own ConnectionError/ServiceError).
UNREACHABLE = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|Timeout|timed out|ProxyError|SSLError"
    r"|NameResolution|Name or service not known|Temporary failure in name resolution"
    r"|Max retries exceeded|Connection refused|Network is unreachable|No route to host"
    r"|RemoteDisconnected|TooManyRedirects|ServiceError|Could not connect",
)


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Vuln:
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fix_versions: tuple[str, ...]
    description: str

    @property
    def ids(self) -> set[str]:
        return {self.id, *self.aliases}

    def line(self) -> str:
        fix = ", ".join(self.fix_versions) if self.fix_versions else "none released"
        aka = f" ({', '.join(self.aliases)})" if self.aliases else ""
        return f"  {self.package}=={self.version}  {self.id}{aka}  fixed in: {fix}"


def read_ignore_file(path: Path) -> dict[str, str]:
    """ID -> reason. One entry a line: `ID  reason`; `#` starts a comment line."""
    accepted: dict[str, str] = {}
    if not path.exists():
        return accepted
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        vuln_id, _, reason = line.partition(" ")
        reason = reason.strip().lstrip("#:-").strip()
        if not reason:
            raise ConfigError(f"{path}:{number}: {vuln_id} has no reason; write why it is accepted")
        accepted[vuln_id] = reason
    return accepted


def pip_audit_command() -> list[str]:
    if os.environ.get("PIP_AUDIT"):
        return shlex.split(os.environ["PIP_AUDIT"])
    return [sys.executable, "-m", "pip_audit"]


def last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if UNREACHABLE.search(line):
            return line[:300]
    return (lines[-1] if lines else "no output")[:300]


@dataclass
class Outcome:
    unreachable: str | None = None  # why, when the service could not be used
    report: dict[str, Any] | None = None  # pip-audit's JSON when it could


def run_pip_audit(lock: Path, service: str, timeout: float) -> Outcome:
    with tempfile.TemporaryDirectory(prefix="audit-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [
            *pip_audit_command(),
            "--requirement",
            str(lock),
            "--require-hashes",
            "--disable-pip",
            "--vulnerability-service",
            service,
            "--format",
            "json",
            "--output",
            str(out),
            "--progress-spinner",
            "off",
            "--desc",
            "on",
            "--aliases",
            "on",
            "--timeout",
            "15",
        ]
        if service == "osv" and os.environ.get("AUDIT_OSV_URL"):
            cmd += ["--osv-url", os.environ["AUDIT_OSV_URL"]]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
            )
        except subprocess.TimeoutExpired:
            return Outcome(unreachable=f"{service}: no answer within {timeout:g} s")
        except FileNotFoundError as exc:
            raise ConfigError(f"pip-audit not found ({exc}); run `make venv`") from exc
        output = proc.stderr + proc.stdout
        report = None
        if out.exists() and out.stat().st_size:
            try:
                report = json.loads(out.read_text(encoding="utf-8"))
            except ValueError:
                report = None
        # pip-audit exits 1 when it found vulnerabilities, with the report written
        if report is not None and proc.returncode in (0, 1):
            return Outcome(report=report)
        if UNREACHABLE.search(output):
            return Outcome(unreachable=f"{service}: {last_error_line(output)}")
        sys.stderr.write(output)
        raise ConfigError(f"pip-audit failed (exit {proc.returncode}): {last_error_line(output)}")


def audited(report: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    return [d for d in deps if not d.get("skip_reason")], skipped


def vulns_of(report: dict[str, Any]) -> list[Vuln]:
    return [
        Vuln(
            package=dep["name"],
            version=dep.get("version", "?"),
            id=v["id"],
            aliases=tuple(v.get("aliases", [])),
            fix_versions=tuple(v.get("fix_versions", [])),
            description=(v.get("description") or "").strip(),
        )
        for dep in report.get("dependencies", [])
        for v in dep.get("vulns", [])
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK)
    parser.add_argument("--ignore-file", type=Path, default=DEFAULT_IGNORE)
    parser.add_argument(
        "--timeout", type=float, default=float(os.environ.get("AUDIT_TIMEOUT", "240"))
    )
    parser.add_argument(
        "--services",
        default=os.environ.get("AUDIT_SERVICES", "pypi,osv"),
        help="vulnerability services to try in turn (pip-audit's names)",
    )
    args = parser.parse_args(argv)
    try:
        accepted = read_ignore_file(args.ignore_file)
        failures: list[str] = []
        for service in [s.strip() for s in args.services.split(",") if s.strip()]:
            outcome = run_pip_audit(args.lock, service, args.timeout)
            if outcome.report is None:
                failures.append(outcome.unreachable or service)
                continue
            checked, skipped = audited(outcome.report)
            if not checked:
                reason = skipped[0]["skip_reason"] if skipped else "no dependencies in the report"
                failures.append(
                    f"{service}: no package could be audited, {len(skipped)} skipped: {reason}"
                )
                continue
            return judge(outcome.report, service, args.lock, accepted)
    except ConfigError as exc:
        print(f"audit error: {exc}", file=sys.stderr)
        return 2
    print(f"audit skipped: service unreachable ({'; '.join(failures)})")
    return 0


def judge(report: dict[str, Any], service: str, lock: Path, accepted: dict[str, str]) -> int:
    checked, skipped = audited(report)
    vulns = vulns_of(report)
    try:
        shown = lock.resolve().relative_to(ROOT)
    except ValueError:
        shown = lock
    print(f"audit: {len(checked)} packages of {shown} checked against {service}")
    for dep in skipped:
        print(f"  not audited: {dep['name']} ({dep['skip_reason']})")
    ignored = [v for v in vulns if v.ids & accepted.keys()]
    fixable = [v for v in vulns if v not in ignored and v.fix_versions]
    unfixed = [v for v in vulns if v not in ignored and not v.fix_versions]
    if ignored:
        print("accepted in requirements/audit-ignore.txt:")
        for v in ignored:
            reason = next(accepted[i] for i in sorted(v.ids) if i in accepted)
            print(f"{v.line()}\n    reason: {reason}")
    matched = {i for v in ignored for i in v.ids}
    for vuln_id in sorted(accepted.keys() - matched):
        print(f"  note: ignore entry {vuln_id} matches nothing any more; remove it")
    if unfixed:
        print("known vulnerabilities with no fixed version (reported, not failing):")
        for v in unfixed:
            print(f"{v.line()}\n    {v.description[:300]}")
    if fixable:
        print("known vulnerabilities with a fixed version (failing):")
        for v in fixable:
            print(f"{v.line()}\n    {v.description[:300]}")
        names = " ".join(sorted({v.package for v in fixable}))
        print(
            f"audit FAILED: upgrade with `make lock LOCK_FLAGS='"
            f"{' '.join('--upgrade-package ' + n for n in names.split())}'`, or accept each "
            "with a reason in requirements/audit-ignore.txt"
        )
        return 1
    if not vulns:
        print("audit: no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main())
