"""scripts/audit.py (make audit, a step of .ci/run), run as CI runs it.

The real pip-audit runs against an unreachable network (a proxy on a closed port) and against a
local stand-in for the OSV API; a fake pip-audit covers what a local server cannot: PyPI answering
404 for every package, a hang, and pip-audit failing for a reason of its own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "audit.py"
LOCK = ROOT / "requirements" / "dev.lock"


def locked_version(name: str) -> str:
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==", 1)[1].split()[0]
    raise AssertionError(name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_audit(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    clean.pop("PIP_AUDIT", None)
    full_env = {
        **clean,
        # pip-audit caches service answers; a fresh cache so nothing is answered from disk
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        **env,
    }
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=240,
        check=False,
    )


def test_unreachable_services_skip_without_failing(tmp_path: Path) -> None:
    """The real pip-audit, both services, every request through a proxy that refuses."""
    proxy = f"http://127.0.0.1:{free_port()}"
    proc = run_audit(
        tmp_path,
        HTTPS_PROXY=proxy,
        HTTP_PROXY=proxy,
        https_proxy=proxy,
        http_proxy=proxy,
        NO_PROXY="",
        no_proxy="",
        AUDIT_SERVICES="pypi,osv",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    assert lines[0].startswith("audit skipped: service unreachable (pypi: "), lines[0]
    assert "; osv: " in lines[0]
    assert "ProxyError" in lines[0] or "Connection refused" in lines[0], lines[0]


class FakeOsv(BaseHTTPRequestHandler):
    """POST /v1/query like api.osv.dev: jinja2 has a fixed advisory, pyyaml an unfixed one."""

    queried: list[str] = []  # noqa: RUF012

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name = query["package"]["name"]
        FakeOsv.queried.append(name)
        vulns = []
        if name == "jinja2":
            vulns.append(advisory("GHSA-test-fixd-0001", name, fixed="99.0", alias="CVE-2099-1"))
        if name == "pyyaml":
            vulns.append(advisory("GHSA-test-nfix-0002", name, fixed=None, alias="CVE-2099-2"))
        body = json.dumps({"vulns": vulns} if vulns else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def advisory(vuln_id: str, name: str, fixed: str | None, alias: str) -> dict[str, object]:
    events: list[dict[str, str]] = [{"introduced": "0"}]
    if fixed:
        events.append({"fixed": fixed})
    return {
        "id": vuln_id,
        "aliases": [alias],
        "summary": f"test advisory for {name}",
        "affected": [
            {
                "package": {"name": name, "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
        ],
    }


@pytest.fixture
def osv_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOsv)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeOsv.queried = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()


def test_fixable_vulnerability_fails_and_unfixed_one_is_reported(
    tmp_path: Path, osv_url: str
) -> None:
    proc = run_audit(tmp_path, AUDIT_SERVICES="osv", AUDIT_OSV_URL=osv_url)
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    jinja2, pyyaml = locked_version("jinja2"), locked_version("pyyaml")
    assert "against osv" in out
    # pip-audit picks which of an advisory's IDs to show first: both are there
    (jinja2_line,) = [line for line in out.splitlines() if line.startswith(f"  jinja2=={jinja2}  ")]
    assert "GHSA-test-fixd-0001" in jinja2_line and "CVE-2099-1" in jinja2_line
    assert jinja2_line.endswith("fixed in: 99.0")
    (pyyaml_line,) = [line for line in out.splitlines() if line.startswith(f"  pyyaml=={pyyaml}  ")]
    assert "GHSA-test-nfix-0002" in pyyaml_line and "CVE-2099-2" in pyyaml_line
    assert pyyaml_line.endswith("fixed in: none released")
    assert out.index("no fixed version (reported, not failing)") < out.index("pyyaml==")
    assert "audit FAILED: upgrade with `make lock LOCK_FLAGS='--upgrade-package jinja2'`" in out
    # the whole locked set for Linux was queried, hashes required, Windows-only pins left out
    assert {"jinja2", "pyyaml", "quixstreams", "pytest", "pip-audit"} <= set(FakeOsv.queried)
    assert "pywin32" not in FakeOsv.queried


def test_accepted_vulnerability_passes_with_its_reason(tmp_path: Path, osv_url: str) -> None:
    ignore = tmp_path / "audit-ignore.txt"
    ignore.write_text(
        "# accepted\n"
        "CVE-2099-1  jinja2: only the sandbox is affected, which waybill-watch never uses\n"
        "GHSA-gone-gone-gone  fixed long ago: stale entry\n"
    )
    proc = run_audit(
        tmp_path, "--ignore-file", str(ignore), AUDIT_SERVICES="osv", AUDIT_OSV_URL=osv_url
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "accepted in requirements/audit-ignore.txt:" in out
    assert "reason: jinja2: only the sandbox is affected" in out
    assert "ignore entry GHSA-gone-gone-gone matches nothing any more" in out
    assert "audit FAILED" not in out
    assert "GHSA-test-nfix-0002" in out  # still reported


def test_ignore_entry_without_a_reason_is_an_error(tmp_path: Path) -> None:
    ignore = tmp_path / "audit-ignore.txt"
    ignore.write_text("GHSA-aaaa-bbbb-cccc\n")
    proc = run_audit(tmp_path, "--ignore-file", str(ignore))
    assert proc.returncode == 2
    assert "GHSA-aaaa-bbbb-cccc has no reason" in proc.stderr


def test_shipped_ignore_file_is_valid() -> None:
    spec = importlib.util.spec_from_file_location("waybill_watch_audit_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    audit = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = audit  # dataclasses look their module up there
    try:
        spec.loader.exec_module(audit)
    finally:
        del sys.modules[spec.name]
    for vuln_id, reason in audit.read_ignore_file(audit.DEFAULT_IGNORE).items():
        assert vuln_id[:4] in {"PYSE", "GHSA", "CVE-", "OSV-"}, vuln_id
        assert len(reason) > 10, vuln_id


FAKE = """\
import json, os, sys, time
args = sys.argv[1:]
mode = os.environ["FAKE_MODE"]
out = args[args.index("--output") + 1]
service = args[args.index("--vulnerability-service") + 1]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if mode == "all-404" and service == "pypi":
    deps = [{"name": n, "skip_reason": f"Dependency not found on PyPI and could not be "
             f"audited: {n} (1.0)"} for n in ("aiohttp", "jinja2")]
    json.dump({"dependencies": deps, "fixes": []}, open(out, "w"))
    print("No known vulnerabilities found")
elif mode == "hang":
    time.sleep(60)
elif mode == "broken":
    print("ERROR:pip_audit._cli:requirement file is not fully pinned: foo", file=sys.stderr)
    sys.exit(1)
else:
    print("requests.exceptions.ConnectionError: Max retries exceeded", file=sys.stderr)
    sys.exit(1)
"""


@pytest.fixture
def fake_pip_audit(tmp_path: Path) -> str:
    path = tmp_path / "pip-audit"
    path.write_text(FAKE)
    return f"{sys.executable} {path}"


def test_pypi_answering_404_for_everything_is_unreachable(
    tmp_path: Path, fake_pip_audit: str
) -> None:
    """pip-audit itself says "No known vulnerabilities found" when PyPI's per-version JSON API
    answers 404 for every package (as a registry-only mirror does): not a pass."""
    log = tmp_path / "calls.log"
    proc = run_audit(tmp_path, PIP_AUDIT=fake_pip_audit, FAKE_MODE="all-404", FAKE_LOG=str(log))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(
        "audit skipped: service unreachable (pypi: no package could be audited, 2 skipped: "
        "Dependency not found on PyPI"
    ), proc.stdout
    assert "; osv: requests.exceptions.ConnectionError: Max retries exceeded)" in proc.stdout
    calls = log.read_text().splitlines()
    assert len(calls) == 2
    for flag in ("--require-hashes", "--disable-pip", f"--requirement {LOCK}"):
        assert flag in calls[0]


def test_a_hanging_service_times_out_as_unreachable(tmp_path: Path, fake_pip_audit: str) -> None:
    proc = run_audit(
        tmp_path,
        "--timeout",
        "2",
        PIP_AUDIT=fake_pip_audit,
        FAKE_MODE="hang",
        FAKE_LOG=str(tmp_path / "calls.log"),
        AUDIT_SERVICES="osv",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "audit skipped: service unreachable (osv: no answer within 2 s)"


def test_pip_audit_failing_otherwise_fails(tmp_path: Path, fake_pip_audit: str) -> None:
    proc = run_audit(
        tmp_path, PIP_AUDIT=fake_pip_audit, FAKE_MODE="broken", FAKE_LOG=str(tmp_path / "l")
    )
    assert proc.returncode == 2
    assert "audit error: pip-audit failed (exit 1)" in proc.stderr
    assert "not fully pinned" in proc.stderr
