"""Generate the Grafana dashboard deploy/grafana/dashboards/waybill-watch.json.

    .venv/bin/python deploy/grafana/dashboard.py          # rewrite the JSON
    .venv/bin/python deploy/grafana/dashboard.py --check  # exit 1 if the JSON is stale

Built with Grafana's foundation SDK (``grafana-foundation-sdk``, dev extra). Every query reads
the raw metrics of the README's "Metrics" table through the ``${datasource}`` variable (any
Prometheus data source) and the ``$instance`` variable (all by default), so the dashboard needs
no recording rule. tests/unit/test_dashboard.py checks that the committed JSON is what this
script generates; tests/integration/test_prometheus_live.py runs every query on a real
Prometheus scraping a real worker. What each panel shows: docs/operations.md ("Dashboard").
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common, dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import (
    GraphDrawStyle,
    LegendDisplayMode,
    LegendPlacement,
    SortOrder,
    StackingMode,
    TooltipDisplayMode,
)
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

UID = "waybill-watch"
TITLE = "waybill-watch"
OUT = Path(__file__).resolve().parent / "dashboards" / "waybill-watch.json"

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
#: Every selector carries the instance filter (``.*`` when "All" is chosen).
I = 'instance=~"$instance"'  # noqa: E741
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    bars: bool = False
    stacked: bool = False


def q(expr: str, legend: str) -> Query:
    return Query(" ".join(expr.split()), legend)


def quantiles(metric: str, by: str = "") -> tuple[Query, ...]:
    """p50/p95/p99 of histogram ``metric`` (``by``: extra grouping labels)."""
    group = f"{by}, le" if by else "le"
    prefix = "{{" + by + "}} " if by else ""
    return tuple(
        q(
            f"histogram_quantile({quantile}, sum by ({group}) "
            f"(rate({metric}_bucket{{{I}}}[{RATE}])))",
            f"{prefix}p{round(quantile * 100)}",
        )
        for quantile in (0.5, 0.95, 0.99)
    )


ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Ingest",
        (
            Panel(
                "Traffic per feed",
                "HTTP callbacks received per second, by feed (_unknown: posts to unknown "
                "feed names).",
                "reqps",
                (
                    q(
                        f"sum by (feed) "
                        f"(rate(waybill_watch_callbacks_received_total{{{I}}}[{RATE}]))",
                        "{{feed}}",
                    ),
                ),
                stacked=True,
            ),
            Panel(
                "Ingest answers by status code",
                "Answers of POST /callbacks/{feed} per second, by HTTP status: 200 accepted, "
                "4xx refused (see Rejections), 503 Kafka did not take the write, other 5xx "
                "our faults.",
                "reqps",
                (
                    q(
                        f"sum by (code) "
                        f"(rate(waybill_watch_callback_responses_total{{{I}}}[{RATE}]))",
                        "{{code}}",
                    ),
                ),
                stacked=True,
            ),
            Panel(
                "Rejections",
                "Callbacks refused per second, by feed and reason (bad_signature, "
                "body_too_large, kafka_unavailable, ...).",
                "reqps",
                (
                    q(
                        f"sum by (feed, reason) "
                        f"(rate(waybill_watch_callbacks_rejected_total{{{I}}}[{RATE}]))",
                        "{{feed}} {{reason}}",
                    ),
                ),
                stacked=True,
            ),
            Panel(
                "DLQ",
                "Records written to tracking.dlq per second, by source topic and reason: "
                "input the worker could not read.",
                "ops",
                (
                    q(
                        f"sum by (source, reason) "
                        f"(rate(waybill_watch_dlq_records_total{{{I}}}[{RATE}]))",
                        "{{source}} {{reason}}",
                    ),
                ),
                stacked=True,
            ),
        ),
    ),
    (
        "Detection",
        (
            Panel(
                "Push → anomaly latency",
                "From the received_at of the push (or order event) that opened an anomaly to "
                "the anomaly handed to the producer: p50, p95 and p99 (deadline-fired "
                "anomalies are not counted).",
                "s",
                quantiles("waybill_watch_push_to_anomaly_seconds"),
            ),
            Panel(
                "Anomalies opened per type",
                "Anomaly episodes opened in each interval, by type.",
                "short",
                (
                    q(
                        f"sum by (type) (increase("
                        f'waybill_watch_anomalies_emitted_total{{{I}, status="open"}}[{RATE}]))',
                        "{{type}}",
                    ),
                ),
                bars=True,
                stacked=True,
            ),
            Panel(
                "Open episodes",
                "Anomaly episodes open now, by type (waybill, site and courier scope).",
                "short",
                (q(f"sum by (type) (waybill_watch_open_episodes{{{I}}})", "{{type}}"),),
                stacked=True,
            ),
            Panel(
                "Clock lag",
                "Wall clock minus the detection clock, per waybill partition: deadlines fire "
                "this late. About the tick interval when caught up.",
                "s",
                (
                    q(
                        f"max by (instance, partition) (waybill_watch_clock_lag_seconds{{{I}}})",
                        "{{instance}} p{{partition}}",
                    ),
                ),
            ),
        ),
    ),
    (
        "Worker",
        (
            Panel(
                "Consumer lag",
                "Records not yet read by the workers, by input topic (all partitions).",
                "short",
                (
                    q(
                        f"sum by (topic) (waybill_watch_consumer_lag{{{I}}})",
                        "{{topic}}",
                    ),
                ),
            ),
            Panel(
                "Stage processing time",
                "Time to process one record in each worker stage (normalize, validate, "
                "waybill, aggregate): p50 and p99.",
                "s",
                tuple(
                    q(
                        f"histogram_quantile({quantile}, sum by (stage, le) "
                        f"(rate(waybill_watch_stage_seconds_bucket{{{I}}}[{RATE}])))",
                        f"{{{{stage}}}} p{round(quantile * 100)}",
                    )
                    for quantile in (0.5, 0.99)
                ),
            ),
            Panel(
                "State size",
                "RocksDB's estimate of the state stores' size (live data plus memtables), "
                "per worker.",
                "bytes",
                (q(f"sum by (instance) (waybill_watch_state_bytes{{{I}}})", "{{instance}}"),),
            ),
            Panel(
                "Waybill states",
                "Per-waybill states (retired markers included) in each worker's partitions.",
                "short",
                (
                    q(
                        f"sum by (instance) (waybill_watch_waybill_states{{{I}}})",
                        "{{instance}}",
                    ),
                ),
            ),
            Panel(
                "Partitions and rebalances",
                "Waybill partitions each worker owns (should add up to "
                "WAYBILL_WATCH_PARTITIONS), and rebalance events (assigned, revoked, lost).",
                "short",
                (
                    q(
                        f"sum by (instance) (waybill_watch_partitions_assigned{{{I}}})",
                        "{{instance}} partitions",
                    ),
                    q(
                        f"sum by (event) (increase(waybill_watch_rebalances_total{{{I}}}[{RATE}]))",
                        "rebalance {{event}}",
                    ),
                ),
            ),
            Panel(
                "Targets up",
                "1 while Prometheus scrapes a target of the waybill-watch jobs (worker, "
                "ingest, case service, notifier), 0 when it is down.",
                "short",
                (q(f'up{{job=~"waybill-watch.*", {I}}}', "{{job}} {{instance}}"),),
            ),
        ),
    ),
)


def panel(spec: Panel, panel_id: int) -> timeseries.Panel:
    built = (
        timeseries.Panel()
        .id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .min(0)
        .height(8)
        .span(12)
        .fill_opacity(20 if spec.stacked else 0)
        .draw_style(GraphDrawStyle.BARS if spec.bars else GraphDrawStyle.LINE)
        .stacking(
            common.StackingConfig().mode(StackingMode.NORMAL if spec.stacked else StackingMode.NONE)
        )
        .legend(
            common.VizLegendOptions()
            .show_legend(True)
            .display_mode(LegendDisplayMode.TABLE)
            .placement(LegendPlacement.BOTTOM)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            common.VizTooltipOptions().mode(TooltipDisplayMode.MULTI).sort(SortOrder.DESCENDING)
        )
    )
    for ref, query in zip("ABCDEFGH", spec.queries, strict=False):
        built = built.with_target(
            prometheus.Dataquery()
            .datasource(DATASOURCE)
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(ref)
        )
    return built


def build() -> dict[str, Any]:
    """The dashboard as JSON-ready dicts."""
    board = (
        dashboard.Dashboard(TITLE)
        .uid(UID)
        .description(
            "waybill-watch: courier callbacks, detection, worker health. Generated by "
            "deploy/grafana/dashboard.py; edit that, not this JSON."
        )
        .tags(["waybill-watch"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(
            dashboard.QueryVariable("instance")
            .label("Instance")
            .datasource(DATASOURCE)
            .query('label_values(up{job=~"waybill-watch.*"}, instance)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
            .current(VariableOption(selected=True, text="All", value="$__all"))
        )
    )
    panel_id = 1
    for title, panels in ROWS:
        board = board.with_row(dashboard.Row(title).id(panel_id))
        panel_id += 1
        for spec in panels:
            board = board.with_panel(panel(spec, panel_id))
            panel_id += 1
    encoded: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    return encoded


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is stale")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
