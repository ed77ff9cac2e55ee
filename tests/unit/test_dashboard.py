"""The Grafana dashboard (deploy/grafana/): the committed JSON is exactly what
deploy/grafana/dashboard.py generates, it is provisionable (uid, title, a ``${datasource}``
Prometheus variable that every panel and query uses), it has the panels the operations guide
describes, and the provisioning files point at the compose setup's Prometheus and the mounted
dashboard folder. (Every panel's PromQL runs against a real Prometheus in
tests/integration/test_prometheus_live.py.)"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
JSON_PATH = GRAFANA / "dashboards" / "waybill-watch.json"
OPERATIONS = ROOT / "docs" / "operations.md"

PANELS = {
    "Traffic per feed",
    "Ingest answers by status code",
    "Rejections",
    "DLQ",
    "Push → anomaly latency",
    "Anomalies opened per type",
    "Open episodes",
    "Clock lag",
    "Consumer lag",
    "Stage processing time",
    "State size",
    "Waybill states",
    "Partitions and rebalances",
    "Targets up",
}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "waybill_watch_dashboard", GRAFANA / "dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def committed() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(JSON_PATH.read_text(encoding="utf-8"))
    return loaded


def graphs(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row"]


def test_committed_json_is_what_the_generator_writes() -> None:
    assert JSON_PATH.read_text(encoding="utf-8") == generator().render(), (
        "deploy/grafana/dashboards/waybill-watch.json is stale: "
        "run .venv/bin/python deploy/grafana/dashboard.py"
    )


def test_check_mode_tells_stale_from_current(tmp_path: Path) -> None:
    module = generator()
    stale = tmp_path / "board.json"
    stale.write_text("{}\n", encoding="utf-8")
    assert module.main(["--check", "--out", str(stale)]) == 1
    assert module.main(["--out", str(stale)]) == 0
    assert module.main(["--check", "--out", str(stale)]) == 0


def test_dashboard_is_provisionable_with_a_datasource_variable() -> None:
    board = committed()
    assert board["uid"] == "waybill-watch" and board["title"] == "waybill-watch"
    assert "id" not in board or board["id"] is None, "a provisioned dashboard has no fixed id"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["datasource"]["uid"] == "${datasource}"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for graph in graphs(board):
        assert graph["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, graph
        assert graph["targets"], graph["title"]
        for target in graph["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'instance=~"$instance"' in target["expr"], target["expr"]
            assert re.search(r"\bwaybill_watch_\w+|\bup\b", target["expr"]), target["expr"]


def test_dashboard_has_the_panels_and_the_guide_describes_each() -> None:
    titles = [g["title"] for g in graphs(committed())]
    assert set(titles) == PANELS and len(titles) == len(PANELS)
    guide = OPERATIONS.read_text(encoding="utf-8").split("## Dashboard", 1)[1]
    for title in titles:
        assert f"**{title}**" in guide, f"docs/operations.md does not describe panel {title!r}"


def test_latency_panel_shows_p50_p95_p99_of_the_histogram() -> None:
    [latency] = [g for g in graphs(committed()) if g["title"] == "Push → anomaly latency"]
    exprs = [t["expr"] for t in latency["targets"]]
    assert [e.split(",", 1)[0] for e in exprs] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
    ]
    assert all("waybill_watch_push_to_anomaly_seconds_bucket" in e for e in exprs)


def test_provisioning_points_at_compose_prometheus_and_the_mounted_dashboards() -> None:
    [source] = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    assert source["isDefault"] is True
    [provider] = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "waybill-watch.yml").read_text(encoding="utf-8")
    )["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
